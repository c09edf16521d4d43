//! corecache: a memcached-compatible cache with a thread-per-core io_uring
//! engine and a segment store.

pub mod store;
pub mod engine;
pub mod protocol;
