//! The thread-per-core engine: workers, their io_uring loops, connections,
//! the cross-shard hop, and request execution.

pub mod conn;
pub mod counters;
pub mod exec_binary;
pub mod exec_meta;
pub mod exec_text;
pub mod hop;
pub mod listener;
pub mod prefetch;
pub mod shard;
pub mod stats;
pub mod worker;
pub mod zerocopy;

use counters::Published;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::Mutex;

/// Settings every worker reads.
#[derive(Clone, Debug)]
pub struct Settings {
    pub port: u16,
    pub memory: usize,
    pub item_max: usize,
    pub max_conns: usize,
    pub segment_size: usize,
    pub evict: bool,
    pub policy: String,
    pub flush_enabled: bool,
    /// Seconds of silence after which a connection is closed; 0 = never.
    pub idle_timeout: u32,
    /// `-A`: the `shutdown` command stops the server.
    pub shutdown_enabled: bool,
}

/// State shared by all workers.
pub struct Shared {
    pub mesh: hop::Mesh,
    pub published: Vec<Published>,
    pub stop: AtomicBool,
    pub conns: AtomicUsize,
    pub settings: Settings,
    pub started: std::time::Instant,
    pub page_kind: Mutex<String>,
}
pub mod buf_ring;

#[cfg(test)]
mod exec_tests;
