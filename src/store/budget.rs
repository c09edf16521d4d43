//! The store's memory budget: `-m` (a shard's share of it) pays for the
//! segments, their bookkeeping and the hash index together, so resident
//! memory stays close to it whatever the item sizes. The index starts
//! small and grows as items come; each bucket it adds is paid for by
//! giving up segment memory, handed back to the kernel.
//!
//! What is left below a whole segment is not lost: one segment at a time
//! may be short, holding only those bytes (whole pages; the rest of its
//! pages are given back), and the budget pays for it as for that many
//! bytes. A 16 MiB shard of 1 MiB segments left 0.8 MiB unused, 5 % of
//! it; at `-m 256` the index and ghosts left about 0.25 MiB.

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

/// The short segment's bytes beside `n` whole segments in `memory` (after
/// the index): what is left once they and the short one's bookkeeping
/// are paid, in whole pages of `page` bytes; 0 when that is under an
/// eighth of a segment (too little to be worth a segment's bookkeeping
/// and a record's worth of tail it may leave unused).
pub(super) fn short_within(memory: usize, seg_size: usize, n: usize, page: usize) -> usize {
    let left = memory
        .saturating_sub(n * (seg_size + SEGMENT_OVERHEAD))
        .saturating_sub(SEGMENT_OVERHEAD);
    // A page as large as the segment (2 MiB hugetlb pages under 1 MiB
    // segments) leaves nothing to give back: no short segment.
    let bytes = (left / page * page).min(seg_size.saturating_sub(page));
    if bytes < seg_size / 8 {
        0
    } else {
        bytes
    }
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
        let (want, short) = self.segments_wanted(bytes);
        // The short segment is carved when the arena has room for it
        // (`rebudget` does without it otherwise): only whole segments
        // must fit.
        let whole = want - usize::from(short > 0);
        if whole.max(3) > self.segs.capacity() {
            return false;
        }
        self.segs.grow_to(want.max(3));
        self.limit = bytes;
        self.rebudget();
        while self.segs.in_use() > self.seg_limit {
            self.expire(usize::MAX);
            if self.segs.in_use() <= self.seg_limit || !self.evict() {
                break;
            }
        }
        // A short segment paid for whole may have been evicted just now.
        self.forget_freed_short();
        self.settle();
        true
    }

    /// Segments that fit in `bytes` beside the index and their own
    /// bookkeeping, carved or not, the short one included, and the merge
    /// reserve when its pages are given back between merges (it is
    /// resident only while a merge copies into it, and then a segment the
    /// merge freed takes its place and gives its pages back); and the
    /// short segment's bytes (0: none).
    pub(super) fn segments_wanted(&self, bytes: usize) -> (usize, usize) {
        let memory = bytes.saturating_sub(self.index_bytes());
        let seg = self.segs.seg_size;
        let whole = segments_within(memory, seg, 0);
        let short = if self.shortens {
            short_within(memory, seg, whole, self.segs.arena().page_size())
        } else {
            0
        };
        (
            whole + (short > 0) as usize + self.reserve_unpaid as usize,
            short,
        )
    }

    /// Recomputes the segments the store may use from its limit and the
    /// index's size (at most those carved, and then no short one), and
    /// the chain layout for that many.
    pub(super) fn rebudget(&mut self) {
        let (mut wanted, mut short) = self.segments_wanted(self.limit);
        if let Some(id) = self.live_short() {
            // The index grew under a short segment taken when more was
            // left: it gives up its unwritten bytes, or, holding more than
            // is left now, is paid for as a whole segment (one fewer may
            // be in use, so one goes) until it is freed.
            let h = self.segs.header(id);
            if short > 0 && h.end as usize > short {
                if h.write_off as usize <= short {
                    self.segs.shorten(id, short);
                } else {
                    (wanted, short) = (wanted - 1, 0);
                }
            }
        }
        let carved = self.segs.count();
        let (segs, short) = if wanted > carved {
            (carved, 0)
        } else {
            (wanted, short)
        };
        self.partial = short;
        let segs = segs.max(3);
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

    /// The short segment, if one is in use.
    pub(super) fn live_short(&self) -> Option<u32> {
        self.short_live().then_some(self.short.0)
    }

    /// Whether the short segment is in use.
    #[inline]
    pub(super) fn short_live(&self) -> bool {
        let (id, seq) = self.short;
        id != segment::NONE && self.segs.header(id).seq == seq
    }

    /// Forgets a short segment that has been freed (by eviction, expiry or
    /// a flush); if it was paid for as a whole segment (it held more than
    /// the budget had left when the index grew under it), budgets afresh,
    /// so that its slot is short again.
    pub(super) fn forget_freed_short(&mut self) {
        if self.short.0 != segment::NONE && !self.short_live() {
            self.short = (segment::NONE, 0);
            if self.partial == 0 {
                self.rebudget();
                self.settle();
            }
        }
    }

    /// Makes segment `id` (just taken for a record of `size` bytes, or in
    /// use with `size` bytes written) the short one if the budget has one,
    /// none is in use, those bytes fit it, and `id` is the last segment the
    /// budget pays for: every other segment in use is then whole, and at
    /// most one is short. (`may_take` lets a record larger than the short
    /// segment take only a slot that is paid for whole.)
    pub(super) fn maybe_shorten(&mut self, id: u32, size: usize) {
        if self.partial > 0
            && size <= self.partial
            && self.segs.in_use() >= self.seg_limit
            && !self.short_live()
        {
            self.make_short(id);
        }
    }

    /// Makes segment `id` the short one: it holds `partial` bytes from now
    /// on, and its pages past them go back to the kernel.
    pub(super) fn make_short(&mut self, id: u32) {
        self.segs.shorten(id, self.partial);
        self.short = (id, self.segs.header(id).seq);
    }

    /// Adds a bucket to the index (see `Index::split_one`) and gives up
    /// segment memory to pay for it.
    pub(super) fn grow_index(&mut self) {
        let (segs, hasher) = (&self.segs, &self.hasher);
        if let Some(at) = self.index.split_one(|v| hash_at(segs, hasher, v)) {
            self.segs.collapse_huge(at);
        }
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
            if let Some(at) = self.index.split_one(|v| hash_at(segs, hasher, v)) {
                segs.collapse_huge(at);
            }
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

    /// What the budget leaves below a whole segment goes to one short
    /// segment: never two, never more bytes than are left (or it is paid
    /// for as a whole segment), its pages past its end not resident, no
    /// more whole segments in use than are paid for; and every item read
    /// back exact. The index grows all through the fill, so the short
    /// segment is shortened under a write and paid for whole in turn.
    #[test]
    fn the_remainder_below_a_segment_is_one_short_segment() {
        let mut s = crate::store::test_store(16 << 20, 1_700_000_000);
        let seg = s.segs.seg_size;
        let (mut seen_short, mut seen_whole) = (0, 0);
        let value = |i: u32| vec![b'a' + (i % 26) as u8; 60 + (i % 90) as usize];
        for i in 0..400_000u32 {
            let key = format!("key:{i}");
            let got = s.set(&SetArgs::new(SetMode::Set, key.as_bytes(), &value(i), i, 0));
            assert!(matches!(got, SetOutcome::Stored { .. }), "set {i}");
            if i % 500 != 0 {
                continue;
            }
            let live = |id: usize| s.segs.header(id as u32).seq != 0;
            let shorts: Vec<usize> = (0..s.segs.count())
                .filter(|&id| live(id) && (s.segs.header(id as u32).end as usize) < seg)
                .collect();
            assert!(shorts.len() <= 1, "short segments {shorts:?}");
            let Some(id) = s.live_short() else { continue };
            assert_eq!(shorts, [id as usize]);
            let h = *s.segs.header(id);
            if s.partial > 0 {
                seen_short += 1;
                assert!(
                    h.end as usize <= s.partial,
                    "{} bytes, {} left",
                    h.end,
                    s.partial
                );
                assert!(s.segs.in_use() - 1 < s.seg_limit, "whole segments unpaid");
            } else {
                seen_whole += 1;
                assert!(s.segs.in_use() <= s.seg_limit);
            }
            let tail = s.segs.ptr(id, h.end as usize);
            assert_eq!(
                resident_pages(tail, seg - h.end as usize),
                0,
                "past its end"
            );
        }
        assert!(seen_short > 100, "{seen_short} short, {seen_whole} whole");
        // Less left than the short segment may hold, but not less than it
        // holds (as when the index grows under it): it gives up the rest.
        let page = s.segs.arena().page_size();
        let shrink_to = |s: &mut Store, left: usize| {
            let id = s.live_short().expect("a short segment");
            let lower = s.partial - left;
            assert!(s.set_memory_limit(s.limit - lower));
            id
        };
        let id = s.live_short().expect("a short segment");
        let h = *s.segs.header(id);
        let left = (h.write_off as usize).div_ceil(page) * page;
        if left < h.end as usize {
            shrink_to(&mut s, left);
            assert_eq!(s.segs.header(id).end as usize, left);
            assert_eq!(s.partial, left);
            let gone = s.segs.ptr(id, left);
            assert_eq!(resident_pages(gone, seg - left), 0);
        }
        // Less left than it holds: paid for as a whole segment, one fewer
        // whole one in use.
        let id = s.live_short().expect("a short segment");
        let h = *s.segs.header(id);
        let left = (seg / 8).div_ceil(page) * page;
        assert!(h.write_off as usize > left, "{} bytes written", h.write_off);
        let before = s.seg_limit;
        shrink_to(&mut s, left);
        assert_eq!((s.partial, s.seg_limit), (0, before - 1));
        assert!(s.segs.in_use() <= s.seg_limit);
        assert_eq!(s.live_short(), Some(id));
        let mut found = 0;
        for i in 0..400_000u32 {
            if let Some(got) = s.get(format!("key:{i}").as_bytes()) {
                assert_eq!(got.item.value(), &value(i)[..], "key:{i}");
                found += 1;
            }
        }
        assert!(found > 50_000, "{found} found");
    }

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
            // Beside the whole segments paid: the reserve (unpaid) and,
            // when the budget pays for one, the short segment.
            let short = usize::from(s.partial > 0);
            assert_eq!(
                s.seg_limit,
                paid_now + 1 + short,
                "the reserve is the one unpaid"
            );
            let base = s.segs.arena().base_ptr();
            // SAFETY: the reserve is a carved segment of the arena.
            let reserve = unsafe { base.add(s.reserve as usize * seg) };
            assert_eq!(resident_pages(reserve, seg), 0, "reserve resident");
            let all = resident_pages(base, s.segs.count() * seg);
            // The index's last growth may have lowered the limit with no
            // segment needed since: the next write's eviction frees it.
            let pending = s.segs.in_use().saturating_sub(s.seg_limit);
            assert!(pending <= 1, "{pending} segments over the limit");
            // Until the next merge: the short segment's place held by a
            // whole one, the reserve short (see `renew_reserve`).
            let in_place = match s.live_short() {
                Some(id) if id == s.reserve => seg - s.segs.header(id).end as usize,
                _ => 0,
            };
            assert!(
                all <= ((paid_now + pending) * seg + s.partial + in_place) / 4096,
                "{all} pages resident, {paid_now} segments and {} bytes paid",
                s.partial
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
