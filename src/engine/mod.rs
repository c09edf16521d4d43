//! The thread-per-core engine: workers, their io_uring loops, connections,
//! the one dispatch point, and the cross-shard hop. Execution against a
//! shard is the execution layer's (`crate::exec`).

pub mod accept;
pub mod buf_ring;
pub mod close;
pub mod conn;
pub mod dispatch;
pub mod framing;
pub mod hop;
pub mod hop_io;
pub mod listener;
pub mod prefetch;
pub mod reap;
pub mod recv;
pub mod route;
pub mod send;
pub mod server_cmd;
pub mod stats;
pub mod user_data;
pub mod worker;
pub mod zerocopy;

pub use crate::exec::counters;
pub use crate::exec::shard;

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
    /// Latency histograms and liveness the admin port reads (admin/).
    pub telemetry: crate::admin::Telemetry,
}
