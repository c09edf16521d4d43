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

/// Starts loading both cache lines of index bucket `b`.
#[inline(always)]
pub(super) fn bucket_lines(b: &index::Bucket) {
    let p = b as *const index::Bucket as *const u8;
    prefetch(p);
    prefetch(p.wrapping_add(64));
}

/// The (segment, offset) of each item slot of `b` whose tag is `hash`'s:
/// the records a lookup of that hash would compare keys with. Loaded
/// Relaxed: only ever used as addresses to prefetch.
#[inline(always)]
pub(super) fn tagged_slots(b: &index::Bucket, hash: u64) -> impl Iterator<Item = (u32, u32)> + '_ {
    let tag = tag_of(hash);
    b.slots[1..=ITEM_SLOTS]
        .iter()
        .map(|s| s.load(std::sync::atomic::Ordering::Relaxed))
        .filter(move |&s| s != 0 && slot_tag(s) == tag)
        .map(|s| (slot_seg(s), slot_off(s)))
}

impl Store {
    /// First stage: starts loading `key`'s index bucket. Returns the key's
    /// hash for the second stage.
    #[inline]
    pub fn prefetch_bucket(&self, key: &[u8]) -> u64 {
        let hash = self.hash(key);
        bucket_lines(self.index.home_bucket(hash));
        hash
    }

    /// Second stage, once the bucket had time to arrive: starts loading the
    /// header and key of each item whose tag matches.
    #[inline]
    pub fn prefetch_items(&self, hash: u64) {
        for (seg, off) in tagged_slots(self.index.home_bucket(hash), hash) {
            prefetch(self.segs.ptr(seg, off as usize));
        }
    }
}
