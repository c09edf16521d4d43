//! Per-shard command counters, kept as plain integers by the owning worker
//! and published to atomics once per loop turn for `stats` to sum.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

macro_rules! counters {
    ($($name:ident),* $(,)?) => {
        /// Counters one worker owns.
        #[derive(Clone, Copy, Debug, Default)]
        pub struct Counters { $(pub $name: u64,)* }

        /// The published copy other threads read.
        #[derive(Debug, Default)]
        pub struct Published { $(pub $name: AtomicU64,)* }

        impl Published {
            pub fn publish(&self, c: &Counters) {
                $(self.$name.store(c.$name, Relaxed);)*
            }
            pub fn snapshot(&self) -> Counters {
                Counters { $($name: self.$name.load(Relaxed),)* }
            }
        }

        impl Counters {
            pub fn add(&mut self, o: &Counters) {
                $(self.$name += o.$name;)*
            }
            /// Name/value pairs in memcached's order.
            pub fn fields(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($name), self.$name),)*]
            }
        }
    };
}

counters!(
    curr_connections,
    total_connections,
    rejected_connections,
    cmd_get,
    cmd_set,
    cmd_flush,
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
    bytes_read,
    bytes_written,
    cross_shard_sent,
    cross_shard_served,
    pinned_segments,
    curr_items,
    total_items,
    bytes,
    evictions,
    evicted_unfetched,
    expired_unfetched,
    reclaimed,
    limit_maxbytes,
    hash_bytes,
);
