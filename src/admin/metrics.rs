//! `/metrics`: the figures in Prometheus' exposition formats, encoded by
//! prometheus-client.
//!
//! Names follow prometheus/memcached_exporter for what it exports (so
//! dashboards and alerts built on it keep working against corecache) and
//! are `corecache_*` for the rest. prometheus-client writes OpenMetrics,
//! which Prometheus asks for; a scraper that does not (curl, `promtool
//! check metrics`) gets the classic text format 0.0.4, derived from it by
//! [`to_classic`].

use super::figures::Figures;
use super::histogram::{Family, Snapshot};
use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

pub use super::exposition::{to_classic, wants_openmetrics};

/// Content type of the OpenMetrics answer.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Content type of the classic text answer.
pub const CLASSIC: &str = "text/plain; version=0.0.4; charset=utf-8";

type Labels = Vec<(&'static str, String)>;

#[derive(Clone, Copy, Debug)]
enum Value {
    U(u64),
    F(f64),
}

/// A metric family whose samples are values read at scrape time (the
/// workers keep the real counters; nothing here accumulates).
#[derive(Debug)]
struct Const {
    kind: MetricType,
    samples: Vec<(Labels, Value)>,
}

impl EncodeMetric for Const {
    fn encode(&self, mut enc: MetricEncoder) -> Result<(), std::fmt::Error> {
        for (labels, v) in &self.samples {
            let mut e = enc.encode_family(labels)?;
            match (self.kind, *v) {
                (MetricType::Counter, Value::U(n)) => {
                    e.encode_counter::<NoLabelSet, _, u64>(&n, None)?
                }
                (MetricType::Counter, Value::F(x)) => {
                    e.encode_counter::<NoLabelSet, _, f64>(&x, None)?
                }
                (_, Value::U(n)) => e.encode_gauge(&n)?,
                (_, Value::F(x)) => e.encode_gauge(&x)?,
            }
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        self.kind
    }
}

/// The latency histograms, one series per command family.
#[derive(Debug)]
struct LatencyFamily(Snapshot);

impl EncodeMetric for LatencyFamily {
    fn encode(&self, mut enc: MetricEncoder) -> Result<(), std::fmt::Error> {
        let s = &self.0;
        for f in Family::ALL {
            enc.encode_family(&vec![("family", f.name())])?
                .encode_histogram::<NoLabelSet>(
                    s.sum_seconds(f),
                    s.count(f),
                    &s.buckets(f),
                    None,
                )?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

struct Builder(Registry);

impl Builder {
    /// A counter family; `name` is without `_total`, which the encoder adds.
    fn counters(&mut self, name: &str, help: &str, samples: Vec<(Labels, Value)>) {
        let kind = MetricType::Counter;
        self.0.register(name, help, Const { kind, samples });
    }

    fn counter(&mut self, name: &str, help: &str, v: u64) {
        self.counters(name, help, vec![(vec![], Value::U(v))]);
    }

    fn gauges(&mut self, name: &str, help: &str, samples: Vec<(Labels, Value)>) {
        let kind = MetricType::Gauge;
        self.0.register(name, help, Const { kind, samples });
    }

    fn gauge(&mut self, name: &str, help: &str, v: Value) {
        self.gauges(name, help, vec![(vec![], v)]);
    }
}

fn l(pairs: &[(&'static str, &str)]) -> Labels {
    pairs.iter().map(|&(k, v)| (k, v.to_string())).collect()
}

/// Every figure as a prometheus-client registry.
fn registry(f: &Figures) -> Registry {
    use Value::{F, U};
    let c = &f.totals;
    let mut b = Builder(Registry::default());

    // memcached_exporter's names and meanings.
    b.gauge(
        "memcached_up",
        "Could the memcached server be reached",
        U(1),
    );
    b.gauge(
        "memcached_uptime_seconds",
        "Number of seconds since the server started",
        U(f.uptime),
    );
    b.gauge(
        "memcached_time_seconds",
        "current UNIX time according to the server",
        U(f.time),
    );
    b.gauges(
        "memcached_version",
        "The version of this memcached server",
        vec![(l(&[("version", f.version)]), U(1))],
    );
    b.counters(
        "memcached_process_user_cpu_seconds",
        "Accumulated user time for this process",
        vec![(vec![], F(f.rusage.user))],
    );
    b.counters(
        "memcached_process_system_cpu_seconds",
        "Accumulated system time for this process",
        vec![(vec![], F(f.rusage.system))],
    );
    b.counter(
        "memcached_read_bytes",
        "Total number of bytes read by this server from network",
        c.bytes_read,
    );
    b.counter(
        "memcached_written_bytes",
        "Total number of bytes sent by this server to network",
        c.bytes_written,
    );
    b.gauge(
        "memcached_current_connections",
        "Current number of open connections",
        U(c.curr_connections),
    );
    b.gauge(
        "memcached_max_connections",
        "Maximum number of clients allowed",
        U(f.max_connections as u64),
    );
    b.counter(
        "memcached_connections",
        "Total number of connections opened since the server started running",
        c.total_connections,
    );
    b.counter(
        "memcached_connections_rejected",
        "Total number of connections rejected due to hitting the -c limit",
        c.rejected_connections,
    );
    b.counter(
        "memcached_connections_listener_disabled",
        "Number of times accepting failed for want of file descriptors (listen_disabled_num)",
        c.listen_disabled_num,
    );
    let a = &f.admin_conns;
    b.gauge(
        "corecache_admin_current_connections",
        "Open connections to the admin HTTP port",
        U(a.open),
    );
    b.counter(
        "corecache_admin_connections",
        "Connections the admin HTTP port served since start",
        a.total,
    );
    b.counter(
        "corecache_admin_connections_rejected",
        "Admin HTTP connections refused past --admin-max-conns",
        a.rejected,
    );
    b.counter(
        "corecache_admin_connections_timed_out",
        "Admin HTTP connections closed by the header read, idle or request timeout",
        a.timed_out,
    );
    b.counter(
        "corecache_admin_login_failures",
        "Admin HTTP requests refused for a wrong user or password (password file)",
        a.login_failures,
    );
    b.counter(
        "corecache_admin_login_throttled",
        "Admin HTTP requests refused unchecked after too many failed logins from their address",
        a.login_throttled,
    );
    b.counter(
        "corecache_admin_denied",
        "Admin HTTP requests a logged-in user had no right to make (ACL file)",
        a.denied,
    );
    b.gauge(
        "memcached_accepting_connections",
        "Whether the server is accepting connections (memcached's accepting_conns: 0 while \
         accepting is paused for want of descriptors, and once stopping)",
        U(if f.accepting { c.accepting_conns } else { 0 }),
    );
    b.gauge(
        "memcached_current_bytes",
        "Current number of bytes used to store items",
        U(c.bytes),
    );
    b.gauge(
        "memcached_limit_bytes",
        "Number of bytes this server is allowed to use for storage",
        U(c.limit_maxbytes),
    );
    // As the exporter: cas is counted in cmd_set too, so set's hits are
    // the storage commands other than cas.
    let set_hits = c
        .cmd_set
        .saturating_sub(c.cas_hits + c.cas_misses + c.cas_badval);
    let mut cmds = Vec::new();
    for (cmd, status, v) in [
        ("get", "hit", c.get_hits),
        ("get", "miss", c.get_misses),
        ("delete", "hit", c.delete_hits),
        ("delete", "miss", c.delete_misses),
        ("incr", "hit", c.incr_hits),
        ("incr", "miss", c.incr_misses),
        ("decr", "hit", c.decr_hits),
        ("decr", "miss", c.decr_misses),
        ("cas", "hit", c.cas_hits),
        ("cas", "miss", c.cas_misses),
        ("cas", "badval", c.cas_badval),
        ("touch", "hit", c.touch_hits),
        ("touch", "miss", c.touch_misses),
        ("flush", "hit", c.cmd_flush),
        ("set", "hit", set_hits),
    ] {
        cmds.push((l(&[("command", cmd), ("status", status)]), U(v)));
    }
    b.counters(
        "memcached_commands",
        "Total number of all requests broken down by command (get, set, etc.) and status",
        cmds,
    );
    b.gauge(
        "memcached_current_items",
        "Current number of items stored by this instance",
        U(c.curr_items),
    );
    b.counter(
        "memcached_items",
        "Total number of items stored during the life of this instance",
        c.total_items,
    );
    b.counter(
        "memcached_items_evicted",
        "Total number of valid items removed from cache to free memory for new items",
        c.evictions,
    );
    b.counter(
        "memcached_items_reclaimed",
        "Total number of expired items whose memory was reclaimed",
        c.reclaimed,
    );
    b.counter(
        "memcached_item_too_large",
        "The number of times an item exceeded the max-item-size when being stored",
        c.store_too_large,
    );
    b.counter(
        "memcached_item_no_memory",
        "The number of times an item could not be stored due to no more memory",
        c.store_no_memory,
    );

    // corecache's own.
    b.counters(
        "corecache_cmd",
        "Requests by command as stats counts them (cmd_get counts keys; cmd_set includes cas)",
        [
            ("get", c.cmd_get),
            ("set", c.cmd_set),
            ("flush", c.cmd_flush),
            ("flush_prefix", c.cmd_flush_prefix),
            ("touch", c.cmd_touch),
            ("meta", c.cmd_meta),
        ]
        .iter()
        .map(|&(k, v)| (l(&[("command", k)]), U(v)))
        .collect(),
    );
    b.counters(
        "corecache_get_missed",
        "Gets that found the key but no live item, by why (expired or flushed)",
        vec![
            (l(&[("reason", "expired")]), U(c.get_expired)),
            (l(&[("reason", "flushed")]), U(c.get_flushed)),
        ],
    );
    b.counters(
        "corecache_items_unfetched_removed",
        "Items removed without ever being read, by why (evicted or expired)",
        vec![
            (l(&[("reason", "evicted")]), U(c.evicted_unfetched)),
            (l(&[("reason", "expired")]), U(c.expired_unfetched)),
        ],
    );
    b.counters(
        "corecache_segments_removed",
        "Whole segments freed, by why: expired (TTL bucket) or evicted (the eviction policy)",
        vec![
            (l(&[("reason", "expired")]), U(c.expired_segments)),
            (l(&[("reason", "evicted")]), U(c.evicted_segments)),
        ],
    );
    b.counter(
        "corecache_segment_merges",
        "Merge-eviction passes (segments compacted together)",
        c.segment_merges,
    );
    b.counter(
        "corecache_segment_merges_ahead",
        "Of those, merges finished ahead of need between loop turns, not by a write that found no free segment",
        c.segment_merges_ahead,
    );
    b.counter(
        "corecache_new_item_credits_ghost",
        "New keys linked as if read once because a read missed them after eviction (ghosts)",
        c.ghost_credits,
    );
    b.counter(
        "corecache_new_item_credits_arrival",
        "New small items linked as if read once because ghosts vouch for many new small keys",
        c.arrival_credits,
    );
    b.gauges(
        "corecache_eviction_policy",
        "The eviction policy in force (-o eviction), as a label; the value is 1",
        vec![(l(&[("policy", &f.policy)]), U(1))],
    );
    b.gauge(
        "corecache_index_bytes",
        "Bytes of the hash index (memcached's hash_bytes)",
        U(c.hash_bytes),
    );
    b.gauge(
        "corecache_segment_bytes_used",
        "Bytes of segments holding items, live or not yet reclaimed: how full the store is \
         against memcached_limit_bytes (memcached_current_bytes counts live items only)",
        U(c.segment_bytes_used),
    );
    b.gauge(
        "corecache_pinned_segments",
        "Segments a zero-copy send still reads from",
        U(c.pinned_segments),
    );
    b.counter(
        "corecache_auth_commands",
        "Authentication attempts, ASCII and SASL (auth_cmds)",
        c.auth_cmds,
    );
    b.counter(
        "corecache_auth_errors",
        "Failed authentication attempts (auth_errors)",
        c.auth_errors,
    );
    b.counter(
        "corecache_auth_denied",
        "Requests refused for want of authentication or of a right in the ACL file (auth_denied)",
        c.auth_denied,
    );
    b.counter(
        "corecache_ssl_handshake_errors",
        "TLS handshakes that failed (ssl_handshake_errors)",
        c.ssl_handshake_errors,
    );
    b.counter(
        "corecache_ssl_new_sessions",
        "TLS handshakes that finished (ssl_new_sessions)",
        c.ssl_new_sessions,
    );
    b.counter(
        "corecache_cross_shard_sent",
        "Requests a worker forwarded to the shard owning the key (hops)",
        c.cross_shard_sent,
    );
    b.counter(
        "corecache_cross_shard_served",
        "Requests a worker ran for a connection another worker owns (hopped reads and writes)",
        c.cross_shard_served,
    );
    b.counter(
        "corecache_cross_shard_borrowed",
        "Requests a worker ran on the shard owning the key while its worker slept, instead of a hop (-o borrow_shards)",
        c.cross_shard_borrowed,
    );
    b.counter(
        "corecache_foreign_reads",
        "Reads of keys another worker owns served from its memory without a hop (-o foreign_reads)",
        c.foreign_reads,
    );
    b.counter(
        "corecache_foreign_read_fallbacks",
        "Reads of keys another worker owns that gave way to the hop (flush, large value, overflow bucket, busy)",
        c.foreign_read_fallbacks,
    );
    b.counter(
        "corecache_foreign_read_waits",
        "Foreign reads an owner waited out before reusing a segment",
        c.foreign_read_waits,
    );
    b.gauge(
        "corecache_worker_port_current_connections",
        "Connections open on the workers' own ports (-o worker_ports)",
        U(c.worker_port_connections),
    );
    b.counter(
        "corecache_worker_port_connections",
        "Connections accepted on the workers' own ports (-o worker_ports)",
        c.worker_port_total_connections,
    );
    b.counter(
        "corecache_steering_changes",
        "Times a worker stopped or resumed taking the connections that arrive on its CPU (-o steer_connections)",
        c.steering_changes,
    );
    b.counter(
        "corecache_worker_port_cmds",
        "Requests received on the workers' own ports, run on that worker's shard",
        c.worker_port_cmds,
    );
    b.gauge(
        "corecache_workers",
        "Worker threads (-t)",
        U(f.workers.len() as u64),
    );
    if let Some((warm, items, expired, dropped, micros)) = f.warm {
        b.gauge(
            "corecache_warm_restart",
            "-e: 1 if this start restored the cache a graceful stop saved, 0 if it started empty",
            U(warm as u64),
        );
        b.gauge(
            "corecache_warm_restored_items",
            "-e: items this start restored",
            U(items),
        );
        b.gauge(
            "corecache_warm_expired_items",
            "-e: saved items that expired while no process ran",
            U(expired),
        );
        b.gauge(
            "corecache_warm_dropped_items",
            "-e: saved items not restored for want of room",
            U(dropped),
        );
        b.gauge(
            "corecache_warm_restore_seconds",
            "-e: how long the restore took (the slowest shard)",
            Value::F(micros as f64 / 1e6),
        );
    }

    // Per worker.
    let per = |g: &dyn Fn(&super::figures::WorkerFigures) -> Value| -> Vec<(Labels, Value)> {
        f.workers
            .iter()
            .map(|w| (vec![("worker", w.id.to_string())], g(w)))
            .collect()
    };
    b.gauges(
        "corecache_worker_serving",
        "1 while the worker serves",
        per(&|w| U(w.serving as u64)),
    );
    let mut cpu = Vec::new();
    for w in &f.workers {
        if let Some(t) = w.cpu {
            let id = w.id.to_string();
            cpu.push((
                vec![("worker", id.clone()), ("mode", "user".into())],
                F(t.user),
            ));
            cpu.push((vec![("worker", id), ("mode", "system".into())], F(t.system)));
        }
    }
    b.counters(
        "corecache_worker_cpu_seconds",
        "CPU seconds of each worker thread, by mode (user or system)",
        cpu,
    );
    b.counters(
        "corecache_worker_loop_turns",
        "Turns of each worker's event loop",
        per(&|w| U(w.counters.loop_turns)),
    );
    b.counters(
        "corecache_worker_uring_submits",
        "io_uring_enter calls (submissions, with or without waiting) of each worker",
        per(&|w| U(w.counters.uring_submits)),
    );
    b.counters(
        "corecache_worker_wakeups",
        "Times each worker returned from sleeping in io_uring_enter",
        per(&|w| U(w.counters.wakeups)),
    );
    b.counters(
        "corecache_worker_wakes_sent",
        "Wake-ups each worker sent to a sleeping peer's ring",
        per(&|w| U(w.counters.wakes_sent)),
    );
    b.counters(
        "corecache_worker_admin_jobs",
        "Jobs the admin side ran on each worker (key browser steps, key views and edits, flush_prefix)",
        per(&|w| U(w.counters.admin_jobs)),
    );
    b.counters(
        "corecache_worker_admin_job_seconds",
        "Time each worker spent running admin jobs",
        per(&|w| F(w.counters.admin_job_us as f64 / 1e6)),
    );
    b.gauges(
        "corecache_worker_admin_job_max_seconds",
        "The longest single admin job on each worker since start: the most a request waited behind one",
        per(&|w| F(w.counters.admin_job_max_us as f64 / 1e6)),
    );
    b.gauges(
        "corecache_worker_current_connections",
        "Open connections each worker owns",
        per(&|w| U(w.counters.curr_connections)),
    );
    b.gauges(
        "corecache_worker_current_items",
        "Items in each worker's shard",
        per(&|w| U(w.counters.curr_items)),
    );

    if let Some(s) = f.latency {
        b.0.register(
            "corecache_request_duration_seconds",
            "Time from a request parsed to its reply handed to the kernel, by command family",
            LatencyFamily(s),
        );
    }
    b.0
}

/// The figures in the OpenMetrics text format (ends with `# EOF`).
pub fn openmetrics(f: &Figures) -> String {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry(f))
        .expect("writing to a String cannot fail");
    out
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;
