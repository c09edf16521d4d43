//! The thread-per-core engine: workers, their io_uring loops, connections,
//! the cross-shard hop, and request execution.

pub mod counters;
pub mod exec_binary;
pub mod exec_meta;
pub mod exec_text;
pub mod shard;
