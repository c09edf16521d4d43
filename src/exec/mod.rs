//! The execution layer: between the protocols and the store, free of I/O.
//!
//! `ops.rs` holds memcached's semantics once (what a get, a store, a
//! refused store, an incr with auto-create do to the store, and how each
//! is counted); `text.rs`, `meta.rs` and `binary.rs` turn a parsed request
//! into calls to it and write the protocol's reply. Which shard runs a
//! request, and the policies (`-F`, `-A`, key length), are the engine's
//! dispatcher's (`engine/dispatch.rs`).

#![warn(missing_docs)]

pub mod binary;
pub mod counters;
pub mod detail;
pub mod meta;
pub mod ops;
pub mod reply;
pub mod shard;
pub mod text;
pub mod value_ref;

pub use shard::Shard;

#[cfg(test)]
mod tests;
