//! corecache: a memcached-compatible cache with a thread-per-core io_uring
//! engine and a segment store.

pub mod admin;
pub mod auth;
pub mod config;
pub mod engine;
pub mod exec;
pub mod process;
pub mod protocol;
pub mod store;
pub mod tls;
pub mod version;
