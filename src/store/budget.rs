//! The store's memory budget: `-m` (a shard's share of it) pays for the
//! segments, their bookkeeping and the hash index together, so resident
//! memory stays close to it whatever the item sizes. The index starts
//! small and grows as items come; each bucket it adds is paid for by
//! giving up segment memory, handed back to the kernel.

use super::index;
use super::item::RawItem;
use super::segment;
use super::ttl;
use super::Store;

/// Bytes per item the hash index starts out sized for. It grows as items
/// come (see `index`), and segments are given up to pay for it, so the
/// store's memory stays within its budget whatever the item sizes: sized
/// up front for small items, it took 9 % of the memory from workloads of
/// larger ones (measured: hit ratio 0.750 against 0.755 at -m 64).
pub const INDEX_START_ITEM_BYTES: usize = 1024;
/// The smallest record the index may have to grow for; it reserves (but
/// does not touch) address space for as many.
pub const INDEX_MIN_ITEM_BYTES: usize = 32;

/// Bytes of bookkeeping per segment besides its data: header, pin count,
/// free-list entry.
pub(super) const SEGMENT_OVERHEAD: usize = std::mem::size_of::<segment::SegHeader>() + 8;

/// The most segments of `seg_size` bytes that fit in `memory` beside
/// `index` bytes of index and their own bookkeeping: `-m` is all the store
/// may use, so that a process's resident memory stays close to it
/// (memcached keeps its hash table outside `-m` and ends near 1.05x; ours
/// is a larger share per item, as items are smaller).
pub(super) fn segments_within(memory: usize, seg_size: usize, index: usize) -> usize {
    let mut n = memory / seg_size;
    while n > 0 && n * (seg_size + SEGMENT_OVERHEAD) + index > memory {
        n -= 1;
    }
    n
}

/// The hash of the key of the record slot value `v` points at: what the
/// index asks for when it moves items (a record read).
pub(super) fn hash_at(segs: &segment::Segments, hasher: &ahash::RandomState, v: u64) -> u64 {
    // SAFETY: see `Store::item_at`: a linked slot points at a live record.
    let it = unsafe { RawItem::at(segs.ptr(index::slot_seg(v), index::slot_off(v) as usize)) };
    hasher.hash_one(it.key())
}

impl Store {
    /// `cache_memlimit`: the bytes this shard's store may use, index
    /// included, with no more segments than the arena has room for (see
    /// `Arena::with_room`; memcached grows too, its slabs being malloc'ed
    /// as needed); false otherwise. Raising it carves new segments;
    /// lowering it evicts now, down to three segments at least: a limit
    /// that the index as it has grown (it never shrinks) or the segment
    /// size leaves less room than that keeps those three, as memcached,
    /// whose hash table is outside its limit, answers OK to any limit of
    /// 8 MiB or more and keeps the slab pages it has.
    pub fn set_memory_limit(&mut self, bytes: usize) -> bool {
        let want = self.segments_wanted(bytes).max(3);
        if want > self.segs.capacity() {
            return false;
        }
        self.segs.grow_to(want);
        self.limit = bytes;
        self.rebudget();
        while self.segs.in_use() > self.seg_limit {
            self.expire(usize::MAX);
            if self.segs.in_use() <= self.seg_limit || !self.evict() {
                break;
            }
        }
        self.settle();
        true
    }

    /// Segments that fit in `bytes` beside the index as it is now, at
    /// most those carved.
    fn segments_for(&self, bytes: usize) -> usize {
        self.segments_wanted(bytes).min(self.segs.count())
    }

    /// Segments that fit in `bytes` beside the index and their own
    /// bookkeeping, carved or not, and the merge reserve when its pages
    /// are given back between merges (it is resident only while a merge
    /// copies into it, and then a segment the merge freed takes its
    /// place and gives its pages back).
    fn segments_wanted(&self, bytes: usize) -> usize {
        segments_within(
            bytes.saturating_sub(self.index_bytes()),
            self.segs.seg_size,
            0,
        ) + self.reserve_unpaid as usize
    }

    /// Recomputes the segments the store may use from its limit and the
    /// index's size, and the chain layout for that many.
    pub(super) fn rebudget(&mut self) {
        let segs = self.segments_for(self.limit).max(3);
        if segs != self.seg_limit {
            self.seg_limit = segs;
            self.layout = ttl::Layout::for_segments(segs);
        }
    }

    /// Hands free segments beyond the limit back to the kernel, or takes
    /// retired ones back while under it.
    pub(super) fn settle(&mut self) {
        while self.segs.usable() > self.seg_limit && self.segs.retire_one() {}
        let missing = self.seg_limit.saturating_sub(self.segs.usable());
        if missing > 0 {
            self.segs.unretire(missing);
        }
    }

    /// Adds a bucket to the index (see `Index::split_one`) and gives up
    /// segment memory to pay for it.
    pub(super) fn grow_index(&mut self) {
        let (segs, hasher) = (&self.segs, &self.hasher);
        self.index.split_one(|v| hash_at(segs, hasher, v));
        self.unlinks += 1;
        self.pay_for_index();
    }

    /// Brings items home from overflow chains and compacts them (see
    /// `Index::tidy`), taking back segment memory for what that gave back.
    pub(super) fn tidy_index(&mut self) {
        let shrank = self.index.tidy();
        self.unlinks += 1;
        if shrank {
            self.rebudget();
            self.settle();
        }
    }

    /// Gives up segment memory for what the index has grown by (a split,
    /// or an overflow bucket chained): `-m` pays for both.
    pub(super) fn pay_for_index(&mut self) {
        let before = self.seg_limit;
        self.rebudget();
        if self.seg_limit < before {
            self.settle();
        }
    }

    /// Grows the index to `buckets` primary buckets (or as far as it may)
    /// before items come, paying for it as `grow_index` does, once: a warm
    /// restart sizes it as the old process had it, so the segment budget
    /// and chain layout come out the same.
    pub(super) fn grow_index_to(&mut self, buckets: usize) {
        let (segs, hasher) = (&self.segs, &self.hasher);
        let mut grew = false;
        while self.index.primary_buckets() < buckets && self.index.may_grow() {
            self.index.split_one(|v| hash_at(segs, hasher, v));
            grew = true;
        }
        if grew {
            self.unlinks += 1;
            self.rebudget();
            self.settle();
        }
    }

    /// Memory this shard may use now, index included: `StoreConfig::memory`
    /// or what `set_memory_limit` last set.
    pub fn memory_limit(&self) -> usize {
        self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::arena::resident_pages;
    use crate::store::{SetArgs, SetMode, SetOutcome};

    /// The merge reserve holds nothing between merges, so its pages are
    /// given back and the budget pays for one more segment of items
    /// instead: after filling past the budget under merge eviction (and
    /// its compactions), the reserve is not resident, the segments' pages
    /// resident are at most what the budget pays for, and every item
    /// still there reads back exact.
    #[test]
    fn the_merge_reserve_takes_no_memory_between_merges() {
        for (value_len, overwrite_every) in [(200usize, 0u32), (900, 3)] {
            let mut s = crate::store::test_store(16 << 20, 1_700_000_000);
            let seg = s.segs.seg_size;
            let paid = segments_within(s.limit - s.index_bytes(), seg, 0);
            for i in 0..200_000u32 {
                // Overwrites leave dead versions: compaction copies into the
                // reserve.
                let k = if overwrite_every > 0 && i % overwrite_every == 0 {
                    i / 10
                } else {
                    i
                };
                let key = format!("key:{k}");
                let v = vec![b'a' + (k % 26) as u8; value_len - (k % 7) as usize];
                let got = s.set(&SetArgs::new(SetMode::Set, key.as_bytes(), &v, k, 0));
                assert!(matches!(got, SetOutcome::Stored { .. }), "set {i}");
            }
            assert!(s.stats.merges > 20, "{} merges", s.stats.merges);
            let paid_now = segments_within(s.limit - s.index_bytes(), seg, 0);
            assert!(paid_now <= paid);
            assert_eq!(s.seg_limit, paid_now + 1, "the reserve is the one unpaid");
            let base = s.segs.arena().base_ptr();
            // SAFETY: the reserve is a carved segment of the arena.
            let reserve = unsafe { base.add(s.reserve as usize * seg) };
            assert_eq!(resident_pages(reserve, seg), 0, "reserve resident");
            let all = resident_pages(base, s.segs.count() * seg);
            assert!(
                all <= paid_now * seg / 4096,
                "{all} pages resident, {paid_now} segments paid"
            );
            let mut found = 0;
            for k in 0..200_000u32 {
                if let Some(got) = s.get(format!("key:{k}").as_bytes()) {
                    let want = vec![b'a' + (k % 26) as u8; value_len - (k % 7) as usize];
                    assert_eq!(got.item.value(), &want[..], "key:{k}");
                    assert_eq!(got.item.flags(), k);
                    found += 1;
                }
            }
            assert!(found > 10_000, "{found} items kept");
        }
    }
}
