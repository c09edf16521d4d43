//! The hash index: buckets of sixteen u64 slots, two cache lines each
//! (Segcache's buckets are one line of eight).
//!
//! ```text
//!  bucket (128 bytes, two cache lines)
//! +--------+--------+--------+-----+---------+
//! | info   | item 1 | item 2 | ... | item 15 |
//! +--------+--------+--------+-----+---------+
//!
//!  info slot: low 32 bits = 1 + id of the overflow bucket, 0 = none;
//!   primary:  bits 32-39 = items homed here that went to a neighbour;
//!             bits 40-63 = items homed here in the group's overflow chain
//!   overflow: bits 32-63 = the group (its first primary bucket) whose
//!             chain holds this bucket
//!
//!  item slot
//!  63       52 51     44 43              23 22           0
//! +-----------+---------+------------------+--------------+
//! | tag (12)  | freq(8) | segment id (21)  | offset (23)  |
//! +-----------+---------+------------------+--------------+
//!  offset in bytes: segments can be up to 8 MiB, and records need no
//!  alignment padding.
//! ```
//!
//! A key's home bucket is its hash scaled to the bucket count, which need
//! not be a power of two, so the index can be sized to the memory budget.
//! An item whose home is full goes to one of the next [`NEIGHBOURS`]
//! buckets (the home counts how many did, so lookups only look there when
//! some did), and only when those are full too to an overflow bucket
//! chained from the first bucket of its group of [`GROUP`] (with one-line
//! buckets, this gave about 11 index bytes an item where one overflow
//! chain per bucket took 16; see [`SLOTS`] for two-line ones). Items are never
//! refused and never move, so a slot's place stays valid for as long as
//! the item is linked. Overflow buckets follow the primary ones in bucket
//! numbering and in the shared mapping (`view.rs`), where other workers
//! read them too; past that room (a pathological hash spread) they spill
//! into a vector only the owner reads.

pub use super::slot::*;
use super::view::IndexShared;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::{Acquire, Release};
use std::sync::Arc;

/// Slots per bucket (two cache lines of u64s).
///
/// Two lines rather than Segcache's one: with fifteen item slots to seven,
/// a bucket's count of items strays less from the mean, so the index can
/// run fuller with fewer items in neighbours and overflow buckets. A fill
/// of 2 M items (15-byte keys, 100-byte values) to `-m 256` kept 11.9
/// bytes of index an item with one-line buckets at a 90 % load, 10.4 with
/// two-line ones at 95 %, 10.2 at 100 % (1,979,575, 2,005,150 and, with
/// 7-byte headers, 2,023,380 items kept). A lookup reads the second line
/// too, which the adjacent-line prefetcher mostly brings with the first;
/// `get_hit` (criterion) is level, `get_miss` 10-15 ns slower at 95 % and
/// 10 ns more at 100 %.
pub const SLOTS: usize = 16;
/// Slots per bucket that hold items (slot 0 is the info slot).
pub const ITEM_SLOTS: usize = SLOTS - 1;
/// Info slot bits that hold 1 + the id of the next overflow bucket.
pub const NEXT_MASK: u64 = 0xffff_ffff;

/// Two cache lines of slots: an info slot and [`ITEM_SLOTS`] item slots
/// (0 = empty).
///
/// Slots are atomics because other workers read primary buckets while the
/// owner writes them (foreign reads, `view.rs`). Only the owner stores;
/// it stores with `Release` so a reader that loads a slot with `Acquire`
/// sees the record the slot points at. On x86 both are plain `mov`s.
#[repr(C, align(128))]
#[derive(Default)]
pub struct Bucket {
    /// The info slot, then the item slots.
    pub slots: [AtomicU64; SLOTS],
}

impl Bucket {
    /// Slot `i`'s value (owner or reader: `Acquire`, free on x86).
    #[inline]
    pub fn slot(&self, i: usize) -> u64 {
        self.slots[i].load(Acquire)
    }

    /// Stores slot `i` (owner only).
    #[inline]
    fn put(&self, i: usize, v: u64) {
        self.slots[i].store(v, Release)
    }

    fn clear_all(&self) {
        for s in &self.slots {
            s.store(0, Release);
        }
    }
}

/// Where an item's slot sits: bucket index and slot number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotRef {
    /// Bucket id: primary buckets first, then overflow ones.
    pub bucket: u32,
    /// Slot in the bucket, 1 to [`ITEM_SLOTS`].
    pub slot: u8,
}

/// Items homed in a full bucket may go to this many buckets after it
/// before an overflow bucket is chained.
pub const NEIGHBOURS: u32 = 2;
/// Primary buckets per overflow chain: the chain hangs off the first
/// bucket of each group and holds items of any home in the group (their
/// tags tell them apart), so an overflow bucket fills before another is
/// added.
pub const GROUP: u32 = 16;
/// Share of item slots (percent) the primary buckets hold on average
/// before the index grows: all of them. Buckets holding more than the
/// mean put the surplus in their neighbours, and what those cannot take
/// in overflow buckets (under churn at this load, one overflow bucket to
/// six or seven primary ones; lookups walk a chain only for homes with
/// items in it). 105 % and 110 % kept no more items in the fill above:
/// the store's segments are 1 MiB, and the index saved less than one.
pub const LOAD_PERCENT: usize = 100;

/// Bit position, in a primary bucket's info slot, of the count of items
/// homed there that went to a neighbour: a lookup reads the neighbours
/// only when it is not 0.
pub const DISPLACED_SHIFT: u32 = 32;
/// The displaced count's bits (after shifting).
pub const DISPLACED_MASK: u64 = 0xff;
/// Bit position, in a primary bucket's info slot, of the count of items
/// homed there that sit in the group's overflow chain: a lookup walks the
/// chain only when it is not 0, so a miss, or a hit at home, in a group
/// whose chain holds other homes' items reads no overflow bucket.
pub const OVERFLOWED_SHIFT: u32 = 40;
/// The overflowed count's bits (after shifting). At its largest it sticks
/// there (never counted down), so the chain is always walked.
pub const OVERFLOWED_MASK: u64 = 0xff_ffff;
/// Bit position, in an overflow bucket's info slot, of the group whose
/// chain holds it: compaction (`Index::tidy`) finds the bucket's
/// predecessor by walking that chain.
pub const CHAIN_GROUP_SHIFT: u32 = 32;

/// Primary buckets remembered, at most, as having lost an item while
/// items homed there sat in the overflow chain (`Index::tidy` brings one
/// home for each): a segment's worth of 100-byte items at 1 MiB, which
/// eviction may unlink at once. More are dropped: a missed one costs only
/// an item left in the chain.
const PULLS_QUEUED: usize = 8192;
/// Queued pulls one `Index::tidy` works through, at most: it runs on the
/// write path, so the queue is worked off a slice per write (inserts come
/// as fast as eviction unlinks) rather than in one stall.
const PULLS_PER_TIDY: usize = 16;
/// Primary buckets one `Index::tidy` looks at when pulls were dropped (a
/// burst of unlinks larger than the queue): a pass over the whole index
/// then finds the homes the queue lost, a slice per write.
const SWEEP_PER_TIDY: u32 = 16;
/// Bits of an overflow slot's home hint (see `Index::hints`): the home's
/// place in its group.
const HINT_BITS: u32 = GROUP.trailing_zeros();
const HINT_MASK: u64 = (1 << HINT_BITS) - 1;
const _: () = assert!(GROUP.is_power_of_two() && ITEM_SLOTS as u32 * HINT_BITS <= 64);
/// Free overflow buckets that start a compaction: two pages of them. It
/// leaves half of them free, for chains that grow again soon.
const COMPACT_AT: usize = 2 * BUCKETS_PER_PAGE;
/// Buckets in a 4 KiB page.
const BUCKETS_PER_PAGE: usize = 4096 / std::mem::size_of::<Bucket>();
/// Pages above the overflow buckets in use that compaction leaves
/// resident (and `bytes` counts): given back at once, they would be
/// faulted in again by the next chains.
const RESIDENT_SLACK_PAGES: usize = 2;

/// `a mod d` for a u32 `a`, with `m = fastmod_m(d)` (Lemire, Kaser and
/// Kurz, "Faster remainder by direct computation", 2019): two
/// multiplications instead of a division on every lookup.
#[inline]
fn fastmod(a: u32, m: u64, d: u32) -> u32 {
    ((m.wrapping_mul(a as u64) as u128 * d as u128) >> 64) as u32
}

fn fastmod_m(d: u32) -> u64 {
    (u64::MAX / d as u64).wrapping_add(1)
}

/// The hash index: primary buckets, found by hash, and overflow buckets
/// chained to full ones. It grows by linear hashing: one bucket is split
/// at a time, so growth is spread over the writes that need it.
pub struct Index {
    /// The primary buckets and the geometry other workers read
    /// (`view.rs`): room for the most buckets the index may grow to,
    /// zeroed and untouched until used, so only what is used is resident.
    shared: Arc<IndexShared>,
    /// Primary buckets in use.
    len: u32,
    /// Overflow buckets handed out from the shared mapping's room (ids
    /// `overflow_base..overflow_base + shared_overflow`).
    shared_overflow: u32,
    /// Overflow buckets past the shared room (ids from `shared.cap()` on):
    /// only the owner reads them (a foreign read that would need one hops
    /// instead), so the vector may move.
    spill: Vec<Bucket>,
    /// Overflow buckets unlinked and ready for reuse (as bucket ids).
    free_overflow: Vec<u32>,
    /// For each overflow bucket of the shared room, the home of the item
    /// in each slot as its place in the group ([`HINT_BITS`] bits a slot,
    /// slot 1 lowest): `tidy` finds an item homed at a bucket without
    /// reading records. Owner-only, so not in the buckets other workers
    /// read; 8 bytes an overflow bucket (counted in `bytes`).
    hints: Vec<u64>,
    /// Primary buckets that lost an item while items homed there sat in
    /// the overflow chain (see `tidy`).
    pulls: Vec<u32>,
    /// The next primary bucket of a pass over all of them, begun when the
    /// queue of pulls was full and one was dropped.
    sweep: Option<u32>,
    /// A pull was dropped during the pass: another pass follows it.
    sweep_again: bool,
    /// Bucket id where the overflow room's pages that may be resident
    /// end: compaction gives back the pages between the buckets in use
    /// and here.
    resident_top: u32,
    /// Buckets at the current level: a key's home is its hash mod `low`,
    /// or mod 2·`low` if that is below `split`.
    low: u32,
    low_m: u64,
    low2_m: u64,
    /// The next bucket to split; buckets `low..low + split` are the halves
    /// split off so far.
    split: u32,
    /// Bucket ids from here on name overflow buckets.
    overflow_base: u32,
    /// Primary buckets are asked to be on transparent huge pages, as far
    /// as they are in use (see `advise_huge_to_len`).
    huge_pages: bool,
    /// Reused by `split_one`.
    scratch: Vec<SlotRef>,
    /// Items linked.
    pub items: usize,
}

impl Index {
    fn buckets_for(items: usize) -> usize {
        (items * 100).div_ceil(ITEM_SLOTS * LOAD_PERCENT).max(64)
    }

    /// Bytes of primary buckets that hold `items` at [`LOAD_PERCENT`] of
    /// their item slots.
    pub fn bytes_for(items: usize) -> usize {
        Self::buckets_for(items) * std::mem::size_of::<Bucket>()
    }

    /// As [`Index::try_new`], panicking if the index cannot be mapped.
    pub fn new(items: usize, max_items: usize, huge_pages: bool) -> Index {
        Self::try_new(items, max_items, huge_pages)
            .unwrap_or_else(|e| panic!("mapping the hash index: {e}"))
    }

    /// An index sized for `items`, that may grow to hold `max_items`, its
    /// primary buckets on transparent huge pages if `huge_pages`.
    ///
    /// # Errors
    /// The mapping's (see [`IndexShared::try_new`]).
    pub fn try_new(items: usize, max_items: usize, huge_pages: bool) -> std::io::Result<Index> {
        let max = Self::buckets_for(max_items.max(items)).min(u32::MAX as usize / 4);
        let start = Self::buckets_for(items).min(max) as u32;
        let room = IndexShared::overflow_room(max).min(u32::MAX as usize / 2 - max);
        let shared = Arc::new(IndexShared::try_new(max + room, start)?);
        let index = Index {
            shared,
            len: start,
            shared_overflow: 0,
            spill: Vec::new(),
            free_overflow: Vec::new(),
            hints: Vec::new(),
            pulls: Vec::new(),
            sweep: None,
            sweep_again: false,
            resident_top: max as u32,
            low: start,
            low_m: fastmod_m(start),
            low2_m: fastmod_m(2 * start),
            split: 0,
            overflow_base: max as u32,
            huge_pages,
            scratch: Vec::new(),
            items: 0,
        };
        index.advise_huge_to_len();
        Ok(index)
    }

    /// Asks for huge pages under the whole 2 MiB pages of primary buckets
    /// below `len`, not under all the room the index may grow into: the
    /// first write past `len` would fault in a whole huge page of buckets
    /// not yet in use, and `bytes` (what the budget pays for) counts only
    /// those in use. Advising the room up front left about 1 MiB a shard
    /// resident beyond `hash_bytes` (3.2 MiB at `-m 256 -t 4`, a quarter
    /// of the RSS over 1.05x `-m`). The buckets of a huge page advised
    /// late were faulted in as small pages, which khugepaged collapses.
    fn advise_huge_to_len(&self) {
        if self.huge_pages {
            let bytes = self.len as usize * std::mem::size_of::<Bucket>();
            super::arena::advise_huge(self.shared.bucket(0) as *const Bucket as *const u8, bytes);
        }
    }

    /// An index of fixed size for about `expected_items`.
    pub fn with_capacity(expected_items: usize, huge_pages: bool) -> Index {
        Self::new(expected_items, expected_items, huge_pages)
    }

    /// Bytes of buckets in use, primary and overflow (memcached's
    /// `hash_bytes`).
    pub fn bytes(&self) -> usize {
        // Overflow buckets up to where pages may be resident: compaction
        // gives pages back past a slack.
        let overflow = (self.resident_top - self.overflow_base).max(self.shared_overflow);
        (self.len as usize + overflow as usize + self.spill.len()) * std::mem::size_of::<Bucket>()
            + self.hints.len() * 8
    }

    /// Primary buckets.
    pub fn primary_buckets(&self) -> usize {
        self.len as usize
    }

    /// What other workers read of this index (`view.rs`).
    pub fn shared(&self) -> &Arc<IndexShared> {
        &self.shared
    }

    #[inline]
    fn primary(&self, b: u32) -> &Bucket {
        debug_assert!(b < self.len);
        self.shared.bucket(b)
    }

    /// Overflow buckets in use.
    pub fn overflow_buckets(&self) -> usize {
        self.shared_overflow as usize + self.spill.len() - self.free_overflow.len()
    }

    /// The primary bucket of `hash`, from its low 32 bits (the tag is taken
    /// from the high bits).
    #[inline]
    pub fn home(&self, hash: u64) -> u32 {
        let h = hash as u32;
        let b = fastmod(h, self.low_m, self.low);
        if b < self.split {
            fastmod(h, self.low2_m, 2 * self.low)
        } else {
            b
        }
    }

    /// The first bucket of `hash`'s chain, where nearly every key sits.
    #[inline]
    pub fn home_bucket(&self, hash: u64) -> &Bucket {
        self.primary(self.home(hash))
    }

    #[inline]
    fn bucket(&self, b: u32) -> &Bucket {
        if (b as usize) < self.shared.cap() {
            self.shared.bucket(b)
        } else {
            &self.spill[b as usize - self.shared.cap()]
        }
    }

    /// The slot value at `r`.
    #[inline]
    pub fn get(&self, r: SlotRef) -> u64 {
        self.bucket(r.bucket).slot(r.slot as usize)
    }

    /// Overwrites the slot at `r`. `&mut self`: only the owner writes.
    #[inline]
    pub fn set(&mut self, r: SlotRef, v: u64) {
        self.bucket(r.bucket).put(r.slot as usize, v);
    }

    /// Adds `delta` (wrapping) to bucket `b`'s info slot.
    #[inline]
    fn add_info(&mut self, b: u32, delta: u64) {
        let bk = self.bucket(b);
        bk.put(0, bk.slot(0).wrapping_add(delta));
    }

    /// Points bucket `b`'s info slot at the overflow bucket `next` (1 +
    /// its id, 0 = none), keeping its other bits.
    #[inline]
    fn set_next(&mut self, b: u32, next: u64) {
        let bk = self.bucket(b);
        bk.put(0, (bk.slot(0) & !NEXT_MASK) | next);
    }

    #[inline]
    fn next(&self, b: u32) -> Option<u32> {
        let n = self.bucket(b).slot(0) & NEXT_MASK;
        if n == 0 {
            None
        } else {
            Some((n - 1) as u32)
        }
    }

    #[inline]
    fn displaced(&self, home: u32) -> u64 {
        (self.primary(home).slot(0) >> DISPLACED_SHIFT) & DISPLACED_MASK
    }

    #[inline]
    fn overflowed(&self, home: u32) -> u64 {
        (self.primary(home).slot(0) >> OVERFLOWED_SHIFT) & OVERFLOWED_MASK
    }

    /// Counts an item homed at `home` into (`up`) or out of its group's
    /// overflow chain.
    fn count_overflowed(&mut self, home: u32, up: bool) {
        match self.overflowed(home) {
            OVERFLOWED_MASK => {}
            _ if up => self.add_info(home, 1 << OVERFLOWED_SHIFT),
            _ => self.add_info(home, (1u64 << OVERFLOWED_SHIFT).wrapping_neg()),
        }
    }

    /// The bucket `d` after `home`, if there is one. Buckets are only ever
    /// added at the end, so a neighbour an item went to stays one.
    #[inline]
    fn neighbour(&self, home: u32, d: u32) -> Option<u32> {
        let n = home + d;
        (n < self.len).then_some(n)
    }

    /// The bucket whose info slot starts `home`'s overflow chain.
    #[inline]
    fn group(home: u32) -> u32 {
        home - home % GROUP
    }

    /// Calls `f` on every occupied slot whose tag matches, home bucket
    /// first, then the neighbours if some of this home's items went there,
    /// then the group's overflow chain, until `f` returns true; returns
    /// that slot.
    #[inline]
    pub fn find(&self, hash: u64, mut f: impl FnMut(u64) -> bool) -> Option<SlotRef> {
        let tag = tag_of(hash);
        let home = self.home(hash);
        let mut scan = |b: u32, bucket: &Bucket| {
            for i in 1..SLOTS {
                let s = bucket.slot(i);
                if s != 0 && slot_tag(s) == tag && f(s) {
                    return Some(SlotRef {
                        bucket: b,
                        slot: i as u8,
                    });
                }
            }
            None
        };
        if let Some(r) = scan(home, self.primary(home)) {
            return Some(r);
        }
        if self.displaced(home) > 0 {
            for d in 1..=NEIGHBOURS {
                let Some(n) = self.neighbour(home, d) else {
                    break;
                };
                if let Some(r) = scan(n, self.primary(n)) {
                    return Some(r);
                }
            }
        }
        if self.overflowed(home) == 0 {
            return None;
        }
        let mut b = Self::group(home);
        while let Some(n) = self.next(b) {
            if let Some(r) = scan(n, self.bucket(n)) {
                return Some(r);
            }
            b = n;
        }
        None
    }

    /// An empty slot for `hash`: in its home bucket, else in a neighbour,
    /// else in its group's overflow chain, chaining a new bucket if needed.
    pub fn empty_slot(&mut self, hash: u64) -> SlotRef {
        let home = self.home(hash);
        let free = |bucket: &Bucket| (1..SLOTS).find(|&i| bucket.slot(i) == 0);
        if let Some(i) = free(self.primary(home)) {
            return SlotRef {
                bucket: home,
                slot: i as u8,
            };
        }
        if self.displaced(home) < DISPLACED_MASK {
            for d in 1..=NEIGHBOURS {
                let Some(n) = self.neighbour(home, d) else {
                    break;
                };
                if let Some(i) = free(self.primary(n)) {
                    self.add_info(home, 1 << DISPLACED_SHIFT);
                    return SlotRef {
                        bucket: n,
                        slot: i as u8,
                    };
                }
            }
        }
        // Counted before the slot is stored, so a reader that finds the
        // slot has found the count too.
        self.count_overflowed(home, true);
        let group = Self::group(home);
        let mut b = group;
        let r = loop {
            if b != group {
                if let Some(i) = free(self.bucket(b)) {
                    break SlotRef {
                        bucket: b,
                        slot: i as u8,
                    };
                }
            }
            match self.next(b) {
                Some(n) => b = n,
                None => {
                    let n = self.new_overflow(group);
                    self.set_next(b, n as u64 + 1);
                    break SlotRef { bucket: n, slot: 1 };
                }
            }
        };
        self.set_hint(r, home - group);
        r
    }

    /// The hints word of overflow bucket `b`, if it is in the shared room.
    #[inline]
    fn hints_of(&self, b: u32) -> Option<u64> {
        self.hints
            .get(b.checked_sub(self.overflow_base)? as usize)
            .copied()
    }

    /// Notes that slot `r` of an overflow bucket holds an item homed at
    /// bucket `place` of its group.
    fn set_hint(&mut self, r: SlotRef, place: u32) {
        let shift = (r.slot as u32 - 1) * HINT_BITS;
        let at = r.bucket.checked_sub(self.overflow_base);
        if let Some(h) = at.and_then(|at| self.hints.get_mut(at as usize)) {
            *h = (*h & !(HINT_MASK << shift)) | ((place as u64) << shift);
        }
    }

    /// An empty overflow bucket for `group`'s chain, not linked yet.
    fn new_overflow(&mut self, group: u32) -> u32 {
        let n = if let Some(n) = self.free_overflow.pop() {
            self.bucket(n).clear_all();
            n
        } else {
            // Fresh buckets of the shared room are zeroed by the kernel.
            let fresh = self.overflow_base + self.shared_overflow;
            if (fresh as usize) < self.shared.cap() {
                self.shared_overflow += 1;
                self.hints.push(0);
                self.resident_top = self.resident_top.max(fresh + 1);
                fresh
            } else {
                self.spill.push(Bucket::default());
                (self.shared.cap() + self.spill.len() - 1) as u32
            }
        };
        // Not linked yet, so no reader sees it before its chain does.
        self.bucket(n).put(0, (group as u64) << CHAIN_GROUP_SHIFT);
        n
    }

    /// Clears the slot of an item whose hash is `hash`.
    pub fn clear(&mut self, r: SlotRef, hash: u64) {
        self.set(r, 0);
        let home = self.home(hash);
        self.unhook(r, home);
        if r.bucket < self.len && self.wants_pull(r.bucket) {
            if self.pulls.len() < PULLS_QUEUED {
                self.pulls.push(r.bucket);
            } else if self.sweep.is_some() {
                self.sweep_again = true;
            } else {
                self.sweep = Some(0);
            }
        }
    }

    /// Accounting for a slot of an item homed at `home` just cleared: the
    /// home's count of displaced items, or the overflow bucket, unlinked
    /// and kept for reuse if it is now empty.
    fn unhook(&mut self, r: SlotRef, home: u32) {
        if r.bucket < self.overflow_base {
            if r.bucket != home {
                self.add_info(home, (1u64 << DISPLACED_SHIFT).wrapping_neg());
            }
            return;
        }
        self.count_overflowed(home, false);
        let bk = self.bucket(r.bucket);
        if (1..SLOTS).any(|i| bk.slot(i) != 0) {
            return;
        }
        // Splice the empty bucket out of its chain and keep it for reuse.
        let after = bk.slot(0) & NEXT_MASK;
        let mut b = Self::group(home);
        while let Some(n) = self.next(b) {
            if n == r.bucket {
                // Readers of other workers walking the chain retry: the
                // bucket may be reused for another chain while one is in it.
                // A split moving slots has a section open already.
                let shared = self.shared.clone();
                let _unlinking = (!shared.writing()).then(|| shared.write_begin());
                self.set_next(b, after);
                self.free_overflow.push(n);
                return;
            }
            b = n;
        }
    }

    /// Whether `tidy` has work: items to bring home, or a page of free
    /// overflow buckets to compact.
    #[inline]
    pub fn wants_tidy(&self) -> bool {
        !self.pulls.is_empty() || self.sweep.is_some() || self.wants_compaction()
    }

    /// Whether a page's worth of overflow buckets is free and none has
    /// spilled past the shared room (a pathological spread, left as it
    /// is: compaction moves buckets within the room).
    #[inline]
    fn wants_compaction(&self) -> bool {
        self.free_overflow.len() >= COMPACT_AT && self.spill.is_empty()
    }

    /// Moves items back to where a lookup reads first, and gives back the
    /// overflow buckets that frees. Two steps, in one write section (other
    /// workers' readers retry; slots move, so no `SlotRef` taken before
    /// stays valid):
    ///
    /// - **pull**: for each primary bucket that lost an item while items
    ///   homed there, or at a bucket it is a neighbour of, sat in the
    ///   chain, those come into its free slots (home items first; a
    ///   neighbour's as displaced ones). Without it an item stays in the
    ///   chain until deleted, however empty its home has become: in the
    ///   index of `-m 256`'s fill of 100-byte values under churn that
    ///   left 21,725 overflow buckets in use, where 13,780 hold the same
    ///   items pulling home only, 11,881 pulling into neighbours too
    ///   (`index_at_m256` in index_tests.rs; 134,892 primary buckets);
    /// - **compact**: the highest overflow buckets move into free ones
    ///   below them, and the pages above the last one in use go back to
    ///   the kernel. The budget pays for the overflow buckets up to the
    ///   highest in use, which without this stays at the high water of
    ///   the fill (linear hashing's unsplit buckets hold up to twice the
    ///   mean halfway through a doubling): 19,619 buckets there against
    ///   12,698 in use at its end. Together: 20.3 MB of index to 18.9
    ///   (hints included), and the server's fill keeps 2,031,974 items
    ///   instead of 2,023,380 (1.4535x memcached's).
    ///
    /// Returns whether `bytes` changed.
    pub fn tidy(&mut self) -> bool {
        if !self.wants_tidy() {
            return false;
        }
        let before = self.bytes();
        let shared = self.shared.clone();
        let _moving = shared.write_begin();
        for _ in 0..PULLS_PER_TIDY {
            let Some(b) = self.pulls.pop() else { break };
            self.pull(b);
        }
        if let Some(from) = self.sweep {
            let to = from.saturating_add(SWEEP_PER_TIDY).min(self.len);
            for b in from..to {
                self.pull(b);
            }
            self.sweep = if to < self.len {
                Some(to)
            } else if std::mem::take(&mut self.sweep_again) {
                Some(0)
            } else {
                None
            };
        }
        if self.wants_compaction() {
            self.compact();
        }
        self.bytes() != before
    }

    /// Brings items homed at primary bucket `b` from the chain into its
    /// free slots, while there are both.
    fn pull(&mut self, b: u32) {
        if b >= self.len {
            return;
        }
        for home in self.pull_homes(b) {
            while self.overflowed(home) > 0 && self.pull_one(b, home) {}
        }
    }

    /// The homes whose chained items may move into primary bucket `b`:
    /// its own, then those it is a neighbour of, in its group (their
    /// items are in the same chain).
    fn pull_homes(&self, b: u32) -> impl Iterator<Item = u32> {
        let group = Self::group(b);
        (0..=NEIGHBOURS).filter_map(move |d| b.checked_sub(d).filter(|&h| h >= group))
    }

    /// Whether items of the chain may move into primary bucket `b`.
    fn wants_pull(&self, b: u32) -> bool {
        self.pull_homes(b).any(|h| self.overflowed(h) > 0)
    }

    /// Brings one item homed at `home` (`b` or a bucket `b` is a
    /// neighbour of) from the chain into a free slot of `b`, if both
    /// exist; whether it did.
    fn pull_one(&mut self, b: u32, home: u32) -> bool {
        if home != b && self.displaced(home) == DISPLACED_MASK {
            return false;
        }
        let Some(dst) = (1..SLOTS).find(|&i| self.primary(b).slot(i) == 0) else {
            return false;
        };
        let place = (home - Self::group(home)) as u64;
        let mut c = Self::group(b);
        while let Some(n) = self.next(c) {
            // Past the shared room (no hints): left where they are.
            let Some(hints) = self.hints_of(n) else {
                return false;
            };
            for i in 1..SLOTS {
                let v = self.bucket(n).slot(i);
                if v == 0 || (hints >> ((i as u32 - 1) * HINT_BITS)) & HINT_MASK != place {
                    continue;
                }
                let src = SlotRef {
                    bucket: n,
                    slot: i as u8,
                };
                let dst = SlotRef {
                    bucket: b,
                    slot: dst as u8,
                };
                if home != b {
                    self.add_info(home, 1 << DISPLACED_SHIFT);
                }
                self.set(dst, v);
                self.set(src, 0);
                self.unhook(src, home);
                return true;
            }
            c = n;
        }
        false
    }

    /// Moves the highest overflow buckets in use into the lowest free ones
    /// and gives back the pages above the highest left (inside a write
    /// section).
    fn compact(&mut self) {
        debug_assert!(self.spill.is_empty());
        self.free_overflow.sort_unstable();
        let mut lowest = 0;
        while self.shared_overflow > 0 {
            let top = self.overflow_base + self.shared_overflow - 1;
            // Entries before `lowest` are in use again (moved into).
            if self.free_overflow.len() > lowest && self.free_overflow.last() == Some(&top) {
                self.free_overflow.pop();
                self.shared_overflow -= 1;
                continue;
            }
            if self.free_overflow.len() - lowest <= COMPACT_AT / 2 {
                break;
            }
            let dst = self.free_overflow[lowest];
            lowest += 1;
            let info = self.bucket(top).slot(0);
            for i in 1..SLOTS {
                self.bucket(dst).put(i, self.bucket(top).slot(i));
            }
            self.bucket(dst).put(0, info);
            let base = self.overflow_base;
            self.hints[(dst - base) as usize] = self.hints[(top - base) as usize];
            let mut p = (info >> CHAIN_GROUP_SHIFT) as u32;
            while self.next(p) != Some(top) {
                p = self
                    .next(p)
                    .expect("an overflow bucket in use is on its group's chain");
            }
            self.set_next(p, dst as u64 + 1);
            self.bucket(top).clear_all();
            self.shared_overflow -= 1;
        }
        self.free_overflow.drain(..lowest);
        // `new_overflow` takes from the end: the lowest first, so the
        // chains grow back into the bottom of the room.
        self.free_overflow.reverse();
        self.hints.truncate(self.shared_overflow as usize);
        // Pages are given back whole, and only past the slack: the page
        // `keep` falls inside stays.
        let keep = self.overflow_base
            + self.shared_overflow
            + (RESIDENT_SLACK_PAGES * BUCKETS_PER_PAGE) as u32;
        if keep + (RESIDENT_SLACK_PAGES * BUCKETS_PER_PAGE) as u32 <= self.resident_top {
            self.shared
                .discard(keep as usize, self.resident_top as usize);
            self.resident_top = keep.next_multiple_of(BUCKETS_PER_PAGE as u32);
        }
    }

    /// Whether another bucket may be added (address space was reserved
    /// for it).
    #[inline]
    pub fn may_grow(&self) -> bool {
        self.len < self.overflow_base
    }

    /// Whether the index holds more items than its buckets are sized for
    /// and may still grow.
    #[inline]
    pub fn wants_growth(&self) -> bool {
        self.items * 100 > self.len as usize * ITEM_SLOTS * LOAD_PERCENT
            && self.len < self.overflow_base
    }

    /// Adds a bucket by splitting the next one in line: the items homed
    /// there whose hash now names the new bucket move to it. `hash_of`
    /// gives the hash of the item a slot value points at. Slots of moved
    /// items change, so no `SlotRef` taken before stays valid.
    ///
    /// Returns the address of the 2 MiB of primary buckets this split
    /// filled, when it did (with huge pages asked for): they were faulted
    /// in as small pages (see `advise_huge_to_len`) and may be collapsed
    /// into a huge page now.
    pub fn split_one(&mut self, mut hash_of: impl FnMut(u64) -> u64) -> Option<usize> {
        let s = self.split;
        let (low, low_m, low2_m) = (self.low, self.low_m, self.low2_m);
        // Where items homed at `s` may be: the bucket itself, its
        // neighbours if some went there, its group's overflow chain.
        let mut cands = std::mem::take(&mut self.scratch);
        cands.clear();
        let collect = |ix: &Index, b: u32, cands: &mut Vec<SlotRef>| {
            for i in 1..SLOTS {
                if ix.bucket(b).slot(i) != 0 {
                    cands.push(SlotRef {
                        bucket: b,
                        slot: i as u8,
                    });
                }
            }
        };
        collect(self, s, &mut cands);
        if self.displaced(s) > 0 {
            for d in 1..=NEIGHBOURS {
                if let Some(n) = self.neighbour(s, d) {
                    collect(self, n, &mut cands);
                }
            }
        }
        let mut b = Self::group(s);
        while let Some(n) = self.next(b) {
            collect(self, n, &mut cands);
            b = n;
        }
        let t = low + s;
        // Readers of other workers retry or hop while slots move: an item
        // between its old slot and its new one would read as missing.
        let shared = self.shared.clone();
        let _moving = shared.write_begin();
        // The new bucket is already zeroed (empty).
        self.len += 1;
        let base = self.shared.bucket(0) as *const Bucket as usize;
        let end = base + self.len as usize * std::mem::size_of::<Bucket>();
        let huge = super::arena::HUGE_PAGE;
        let huge_done =
            (self.huge_pages && end.is_multiple_of(huge) && end - huge >= base).then(|| {
                self.advise_huge_to_len();
                end - huge
            });
        self.split += 1;
        if self.split == low {
            self.low = 2 * low;
            self.low_m = fastmod_m(self.low);
            self.low2_m = fastmod_m(2 * self.low);
            self.split = 0;
        }
        self.shared.publish(self.low, self.split, self.len);
        for &r in &cands {
            let v = self.get(r);
            let h = hash_of(v);
            if fastmod(h as u32, low_m, low) != s {
                continue; // another home's item in the group's chain
            }
            let moves = fastmod(h as u32, low2_m, 2 * low) == t;
            if !moves && r.bucket == s {
                continue;
            }
            // Items staying homed at `s` but displaced to a neighbour or
            // the overflow chain come home too, as the split made room:
            // left where they were, they held the overflow buckets the
            // fill needed until they were deleted.
            self.set(r, 0);
            self.unhook(r, s);
            let nr = self.empty_slot(h);
            self.set(nr, v);
        }
        self.scratch = cands;
        huge_done
    }
}

#[cfg(test)]
#[path = "index_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "index_tidy_tests.rs"]
pub(super) mod tidy_tests;
