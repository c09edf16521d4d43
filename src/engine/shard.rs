//! What one worker owns: its store shard and its counters.

use super::counters::Counters;
use super::zerocopy::{Refs, ValueRef, ZC_MIN};
use crate::store::Store;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

pub struct Shard {
    pub store: Store,
    pub c: Counters,
    /// How many shards share `-m` (for `cache_memlimit`).
    pub shards: usize,
    /// Set while executing straight into a connection's output: large
    /// values may then go by reference, collected in `zc_refs`.
    pub zc_on: bool,
    pub zc_refs: Refs,
}

impl Shard {
    pub fn new(store: Store) -> Shard {
        Shard {
            store,
            c: Counters::default(),
            shards: 1,
            zc_on: false,
            zc_refs: Refs::default(),
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
        c.limit_maxbytes = s.memory_limit() as u64;
        c.hash_bytes = s.index_bytes() as u64;
        c.pinned_segments = s.pinned_segments() as u64;
        c
    }
}

impl Shard {
    /// Counts a storage outcome the way memcached's stats do.
    pub fn count_set(&mut self, r: &crate::store::SetOutcome, with_cas: bool) {
        use crate::store::SetOutcome::*;
        match r {
            Stored { .. } if with_cas => self.c.cas_hits += 1,
            Exists => self.c.cas_badval += 1,
            NotFound => self.c.cas_misses += 1,
            TooLarge => self.c.store_too_large += 1,
            NoMemory => self.c.store_no_memory += 1,
            _ => {}
        }
    }
}

/// Appends a decimal number without going through `format!`.
#[inline]
pub fn push_num(out: &mut Vec<u8>, n: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

#[inline]
pub fn push_line(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Appends a stored value to a reply: by reference when it is large and
/// the reply goes straight to a connection's output (zerocopy.rs), else
/// by copy.
pub fn push_value(sh: &mut Shard, out: &mut Vec<u8>, v: &[u8]) {
    if sh.zc_on && v.len() >= ZC_MIN && sh.store.may_pin() {
        let seg = sh.store.pin(v);
        sh.zc_refs.push(ValueRef {
            at: out.len(),
            ptr: v.as_ptr(),
            len: v.len(),
            seg,
        });
    } else {
        out.extend_from_slice(v);
    }
}
