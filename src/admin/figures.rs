//! One reading of everything the workers publish, taken once per scrape
//! and rendered by `/metrics` and `/stats` alike.

use super::cpu::{thread_cpu, CpuTime};
use super::histogram::Snapshot;
use crate::engine::counters::Counters;
use crate::engine::shard::VERSION;
use crate::engine::Shared;
use std::sync::atomic::Ordering::Relaxed;

/// One worker's published figures.
#[derive(Clone, Debug)]
pub struct WorkerFigures {
    pub id: usize,
    /// The worker's counters as it last published them.
    pub counters: Counters,
    /// Its thread's CPU time, once it has started.
    pub cpu: Option<CpuTime>,
    /// Whether it is serving (between start and the end of its loop).
    pub serving: bool,
}

/// Process-wide figures, summed over workers where they are per worker.
#[derive(Clone, Debug)]
pub struct Figures {
    /// Counters summed over workers (what `stats` reports).
    pub totals: Counters,
    pub workers: Vec<WorkerFigures>,
    /// Latency histograms merged over workers; `None` when they are off.
    pub latency: Option<Snapshot>,
    /// Seconds since start.
    pub uptime: u64,
    /// Unix time in seconds.
    pub time: u64,
    /// Process CPU seconds (getrusage), user and system.
    pub rusage: CpuTime,
    /// `-c`.
    pub max_connections: usize,
    pub version: &'static str,
    /// `-o eviction=`.
    pub policy: String,
    /// False once the server is stopping (listeners closed).
    pub accepting: bool,
    /// The admin port's own connections.
    pub admin_conns: AdminConns,
    /// `-e`: (warm, restored, expired, dropped, restore µs); None without.
    pub warm: Option<(bool, u64, u64, u64, u64)>,
}

/// The admin port's connection figures (`admin/listener.rs`) and login
/// figures (`admin/users.rs`).
#[derive(Clone, Copy, Debug, Default)]
pub struct AdminConns {
    /// Open now.
    pub open: u64,
    /// Served since start.
    pub total: u64,
    /// Refused past `--admin-max-conns` since start.
    pub rejected: u64,
    /// Closed by a timeout since start.
    pub timed_out: u64,
    /// Wrong user or password since start.
    pub login_failures: u64,
    /// Credentials refused unchecked (too many failures) since start.
    pub login_throttled: u64,
    /// Refused by a user's rules since start.
    pub denied: u64,
}

/// Reads what the workers have published. Never blocks a worker: every
/// read is an atomic load of a value a worker stores.
pub fn gather(shared: &Shared) -> Figures {
    let t = &shared.telemetry;
    let mut totals = Counters::default();
    let workers: Vec<WorkerFigures> = shared
        .published
        .iter()
        .enumerate()
        .map(|(id, p)| {
            let counters = p.snapshot();
            totals.add(&counters);
            let live = id < t.workers();
            WorkerFigures {
                id,
                counters,
                cpu: if live {
                    t.tid(id).and_then(thread_cpu)
                } else {
                    None
                },
                serving: live && t.serving(id),
            }
        })
        .collect();
    let latency = t.histograms_on().then(|| {
        let mut s = Snapshot::default();
        for id in 0..workers.len() {
            if let Some(h) = t.latency(id) {
                s.add(&h.snapshot());
            }
        }
        s
    });
    Figures {
        totals,
        workers,
        latency,
        uptime: shared.started.elapsed().as_secs(),
        time: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        rusage: process_cpu(),
        max_connections: shared.settings.max_conns,
        version: VERSION,
        policy: shared.settings.eviction_name().to_string(),
        accepting: !shared.stop.load(Relaxed),
        admin_conns: {
            let c = &super::listener::CONNS;
            AdminConns {
                open: c.open.load(Relaxed),
                total: c.total.load(Relaxed),
                rejected: c.rejected.load(Relaxed),
                timed_out: c.timed_out.load(Relaxed),
                login_failures: super::users::ACCESS.failures.load(Relaxed),
                login_throttled: super::users::ACCESS.throttled.load(Relaxed),
                denied: super::users::ACCESS.denied.load(Relaxed),
            }
        },
        warm: shared.restored.figures(),
    }
}

fn process_cpu() -> CpuTime {
    // SAFETY: getrusage fills the struct we pass.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    CpuTime {
        user: secs(ru.ru_utime),
        system: secs(ru.ru_stime),
    }
}
