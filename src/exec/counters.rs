//! Per-shard command counters, kept as plain integers by the owning worker
//! and published to atomics once per loop turn for `stats` to sum.
//!
//! The counts only ever grow, from start to exit: the admin port exports
//! them as Prometheus counters, and a counter that goes back breaks
//! `rate()`. `stats reset` does not zero them; it records what they were
//! (`Shard::reset_counters`), and the text and binary `stats` show counts
//! since then ([`Counters::since`]), as memcached's reset ones.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

macro_rules! counters {
    ($($name:ident),* $(,)?) => {
        /// Counters one worker owns. The field names are memcached's
        /// `stats` names (protocol.txt, "General-purpose statistics").
        #[allow(missing_docs)]
        #[derive(Clone, Copy, Debug, Default)]
        pub struct Counters { $(pub $name: u64,)* }

        /// The published copy other threads read.
        #[allow(missing_docs)]
        #[derive(Debug, Default)]
        pub struct Published { $(pub $name: AtomicU64,)* }

        impl Published {
            /// Stores a worker's current counters (Relaxed: each figure
            /// stands alone; `stats` sums whatever each worker last wrote).
            pub fn publish(&self, c: &Counters) {
                $(self.$name.store(c.$name, Relaxed);)*
            }
            /// The figures last published.
            pub fn snapshot(&self) -> Counters {
                Counters { $($name: self.$name.load(Relaxed),)* }
            }
        }

        impl Counters {
            /// These figures counted from `base` (what they were at the
            /// last `stats reset`): counts less `base`, levels
            /// ([`GAUGES`]) as they are.
            pub fn since(&self, base: &Counters) -> Counters {
                let mut out = *self;
                $(if !GAUGES.contains(&stringify!($name)) {
                    out.$name = self.$name.saturating_sub(base.$name);
                })*
                out
            }
            /// Adds another worker's figures to these.
            pub fn add(&mut self, o: &Counters) {
                $(if stringify!($name).ends_with("_max_us") {
                    self.$name = self.$name.max(o.$name);
                } else {
                    self.$name += o.$name;
                })*
            }
            /// Name/value pairs in memcached's order.
            pub fn fields(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($name), self.$name),)*]
            }
            /// Sets the field called `name` (as `fields` names it); false
            /// if there is none.
            pub fn set(&mut self, name: &str, v: u64) -> bool {
                match name {
                    $(stringify!($name) => self.$name = v,)*
                    _ => return false,
                }
                true
            }
        }
    };
}

/// The figures that are levels, not counts: `stats reset` leaves them as
/// they are (memcached keeps `curr_connections`, `curr_items`, `bytes`
/// and the limits).
pub const GAUGES: [&str; 15] = [
    "curr_connections",
    "connection_structures",
    "hash_buckets",
    "hash_expanding",
    "worker_port_connections",
    "pinned_segments",
    "segment_bytes_used",
    "curr_items",
    "bytes",
    "limit_maxbytes",
    "accepting_conns",
    "hash_bytes",
    "admin_job_max_us",
    "incoming_bytes",
    "stalled_bytes",
];

counters!(
    curr_connections,
    total_connections,
    rejected_connections,
    cmd_get,
    cmd_set,
    cmd_flush,
    cmd_flush_prefix,
    cmd_touch,
    cmd_meta,
    get_hits,
    get_misses,
    get_expired,
    get_flushed,
    delete_misses,
    delete_hits,
    incr_misses,
    incr_hits,
    decr_misses,
    decr_hits,
    cas_misses,
    cas_hits,
    cas_badval,
    touch_hits,
    touch_misses,
    store_too_large,
    store_no_memory,
    // memcached's: authentication attempts (ASCII and SASL) and the failed
    // ones; corecache's: requests refused for want of authentication or of
    // a right (auth/acl.rs).
    auth_cmds,
    auth_errors,
    auth_denied,
    // memcached's, with -Z: handshakes that failed, and that finished
    // (engine/tls.rs).
    ssl_handshake_errors,
    ssl_new_sessions,
    bytes_read,
    bytes_written,
    cross_shard_sent,
    cross_shard_served,
    // -o borrow_shards (engine/lend.rs): requests for another worker's
    // key this worker ran on that worker's shard while it slept.
    cross_shard_borrowed,
    // -o foreign_reads (store/foreign.rs): reads of other workers' keys
    // this worker served from their memory, those that gave way to the
    // hop, and reads other workers were waited out for before this
    // worker reused a segment.
    foreign_reads,
    foreign_read_fallbacks,
    foreign_read_waits,
    // -o worker_ports: connections open on, and accepted on, this
    // worker's own port, and requests they sent (engine/dispatch.rs).
    worker_port_connections,
    worker_port_total_connections,
    worker_port_cmds,
    // -o steer_connections: times a worker's listeners stopped or started
    // naming its CPU, its connections above or back under its share
    // (engine/steer.rs).
    steering_changes,
    pinned_segments,
    // Bytes of segments holding items, live or dead (Store::segment_bytes_in_use).
    segment_bytes_used,
    curr_items,
    total_items,
    bytes,
    evictions,
    evicted_unfetched,
    expired_unfetched,
    reclaimed,
    limit_maxbytes,
    // memcached's: whether the server accepts (0/1, worker 0 speaks for
    // all), and how often accepting paused for want of descriptors
    // (EMFILE/ENFILE; engine/accept.rs).
    accepting_conns,
    listen_disabled_num,
    // memcached's: microseconds accepting stayed paused (worker 0's first
    // listener speaks for all, as the shortage is the process's).
    time_in_listen_disabled_us,
    // Receives that found the worker's buffer ring empty (ENOBUFS), which
    // wait for the next turn: memcached's read_buf_oom.
    read_buf_oom,
    // Bytes the worker holds for requests over 64 KiB still arriving, and
    // storage commands refused because holding theirs would pass its
    // share of -o incoming_mem_limit (engine/incoming.rs).
    incoming_bytes,
    incoming_refused,
    // Bytes paused connections held when they paused (clients not reading
    // their replies, or far behind): past the worker's share of the same
    // limit, the next ones pause at 16 KiB (engine/incoming.rs).
    stalled_bytes,
    // Gauges set at publishing: connection table slots (memcached's
    // connection_structures), the index's primary buckets, and whether
    // it is growing (hash_power_level, hash_is_expanding).
    connection_structures,
    hash_buckets,
    hash_expanding,
    // The store's crawler (store/expiry.rs): memcached's names.
    lru_crawler_starts,
    crawler_items_checked,
    crawler_reclaimed,
    // memcached's name for the index's bytes (the store's index_bytes).
    hash_bytes,
    // Segments freed whole by TTL expiry, and by the eviction policy;
    // merge-eviction passes, and those finished ahead of need.
    expired_segments,
    evicted_segments,
    segment_merges,
    segment_merges_ahead,
    // New keys credited as if read once: by a ghost (a read missed them
    // after eviction), and on arrival while ghosts vouch for many
    // (store/ghost.rs).
    ghost_credits,
    arrival_credits,
    // The worker loop, for the admin port: turns of the loop, io_uring_enter
    // calls, returns from sleeping in io_uring_enter, and MsgRing wake-ups
    // sent to sleeping peers.
    loop_turns,
    uring_submits,
    wakeups,
    wakes_sent,
    // Jobs the admin side asked of the worker (key browser steps, key
    // views and edits, flush_prefix), the microseconds they held it, and
    // the longest one (a level; across workers the largest, not the sum):
    // what a request arriving behind an admin job waited for it.
    admin_jobs,
    admin_job_us,
    admin_job_max_us,
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_add_up_but_a_maximum_is_the_largest_and_survives_reset() {
        let a = Counters {
            admin_jobs: 3,
            admin_job_us: 30,
            admin_job_max_us: 12,
            ..Default::default()
        };
        let b = Counters {
            admin_jobs: 2,
            admin_job_us: 8,
            admin_job_max_us: 5,
            ..Default::default()
        };
        let mut t = a;
        t.add(&b);
        assert_eq!((t.admin_jobs, t.admin_job_us), (5, 38));
        assert_eq!(t.admin_job_max_us, 12, "the largest, not 17");
        let since = t.since(&a);
        assert_eq!((since.admin_jobs, since.admin_job_max_us), (2, 12));
    }
}
