//! Cache-aside with stampede protection, on memcached's meta tokens.
//!
//! One `mg <key> v c t N<lease> [R<window>]` decides everything
//! (memcached `protocol.txt`, "anti-stampede"):
//! - a miss creates an empty placeholder and answers `W` to this caller
//!   only: it loads and stores with the placeholder's CAS;
//! - later callers see the placeholder with `Z` (a winner is loading) and
//!   poll until the value is there, up to the lease wait;
//! - a hit with less than `R` seconds left answers `W` to one caller, who
//!   reloads, and `Z` with the current value to the others, who use it;
//! - an item marked stale (`md <key> I`, [`Client::invalidate`]) answers
//!   `X W` to one caller and `X Z` with the stale value to the others. A
//!   client that still sees the same stale item (same CAS) with its win
//!   taken a whole `lease_wait` after it first saw it takes the win back
//!   (`md <key> I C<cas>`, which clears the token) and competes again: the
//!   reload's winner died, or its `W` reply was lost with its connection.
//!
//! A failed load gives the win back: the placeholder is deleted, a value
//! is marked stale (which clears the token), so the next caller wins. So
//! does a lost one: a loader that panics, or a caller whose future is
//! dropped mid-load (a `timeout` around the call), gives the lease back
//! from a drop guard. A winner that is still loading after `lease_wait`
//! has its lease taken away (deleted if its CAS is unchanged) and the
//! waiters compete for one new win; only a caller that then waits another
//! `lease_wait` (or twice `lease_wait` in all) follows `on_lease_timeout`.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::client::Client;
use crate::error::{BoxError, Error, Result};
use crate::expiry::exptime;
use crate::ops::StoreOptions;
use crate::proto::request::Cmd;
use crate::proto::response::Status;

/// Most `X Z` items a client tracks at once (see [`StaleSeen`]).
const MAX_STALE_SEEN: usize = 4096;

/// Stale items seen with their reload win taken (`X Z`): key to (CAS,
/// first seen). If the same CAS still reads `X Z` a whole `lease_wait`
/// later, the reload's winner is lost (it died, or its `W` reply never
/// arrived): without a hand, every reader would be served the stale value
/// for as long as the item lives. Bounded: when full, entries older than
/// two lease waits go; if none, the new one is not tracked.
#[derive(Debug, Default)]
pub(crate) struct StaleSeen(Mutex<HashMap<Vec<u8>, (u64, Instant)>>);

impl StaleSeen {
    /// Notes `X Z` for `key` with `cas`; true if the same CAS was first
    /// seen at least `wait` ago (the entry is then dropped: the caller
    /// frees the win).
    fn stuck(&self, key: &[u8], cas: u64, wait: Duration) -> bool {
        let mut m = self.0.lock().unwrap();
        if let Some((c, t)) = m.get(key) {
            if *c == cas {
                if t.elapsed() >= wait {
                    m.remove(key);
                    return true;
                }
                return false;
            }
        }
        if m.len() >= MAX_STALE_SEEN && !m.contains_key(key) {
            m.retain(|_, (_, t)| t.elapsed() < wait * 2);
            if m.len() >= MAX_STALE_SEEN {
                return false;
            }
        }
        m.insert(key.to_vec(), (cas, Instant::now()));
        false
    }
}

/// Longest pause between two polls of a placeholder.
const MAX_POLL: Duration = Duration::from_millis(100);

/// XFetch's recompute time when none is configured and nothing was
/// measured yet.
const DEFAULT_DELTA: Duration = Duration::from_millis(100);

/// What a caller that waited the whole lease wait for another caller's
/// load does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnLeaseTimeout {
    /// Run its own loader and store the result if the placeholder is still
    /// unchanged (default: availability first). The placeholder is another
    /// caller's: a failed load leaves it alone.
    Load,
    /// Fail with [`Error::LeaseTimeout`] after the first `lease_wait`,
    /// deleting the stuck lease so a later caller can win (the source is
    /// protected first).
    Fail,
}

/// Probabilistic early refresh (XFetch: Vattani, Chierichetti, Lowenstein,
/// "Optimal Probabilistic Cache Stampede Prevention", VLDB 2015): a read
/// with `r` seconds left reloads with probability `exp(-r / (delta *
/// beta))`, so hot keys are refreshed shortly before they expire. Sent as
/// the `R` token, a sample of `delta * beta * -ln(U)` rounded up to whole
/// seconds, so the server still lets only one caller reload.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EarlyRefresh {
    /// Eagerness; 1.0 is the paper's default, above 1 refreshes earlier.
    pub beta: f64,
    /// How long a load takes; None uses this client's moving average of
    /// its loads (100 ms before the first).
    pub delta: Option<Duration>,
}

/// Settings of [`Client::get_or_load`].
#[derive(Debug, Clone, PartialEq)]
pub struct AsideConfig {
    /// TTL of the placeholder a winner creates on a miss (the `N` token):
    /// the longest the others wait if the winner dies. Default 30 s.
    pub lease_ttl: Duration,
    /// How long a caller waits on one winner's load before it takes the
    /// lease away and competes for a new win; after a second wait (or
    /// twice this in all) it follows `on_lease_timeout`. Default 5 s.
    pub lease_wait: Duration,
    /// First pause between polls of a placeholder; doubles up to 100 ms.
    /// Default 5 ms.
    pub poll_interval: Duration,
    /// What a caller does when the waits of `lease_wait` are over.
    /// Default [`OnLeaseTimeout::Load`].
    pub on_lease_timeout: OnLeaseTimeout,
    /// Reload when less than this is left of a value's TTL (the `R`
    /// token; whole seconds), one caller only, the others still served.
    /// Zero (default) turns it off.
    pub recache_before: Duration,
    /// Probabilistic early refresh; None (default) turns it off.
    pub early_refresh: Option<EarlyRefresh>,
    /// Shortens each stored TTL by a random share up to this fraction
    /// (0.1: 90-100 % of the TTL), so keys loaded together do not expire
    /// together. Default 0.
    pub ttl_jitter: f64,
    /// When the cache cannot be reached (connection, timeout, node down),
    /// call the loader and return its value without caching it. Default
    /// true; false returns the cache's error.
    pub load_on_cache_error: bool,
}

impl Default for AsideConfig {
    fn default() -> AsideConfig {
        AsideConfig {
            lease_ttl: Duration::from_secs(30),
            lease_wait: Duration::from_secs(5),
            poll_interval: Duration::from_millis(5),
            on_lease_timeout: OnLeaseTimeout::Load,
            recache_before: Duration::ZERO,
            early_refresh: None,
            ttl_jitter: 0.0,
            load_on_cache_error: true,
        }
    }
}

impl Client {
    /// The value under `key`; on a miss, exactly one caller across every
    /// client of the cache runs `loader` and stores its value for `ttl`,
    /// while the others wait for it (see the module docs and
    /// [`AsideConfig`]). A loader error is returned as [`Error::Source`] to
    /// the caller that ran it and leaves the key free for the next one.
    pub async fn get_or_load<F, Fut, E>(
        &self,
        key: impl AsRef<[u8]>,
        ttl: Duration,
        loader: F,
    ) -> Result<Vec<u8>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<Vec<u8>, E>>,
        E: Into<BoxError>,
    {
        let key = key.as_ref();
        let cfg = self.aside_cfg().clone();
        let started = Instant::now();
        let mut pause = cfg.poll_interval;
        // The placeholder this caller waits on (its CAS) and since when;
        // whether it already took a stuck lease away once.
        let mut lease: Option<(u64, Instant)> = None;
        let mut recompeted = false;
        // Whether this caller already freed a lost stale reload once.
        let mut freed = false;
        loop {
            let recache = self.recache_token();
            let res = self
                .one(key, |b, k| {
                    Cmd::new(b, "mg", k)
                        .flag(b'v')
                        .flag(b'c')
                        .flag(b't')
                        .num(b'N', exptime(cfg.lease_ttl))
                        .opt(b'R', recache)
                        .end()
                })
                .await;
            let (reply, i) = match res {
                Ok(r) => r,
                Err(e) if e.is_transport() && cfg.load_on_cache_error => {
                    return loader().await.map_err(|e| Error::Source(e.into()));
                }
                Err(e) => return Err(e),
            };
            let m = reply.meta;
            match reply.status {
                Status::Value => {
                    let value = reply.value.unwrap_or_default();
                    let placeholder = is_placeholder(value.len(), &m);
                    let cas = m.cas.ok_or_else(|| self.protocol(i, "mg c without c"))?;
                    if m.won {
                        let lease = if placeholder {
                            Lease::Placeholder
                        } else {
                            Lease::Value
                        };
                        return self.fill(key, ttl, cas, lease, loader).await;
                    }
                    if !placeholder {
                        if m.stale && m.win_taken && !freed {
                            let wait = cfg.lease_wait;
                            if self.inner.stale_seen.stuck(key, cas, wait) {
                                // The reload's winner is lost: mark it
                                // stale anew (only if unchanged; clears the
                                // token, new CAS) and compete for the win.
                                freed = true;
                                self.restale(key, cas).await;
                                continue;
                            }
                        }
                        return Ok(value);
                    }
                    // A new placeholder is a new winner at work: its own
                    // lease wait starts now.
                    let since = match lease {
                        Some((c, t)) if c == cas => t,
                        _ => {
                            if lease.is_some() {
                                // The placeholder changed under us: another
                                // waiter took the lost lease and a new winner
                                // is at work. That was this caller's one
                                // recompete; taking the new winner's lease
                                // too would cut a live load short (CI: the
                                // second loader failed and gave back, and a
                                // later caller loaded instead of waiting).
                                recompeted = true;
                            }
                            let now = Instant::now();
                            lease = Some((cas, now));
                            now
                        }
                    };
                    let stuck = since.elapsed() >= cfg.lease_wait;
                    if stuck || started.elapsed() >= cfg.lease_wait * 2 {
                        if cfg.on_lease_timeout == OnLeaseTimeout::Fail {
                            // Free the key for later callers; this one fails.
                            if stuck {
                                self.take_lease(key, cas).await;
                            }
                            return Err(Error::LeaseTimeout(cfg.lease_wait));
                        }
                        if stuck && !recompeted {
                            // The winner is lost or slow: delete its lease
                            // (only if still the same one; one caller's
                            // delete succeeds) and compete again for one
                            // new win, instead of every waiter loading.
                            recompeted = true;
                            self.take_lease(key, cas).await;
                            pause = cfg.poll_interval;
                            continue;
                        }
                        // Waited twice over: load and store only if the
                        // placeholder is still this one. The lease is
                        // someone else's (a winner still at work): it is
                        // never given back from here, whatever happens.
                        return self.fill(key, ttl, cas, Lease::Foreign, loader).await;
                    }
                    let left = cfg.lease_wait.saturating_sub(since.elapsed());
                    tokio::time::sleep(pause.min(left).max(Duration::from_millis(1))).await;
                    pause = (pause * 2).min(MAX_POLL);
                }
                Status::Miss => {
                    // N made no placeholder (the server is out of memory
                    // and may not evict): no lease to be had.
                    let v = loader().await.map_err(|e| Error::Source(e.into()))?;
                    let _ = self.add(key, &v, self.jittered(ttl)).await;
                    return Ok(v);
                }
                other => {
                    return Err(self.protocol(i, &format!("unexpected reply to mg: {other:?}")))
                }
            }
        }
    }

    /// Runs the loader and stores its value with the lease's CAS. A lease
    /// this caller won is given back if the load fails or is lost; a
    /// foreign one (the fallback after waiting twice) never is: its CAS is
    /// a live winner's, whose placeholder `md C<cas>` would delete.
    async fn fill<F, Fut, E>(
        &self,
        key: &[u8],
        ttl: Duration,
        cas: u64,
        lease: Lease,
        loader: F,
    ) -> Result<Vec<u8>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<Vec<u8>, E>>,
        E: Into<BoxError>,
    {
        // Gives the lease back if this future is dropped or the loader
        // panics before the store below is done.
        let placeholder = lease != Lease::Value;
        let held = lease != Lease::Foreign;
        let mut guard = LeaseGuard {
            client: self,
            key,
            cas,
            placeholder,
            armed: held,
        };
        let t0 = Instant::now();
        let value = match loader().await {
            Ok(v) => v,
            Err(e) => {
                guard.armed = false;
                if held {
                    self.give_back(key, cas, placeholder).await;
                }
                return Err(Error::Source(e.into()));
            }
        };
        self.note_load_time(t0.elapsed());
        let opts = StoreOptions {
            ttl: self.jittered(ttl),
            cas: Some(cas),
            ..StoreOptions::default()
        };
        let stored = self.store(key, &value, &opts).await;
        guard.armed = false;
        match stored {
            // A CAS miss means a newer write or an invalidation came first:
            // this value is returned but not cached over it.
            Ok(()) | Err(Error::CasMismatch | Error::NotFound | Error::NotStored) => {}
            Err(e) if e.is_transport() => {}
            // Too large, out of memory: do not leave the others waiting.
            Err(_) if held => self.give_back(key, cas, placeholder).await,
            Err(_) => {}
        }
        Ok(value)
    }

    /// Frees a won key for the next caller: a placeholder is deleted, a
    /// value is marked stale (`md I`, which also clears the win token).
    /// Both only if the CAS is still the lease's.
    pub(crate) async fn give_back(&self, key: &[u8], cas: u64, placeholder: bool) {
        if placeholder {
            self.take_lease(key, cas).await;
        } else {
            self.restale(key, cas).await;
        }
    }

    /// Deletes the placeholder with CAS `cas` (`md <key> C<cas>`); a
    /// placeholder filled or replaced since is left alone (`EX`/`NF`).
    async fn take_lease(&self, key: &[u8], cas: u64) {
        let _ = self
            .one(key, |b, k| Cmd::new(b, "md", k).num(b'C', cas).end())
            .await;
    }

    /// Marks the item with CAS `cas` stale again (`md <key> I C<cas>`),
    /// which clears its win token: the next reader of it wins. Both
    /// servers do so, and both give the item a new CAS (memcached's
    /// "mark the stale bit, bump CAS"; corecache since d3cedfe).
    pub(crate) async fn restale(&self, key: &[u8], cas: u64) {
        let _ = self
            .one(key, |b, k| {
                Cmd::new(b, "md", k).flag(b'I').num(b'C', cas).end()
            })
            .await;
    }

    fn recache_token(&self) -> Option<u64> {
        let cfg = self.aside_cfg();
        let mut secs = cfg.recache_before.as_secs_f64();
        if let Some(er) = cfg.early_refresh {
            let delta =
                er.delta
                    .unwrap_or_else(|| match self.inner.load_ewma_us.load(Ordering::Relaxed) {
                        0 => DEFAULT_DELTA,
                        us => Duration::from_micros(us),
                    });
            // U in (0, 1]: -ln(U) is exponential with mean 1.
            let u = 1.0 - fastrand::f64();
            secs = secs.max(delta.as_secs_f64() * er.beta * -u.ln());
        }
        // With whole seconds left r, "r < ceil(s)" is "r < s": XFetch's own
        // test at the server's resolution.
        let t = secs.ceil();
        (t >= 1.0).then(|| t.min(u32::MAX as f64) as u64)
    }

    fn note_load_time(&self, d: Duration) {
        let us = d.as_micros().max(1) as u64;
        let ewma = &self.inner.load_ewma_us;
        let old = ewma.load(Ordering::Relaxed);
        let new = if old == 0 { us } else { (old * 7 + us) / 8 };
        ewma.store(new.max(1), Ordering::Relaxed);
    }

    pub(crate) fn jittered(&self, ttl: Duration) -> Duration {
        let j = self.aside_cfg().ttl_jitter.clamp(0.0, 1.0);
        if ttl.is_zero() || j == 0.0 {
            return ttl;
        }
        // Saturating: Duration::MAX times a factor near 1 can round up past
        // what a Duration holds.
        Duration::try_from_secs_f64(ttl.as_secs_f64() * (1.0 - j * fastrand::f64()))
            .unwrap_or(ttl)
            .max(Duration::from_secs(1))
    }
}

/// Whose lease [`Client::fill`] stores under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lease {
    /// This caller won an empty placeholder (`W` on a miss).
    Placeholder,
    /// This caller won the reload of a value (`W` on a stale or soon to
    /// expire one).
    Value,
    /// Another caller's placeholder, loaded over after waiting twice: only
    /// a CAS-guarded store, never given back.
    Foreign,
}

/// Whether a hit is an `N` placeholder (or a value being recomputed that
/// reads the same): no bytes, and a win token given out (`W`, or `Z` for
/// someone else). A stored empty value under recomputation is taken for
/// one too: the two cannot be told apart on the wire.
pub(crate) fn is_placeholder(len: usize, m: &crate::proto::response::Meta) -> bool {
    len == 0 && (m.won || m.win_taken)
}

/// Holds a won lease while its loader runs; dropped armed (the caller's
/// future was dropped, e.g. by a timeout, or the loader panicked), it gives
/// the lease back from a spawned task, so the waiters elect a new winner at
/// once instead of waiting out the lease. Without a tokio runtime at hand
/// nothing can be sent: the waiters then take the lease after
/// `lease_wait`.
struct LeaseGuard<'a> {
    client: &'a Client,
    key: &'a [u8],
    cas: u64,
    placeholder: bool,
    armed: bool,
}

impl Drop for LeaseGuard<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (client, key) = (self.client.clone(), self.key.to_vec());
        let (cas, placeholder) = (self.cas, self.placeholder);
        rt.spawn(async move { client.give_back(&key, cas, placeholder).await });
    }
}
