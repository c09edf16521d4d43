//! Merge eviction (the default policy): frees a segment by copying out what
//! is worth keeping, in one of two ways.
//!
//! - **Compaction.** Two neighbouring sealed segments of one chain whose
//!   unexpired live bytes together fit in [`COMPACT_FILL`] of a segment are
//!   copied, every live item kept, into the reserve segment, which takes
//!   their place in the chain and in the hand's order. Replaced and deleted
//!   items leave dead bytes behind in an append-only log (under a skewed
//!   write load, most of it); this frees them without losing anything.
//! - **The hand.** Otherwise the oldest sealed segment (in hand order) is
//!   visited: items read since the hand last passed are appended again to
//!   their chain's open segment, most frequently read first, up to
//!   [`KEEP_MAX`] of a segment; the rest are evicted. Keeping an item costs
//!   it rent, taken from its frequency, so an item stays only while it is
//!   read. This is CLOCK over segments: every item gets one full turn of
//!   the log to be read, as in LRU, at a segment's cost.
//! - **Sizes weighed.** The rent is the item's size in units of
//!   [`RENT_MEANS`] mean records (of the shard's live ones): an item up
//!   to 8 times the mean needs one read a turn, one of 80 means twenty
//!   (a unit of one mean taxed ordinary working sets, see
//!   [`RENT_MEANS`]); an item smaller than the mean pays its one read
//!   only with probability size / mean, so a read keeps it mean / size
//!   turns on average. A cache is judged by the share of requests it
//!   hits, and a byte of a small item serves more of them than a byte
//!   of a large one read as often (GDSF's value per byte, Cherkasova
//!   1998). memcached gets there by keeping each size class in its own
//!   memory; one log of every size, weighing nothing, let large values
//!   written fast push out small items read a little less than once a
//!   turn: with 1 key in 20 of 16-64 KiB and the rest of 50-500 B
//!   (`scripts/bench-memory.py --values bimodal`, -m 64), hit ratio
//!   0.7284 at -t 1 and 0.7204 at -t 2 against memcached's 0.7412;
//!   0.7579 and 0.7563 weighed (with a unit of one mean). Only reads
//!   earn the small items' longer stay: a new item gets none (given
//!   mean/size turns on arrival, the bimodal load gained another 0.022
//!   in `examples/hitsim.rs`, but small keys written once and never
//!   read, half the writes of a scan load, took that from 0.660 to
//!   0.599). With values of 50-1000 B, the other benchmarks' load,
//!   every rent is one read and only the stay of those under the mean
//!   grows: hit ratio -0.0001 to +0.0015 against before
//!   (bench-memory.py -m 64, -t 1 and 2, no TTL, fixed and jittered
//!   ones).
//!
//! Expired items are dropped either way. Segcache merges runs of segments
//! at a chain's head into one; that leaves dead bytes anywhere else in the
//! log until the head reaches them, and, merging the head again each time,
//! keeps a single segment's worth of survivors per chain.

use super::index::{self, SlotRef};
use super::item::{self, ItemMeta, RawItem, DELETED};
use super::merge_job::{CompactTo, HandCut, Plan};
use super::segment::NONE;
use super::sweep::LOOKAHEAD;
use super::ttl;
use super::Store;

/// Numerator and denominator: the share of a segment the hand keeps at most
/// when it passes one; the rest of the segment is freed.
const KEEP_MAX: (usize, usize) = (9, 10);
/// Percent of a fresh segment compaction plans to fill (moved items grow
/// by their CAS, and sizes vary).
const COMPACT_FILL: usize = 95;
/// Compaction runs are at most this many neighbouring segments.
const COMPACT_RUN: usize = 8;
/// Numerator and denominator: compaction is chosen over the hand while it
/// copies at most this many segments' worth of bytes per segment it frees.
/// Measured (`scripts/bench-memory.py hit`, -m 64, zipf keys, values
/// 50-1000 B, 1:4 set:get, against memcached): at 2:1 the log stayed 79 %
/// live and kept 5-9 % fewer items than memcached (-t 1; 8-14 % at -t 2),
/// hit ratio -0.0015 to +0.0004; at 5:1, 0.7 % fewer to 2 % more without
/// TTLs or with fixed ones, 1.5-3.6 % fewer with jittered ones, hit ratio
/// +0.0004 to +0.0011 over memcached's under every TTL shape; 10:1 gained
/// 1-2.5 % more items but its p99.9 looked worse. CPU per request of an
/// evicting memtier load (-m 64, 1:2 set:get) was within noise of 2:1.
const COMPACT_COPY: (usize, usize) = (5, 1);
/// The most reads a rent asks for: frequencies count one a read up to 16,
/// then with probability 1/frequency up to 127 (`bump_access`).
const RENT_CAP: usize = 127;

/// How many mean records a read a turn pays for: a record pays one read
/// up to twice this many, more only beyond. The mean of live records is a
/// loose yardstick (cold small items left behind drag it down), and
/// charging records of a few means each more than one read taxed a
/// working set of ordinary values: with this at 1, items of 1-4 KiB
/// taking over from cold ones of 50-100 B (hitsim `VALUES=shift`, -m 64)
/// hit 0.790 against 0.834 unweighed, and 2-8 KiB keys under a scan of
/// small ones (`VALUES=scan`) 0.674 against 0.682. At 4 they hit 0.829
/// and 0.682, and values of 16-64 KiB among ones of 50-500 B
/// (`VALUES=bimodal`), what the rent is for, still pay: 0.787 against
/// 0.786 at 1 and 0.732 unweighed (8: the same to 0.001).
const RENT_MEANS: usize = 4;

/// The hand's rent for a record of `size` bytes when the shard's live
/// records average `mean`: the reads since the hand last passed that it
/// must have had to be kept, its size in [`RENT_MEANS`] mean records, at
/// least one. A record up to 2 × RENT_MEANS times the mean pays one, as
/// every record did before sizes were weighed.
#[inline]
fn rent(size: usize, mean: usize) -> u8 {
    (size / (RENT_MEANS * mean)).clamp(1, RENT_CAP) as u8
}

/// The level the hand ranks a record at, from its frequency (reads since
/// the hand last passed, `Store::bump_access`): how many rents those reads
/// pay. 0: evicted.
#[inline]
fn level(freq: u8, size: usize, mean: usize) -> u8 {
    freq / rent(size, mean)
}

impl Store {
    /// The mean size of the shard's live records, in bytes: the unit the
    /// hand's rent is counted in ([`rent`]). Taken once for a cut and the
    /// pass that follows it, so both weigh records alike.
    #[inline]
    pub(super) fn mean_record(&self) -> usize {
        (self.live_bytes / self.index.items.max(1)).max(1)
    }

    /// What keeping a record of `size` bytes costs its frequency: its
    /// [`rent`], or, for one smaller than `mean`, one read with
    /// probability size / mean, so that a read keeps it mean / size turns
    /// on average.
    fn pay_rent(&mut self, size: usize, mean: usize) -> u8 {
        if size >= mean {
            return rent(size, mean);
        }
        ((self.rand() % mean as u64) < size as u64) as u8
    }

    /// A segment that eviction may take: in use, in a chain but not its open
    /// tail, not the reserve, not pinned by a send.
    pub(super) fn sealed(&self, id: u32) -> bool {
        let h = self.segs.header(id);
        h.seq != 0
            && id != self.reserve
            && self.ttl.chains[h.ttl_bucket as usize].tail != id
            && !self.segs.is_pinned(id)
    }

    /// Merge eviction run to the end: finishes the merge in progress, or
    /// plans one and runs it (see `merge_job.rs` for the steps). False if
    /// no segment can be taken.
    pub(super) fn merge(&mut self) -> bool {
        if !self.merge_running() && !self.merge_begin() {
            return false;
        }
        while self.merge_running() {
            self.merge_step(usize::MAX);
        }
        true
    }

    /// What merge eviction would do now: compact a run of segments (first,
    /// length) or pass the hand over the oldest sealed one.
    pub(super) fn merge_plan(&self) -> Option<Plan> {
        if self.reserve == NONE {
            return None;
        }
        let now = self.clock.now();
        let seg = self.segs.seg_size as u64;
        // A short reserve, the first destination, holds that much less.
        let short_by = seg - self.segs.header(self.reserve).end as u64;
        // Best run: (copied bytes per segment freed, first segment, length).
        let mut best: Option<(u64, u32, usize)> = None;
        for id in 0..self.segs.count() as u32 {
            if !self.sealed(id) {
                continue;
            }
            // Runs starting here: k segments whose live bytes fit in fewer.
            // A destination may end with up to a record's worth of room it
            // cannot use (the next record does not fit), so each counts for
            // its planned fill less the run's largest record.
            let (mut live, mut s, mut k, mut largest) = (0u64, id, 0usize, 0u64);
            while s != NONE && k < COMPACT_RUN && self.sealed(s) {
                let hs = self.segs.header(s);
                live += hs.unexpired_bytes(now) as u64;
                largest = largest.max(hs.largest as u64 + 8);
                k += 1;
                s = hs.next;
                let usable = (seg * COMPACT_FILL as u64 / 100).saturating_sub(largest);
                if usable == 0 {
                    break;
                }
                let dests = (live + short_by).div_ceil(usable);
                if k >= 2 && (dests as usize) < k {
                    let per_freed = live * COMPACT_COPY.1 as u64 / (k as u64 - dests);
                    if per_freed <= COMPACT_COPY.0 as u64 * seg
                        && best.is_none_or(|(c, _, _)| per_freed < c)
                    {
                        best = Some((per_freed, id, k));
                    }
                }
            }
        }
        match best {
            Some((_, a, k)) => Some(Plan::Compact(a, k)),
            None => self.oldest_sealed().map(Plan::Hand),
        }
    }

    /// The oldest sealed segment in hand order: where the hand passes when
    /// a compaction freed nothing after all (expiry is an estimate when
    /// planning), so that eviction never spins.
    pub(super) fn oldest_sealed(&self) -> Option<u32> {
        (0..self.segs.count() as u32)
            .filter(|&id| self.sealed(id))
            .min_by_key(|&id| self.segs.header(id).order)
    }

    /// Where compaction puts a record of `size` bytes: `dest` while it has
    /// room, else a fresh segment (the reserve first) placed before
    /// `victim` in its chain, in the run's hand order. None (the record is
    /// evicted) if no segment is free. `dest` is (id, incarnation): a
    /// destination freed meanwhile (its copies expired, or a flush sweep)
    /// is not written again.
    pub(super) fn compact_place(
        &mut self,
        c: &mut CompactTo,
        victim: u32,
        freq: u8,
        size: usize,
    ) -> Option<(u32, u8)> {
        if c.dest.0 != NONE && self.segs.header(c.dest.0).seq != c.dest.1 {
            c.dest.0 = NONE;
        }
        if c.dest.0 == NONE || self.segs.room(c.dest.0) < size {
            let now = self.clock.now();
            // A short reserve may hold less than the record: a whole
            // segment then, if one is free (put to use regardless, the
            // record ran past the reserve's end into the segments after
            // it: a breaker's cache_memlimit moves under large values).
            let d = if self.reserve != NONE && self.segs.room(self.reserve) >= size {
                self.put_reserve_to_use(c.bucket)
            } else {
                // A destination taken here is whole: asked for as a
                // segment's worth, it never takes the short one's slot.
                let d = self.take_segment(c.bucket, self.segs.seg_size)?;
                self.segs.renew(d, c.bucket, now);
                d
            };
            self.segs.header_mut(d).order = c.order;
            self.ttl.insert_before(&mut self.segs, c.bucket, d, victim);
            c.dest = (d, self.segs.header(d).seq);
            c.used += 1;
        }
        Some((c.dest.0, freq))
    }

    /// The share of `victim` the hand keeps, from the histogram of its
    /// live bytes by level ([`level`]): levels strictly above the returned
    /// cut are kept whole, at the cut only while the returned room lasts
    /// (never at level 0).
    pub(super) fn hand_cut(&self, hist: &[usize; 256]) -> (u8, usize) {
        let budget = self.segs.seg_size * KEEP_MAX.0 / KEEP_MAX.1;
        let mut kept = 0;
        for level in (1..256).rev() {
            if kept + hist[level] > budget {
                return (level as u8, budget - kept);
            }
            kept += hist[level];
        }
        (0, usize::MAX)
    }

    /// Where the hand puts a record of `victim`'s chain `bucket` it keeps:
    /// the chain's open segment, or the reserve when that is full; None
    /// (evicted) below the cut.
    pub(super) fn hand_place(
        &mut self,
        h: &mut HandCut,
        freq: u8,
        size: usize,
    ) -> Option<(u32, u8)> {
        let lv = level(freq, size, h.mean);
        if lv < h.cut || lv == 0 || (lv == h.cut && h.room < size) {
            return None;
        }
        if lv == h.cut {
            h.room -= size;
        }
        let dest = match self.ttl.tail(h.bucket) {
            Some(t) if self.segs.room(t) >= size => t,
            _ => {
                // A short reserve may hold less than the record (see
                // `compact_place`): evicted then, as with no reserve.
                if self.reserve == NONE || self.segs.room(self.reserve) < size {
                    return None;
                }
                let d = self.put_reserve_to_use(h.bucket);
                self.open_tail(h.bucket, d);
                d
            }
        };
        Some((dest, freq - self.pay_rent(size, h.mean)))
    }

    /// Takes a free segment as the merge reserve if there is none: right
    /// after a merge frees a victim, so that no write takes it first.
    /// None may be free (the victim was pinned by a send and parked); the
    /// next eviction then frees one the whole-segment way (`evict`).
    ///
    /// Taken where the short segment was (a merge evicted it and copied
    /// what it kept into the reserve, so a whole segment took the short
    /// one's place), the short one is made again: the segment the reserve
    /// became, if it holds no more than the short one's bytes (it holds
    /// what the merge kept of the short victim, and the open segment's
    /// overflow), else the new reserve, until the next merge copies into
    /// it and frees a whole victim in turn (`budget.rs`).
    pub(super) fn renew_reserve(&mut self) {
        if self.reserve == NONE {
            if let Some(r) = self.segs.take(ttl::NEVER, self.clock.now()) {
                self.forget_freed_short();
                let (d, seq) = self.reserve_used;
                if d != NONE && self.segs.header(d).seq == seq {
                    self.maybe_shorten(d, self.segs.header(d).write_off as usize);
                }
                self.maybe_shorten(r, 0);
                self.reserve = r;
                if self.reserve_unpaid {
                    self.segs.give_back_pages(r);
                }
            }
        }
    }

    /// Hands the merge reserve to chain `bucket` as a new incarnation (a
    /// merge's destination); a short reserve stays the short segment.
    fn put_reserve_to_use(&mut self, bucket: u16) -> u32 {
        let d = std::mem::replace(&mut self.reserve, NONE);
        let short = self.live_short() == Some(d);
        let end = self.segs.header(d).end;
        self.segs.renew(d, bucket, self.clock.now());
        let seq = self.segs.header(d).seq;
        if short {
            self.segs.header_mut(d).end = end;
            self.short.1 = seq;
        }
        self.reserve_used = (d, seq);
        d
    }

    /// Reads the records of `victim` from offset `from` on, at most
    /// `budget` of them: expired and hidden ones are reclaimed, and each
    /// live one is copied where `place(store, frequency, size)` says, with
    /// the frequency it says, or evicted if it says None. Returns the
    /// offset reached, records read, and whether the segment is all read
    /// (the caller then frees it).
    pub(super) fn drain_some(
        &mut self,
        victim: u32,
        from: u32,
        budget: usize,
        mut place: impl FnMut(&mut Store, u8, usize) -> Option<(u32, u8)>,
    ) -> (u32, usize, bool) {
        let now = self.clock.now();
        let end = self.segs.header(victim).write_off as usize;
        let (mut off, mut read) = (from as usize, 0);
        let mut ahead = from;
        for _ in 0..LOOKAHEAD.min(budget) {
            ahead = self.prefetch_record(victim, ahead, end as u32);
        }
        while off < end && read < budget {
            ahead = self.prefetch_record(victim, ahead, end as u32);
            let it = self.item_at(victim, off as u32);
            let size = it.size();
            off += size;
            read += 1;
            if it.iflags() & DELETED != 0 {
                continue;
            }
            let hash = self.hash(it.key());
            let roff = (off - size) as u32;
            let Some(r) = self.slot_at(hash, victim, roff) else {
                continue;
            };
            let e = it.expire();
            if e != 0 && e <= now {
                self.count_reclaimed(it);
                self.unlink(r, hash);
                continue;
            }
            // Hidden by a flush: dropped, never moved behind its sweep.
            if self.flush_hides(victim, roff, it) {
                self.count_reclaimed(it);
                self.unlink(r, hash);
                continue;
            }
            // Hidden by flush_prefix: dropped, never moved behind its sweep.
            if self.prefix_hides(victim, roff, it) {
                self.stats.prefix_reclaimed += 1;
                self.unlink(r, hash);
                continue;
            }
            let freq = index::slot_freq(self.index.get(r));
            let moved = moved_size(&it);
            match place(self, freq, moved) {
                Some((dest, freq)) => self.copy_record(victim, roff, it, r, dest, freq),
                None => {
                    self.count_evicted(it);
                    if moved < self.mean_record() {
                        self.ghosts.note(hash);
                    }
                    self.unlink(r, hash);
                }
            }
        }
        (off as u32, read, off >= end)
    }

    /// Copies a live record into `dest`, which has room for it (see
    /// `moved_size`), and points its index slot there with frequency `freq`.
    fn copy_record(&mut self, seg: u32, off: u32, it: RawItem, r: SlotRef, dest: u32, freq: u8) {
        // The item keeps its CAS across the move: it has not changed.
        let cas = it
            .stored_cas()
            .unwrap_or((self.segs.header(seg).seq << index::SEG_SHIFT) | off as u64);
        let meta = ItemMeta {
            expire: it.expire(),
            flags: it.flags(),
            cas: Some(cas),
            iflags: it.iflags(),
        };
        let key = it.key();
        let size = item::record_size(key.len(), it.vlen(), &meta);
        let now = self.clock.now();
        let h = self.segs.header_mut(dest);
        let doff = h.write_off;
        h.write_off += size as u32;
        h.note_record(size, meta.expire);
        // A moved record is dated by its new place: the key browser's
        // store time is the move's (see `SegHeader::stored_at`).
        h.write_at = now;
        // SAFETY: `dest` is not `seg` (a segment is never copied into
        // itself), and `doff..doff + size` was just reserved in it.
        unsafe {
            RawItem::write(
                self.segs.ptr(dest, doff as usize),
                key,
                it.value(),
                &[],
                &meta,
                it.atime(),
            );
        }
        self.live_bytes += size;
        // SAFETY: the record was just written at `doff` in `dest`.
        let moved = unsafe { RawItem::at(self.segs.ptr(dest, doff as usize)) };
        self.count_linked(moved, size);
        self.stats.moved_items += 1;
        self.stats.moved_bytes += size as u64;
        self.retire(seg, it);
        let s = self.index.get(r);
        self.index.set(
            r,
            index::with_location(index::with_freq(s, freq), dest, doff),
        );
    }

    /// Adds the live, unexpired records of `seg` from offset `from` on,
    /// at most `budget` of them, to `hist` (bytes by the hand's level,
    /// records weighed against a mean of `mean` bytes).
    /// Returns the offset reached, records read, and whether the segment
    /// is all read.
    pub(super) fn count_some(
        &self,
        seg: u32,
        from: u32,
        budget: usize,
        hist: &mut [usize; 256],
        mean: usize,
    ) -> (u32, usize, bool) {
        let now = self.clock.now();
        let end = self.segs.header(seg).write_off as usize;
        let (mut off, mut read) = (from as usize, 0);
        let mut ahead = from;
        for _ in 0..LOOKAHEAD.min(budget) {
            ahead = self.prefetch_record(seg, ahead, end as u32);
        }
        while off < end && read < budget {
            ahead = self.prefetch_record(seg, ahead, end as u32);
            let it = self.item_at(seg, off as u32);
            read += 1;
            if it.iflags() & DELETED == 0 {
                let hash = self.hash(it.key());
                if let Some(r) = self.slot_at(hash, seg, off as u32) {
                    let e = it.expire();
                    if e == 0 || e > now {
                        let freq = index::slot_freq(self.index.get(r));
                        hist[level(freq, moved_size(&it), mean) as usize] += it.size();
                    }
                }
            }
            off += it.size();
        }
        (off as u32, read, off >= end)
    }
}

/// Bytes a record takes once moved: it then carries its CAS.
fn moved_size(it: &RawItem) -> usize {
    let meta = ItemMeta {
        expire: it.expire(),
        flags: it.flags(),
        cas: Some(0),
        iflags: 0,
    };
    item::record_size(it.klen(), it.vlen(), &meta)
}

#[cfg(test)]
mod tests {
    use crate::store::test_rng::TestRng as Rng;
    use crate::store::*;

    fn store(memory: usize) -> Store {
        // The defaults: 1 MiB segments and items, merge eviction.
        crate::store::test_store(memory, 1_700_000_000)
    }

    /// Sets `key` to `value`, no flags or TTL.
    fn put(s: &mut Store, key: &str, value: &[u8]) {
        s.set(&SetArgs::new(SetMode::Set, key.as_bytes(), value, 0, 0));
    }

    /// Ten turns of a 16 MiB store's log (160 000 sets of 1000 B of
    /// filler), reading every eighth of a turn each item `{prefix}{i}`,
    /// i < n, of each `(prefix, n, k)` with probability 1/k.
    fn ten_turns(s: &mut Store, r: &mut Rng, read: &[(&str, u32, u64)]) {
        let fv = vec![b'f'; 1000];
        for f in 0..160_000u32 {
            put(s, &format!("f{f}"), &fv);
            if f % 2000 == 0 {
                for &(prefix, n, k) in read {
                    for i in 0..n {
                        if r.next().is_multiple_of(k) {
                            s.get(format!("{prefix}{i}").as_bytes());
                        }
                    }
                }
            }
        }
    }

    /// Values over half a segment cannot share one: compaction planned by
    /// summed bytes moved three 600 KB values into three fresh segments,
    /// freed none, and was chosen again, for ever (found by the warm-restart
    /// breaker: the server stopped answering at the 30th such set).
    #[test]
    fn values_over_half_a_segment_never_stall_eviction() {
        for (size, read_back) in [
            (600_000usize, false),
            (600_000, true),
            (520_000, false),
            (340_000, true),
        ] {
            let mut s = store(32 << 20);
            let value = vec![b'v'; size];
            for i in 0..300u32 {
                let key = format!("big{i}");
                let got = s.set(&SetArgs::new(SetMode::Set, key.as_bytes(), &value, 0, 0));
                assert!(matches!(got, SetOutcome::Stored { .. }), "{size}: set {i}");
                if read_back {
                    // Read items get frequency, so the hand keeps them a while.
                    for j in i.saturating_sub(5)..=i {
                        s.get(format!("big{j}").as_bytes());
                    }
                }
            }
            let kept = s.curr_items();
            assert!(kept >= 10, "{size}: {kept} kept");
            assert!(s.get(b"big299").is_some());
        }
    }

    /// Sizes weighed (issue 14): small and large items read equally
    /// rarely (every other turn of the log on average) while unread
    /// filler turns it over. The hand keeps a read small item mean/size
    /// turns and asks a large one for a read per four mean records, so
    /// the small ones stay and the large ones go, where weighing nothing
    /// lost both alike: 10 of 2000 small items and 1 of 60 large ones
    /// left after ten turns, against 588 and 0 weighed (most small ones
    /// lost were not read before the hand first passed).
    #[test]
    fn a_read_small_item_outstays_a_large_one_read_as_rarely() {
        let mut s = store(16 << 20);
        let mut r = Rng(0x5eed_5171_e5ee_d001);
        let (small, large) = (2000u32, 60u32);
        let (sv, lv) = (vec![b's'; 100], vec![b'l'; 32 << 10]);
        for i in 0..small {
            put(&mut s, &format!("s{i}"), &sv);
        }
        for i in 0..large {
            put(&mut s, &format!("l{i}"), &lv);
        }
        // Each tracked item read with probability 1/16 every eighth of a
        // turn: half a read a turn.
        ten_turns(&mut s, &mut r, &[("s", small, 16), ("l", large, 16)]);
        assert!(
            s.stats.evictions > 100_000,
            "{} evictions",
            s.stats.evictions
        );
        let left = |s: &mut Store, p: &str, n: u32| {
            (0..n)
                .filter(|i| s.get(format!("{p}{i}").as_bytes()).is_some())
                .count()
        };
        let (ks, kl) = (left(&mut s, "s", small), left(&mut s, "l", large));
        assert!(ks * 5 >= small as usize, "{ks} of {small} small items left");
        assert!(
            kl * 10 <= large as usize,
            "{kl} of {large} large items left"
        );
    }

    /// Sizes weighed, the other way (breaker, issue 14): values a few
    /// times the mean, read a few times a turn, are what a cache of
    /// ordinary values holds, and must not pay a read per mean record of
    /// them to stay. With rent counted in single mean records (3 KiB
    /// values against a mean near 1 KB: rent two reads, of about 2.7 a
    /// turn) 448 of 1000 were left after ten turns (126 at two reads a
    /// turn); counted in [`RENT_MEANS`] they pay one read and 886 stay.
    #[test]
    fn values_a_few_times_the_mean_read_each_turn_stay() {
        let mut s = store(16 << 20);
        let mut r = Rng(0x0dd_ba11_5eed_2024);
        let (n, wv) = (1000u32, vec![b'w'; 3 << 10]);
        for i in 0..n {
            put(&mut s, &format!("w{i}"), &wv);
        }
        // Read with probability 1/3 every eighth of a turn: about 2.7
        // reads a turn.
        ten_turns(&mut s, &mut r, &[("w", n, 3)]);
        let left = (0..n)
            .filter(|i| s.get(format!("w{i}").as_bytes()).is_some())
            .count();
        assert!(left * 10 >= n as usize * 8, "{left} of {n} left");
    }

    /// Ghosts (`ghost.rs`, issue 14): small keys read (a miss, once the
    /// hand has let them go) and written again every turn and a half,
    /// while unread filler turns the log over. A new item gets one turn,
    /// so each write of them was gone before the next read: none left a
    /// turn and a half after the last write. A key missed after the hand
    /// let it go and then written arrives as if read once and stays about
    /// mean/size turns: 1941 of 2000 left. Keys written once before any
    /// ghost vouched for a key are not credited: none is left.
    #[test]
    fn small_keys_missed_and_written_again_stay() {
        let (_, left) = rewrites(true, false);
        assert_eq!(left[0], 0, "keys written once are not credited");
        assert!(
            left[1] * 10 >= 2000 * 8,
            "{} of 2000 read and written again left",
            left[1]
        );
    }

    /// Keys written again as often but never read, among unread filler,
    /// are not credited (a breaker's load: credited on the write alone,
    /// they crowded out read values): no ghost vouches for them, so the
    /// share that would credit every new small item stays at zero. In a
    /// mix where ghosts vouch for half the new small keys they do get the
    /// longer first stay (`ghost.rs`), as memcached's small classes give
    /// it, and stay while written faster than it lasts.
    #[test]
    fn write_only_small_keys_go_unless_ghosts_vouch_for_many() {
        let (s, left) = rewrites(false, true);
        assert_eq!(left[2], 0, "write-only keys are not credited");
        assert_eq!(s.ghosts.arrival_odds(), 0);
        let (s, left) = rewrites(true, true);
        assert!(
            left[1] * 10 >= 2000 * 8,
            "{} read and written again",
            left[1]
        );
        // 1236 of 2000 left (0 without the share's credit).
        assert!(left[2] * 2 >= 2000, "{} write-only in the mix", left[2]);
        assert!(s.ghosts.arrival_odds() > 0);
    }

    /// 2000 small keys written once, then every turn and a half among
    /// unread filler: 2000 read (missed) and written again if `again`,
    /// 2000 written only if `wonly`. Returns the store and how many of
    /// each group (once, again, write-only) are left.
    fn rewrites(again: bool, wonly: bool) -> (Store, [usize; 3]) {
        let mut s = store(16 << 20);
        let (n, sv, fv) = (2000u32, vec![b's'; 100], vec![b'f'; 1000]);
        for i in 0..n {
            put(&mut s, &format!("once{i}"), &sv);
        }
        // 16 000 filler records are about a turn of this store's log.
        for f in 0..9 * 24_000u32 {
            if f % 24_000 == 0 && f < 8 * 24_000 {
                for i in 0..n {
                    if again {
                        s.get(format!("again{i}").as_bytes());
                        put(&mut s, &format!("again{i}"), &sv);
                    }
                    if wonly {
                        put(&mut s, &format!("wonly{i}"), &sv);
                    }
                }
            }
            put(&mut s, &format!("f{f}"), &fv);
        }
        let left = |s: &mut Store, p: &str| {
            (0..n)
                .filter(|i| s.get(format!("{p}{i}").as_bytes()).is_some())
                .count()
        };
        let l = [
            left(&mut s, "once"),
            left(&mut s, "again"),
            left(&mut s, "wonly"),
        ];
        (s, l)
    }

    /// Issue 14: with TTLs jittered over a continuous range, each of a few
    /// hundred TTL buckets wanted its own open segment in a 64-segment
    /// store, so nearly every write evicted a nearly empty segment and the
    /// store kept 91 items. It must stay about as full as its memory allows.
    #[test]
    fn jittered_ttls_at_small_memory_keep_the_store_full() {
        let mut s = store(64 << 20);
        let mut r = Rng(0x2545_f491_4f6c_dd1d);
        let value = [b'v'; 200];
        for i in 0..600_000u32 {
            let key = format!("k{i:07}");
            let ttl = 60 + (r.next() % 3541) as i64;
            let got = s.set(&SetArgs::new(SetMode::Set, key.as_bytes(), &value, 0, ttl));
            assert!(matches!(got, SetOutcome::Stored { .. }));
            if i % 20_000 == 0 {
                s.clock_mut().advance(1);
                s.expire(16);
            }
        }
        let record = item::record_size(
            8,
            200,
            &item::ItemMeta {
                expire: 1,
                ..Default::default()
            },
        );
        let fits = s.segments_limit() * (1 << 20) / record;
        let kept = s.curr_items();
        assert!(
            kept * 100 >= fits * 85,
            "{kept} items kept where {fits} fit"
        );
        assert_eq!(s.stats.evicted_segments, 0, "no segment evicted whole");
        // Nothing has expired yet: everything kept reads back.
        let mut read = 0;
        for i in (0..600_000u32).rev().take(kept / 2) {
            let key = format!("k{i:07}");
            read += s.get(key.as_bytes()).is_some() as usize;
        }
        assert_eq!(read, kept / 2, "the newest items are the ones kept");
    }

    /// Under memory pressure with skewed overwrites (most writes replace a
    /// hot key, leaving a dead version behind), the log stays mostly live:
    /// compaction, not the hand, frees segments while it costs up to
    /// `COMPACT_COPY` segments of copying per segment freed. At 2:1 the
    /// log stayed about 70 % live here (79 % in the bench's run) and the
    /// store kept 5-9 % fewer items than memcached's slabs (issue 14).
    #[test]
    fn skewed_overwrites_under_pressure_keep_the_log_live() {
        let mut s = store(16 << 20);
        let mut r = Rng(0x853c_49e6_748f_ea9b);
        for round in 0..1_500_000u32 {
            // Keys about zipf(1) over 100,000 (log-uniform rank), 1:4
            // set:get, values 50-1000 bytes: the bench's load, scaled.
            let u = (r.next() % 1_000_000) as f64 / 1e6;
            let k = 100_000f64.powf(u) as u64;
            let key = format!("s{k:06}");
            if r.next().is_multiple_of(5) {
                let len = 50 + (r.next() % 951) as usize;
                let v = vec![b'a' + (round % 26) as u8; len];
                s.set(&SetArgs::new(SetMode::Set, key.as_bytes(), &v, 0, 0));
            } else {
                s.get(key.as_bytes());
            }
        }
        assert!(s.stats.evictions > 0, "the store was under pressure");
        let live = s.bytes() as f64 / (s.segments_limit() << 20) as f64;
        // 0.756 at 5:1; 0.696 at 2:1.
        assert!(live >= 0.73, "live share of the log {live:.3}");
    }

    /// Replaced items leave dead bytes in the log; compaction reclaims them
    /// without evicting: a store written far past its size with a working
    /// set that fits keeps all of it.
    #[test]
    fn dead_versions_are_compacted_away_without_evicting_live_items() {
        let mut s = store(16 << 20);
        let mut r = Rng(0x9e37_79b9_7f4a_7c15);
        let keys = 20_000u32; // ~4.5 MiB of live items in a 16 MiB store
        for round in 0..400_000u32 {
            let k = (r.next() % keys as u64) as u32;
            let key = format!("w{k:06}");
            let v = format!("{round:0200}");
            s.set(&SetArgs::new(
                SetMode::Set,
                key.as_bytes(),
                v.as_bytes(),
                0,
                0,
            ));
        }
        assert_eq!(s.stats.evictions, 0, "nothing live had to go");
        assert!(s.stats.merges > 0 && s.stats.moved_items > 0);
        assert!(s.curr_items() as u32 <= keys);
        for k in 0..keys {
            let key = format!("w{k:06}");
            if let Some(f) = s.get(key.as_bytes()) {
                assert_eq!(f.item.value().len(), 200);
            }
        }
    }
}
