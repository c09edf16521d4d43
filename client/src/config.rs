//! How a client is set up: nodes, ring, pools, timeouts, failure handling,
//! cache-aside behaviour.

use std::time::Duration;

use crate::aside::AsideConfig;
use crate::auth::Credentials;
use crate::client::Client;
use crate::node::{Member, Node};
use crate::ring::{Distribution, KeyHash};
use crate::stream::Connector;
#[cfg(feature = "tls")]
use crate::tls::TlsConfig;

/// What the client does when a node keeps failing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailurePolicy {
    /// Mark the node down for the retry delay and fail its keys fast with
    /// [`Error::NodeDown`](crate::Error::NodeDown) meanwhile; the ring does
    /// not change (libmemcached without `AUTO_EJECT_HOSTS`).
    FailFast,
    /// Take the node out of the ring for the retry delay, so its keys go to
    /// the next node of the continuum, and put it back after (libmemcached
    /// `AUTO_EJECT_HOSTS`, twemproxy `auto_eject_hosts: true`).
    Failover,
}

/// The settings a [`Client`] is built from; [`Client::builder`] starts
/// one.
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    pub(crate) nodes: Vec<Node>,
    pub(crate) distribution: Distribution,
    pub(crate) key_hash: Option<KeyHash>,
    pub(crate) pool_size: usize,
    pub(crate) connect_timeout: Duration,
    pub(crate) timeout: Duration,
    pub(crate) failure_limit: u32,
    pub(crate) retry_after: Duration,
    pub(crate) policy: FailurePolicy,
    pub(crate) aside: AsideConfig,
    pub(crate) prefix_command: String,
    pub(crate) credentials: Option<Credentials>,
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<TlsConfig>,
}

impl Default for ClientBuilder {
    fn default() -> ClientBuilder {
        ClientBuilder {
            nodes: Vec::new(),
            distribution: Distribution::Ketama,
            key_hash: None,
            pool_size: 2,
            connect_timeout: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            failure_limit: 2,
            retry_after: Duration::from_secs(2),
            policy: FailurePolicy::Failover,
            aside: AsideConfig::default(),
            prefix_command: "flush_prefix".into(),
            credentials: None,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

impl ClientBuilder {
    /// Adds a node.
    pub fn node(mut self, node: Node) -> Self {
        self.nodes.push(node);
        self
    }

    /// Adds nodes.
    pub fn nodes(mut self, nodes: impl IntoIterator<Item = Node>) -> Self {
        self.nodes.extend(nodes);
        self
    }

    /// Sets how keys are spread (default [`Distribution::Ketama`],
    /// weighted, libmemcached- and twemproxy-compatible).
    pub fn distribution(mut self, d: Distribution) -> Self {
        self.distribution = d;
        self
    }

    /// Sets the key hash. Default: MD5 for [`Distribution::Ketama`]
    /// (libmemcached `KETAMA_WEIGHTED`), one-at-a-time otherwise
    /// (libmemcached's default). Twemproxy's default is
    /// [`KeyHash::Fnv1a64`].
    pub fn key_hash(mut self, h: KeyHash) -> Self {
        self.key_hash = Some(h);
        self
    }

    /// Connections per ring member (default 2). Each connection is
    /// pipelined: many concurrent calls share it.
    pub fn pool_size(mut self, n: usize) -> Self {
        self.pool_size = n.max(1);
        self
    }

    /// Timeout of opening a connection: TCP connect, TLS handshake and
    /// login together (default 1 s).
    pub fn connect_timeout(mut self, t: Duration) -> Self {
        self.connect_timeout = t;
        self
    }

    /// Timeout of one request, from send to the last reply byte (default
    /// 1 s). A request that times out tears its connection down.
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    /// Consecutive transport failures after which a node is marked down
    /// (default 2, as libmemcached's `SERVER_FAILURE_LIMIT`).
    pub fn failure_limit(mut self, n: u32) -> Self {
        self.failure_limit = n.max(1);
        self
    }

    /// How long a node stays down before it is tried again (default 2 s,
    /// libmemcached's `RETRY_TIMEOUT`). One failure of a node on trial marks
    /// it down again.
    pub fn retry_after(mut self, t: Duration) -> Self {
        self.retry_after = t;
        self
    }

    /// What to do with a node that keeps failing (default
    /// [`FailurePolicy::Failover`]).
    pub fn failure_policy(mut self, p: FailurePolicy) -> Self {
        self.policy = p;
        self
    }

    /// Cache-aside settings of [`Client::get_or_load`].
    pub fn aside(mut self, a: AsideConfig) -> Self {
        self.aside = a;
        self
    }

    /// The text command [`Client::invalidate_prefix`] sends, as
    /// `<command> <prefix>\r\n` (default `flush_prefix`, to be aligned with
    /// the server's prefix-invalidation command once it exists).
    pub fn prefix_command(mut self, cmd: impl Into<String>) -> Self {
        self.prefix_command = cmd.into();
        self
    }

    /// Logs every new connection in with `credentials` (memcached's ASCII
    /// authentication, for servers started with `-Y`), right after
    /// connecting (and after the TLS handshake), before any request. A
    /// node's own [`Node::credentials`] take precedence. A refused login
    /// fails the call with [`Error::Auth`](crate::Error::Auth).
    pub fn credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// Opens every connection of every node over TLS (feature `tls`; for
    /// servers started with `-Z`). A handshake failure fails the call
    /// with [`Error::Tls`](crate::Error::Tls).
    #[cfg(feature = "tls")]
    pub fn tls(mut self, tls: TlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// How the connections of ring member `m` are opened.
    pub(crate) fn connector(&self, m: &Member) -> Connector {
        Connector {
            addr: m.addr.clone(),
            host: m.host.clone(),
            timeout: self.connect_timeout,
            credentials: m.credentials.clone().or_else(|| self.credentials.clone()),
            #[cfg(feature = "tls")]
            tls: self.tls.clone(),
        }
    }

    /// Builds the client. No connection is made until the first call, so
    /// this needs no runtime; calls must run on a tokio runtime.
    pub fn build(self) -> Client {
        Client::from_builder(self)
    }
}
