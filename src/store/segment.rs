//! Fixed-size segments carved from the arena, and their headers, which are
//! kept apart from the data so scanning headers never touches item memory.

use super::arena::{Arena, PageKind, HUGE_PAGE};
use super::fault_ahead::FaultAhead;
use super::grace::Readers;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

/// Free segments, from the next to be taken, that fault-ahead keeps
/// resident: 4 MiB with the default 1 MiB segments, taken at the highest
/// set rate measured here (about 15 MB/s) in a quarter of a second, while
/// one 2 MiB huge page takes the helper under 10 ms to fault in.
pub(super) const FAULT_AHEAD_SEGMENTS: usize = 4;

/// No segment (chain ends, empty chains).
pub const NONE: u32 = u32::MAX;
/// `SegHeader::expire_at` of a segment holding an item that never expires.
pub const NEVER_EXPIRES: u32 = u32::MAX;

/// What the store knows about one segment, kept apart from its data.
#[derive(Clone, Copy, Debug)]
pub struct SegHeader {
    /// Incarnation number, unique for the store's lifetime; 0 = free.
    /// Together with an item's offset it forms the item's CAS.
    pub seq: u64,
    /// Position in the order merge eviction's hand visits segments, oldest
    /// (smallest) first: the `seq` it was created with, or for a segment
    /// that compaction filled, that of the oldest one it replaced.
    pub order: u64,
    /// Bytes written so far: the offset the next record goes to.
    pub write_off: u32,
    /// Bytes this incarnation may fill: the segment size, or less for the
    /// one short segment that spends what the memory budget leaves below
    /// a whole segment (`budget.rs`).
    pub end: u32,
    /// Records not yet replaced, deleted or evicted.
    pub live_items: u32,
    /// Bytes of those records, padding included.
    pub live_bytes: u32,
    /// Store time (seconds since start) the segment was taken.
    pub create_at: u32,
    /// Store time of the last record written here (0 = none yet). With
    /// `create_at` it dates records without a time per record (see
    /// [`SegHeader::stored_at`]).
    pub write_at: u32,
    /// Latest expiry (store time) of any item written here: the segment may
    /// be freed whole once it has passed. [`NEVER_EXPIRES`] if an item
    /// without a TTL was written here, 0 if nothing was.
    pub expire_at: u32,
    /// Earliest expiry (store time) of any item written here; 0 = none
    /// has one.
    pub expire_min: u32,
    /// The TTL chain the segment is in (`ttl::Layout::chain`).
    pub ttl_bucket: u16,
    /// Previous segment in the chain, [`NONE`] at its head.
    pub prev: u32,
    /// Next segment in the chain, [`NONE`] at its tail.
    pub next: u32,
    /// Bytes of the largest record written here. Compaction plans by it:
    /// records over half a segment cannot share one, so summed live bytes
    /// alone promised frees that packing could not deliver (and merge
    /// eviction spun copying 600 KB values between 1 MiB segments).
    pub largest: u32,
}

impl SegHeader {
    /// Accounts for an item with absolute expiry `e` (0 = never) written here.
    #[inline]
    pub fn note_expire(&mut self, e: u32) {
        if e == 0 {
            self.expire_at = NEVER_EXPIRES;
        } else {
            self.expire_at = self.expire_at.max(e);
            self.expire_min = if self.expire_min == 0 {
                e
            } else {
                self.expire_min.min(e)
            };
        }
    }

    /// Accounts for a live record of `size` bytes with absolute expiry `e`
    /// (0 = never) written here.
    #[inline]
    pub fn note_record(&mut self, size: usize, e: u32) {
        self.live_items += 1;
        self.live_bytes += size as u32;
        self.largest = self.largest.max(size as u32);
        self.note_expire(e);
    }

    /// Live bytes not yet expired at `now`, estimated from the earliest and
    /// latest expiry here as if expiries were spread evenly between them.
    pub fn unexpired_bytes(&self, now: u32) -> u32 {
        let (lo, hi) = (self.expire_min, self.expire_at);
        if lo == 0 || now <= lo || hi == NEVER_EXPIRES {
            return self.live_bytes;
        }
        if now >= hi {
            return 0;
        }
        (self.live_bytes as u64 * (hi - now) as u64 / (hi - lo).max(1) as u64) as u32
    }

    /// Approximate store time at which the record ending at byte `end`
    /// was written here: segments are append-only, so it lies between the
    /// segment's creation and its last write; this interpolates by position
    /// (exact for the last record, and when writes come at an even rate),
    /// never before `create_at` nor after `write_at`, and never later for
    /// a record that ends earlier.
    pub fn stored_at(&self, end: u32) -> u32 {
        let (c, w) = (self.create_at, self.write_at);
        if w <= c || self.write_off == 0 {
            return c;
        }
        let end = end.min(self.write_off) as u64;
        c + ((w - c) as u64 * end / self.write_off as u64) as u32
    }

    const FREE: SegHeader = SegHeader {
        seq: 0,
        order: 0,
        write_off: 0,
        end: 0,
        live_items: 0,
        live_bytes: 0,
        create_at: 0,
        write_at: 0,
        expire_at: 0,
        expire_min: 0,
        ttl_bucket: 0,
        prev: NONE,
        next: NONE,
        largest: 0,
    };
}

/// The segments of one arena: their headers, the free list and pins.
pub struct Segments {
    /// One header per segment, indexed by segment id.
    pub headers: Vec<SegHeader>,
    free: Vec<u32>,
    /// Sends in flight that read straight from each segment's memory
    /// (zero-copy replies of large values). A pinned segment that is
    /// dropped is parked: out of every chain and the index, its bytes
    /// untouched, and back on the free list only when its last pin goes.
    /// (Parked = pinned with a FREE header: nothing else has both.)
    pins: Vec<u32>,
    pinned: usize,
    /// Segments handed back to the kernel because the store may use fewer
    /// than the arena holds (the index grew, or `cache_memlimit`): neither
    /// free nor in use.
    retired: Vec<u32>,
    /// Bytes per segment.
    pub seg_size: usize,
    base: *mut u8,
    next_seq: u64,
    /// Shared with other workers' foreign reads (`foreign.rs`), which
    /// copy records out of it: it stays mapped while any of them may.
    arena: Arc<Arena>,
    /// Each segment's incarnation as other workers read it (a foreign
    /// `gets` computes the CAS from it), for every segment the arena can
    /// hold. Written at `renew`, before the segment's first record.
    incarnations: Arc<[AtomicU64]>,
    /// Set when other workers read this store: wait them out before a
    /// segment is reused (`grace.rs`).
    grace: Option<(Arc<Readers>, usize)>,
    /// Whether each segment's pages are (or have been asked to be)
    /// resident: taken once, or sent to fault-ahead, and not discarded.
    resident: Vec<bool>,
    /// Segments whose pages were just asked for (taken, or sent to
    /// fault-ahead), newest first: `give_back_spill` looks around them
    /// a pass later. Only with transparent huge pages.
    spill_watch: [Vec<u32>; 2],
    fault_ahead: Option<FaultAhead>,
    /// Foreign reads an owner waited for before reusing a segment.
    pub grace_waits: u64,
}

// SAFETY: `base` points into `arena`'s mapping, which lives as long as the
// `Arc` held beside it and is process-wide memory, not the creating
// thread's. The one writer of the segments is whoever holds the `Segments`
// (its worker, or a worker that borrowed the shard: engine/lend.rs, whose
// token orders the hand-overs); other threads only read, as `grace.rs`
// and `foreign.rs` allow.
unsafe impl Send for Segments {}

impl Segments {
    /// Carves the first `n` segments of `seg_size` bytes out of `arena`,
    /// all free; the arena's room beyond them is for `grow_to`.
    pub fn new(arena: Arena, seg_size: usize, n: usize) -> Segments {
        let n = n.min(arena.len() / seg_size);
        let base = arena.base();
        let incarnations = (0..arena.len() / seg_size)
            .map(|_| AtomicU64::new(0))
            .collect();
        Segments {
            headers: vec![SegHeader::FREE; n],
            // Pop order hands out low ids first, which keeps touched memory dense.
            free: (0..n as u32).rev().collect(),
            pins: vec![0; n],
            pinned: 0,
            retired: Vec::new(),
            seg_size,
            base,
            next_seq: 1,
            arena: Arc::new(arena),
            incarnations,
            grace: None,
            resident: vec![false; n],
            spill_watch: [Vec::new(), Vec::new()],
            fault_ahead: None,
            grace_waits: 0,
        }
    }

    /// Keeps the next free segments' pages faulted in from now on (see
    /// `fault_ahead.rs`).
    pub fn enable_fault_ahead(&mut self) {
        self.fault_ahead = FaultAhead::start();
        self.fault_in_next();
    }

    /// Asks fault-ahead to collapse the 2 MiB at `addr` (index buckets
    /// faulted in as small pages; see `Index::split_one`) into a huge
    /// page, off the worker. Without fault-ahead they stay small pages
    /// until khugepaged gets to them.
    pub fn collapse_huge(&self, addr: usize) {
        if let Some(fa) = &self.fault_ahead {
            fa.collapse(addr, super::arena::HUGE_PAGE);
        }
    }

    /// Sends the next free segments not yet resident to fault-ahead.
    fn fault_in_next(&mut self) {
        let Some(fa) = &self.fault_ahead else {
            return;
        };
        let page = self.arena.page_size();
        let thp = self.arena.kind() == PageKind::Transparent;
        for &id in self.free.iter().rev().take(FAULT_AHEAD_SEGMENTS) {
            if mark_resident(&mut self.resident, &mut self.spill_watch[0], thp, id) {
                // SAFETY: `id` is a segment of this arena, so the offset
                // lies inside the mapping.
                let p = unsafe { self.base.add(id as usize * self.seg_size) };
                if !fa.request(p, self.seg_size, page) {
                    self.fault_ahead = None;
                    return;
                }
            }
        }
    }

    /// The incarnation number the next segment taken will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Makes the next incarnation number at least `next`: a warm restart
    /// restores segments with their old numbers (an item's CAS is made of
    /// it), and no new segment may reuse one.
    pub fn resume_seq(&mut self, next: u64) {
        self.next_seq = self.next_seq.max(next);
    }

    /// Touches all segment memory now (see `Arena::prefault`).
    pub fn prefault(&mut self) {
        let mut retired = vec![false; self.count()];
        for &id in &self.retired {
            retired[id as usize] = true;
        }
        for id in (0..self.count()).filter(|&id| !retired[id]) {
            self.arena.prefault(id * self.seg_size, self.seg_size);
            self.resident[id] = true;
        }
    }

    /// The most segments the arena has room for.
    pub fn capacity(&self) -> usize {
        self.arena.len() / self.seg_size
    }

    /// Carves more segments, up to `n` (at most `capacity`), out of the
    /// arena's untouched room. They start retired, so the budget takes
    /// them into use (`unretire`), lowest id first.
    pub fn grow_to(&mut self, n: usize) {
        let (old, n) = (self.count(), n.min(self.capacity()));
        if n <= old {
            return;
        }
        self.headers.resize(n, SegHeader::FREE);
        self.pins.resize(n, 0);
        self.resident.resize(n, false);
        self.retired.extend((old as u32..n as u32).rev());
    }

    /// The memory the segments are carved from.
    pub fn arena(&self) -> &Arena {
        &self.arena
    }

    /// Segments in the arena, free or not.
    pub fn count(&self) -> usize {
        self.headers.len()
    }

    /// Segments on the free list.
    pub fn free_count(&self) -> usize {
        self.free.len()
    }

    /// The free list (tests check it for duplicates).
    #[cfg(test)]
    pub fn free_ids(&self) -> &[u32] {
        &self.free
    }

    /// Segments neither free nor retired: live, the merge reserve, or
    /// parked.
    pub fn in_use(&self) -> usize {
        self.count() - self.free_count() - self.retired.len()
    }

    /// Segments that may still be used: all but the retired ones.
    pub fn usable(&self) -> usize {
        self.count() - self.retired.len()
    }

    /// Takes a free segment out of use and lets the kernel have its pages
    /// back; false if none is free. The highest free one goes, so retired
    /// segments gather at the end of the arena, away from the huge pages
    /// of segments in use (a huge page faulted in for a segment brings its
    /// neighbour with it).
    pub fn retire_one(&mut self) -> bool {
        let Some((i, _)) = self.free.iter().enumerate().max_by_key(|&(_, &id)| id) else {
            return false;
        };
        let id = self.free.swap_remove(i);
        self.give_back_pages(id);
        self.retired.push(id);
        true
    }

    /// Lets the kernel have segment `id`'s pages back (they read as zero
    /// when next written), once no foreign read can still be copying from
    /// them: a retired segment, or the merge reserve between merges. The
    /// segment's bytes must be dead (on no list, in no index slot).
    pub fn give_back_pages(&mut self, id: u32) {
        self.wait_readers();
        self.resident[id as usize] = false;
        self.discard(id as usize * self.seg_size, self.seg_size);
    }

    /// Gives back again what a huge page faulted in for a segment brought
    /// of its neighbours that hold nothing and will not be written soon:
    /// retired segments, the idle merge reserve, the short segment's
    /// bytes past its end, the arena's room past the last segment. A
    /// 2 MiB page straddles two or three 1 MiB segments (the arena is not
    /// aligned to one), and when the kernel faults a whole one in for a
    /// segment's first write, the parts of its neighbours come with it,
    /// resident though no one uses them. Measured: at `-m 256 -t 2` after
    /// a 4 M-item fill, 3.3 MiB of one shard's retired segments were
    /// resident this way; RSS was 1.06x `-m`, 1.035x with THP off.
    ///
    /// Free segments are left alone, though never taken: they are the
    /// next to be written, so giving their part back saves nothing, and
    /// it splits the huge page of the segment in use beside them (a
    /// review measured a slow fill's `AnonHugePages` go from 38.9 MB to 0
    /// that way, RSS unchanged).
    ///
    /// Called once a second; looks around the segments that became
    /// resident in the pass before the last, so that fault-ahead's helper
    /// has had its second to fault them in. What it gives back has no
    /// reader: it waits out foreign reads first, as `give_back_pages`
    /// does, though a retired segment or the reserve had every read of
    /// it waited out when its pages were first given back.
    pub fn give_back_spill(&mut self) {
        let fresh = std::mem::take(&mut self.spill_watch[0]);
        let due = std::mem::replace(&mut self.spill_watch[1], fresh);
        if due.is_empty() {
            return;
        }
        self.wait_readers();
        let seg = self.seg_size;
        let base = self.base as usize;
        let carved = self.count() * seg;
        for id in due {
            let start = base + id as usize * seg;
            let lo = (start / HUGE_PAGE * HUGE_PAGE).max(base) - base;
            let hi = ((start + seg).next_multiple_of(HUGE_PAGE) - base).min(self.arena.len());
            for j in lo / seg..hi.min(carved).div_ceil(seg) {
                let h = &self.headers[j];
                // Not resident and not free: retired (a free header, on
                // the retired list) or the idle reserve (taken, then its
                // pages given back).
                if !self.resident[j] && (h.seq != 0 || self.retired.contains(&(j as u32))) {
                    self.arena.discard(j * seg, seg);
                } else if h.seq != 0 && (h.end as usize) < seg {
                    self.arena
                        .discard(j * seg + h.end as usize, seg - h.end as usize);
                }
            }
            if hi > carved {
                let from = lo.max(carved);
                self.arena.discard(from, hi - from);
            }
        }
    }

    /// Lets the kernel have `len` bytes of the arena at `off` back (bytes
    /// no one refers to), telling fault-ahead first.
    fn discard(&mut self, off: usize, len: usize) {
        if let Some(fa) = &self.fault_ahead {
            fa.before_discard();
        }
        self.arena.discard(off, len);
        if self.fault_ahead.is_some() {
            // The discard voids fault-ahead's pending jobs, which may have
            // been for the next free segments: send those again (a range
            // already resident costs the helper a page-table walk).
            for &next in self.free.iter().rev().take(FAULT_AHEAD_SEGMENTS) {
                self.resident[next as usize] = false;
            }
            self.fault_in_next();
        }
    }

    /// Puts up to `n` retired segments back on the free list, and has only
    /// the next few to be taken faulted in. (Fault-ahead after each one
    /// made every segment a raised `cache_memlimit` carved resident: an
    /// empty `-t 2` server went from 18 MB to 1 GB on `cache_memlimit
    /// 1024`, where memcached stays at 5 MB.)
    pub fn unretire(&mut self, n: usize) {
        let back = n.min(self.retired.len());
        let ids = self.retired.split_off(self.retired.len() - back);
        // `retired` pops the lowest id first; the free list too.
        self.free.extend(ids);
        self.fault_in_next();
    }

    /// Takes a free segment and gives it a new incarnation.
    pub fn take(&mut self, ttl_bucket: u16, now: u32) -> Option<u32> {
        let id = self.free.pop()?;
        self.renew(id, ttl_bucket, now);
        self.fault_in_next();
        Some(id)
    }

    /// Returns a segment to the free list, or parks it while pinned.
    pub fn release(&mut self, id: u32) {
        self.headers[id as usize] = SegHeader::FREE;
        if self.pins[id as usize] == 0 {
            self.free.push(id);
        }
    }

    /// Keeps a segment's bytes as they are until the matching `unpin`.
    pub fn pin(&mut self, id: u32) {
        let p = &mut self.pins[id as usize];
        if *p == 0 {
            self.pinned += 1;
        }
        *p += 1;
    }

    /// Drops one pin; a parked segment goes to the free list with its last.
    pub fn unpin(&mut self, id: u32) {
        let p = &mut self.pins[id as usize];
        debug_assert!(*p > 0, "unpin without pin");
        *p -= 1;
        if *p == 0 {
            self.pinned -= 1;
            // Parked (dropped while pinned): free at last. A live
            // segment's header has a sequence number; a parked one's is FREE.
            if self.headers[id as usize].seq == 0 {
                self.free.push(id);
            }
        }
    }

    /// Whether a send still reads from the segment.
    #[inline]
    pub fn is_pinned(&self, id: u32) -> bool {
        self.pins[id as usize] > 0
    }

    /// Segments with at least one pin.
    pub fn pinned_count(&self) -> usize {
        self.pinned
    }

    /// The segment a pointer into the arena falls in.
    #[inline]
    pub fn id_of(&self, p: *const u8) -> u32 {
        ((p as usize - self.base as usize) / self.seg_size) as u32
    }

    /// Address of byte `off` of segment `seg`.
    #[inline]
    pub fn ptr(&self, seg: u32, off: usize) -> *mut u8 {
        debug_assert!((seg as usize) < self.headers.len() && off < self.seg_size);
        self.base.wrapping_add(seg as usize * self.seg_size + off)
    }

    /// The header of segment `seg`.
    #[inline]
    pub fn header(&self, seg: u32) -> &SegHeader {
        &self.headers[seg as usize]
    }

    /// The header of segment `seg`, to change.
    #[inline]
    pub fn header_mut(&mut self, seg: u32) -> &mut SegHeader {
        &mut self.headers[seg as usize]
    }

    /// Room left at the end of a segment.
    #[inline]
    pub fn room(&self, seg: u32) -> usize {
        let h = &self.headers[seg as usize];
        debug_assert!(h.write_off <= h.end, "segment {seg} written past its end");
        // Saturating: a segment written past its end (a bug) must not
        // read as having 4 GiB of room and take every write after it.
        h.end.saturating_sub(h.write_off) as usize
    }

    /// Makes segment `seg` one that holds only `end` bytes (a multiple of
    /// the page size, below what it may hold now and not below what is
    /// written), and lets the kernel have the pages past them back: the
    /// budget pays for `end` bytes of it.
    pub fn shorten(&mut self, seg: u32, end: usize) {
        let h = &mut self.headers[seg as usize];
        debug_assert!(h.write_off as usize <= end && end < h.end as usize);
        let old = std::mem::replace(&mut h.end, end as u32) as usize;
        // Bytes past `write_off` were never written in this incarnation,
        // and its previous one's readers were waited out when it was
        // taken (`renew`): nothing refers to them.
        self.discard(seg as usize * self.seg_size + end, old - end);
    }
}

impl Segments {
    /// Lets other workers read this store (foreign reads): from now on a
    /// segment is reused only once `readers` other than worker `me` are
    /// out of any read that began before.
    pub fn share_with(&mut self, readers: Arc<Readers>, me: usize) {
        self.grace = Some((readers, me));
    }

    fn wait_readers(&mut self) {
        if let Some((r, me)) = &self.grace {
            self.grace_waits += r.wait_readers(*me) as u64;
        }
    }

    /// Makes segment `id`'s header incarnation the one other workers read
    /// (a warm restart restores headers whole).
    pub fn publish_incarnation(&mut self, id: u32) {
        self.incarnations[id as usize].store(self.headers[id as usize].seq, Relaxed);
    }

    /// The arena, shared (for `ShardView`).
    pub fn arena_shared(&self) -> &Arc<Arena> {
        &self.arena
    }

    /// Each segment's incarnation, shared (for `ShardView`).
    pub fn incarnations(&self) -> &Arc<[AtomicU64]> {
        &self.incarnations
    }

    /// Gives a segment that is already out of the free list a new
    /// incarnation (the merge destination).
    pub fn renew(&mut self, id: u32, ttl_bucket: u16, now: u32) {
        // Every item of the segment's last incarnation is unlinked by now;
        // a foreign read that found one before may still be copying it.
        self.wait_readers();
        // Written from now on (taken, or the merge reserve put to use):
        // nothing for fault-ahead to send.
        let thp = self.arena.kind() == PageKind::Transparent;
        mark_resident(&mut self.resident, &mut self.spill_watch[0], thp, id);
        let seq = self.next_seq;
        self.next_seq += 1;
        self.incarnations[id as usize].store(seq, Relaxed);
        self.headers[id as usize] = SegHeader {
            seq,
            order: seq,
            end: self.seg_size as u32,
            create_at: now,
            ttl_bucket,
            ..SegHeader::FREE
        };
    }
}

/// Marks segment `id`'s pages resident (asked for); true if they were not,
/// and then, with transparent huge pages (`thp`), puts it on `watch` for
/// `Segments::give_back_spill` to look around. Fields rather than
/// `&mut Segments`, so that `fault_in_next` may call it while it holds
/// the free list and fault-ahead.
fn mark_resident(resident: &mut [bool], watch: &mut Vec<u32>, thp: bool, id: u32) -> bool {
    let was = std::mem::replace(&mut resident[id as usize], true);
    if !was && thp {
        watch.push(id);
    }
    !was
}

#[cfg(test)]
#[path = "spill_tests.rs"]
mod spill_tests;
