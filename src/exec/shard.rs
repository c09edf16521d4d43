//! What one worker owns: its store shard, its counters, and the zero-copy
//! state of the reply being written.

use super::counters::Counters;
use super::detail::Detail;
use super::value_ref::Refs;
use crate::store::Store;

/// The version every protocol's `version` command answers.
pub use crate::version::VERSION;

/// One worker's shard of the cache.
pub struct Shard {
    /// The items this worker owns.
    pub store: Store,
    /// Command counters, written only by the owning worker; counts grow
    /// from start to exit (see `counters.rs`).
    pub c: Counters,
    /// The counters at the last `stats reset` (zero before one).
    pub base: Counters,
    /// How many shards share `-m` (for `cache_memlimit`).
    pub shards: usize,
    /// This shard's number (its worker's), stamped on value references.
    pub id: u32,
    /// While a reply is written where references can follow it (a
    /// connection's output, or a reply to another worker), values of at
    /// least this many bytes go by reference, collected in `zc_refs`;
    /// `usize::MAX` (the default) copies every value.
    pub zc_min: usize,
    /// The values referenced by the reply being written.
    pub zc_refs: Refs,
    /// `stats detail`'s per-prefix counts, one table for all shards.
    pub detail: std::sync::Arc<Detail>,
}

impl Shard {
    /// A shard over `store`, alone (`shards` = 1) until the engine says
    /// otherwise.
    pub fn new(store: Store) -> Shard {
        Shard {
            store,
            c: Counters::default(),
            base: Counters::default(),
            shards: 1,
            id: 0,
            zc_min: usize::MAX,
            zc_refs: Refs::default(),
            detail: Default::default(),
        }
    }

    /// The counters with the store's item figures filled in.
    pub fn counters(&self) -> Counters {
        let mut c = self.c;
        let s = &self.store;
        c.curr_items = s.curr_items() as u64;
        c.bytes = s.bytes() as u64;
        c.total_items = s.stats.total_items;
        c.evictions = s.stats.evictions;
        c.evicted_unfetched = s.stats.evicted_unfetched;
        c.expired_unfetched = s.stats.expired_unfetched;
        c.reclaimed = s.stats.reclaimed;
        c.get_expired = s.stats.get_expired;
        c.get_flushed = s.stats.get_flushed;
        c.lru_crawler_starts = s.stats.crawler_starts;
        c.crawler_items_checked = s.stats.crawler_items_checked;
        c.crawler_reclaimed = s.stats.crawler_reclaimed;
        c.limit_maxbytes = s.memory_limit() as u64;
        c.pinned_segments = s.pinned_segments() as u64;
        c.hash_bytes = s.index_bytes() as u64;
        c.hash_buckets = s.index_buckets() as u64;
        c.hash_expanding = s.index_growing() as u64;
        c.segment_bytes_used = s.segment_bytes_in_use() as u64;
        c.expired_segments = s.stats.expired_segments;
        c.evicted_segments = s.stats.evicted_segments;
        c.segment_merges = s.stats.merges;
        c.segment_merges_ahead = s.stats.merges_ahead;
        c.ghost_credits = s.stats.ghost_credits;
        c.arrival_credits = s.stats.arrival_credits;
        c.foreign_read_waits = s.grace_waits();
        c
    }

    /// `stats reset`: from now on `stats` counts from here. memcached's
    /// `stats_reset` zeroes its global, per-thread and per-class item
    /// counts and keeps the levels (measured on 1.6.18: `total_connections`
    /// and `total_items` go to 0, `curr_items` and `bytes` stay); the
    /// counts themselves go on growing for the admin port's counters.
    pub fn reset_counters(&mut self) {
        self.base = self.counters();
        // memcached's stats_reset also forgets the prefixes.
        self.detail.clear();
    }

    /// The counters as `stats` shows them: counts since the last reset.
    pub fn counters_since_reset(&self) -> Counters {
        self.counters().since(&self.base)
    }
}
