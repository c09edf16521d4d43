//! Overlapping the memory misses of a batch of lookups.
//!
//! A lookup takes two dependent cache misses: the key's index bucket, then
//! the item it points at (to compare keys). Taken one request at a time
//! they are paid in full, one after the other. When the engine holds many
//! requests at once (a pipelined read, or a turn's worth of connections) it
//! first asks for every bucket, then for every candidate item, so the
//! misses of the whole batch are in flight together and the requests
//! themselves then run from cache. A prefetch is only a hint: it never
//! changes what a lookup finds.

use super::index::{self, slot_off, slot_seg, slot_tag, tag_of, ITEM_SLOTS};
use super::Store;

/// Asks the CPU to start loading the cache line at `p`.
#[inline(always)]
pub(super) fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint that never faults, whatever the address;
    // it is measured to cut the pipelined (p16) server CPU per request.
    unsafe {
        std::arch::x86_64::_mm_prefetch(p as *const i8, std::arch::x86_64::_MM_HINT_T0);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

impl Store {
    /// First stage: starts loading `key`'s index bucket. Returns the key's
    /// hash for the second stage.
    #[inline]
    pub fn prefetch_bucket(&self, key: &[u8]) -> u64 {
        let hash = self.hash(key);
        let bucket = self.index.home_bucket(hash) as *const index::Bucket as *const u8;
        // A bucket is two cache lines.
        prefetch(bucket);
        prefetch(bucket.wrapping_add(64));
        hash
    }

    /// Second stage, once the bucket had time to arrive: starts loading the
    /// header and key of each item whose tag matches.
    #[inline]
    pub fn prefetch_items(&self, hash: u64) {
        let tag = tag_of(hash);
        let bucket = self.index.home_bucket(hash);
        for s in bucket.slots[1..=ITEM_SLOTS]
            .iter()
            .map(|s| s.load(std::sync::atomic::Ordering::Relaxed))
        {
            if s != 0 && slot_tag(s) == tag {
                prefetch(self.segs.ptr(slot_seg(s), slot_off(s) as usize));
            }
        }
    }
}
