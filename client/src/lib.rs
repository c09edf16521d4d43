//! An async memcached client over the meta protocol, for corecache and
//! memcached 1.6+.
//!
//! - The calls applications expect, one round trip each: [`Client::get`],
//!   [`set`](Client::set), [`delete`](Client::delete),
//!   [`incr`](Client::incr), [`decr`](Client::decr),
//!   [`expire`](Client::expire) (touch), [`ttl`](Client::ttl), plus
//!   [`add`](Client::add), [`replace`](Client::replace),
//!   [`gets`](Client::gets)/[`cas`](Client::cas) and
//!   [`store`](Client::store) with flags and modes.
//! - Pipelined [`mget`](Client::mget) and [`mset`](Client::mset): one
//!   request per server, quiet commands (`q`) tagged with opaques and
//!   ended by `mn`.
//! - Stampede-safe cache-aside, [`get_or_load`](Client::get_or_load): on a
//!   miss exactly one caller, across every process sharing the cache, runs
//!   the loader (meta `N`/`W`/`Z` tokens); optional recache window (`R`),
//!   stale-while-revalidate after [`invalidate`](Client::invalidate)
//!   (`I`/`X`), probabilistic early refresh ([`EarlyRefresh`], XFetch) and
//!   TTL jitter.
//! - Values as bytes, or typed through serde with [`Typed`]
//!   ([`Json`] by default, [`MsgPack`] with the `msgpack` feature).
//! - Many servers on a ketama [`Ring`] that places keys exactly as
//!   libmemcached (pylibmc, php-memcached) and twemproxy do, with
//!   per-worker ports ([`Node::worker_ports`]), pipelined connection pools,
//!   timeouts, and a [`FailurePolicy`] for nodes that go away.
//! - TLS with the `tls` feature (`ClientBuilder::tls`, `TlsConfig`:
//!   CAs, server name, client certificate) and memcached's ASCII
//!   authentication ([`Credentials`], per client or per [`Node`]), both on
//!   every pooled connection before its first request.
//! - [`BlockingClient`] for code without a runtime.
//!
//! ```no_run
//! use std::time::Duration;
//! use corecache_client::{Client, Node};
//!
//! # async fn demo() -> corecache_client::Result<()> {
//! let client = Client::builder()
//!     .node(Node::new("127.0.0.1", 11211))
//!     .node("10.0.0.2:11211:2".parse().unwrap())
//!     .build();
//! client.set("greeting", "hello", Duration::from_secs(60)).await?;
//! assert_eq!(client.get("greeting").await?, Some(b"hello".to_vec()));
//!
//! // One loader call however many callers miss at once.
//! let profile = client
//!     .get_or_load("user:1", Duration::from_secs(300), || async {
//!         Ok::<_, std::io::Error>(b"{\"name\":\"Ada\"}".to_vec())
//!     })
//!     .await?;
//! # let _ = profile;
//! # Ok(())
//! # }
//! ```
//!
//! # TTLs
//!
//! Every TTL is a [`std::time::Duration`] from now: zero means no expiry,
//! fractions round up to a whole second, and more than 30 days is sent as
//! the absolute time it ends at (memcached reads larger exptimes as Unix
//! times), at the latest `i32::MAX` (2038-01-19): the servers read later
//! ones as the past. Any TTL up to `Duration::MAX` is accepted.
//!
//! # Errors
//!
//! A miss on a read is `Ok(None)`; calls that need the key to exist
//! return [`Error::NotFound`]. Transport failures ([`Error::is_transport`])
//! count against the node and, after
//! [`ClientBuilder::failure_limit`] in a row, mark it down. A refused login
//! ([`Error::Auth`]) or TLS handshake ([`Error::Tls`]) does not: it is a
//! matter of configuration, which another node would not cure.
#![warn(missing_docs)]

mod aside;
mod auth;
mod blocking;
mod client;
mod codec;
mod config;
mod conn;
mod error;
mod expiry;
mod key;
mod multi;
mod node;
mod ops;
mod pool;
mod proto;
mod ring;
mod stream;
#[cfg(feature = "tls")]
mod tls;
mod typed;
mod write;

pub use aside::{AsideConfig, EarlyRefresh, OnLeaseTimeout};
pub use auth::Credentials;
pub use blocking::BlockingClient;
pub use client::Client;
pub use codec::Codec;
#[cfg(feature = "json")]
pub use codec::Json;
#[cfg(feature = "msgpack")]
pub use codec::MsgPack;
pub use config::{ClientBuilder, FailurePolicy};
pub use error::{BoxError, Error, Result};
pub use key::KEY_MAX;
pub use node::{Node, ParseNodeError, DEFAULT_PORT};
pub use ops::{Item, StoreMode, StoreOptions};
pub use ring::{Distribution, KeyHash, Ring};
#[cfg(feature = "tls")]
pub use tls::{TlsConfig, TlsConfigBuilder};
/// The rustls this crate is built on (feature `tls`), to build a
/// [`TlsConfig`] from a `rustls::ClientConfig` of one's own.
#[cfg(feature = "tls")]
pub use tokio_rustls::rustls;
pub use typed::Typed;
