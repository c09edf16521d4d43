//! The client's typed errors.

use std::time::Duration;

/// A boxed error from application code: a loader, a source write, or a
/// codec.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything a call can fail with.
///
/// The variants follow the meta protocol's reply codes where one exists
/// (`NF`, `NS`, `EX`; `CLIENT_ERROR` and `SERVER_ERROR` lines), and name
/// the failure otherwise. A miss on a plain read is not an error: `get`
/// returns `Ok(None)`. Calls whose meaning needs the key to exist
/// (`incr`, `decr`, `expire`, `ttl`, `cas`, `replace`) return
/// [`Error::NotFound`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The key does not exist (meta `NF`, or `EN` where a value is needed).
    #[error("key not found")]
    NotFound,
    /// A conditional store did not happen (meta `NS`): `add` of a key that
    /// exists, `replace`/`append`/`prepend` of one that does not.
    #[error("not stored")]
    NotStored,
    /// The CAS unique given no longer matches the item's (meta `EX`).
    #[error("cas mismatch: the item changed since it was read")]
    CasMismatch,
    /// `incr`/`decr` of a value that is not a decimal number (memcached's
    /// `CLIENT_ERROR cannot increment or decrement non-numeric value`).
    #[error("value is not a number")]
    NonNumeric,
    /// The key cannot be sent: empty, or longer than 250 bytes as sent
    /// (binary keys go base64-encoded, so at most 186 raw bytes).
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// A value could not be encoded or decoded by the codec.
    #[error("serialization: {0}")]
    Codec(#[source] BoxError),
    /// The server answered `CLIENT_ERROR <message>`.
    #[error("client error from {node}: {message}")]
    Client {
        /// The node (`host:port`) that answered.
        node: String,
        /// The server's message.
        message: String,
    },
    /// The server answered `SERVER_ERROR <message>` (out of memory, object
    /// too large, ...).
    #[error("server error from {node}: {message}")]
    Server {
        /// The node (`host:port`) that answered.
        node: String,
        /// The server's message.
        message: String,
    },
    /// The server does not know the command (it answered `ERROR`).
    #[error("{node} does not support this command")]
    Unsupported {
        /// The node (`host:port`) that answered.
        node: String,
    },
    /// Connecting to, writing to or reading from a node failed, or the
    /// node closed the connection.
    #[error("connection to {node}: {source}")]
    Connection {
        /// The node (`host:port`).
        node: String,
        /// What the socket reported.
        #[source]
        source: std::io::Error,
    },
    /// The node refused this client's credentials, or asked for a login
    /// none was configured for: memcached's ASCII authentication (`-Y`),
    /// `message` being the server's `CLIENT_ERROR` text
    /// (`authentication failure`, `bad authentication token format`,
    /// `unauthenticated`). corecache also answers `unauthenticated` to a
    /// logged-in user whose ACL does not allow the command. Not a
    /// transport failure: the node is neither marked down nor up by it,
    /// and a connection whose login failed is not kept.
    #[error("authentication refused by {node}: {message}")]
    Auth {
        /// The node (`host:port`).
        node: String,
        /// The server's message.
        message: String,
    },
    /// The TLS handshake with a node failed, or the node ended the session
    /// with a TLS alert (feature `tls`): an untrusted or mismatched server
    /// certificate, a client certificate the server refused. Not a
    /// transport failure, as [`Error::Auth`].
    #[error("TLS with {node}: {message}")]
    Tls {
        /// The node (`host:port`).
        node: String,
        /// rustls' reason.
        message: String,
    },
    /// The client's settings cannot be used: unsendable credentials, a CA
    /// or key file that does not read or parse, a node string that does
    /// not parse, a [`BlockingClient`](crate::BlockingClient) whose runtime
    /// cannot start.
    #[error("configuration: {0}")]
    Config(String),
    /// A node did not answer within the configured timeout.
    #[error("{node} did not answer within {after:?}")]
    Timeout {
        /// The node (`host:port`).
        node: String,
        /// The timeout that passed.
        after: Duration,
    },
    /// The node that owns the key is marked down after repeated failures
    /// and is not retried before its retry delay passes (with
    /// [`FailurePolicy::FailFast`](crate::FailurePolicy::FailFast)).
    #[error("{node} is marked down")]
    NodeDown {
        /// The node (`host:port`).
        node: String,
    },
    /// Every node of the ring is marked down.
    #[error("no node is up")]
    NoNodes,
    /// The server sent something the meta protocol does not allow here.
    #[error("protocol error from {node}: {message}")]
    Protocol {
        /// The node (`host:port`).
        node: String,
        /// What was wrong.
        message: String,
    },
    /// The application's loader or source write failed
    /// ([`Client::get_or_load`](crate::Client::get_or_load),
    /// [`Client::write_through`](crate::Client::write_through)). The cache
    /// was left so the next caller can try again.
    #[error("source: {0}")]
    Source(#[source] BoxError),
    /// Another caller holds the right to load the key and did not fill it
    /// within the lease wait (only with
    /// [`OnLeaseTimeout::Fail`](crate::OnLeaseTimeout::Fail)).
    #[error("waited {0:?} for another caller to load the key")]
    LeaseTimeout(Duration),
}

impl Error {
    /// True for failures of the transport (connection, timeout, node down):
    /// the ones a retry on another node may cure.
    pub fn is_transport(&self) -> bool {
        matches!(
            self,
            Error::Connection { .. }
                | Error::Timeout { .. }
                | Error::NodeDown { .. }
                | Error::NoNodes
        )
    }
}

impl From<crate::node::ParseNodeError> for Error {
    /// A node string that does not parse is a configuration error, so
    /// `"host:port:weight".parse()?` works in a function returning this
    /// crate's [`Result`].
    fn from(e: crate::node::ParseNodeError) -> Error {
        Error::Config(e.to_string())
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
