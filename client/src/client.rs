//! The client: routing over the ring, members' pools, failure handling.
//! The calls themselves live in `ops.rs`, `multi.rs` and `aside.rs`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use crate::aside::AsideConfig;
use crate::config::{ClientBuilder, FailurePolicy};
use crate::conn::Expect;
use crate::error::{Error, Result};
use crate::key::WireKey;
use crate::pool::{Health, NodePool};
use crate::proto::response::{Reply, Status};
use crate::ring::{Distribution, KeyHash, Ring};

/// An async memcached client over the meta protocol.
///
/// Cheap to clone: clones share the ring and the connections. Build one
/// with [`Client::builder`] or [`Client::connect`]; every call must run on
/// a tokio runtime. Keys are any bytes (`&str`, `String`, `Vec<u8>`, ...);
/// printable ASCII keys are sent as they are, others base64-encoded with
/// the meta `b` flag.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) ring: RwLock<Ring>,
    pub(crate) pools: Vec<NodePool>,
    pub(crate) cfg: ClientBuilder,
    /// Milliseconds since `epoch` at which some down member may be tried
    /// again; `u64::MAX` when none is down (a fast check on every call).
    next_revive: AtomicU64,
    epoch: Instant,
    /// Moving average of loader run times, in microseconds (XFetch's
    /// delta when none is configured); 0 until the first load.
    pub(crate) load_ewma_us: AtomicU64,
    /// Stale items seen with their reload win taken (`X Z`), by key: the
    /// CAS and when it was first seen (see `Client::get_or_load`).
    pub(crate) stale_seen: crate::aside::StaleSeen,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let addrs: Vec<&str> = self.inner.pools.iter().map(|p| p.addr.as_str()).collect();
        f.debug_struct("Client").field("members", &addrs).finish()
    }
}

impl Client {
    /// Starts a [`ClientBuilder`] with the defaults.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// A client of one server at `addr` (`host:port`, `host:port:weight`,
    /// or several separated by commas), with the default settings. Connects
    /// once to check the address, so it fails early on a wrong one; an
    /// address that does not parse is [`Error::Config`].
    pub async fn connect(addrs: &str) -> Result<Client> {
        let nodes = addrs
            .split(',')
            .map(|s| s.parse())
            .collect::<std::result::Result<Vec<crate::Node>, _>>()?;
        let client = Client::builder().nodes(nodes).build();
        client.ping().await?;
        Ok(client)
    }

    pub(crate) fn from_builder(cfg: ClientBuilder) -> Client {
        let hash = cfg.key_hash.unwrap_or(match cfg.distribution {
            Distribution::Ketama => KeyHash::Md5,
            _ => KeyHash::OneAtATime,
        });
        let ring = Ring::new(&cfg.nodes, cfg.distribution, hash);
        let pools = (0..ring.len())
            .map(|i| NodePool::new(cfg.connector(ring.member(i)), cfg.pool_size, cfg.timeout))
            .collect();
        Client {
            inner: Arc::new(Inner {
                ring: RwLock::new(ring),
                pools,
                cfg,
                next_revive: AtomicU64::new(u64::MAX),
                epoch: Instant::now(),
                load_ewma_us: AtomicU64::new(0),
                stale_seen: Default::default(),
            }),
        }
    }

    /// The `host:port` of the ring member that owns `key` now (down members
    /// excluded under [`FailurePolicy::Failover`]), or None if none is up.
    pub fn node_for_key(&self, key: impl AsRef<[u8]>) -> Option<String> {
        self.route(key.as_ref())
            .ok()
            .map(|i| self.inner.pools[i].addr.clone())
    }

    /// The ring members' addresses, in ring order.
    pub fn members(&self) -> Vec<String> {
        self.inner.pools.iter().map(|p| p.addr.clone()).collect()
    }

    pub(crate) fn aside_cfg(&self) -> &AsideConfig {
        &self.inner.cfg.aside
    }

    /// The member owning `key`, after putting back members whose retry
    /// delay has passed.
    pub(crate) fn route(&self, key: &[u8]) -> Result<usize> {
        self.revive_due();
        self.inner
            .ring
            .read()
            .unwrap()
            .member_for(key)
            .ok_or(Error::NoNodes)
    }

    fn now_ms(&self) -> u64 {
        self.inner.epoch.elapsed().as_millis() as u64
    }

    fn revive_due(&self) {
        let inner = &self.inner;
        if inner.cfg.policy != FailurePolicy::Failover
            || self.now_ms() < inner.next_revive.load(Ordering::Acquire)
        {
            return;
        }
        let mut ring = inner.ring.write().unwrap();
        let now = Instant::now();
        let mut next = u64::MAX;
        for (i, p) in inner.pools.iter().enumerate() {
            if let Health::Down(t) = p.health() {
                if t <= now {
                    // On trial: one failure takes it out again.
                    ring.set_live(i, true);
                } else {
                    next = next.min((t - inner.epoch).as_millis() as u64);
                }
            }
        }
        inner.next_revive.store(next, Ordering::Release);
    }

    /// Sends one request to member `i` and waits for its replies, keeping
    /// the member's health and the ring up to date. The request is taken
    /// as safe to run twice: sent again once on a fresh connection if a
    /// reused one turns out dead before any reply (see
    /// [`Client::call_with`]). Only for plain reads, `ms` without a
    /// condition, and `mn`.
    pub(crate) async fn call(
        &self,
        i: usize,
        bytes: Vec<u8>,
        expect: Expect,
    ) -> Result<Vec<Reply>> {
        self.call_with(i, bytes, expect, true).await
    }

    /// [`Client::call`]; a request that must not be sent twice has `retry`
    /// false: a dead reused connection fails it with
    /// [`Error::Connection`], without counting against the node. The
    /// server may have run it already, with its reply lost: sent again,
    /// `add` would say "exists" of its own value, a CAS store "changed",
    /// `md` "not found", `mg … N` would meet its own placeholder, `ma`
    /// and append would apply twice.
    pub(crate) async fn call_with(
        &self,
        i: usize,
        bytes: Vec<u8>,
        expect: Expect,
        retry: bool,
    ) -> Result<Vec<Reply>> {
        let inner = &self.inner;
        let pool = &inner.pools[i];
        if let Health::Down(t) = pool.health() {
            if inner.cfg.policy == FailurePolicy::FailFast && Instant::now() < t {
                return Err(Error::NodeDown {
                    node: pool.addr.clone(),
                });
            }
        }
        match pool.call(bytes, expect, retry).await {
            Ok(r) => {
                if pool.on_success() && inner.cfg.policy == FailurePolicy::Failover {
                    inner.ring.write().unwrap().set_live(i, true);
                }
                Ok(r)
            }
            Err(e) => {
                if e.node_failure && pool.on_failure(inner.cfg.failure_limit, inner.cfg.retry_after)
                {
                    self.mark_down(i);
                }
                Err(e.error)
            }
        }
    }

    fn mark_down(&self, i: usize) {
        let inner = &self.inner;
        if inner.cfg.policy == FailurePolicy::Failover {
            inner.ring.write().unwrap().set_live(i, false);
        }
        let at = self.now_ms() + inner.cfg.retry_after.as_millis() as u64;
        inner.next_revive.fetch_min(at, Ordering::AcqRel);
    }

    /// Sends one command for `key` (built by `build`) to the key's member
    /// and returns its single reply, errors mapped. Not sent twice (see
    /// [`Client::call_with`]); [`Client::one_with`] says otherwise for
    /// requests safe to repeat.
    pub(crate) async fn one(
        &self,
        key: &[u8],
        build: impl FnOnce(&mut Vec<u8>, &WireKey),
    ) -> Result<(Reply, usize)> {
        self.one_with(key, false, build).await
    }

    /// [`Client::one`], sent again on a dead reused connection only if
    /// `retry` (see [`Client::call_with`]).
    pub(crate) async fn one_with(
        &self,
        key: &[u8],
        retry: bool,
        build: impl FnOnce(&mut Vec<u8>, &WireKey),
    ) -> Result<(Reply, usize)> {
        let wk = WireKey::new(key)?;
        let i = self.route(key)?;
        let mut buf = Vec::with_capacity(64 + key.len());
        build(&mut buf, &wk);
        let mut replies = self.call_with(i, buf, Expect::Replies(1), retry).await?;
        let r = replies.pop().ok_or_else(|| self.protocol(i, "no reply"))?;
        self.check(i, &r)?;
        Ok((r, i))
    }

    /// Maps error lines to errors.
    pub(crate) fn check(&self, i: usize, r: &Reply) -> Result<()> {
        let node = || self.inner.pools[i].addr.clone();
        match &r.status {
            Status::Error => Err(Error::Unsupported { node: node() }),
            Status::ClientError(m) if m.contains("non-numeric") => Err(Error::NonNumeric),
            // memcached's reply to a connection that has not logged in
            // (protocol.txt "Authentication"); corecache's to an ACL
            // refusal too.
            Status::ClientError(m) if m == "unauthenticated" => Err(Error::Auth {
                node: node(),
                message: m.clone(),
            }),
            Status::ClientError(m) => Err(Error::Client {
                node: node(),
                message: m.clone(),
            }),
            Status::ServerError(m) => Err(Error::Server {
                node: node(),
                message: m.clone(),
            }),
            _ => Ok(()),
        }
    }

    pub(crate) fn protocol(&self, i: usize, what: &str) -> Error {
        Error::Protocol {
            node: self.inner.pools[i].addr.clone(),
            message: what.to_string(),
        }
    }

    /// Checks that every member answers (`mn` → `MN`).
    pub async fn ping(&self) -> Result<()> {
        for i in 0..self.inner.pools.len() {
            let r = self.call(i, b"mn\r\n".to_vec(), Expect::Replies(1)).await?;
            let Some(r) = r.first() else {
                return Err(self.protocol(i, "mn not answered"));
            };
            self.check(i, r)?;
            if r.status != Status::Noop {
                return Err(self.protocol(i, "mn not answered by MN"));
            }
        }
        Ok(())
    }
}
