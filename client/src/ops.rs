//! Single-key calls, one meta command and one round trip each.

use std::time::Duration;

use crate::client::Client;
use crate::error::{Error, Result};
use crate::expiry::exptime;
use crate::proto::request::Cmd;
use crate::proto::response::{Meta, Status};

/// A value with its metadata, as [`Client::gets`] returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// The value's bytes.
    pub value: Vec<u8>,
    /// The client flags stored with it (32 bits, opaque to the server).
    pub flags: u32,
    /// The CAS unique, for [`Client::cas`] or [`StoreOptions::cas`].
    pub cas: u64,
    /// Remaining time to live; None if the item never expires.
    pub ttl: Option<Duration>,
}

/// How [`Client::store`] stores (the meta `M` mode flag).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StoreMode {
    /// Store whatever is there (`MS`).
    #[default]
    Set,
    /// Store only if the key is absent (`ME`).
    Add,
    /// Store only if the key exists (`MR`).
    Replace,
    /// Add the bytes after the existing value (`MA`); TTL and flags stay.
    Append,
    /// Add the bytes before the existing value (`MP`); TTL and flags stay.
    Prepend,
}

/// Options of [`Client::store`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreOptions {
    /// Time to live; zero means no expiry (see the crate docs on TTLs).
    pub ttl: Duration,
    /// Client flags stored with the value.
    pub flags: u32,
    /// Set, add, replace, append or prepend.
    pub mode: StoreMode,
    /// Store only if the item's CAS unique is still this one.
    pub cas: Option<u64>,
}

pub(crate) fn ttl_of(m: &Meta) -> Option<Duration> {
    m.ttl
        .filter(|&t| t >= 0)
        .map(|t| Duration::from_secs(t as u64))
}

impl Client {
    /// The value under `key`, or None on a miss (`mg <key> v c`). A key
    /// another caller is loading through [`get_or_load`](Client::get_or_load)
    /// (its empty placeholder) is a miss; an invalidated value is returned
    /// as it is (see [`invalidate`](Client::invalidate)).
    pub async fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Vec<u8>>> {
        let key = key.as_ref();
        let (r, i) = self
            .one_with(key, true, |b, k| {
                Cmd::new(b, "mg", k).flag(b'v').flag(b'c').end()
            })
            .await?;
        match r.status {
            Status::Value => {
                let v = r.value.unwrap_or_default();
                Ok(self.settle(key, v.len(), &r.meta).await.then_some(v))
            }
            Status::Miss => Ok(None),
            other => Err(self.protocol(i, &format!("unexpected reply to mg: {other:?}"))),
        }
    }

    /// What a read that does not load makes of a hit's tokens: true if it
    /// is a hit. The first `mg` of an item marked stale wins its reload
    /// (`W`) whatever flags it sent, and no `mg` flag declines that; a
    /// reader that will not reload gives the win back (`md <key> I
    /// C<cas>`, which keeps the item stale and clears the token on both
    /// servers), so the next [`get_or_load`](Client::get_or_load) caller
    /// reloads. An `N` placeholder (empty, a token given out) is a miss.
    pub(crate) async fn settle(&self, key: &[u8], len: usize, m: &Meta) -> bool {
        if m.won {
            if let Some(cas) = m.cas {
                self.restale(key, cas).await;
            }
        }
        !crate::aside::is_placeholder(len, m)
    }

    /// The value under `key` with its flags, CAS unique and remaining TTL
    /// (`mg <key> v f c t`), or None on a miss (a placeholder too, as for
    /// [`get`](Client::get)).
    pub async fn gets(&self, key: impl AsRef<[u8]>) -> Result<Option<Item>> {
        let key = key.as_ref();
        let (r, i) = self
            .one_with(key, true, |b, k| {
                Cmd::new(b, "mg", k)
                    .flag(b'v')
                    .flag(b'f')
                    .flag(b'c')
                    .flag(b't')
                    .end()
            })
            .await?;
        let value = match r.status {
            Status::Value => r.value.unwrap_or_default(),
            Status::Miss => return Ok(None),
            other => return Err(self.protocol(i, &format!("unexpected reply to mg: {other:?}"))),
        };
        if !self.settle(key, value.len(), &r.meta).await {
            return Ok(None);
        }
        Ok(Some(Item {
            value,
            flags: r.meta.flags.unwrap_or(0),
            cas: r
                .meta
                .cas
                .ok_or_else(|| self.protocol(i, "mg c without c"))?,
            ttl: ttl_of(&r.meta),
        }))
    }

    /// Stores `value` under `key` for `ttl` (`ms <key> <len> T<ttl>`).
    pub async fn set(
        &self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
        ttl: Duration,
    ) -> Result<()> {
        let opts = StoreOptions {
            ttl,
            ..StoreOptions::default()
        };
        self.store(key, value, &opts).await
    }

    /// Stores `value` only if `key` is absent; false if it was there.
    pub async fn add(
        &self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
        ttl: Duration,
    ) -> Result<bool> {
        let opts = StoreOptions {
            ttl,
            mode: StoreMode::Add,
            ..StoreOptions::default()
        };
        not_stored_is_false(self.store(key, value, &opts).await)
    }

    /// Stores `value` only if `key` exists; false if it was absent.
    pub async fn replace(
        &self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
        ttl: Duration,
    ) -> Result<bool> {
        let opts = StoreOptions {
            ttl,
            mode: StoreMode::Replace,
            ..StoreOptions::default()
        };
        not_stored_is_false(self.store(key, value, &opts).await)
    }

    /// Stores `value` only if the item still has CAS unique `cas`.
    /// [`Error::CasMismatch`] if it changed, [`Error::NotFound`] if it is
    /// gone.
    pub async fn cas(
        &self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
        ttl: Duration,
        cas: u64,
    ) -> Result<()> {
        let opts = StoreOptions {
            ttl,
            cas: Some(cas),
            ..StoreOptions::default()
        };
        self.store(key, value, &opts).await
    }

    /// Stores with every option (`ms` with `T F M C`). Errors:
    /// [`Error::NotStored`] when the mode's condition fails,
    /// [`Error::CasMismatch`], [`Error::NotFound`] (CAS given, item gone),
    /// [`Error::Server`] (too large, out of memory).
    pub async fn store(
        &self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
        opts: &StoreOptions,
    ) -> Result<()> {
        let value = value.as_ref();
        // Only a plain set may run twice: a second add, replace or CAS
        // store would answer for the first one's effect (NS, EX), a second
        // append append again.
        let retry = opts.mode == StoreMode::Set && opts.cas.is_none();
        let (r, i) = self
            .one_with(key.as_ref(), retry, |b, k| {
                let cmd = Cmd::set(b, k, value.len()).num(b'T', exptime(opts.ttl));
                let cmd = if opts.flags != 0 {
                    cmd.num(b'F', u64::from(opts.flags))
                } else {
                    cmd
                };
                let cmd = match opts.mode {
                    StoreMode::Set => cmd,
                    StoreMode::Add => cmd.mode(b'M', b'E'),
                    StoreMode::Replace => cmd.mode(b'M', b'R'),
                    StoreMode::Append => cmd.mode(b'M', b'A'),
                    StoreMode::Prepend => cmd.mode(b'M', b'P'),
                };
                cmd.opt(b'C', opts.cas).end_with(value)
            })
            .await?;
        self.store_status(i, &r.status)
    }

    pub(crate) fn store_status(&self, i: usize, s: &Status) -> Result<()> {
        match s {
            Status::Stored => Ok(()),
            Status::NotStored => Err(Error::NotStored),
            Status::Exists => Err(Error::CasMismatch),
            Status::NotFound => Err(Error::NotFound),
            other => Err(self.protocol(i, &format!("unexpected reply to ms: {other:?}"))),
        }
    }

    /// Deletes `key` (`md <key>`); false if it was not there.
    pub async fn delete(&self, key: impl AsRef<[u8]>) -> Result<bool> {
        let (r, i) = self
            .one(key.as_ref(), |b, k| Cmd::new(b, "md", k).end())
            .await?;
        match r.status {
            Status::Stored => Ok(true),
            Status::NotFound => Ok(false),
            other => Err(self.protocol(i, &format!("unexpected reply to md: {other:?}"))),
        }
    }

    /// Adds `delta` to the decimal number under `key` and returns the new
    /// value (`ma <key> D<delta> v`); it wraps at 2^64 as memcached's
    /// `incr` does. [`Error::NotFound`] if absent, [`Error::NonNumeric`] if
    /// the value is not a number.
    pub async fn incr(&self, key: impl AsRef<[u8]>, delta: u64) -> Result<u64> {
        self.arith(key.as_ref(), b'I', delta, None).await
    }

    /// Subtracts `delta`, stopping at 0 as memcached's `decr` does.
    pub async fn decr(&self, key: impl AsRef<[u8]>, delta: u64) -> Result<u64> {
        self.arith(key.as_ref(), b'D', delta, None).await
    }

    /// Adds `delta`, or stores `initial` with `ttl` if the key is absent
    /// (`ma ... N<ttl> J<initial>`); returns the value now stored.
    pub async fn incr_or_init(
        &self,
        key: impl AsRef<[u8]>,
        delta: u64,
        initial: u64,
        ttl: Duration,
    ) -> Result<u64> {
        self.arith(key.as_ref(), b'I', delta, Some((initial, ttl)))
            .await
    }

    async fn arith(
        &self,
        key: &[u8],
        mode: u8,
        delta: u64,
        init: Option<(u64, Duration)>,
    ) -> Result<u64> {
        // Not sent twice: the server may have applied it before the
        // connection died.
        let (r, i) = self
            .one_with(key, false, |b, k| {
                let cmd = Cmd::new(b, "ma", k).flag(b'v').num(b'D', delta);
                let cmd = if mode == b'D' {
                    cmd.mode(b'M', b'D')
                } else {
                    cmd
                };
                let cmd = match init {
                    Some((j, ttl)) => cmd.num(b'N', exptime(ttl)).num(b'J', j),
                    None => cmd,
                };
                cmd.end()
            })
            .await?;
        match r.status {
            // memcached pads a shrunk number with spaces ("10" - 1 is "9 ").
            Status::Value => std::str::from_utf8(r.value.as_deref().unwrap_or_default())
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .ok_or_else(|| self.protocol(i, "ma value is not a number")),
            Status::NotFound => Err(Error::NotFound),
            Status::Exists => Err(Error::CasMismatch),
            other => Err(self.protocol(i, &format!("unexpected reply to ma: {other:?}"))),
        }
    }

    /// Sets the key's TTL without touching its value (memcached `touch`,
    /// here `mg <key> s c T<ttl>`). [`Error::NotFound`] if absent, or if
    /// the key is a placeholder of a load in progress (whose lease TTL the
    /// touch has then set: one command cannot check first).
    pub async fn expire(&self, key: impl AsRef<[u8]>, ttl: Duration) -> Result<()> {
        let key = key.as_ref();
        let (r, i) = self
            .one_with(key, true, |b, k| {
                Cmd::new(b, "mg", k)
                    .flag(b's')
                    .flag(b'c')
                    .num(b'T', exptime(ttl))
                    .end()
            })
            .await?;
        match r.status {
            Status::Stored => {
                let size = r
                    .meta
                    .size
                    .ok_or_else(|| self.protocol(i, "mg s without s"))?;
                if self.settle(key, size as usize, &r.meta).await {
                    Ok(())
                } else {
                    Err(Error::NotFound)
                }
            }
            Status::Miss => Err(Error::NotFound),
            other => Err(self.protocol(i, &format!("unexpected reply to mg: {other:?}"))),
        }
    }

    /// The key's remaining TTL (`mg <key> t`, whole seconds): None if it
    /// never expires, [`Error::NotFound`] if absent or a placeholder of a
    /// load in progress. Leaves the item's LRU position alone (`u`; sent as
    /// `mg <key> t s c u`).
    pub async fn ttl(&self, key: impl AsRef<[u8]>) -> Result<Option<Duration>> {
        let key = key.as_ref();
        let (r, i) = self
            .one_with(key, true, |b, k| {
                Cmd::new(b, "mg", k)
                    .flag(b't')
                    .flag(b's')
                    .flag(b'c')
                    .flag(b'u')
                    .end()
            })
            .await?;
        match r.status {
            Status::Stored => {
                let (Some(_), Some(size)) = (r.meta.ttl, r.meta.size) else {
                    return Err(self.protocol(i, "mg t s without t or s"));
                };
                if self.settle(key, size as usize, &r.meta).await {
                    Ok(ttl_of(&r.meta))
                } else {
                    Err(Error::NotFound)
                }
            }
            Status::Miss => Err(Error::NotFound),
            other => Err(self.protocol(i, &format!("unexpected reply to mg: {other:?}"))),
        }
    }
}

fn not_stored_is_false(r: Result<()>) -> Result<bool> {
    match r {
        Ok(()) => Ok(true),
        Err(Error::NotStored) | Err(Error::NotFound) => Ok(false),
        Err(e) => Err(e),
    }
}
