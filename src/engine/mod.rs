//! The thread-per-core engine: workers, their io_uring loops, connections,
//! the one dispatch point, and the cross-shard hop. Execution against a
//! shard is the execution layer's (`crate::exec`).

pub mod accept;
pub mod access;
pub mod admin_jobs;
pub mod audit;
pub mod auth_cmd;
pub mod borrowed;
pub mod buf_ring;
pub mod close;
pub mod conn;
pub mod conn_log;
pub mod dispatch;
pub mod dump;
pub mod foreign_read;
pub mod framing;
pub mod hop;
pub mod hop_io;
pub mod incoming;
pub mod lend;
pub mod listen_set;
pub mod listener;
pub mod multiget;
pub mod prefetch;
pub mod reap;
pub mod recv;
pub mod restart;
pub mod route;
pub mod send;
pub mod server_cmd;
pub mod stats;
pub mod stats_classes;
pub mod stats_conns;
pub mod stats_settings;
pub mod steer;
pub mod tls;
pub mod user_data;
pub mod watch;
pub mod watch_conn;
pub mod worker;
pub mod zerocopy;

pub use crate::exec::counters;
pub use crate::exec::shard;

use crate::store::Eviction;
use counters::Published;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::Mutex;

/// Settings every worker reads, fixed at start (`config::Config` is where
/// they come from; `stats settings` shows them).
#[derive(Clone, Debug)]
pub struct Settings {
    /// TCP port (`-p`); 0 when there is no TCP listener (`-s`).
    pub port: u16,
    /// Interfaces listened on, comma separated (memcached's `inter`).
    pub interfaces: String,
    /// `-s`: the UNIX socket listened on.
    pub unix_socket: Option<std::path::PathBuf>,
    /// `-a`: the UNIX socket's permission bits.
    pub unix_mask: u32,
    /// `-b`: listen backlog, in connections.
    pub backlog: i32,
    /// `-m` in bytes, over all shards.
    pub memory: usize,
    /// `-I`: largest item, in bytes.
    pub item_max: usize,
    /// `-c`: most simultaneous connections.
    pub max_conns: usize,
    /// Bytes per store segment.
    pub segment_size: usize,
    /// What goes when memory is full (`Eviction::None` is `-M`).
    pub eviction: Eviction,
    /// Not `-F`: `flush_all` works.
    pub flush_enabled: bool,
    /// Seconds of silence after which a connection is closed; 0 = never.
    pub idle_timeout: u32,
    /// `-o incoming_mem_limit` in bytes, over all workers: what they may
    /// hold for requests still arriving (incoming.rs); 0 = no limit.
    pub incoming_limit: usize,
    /// `-o worker_ports`: the first worker port (worker *i* listens on
    /// this + *i*, and what arrives there runs on its shard alone).
    pub worker_ports: Option<u16>,
    /// `-o foreign_reads`, and more than one worker: reads of other
    /// workers' keys are served from their memory.
    pub foreign_reads: bool,
    /// `-o borrow_shards`, and more than one worker: a request for another
    /// worker's key runs on its shard here while it sleeps (lend.rs).
    pub borrow_shards: bool,
    /// `-o pin_workers`: each worker bound to one CPU (main.rs binds them;
    /// kept here for `stats settings`).
    pub pin_workers: bool,
    /// `-o steer_connections`, and the workers' listeners carry a CPU each
    /// (steer.rs): kept here for `stats settings`.
    pub steer_connections: bool,
    /// `-A`: the `shutdown` command stops the server.
    pub shutdown_enabled: bool,
    /// Not `-C`: items carry CAS values. (Not yet honoured by execution:
    /// `-C` still warns that it has no effect.)
    pub cas_enabled: bool,
    /// `-v` count.
    pub verbosity: u8,
    /// `-X`, `-W`, `-D`: what dumps, `watch` and `stats detail` may do.
    pub introspection: crate::config::Introspection,
}

impl Settings {
    /// The eviction policy by the name `-o eviction=` takes (the inverse
    /// of the store's `FromStr`), as `stats settings` shows it.
    pub fn eviction_name(&self) -> &'static str {
        match self.eviction {
            Eviction::Merge => "merge",
            Eviction::Fifo => "fifo",
            Eviction::Random => "random",
            Eviction::Cte => "cte",
            Eviction::Util => "util",
            Eviction::Volatile => "volatile",
            Eviction::None => "none",
        }
    }
}

/// State shared by all workers.
pub struct Shared {
    pub mesh: hop::Mesh,
    pub published: Vec<Published>,
    /// Each worker's counters at its last `stats reset`, published when it
    /// resets: `stats` shows `published` since these (`Counters::since`),
    /// the admin port `published` itself, which never goes back.
    pub stats_base: Vec<Published>,
    pub stop: AtomicBool,
    pub conns: AtomicUsize,
    pub settings: Settings,
    pub started: std::time::Instant,
    pub page_kind: Mutex<String>,
    /// Latency histograms and liveness the admin port reads (admin/).
    pub telemetry: crate::admin::Telemetry,
    /// Users and their rights when `-Y` or `-S` asks for authentication;
    /// None: every connection may do everything, as memcached without them.
    pub auth: Option<crate::auth::Registry>,
    /// `-Z`: the TLS configuration new connections on TLS listeners get
    /// (reloaded on SIGHUP); None without `-Z`.
    pub tls: Option<crate::tls::Tls>,
    /// What the admin side asks of each worker (admin_jobs.rs).
    pub admin_jobs: admin_jobs::AdminInboxes,
    /// Each worker's figures by memcached size class (stats_classes.rs).
    pub classes: stats_classes::ClassBoards,
    /// `-e`: what each worker does with its store once stopped.
    pub at_stop: Option<restart::AtStop>,
    /// `-e`: what the restore at start-up brought back.
    pub restored: restart::Restored,
    /// The last `flush_all`'s store time less one (memcached's
    /// `oldest_live`), as the worker that received it set it.
    pub oldest_live: std::sync::atomic::AtomicU32,
    /// `stats detail`'s per-prefix counts; every shard holds it too.
    pub detail: std::sync::Arc<crate::exec::detail::Detail>,
    /// Foreign reads (`-o foreign_reads`, more than one worker): each
    /// shard's view, set by its worker before any worker serves.
    pub foreign: Option<ForeignViews>,
    /// Each worker's shard-lending token and shard (lend.rs); used only
    /// when `settings.borrow_shards`.
    pub lends: Vec<lend::Lend<crate::exec::Shard>>,
}

/// What workers need to read each other's stores (store/foreign.rs).
pub struct ForeignViews {
    /// Each worker's read-section counter (store/grace.rs).
    pub readers: std::sync::Arc<crate::store::grace::Readers>,
    /// Worker i's store, readable.
    pub views: Vec<std::sync::OnceLock<crate::store::foreign::ShardView>>,
}

impl ForeignViews {
    /// Room for `n` workers' views.
    pub fn new(n: usize) -> ForeignViews {
        ForeignViews {
            readers: std::sync::Arc::new(crate::store::grace::Readers::new(n)),
            views: (0..n).map(|_| std::sync::OnceLock::new()).collect(),
        }
    }

    /// Shares worker `id`'s store with the others.
    pub fn share(&self, id: usize, store: &mut crate::store::Store) {
        store.share_with(self.readers.clone(), id);
        let _ = self.views[id].set(store.view());
    }
}
