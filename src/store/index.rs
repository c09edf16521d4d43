//! The hash index: cache-line buckets of eight u64 slots, as in Segcache.
//!
//! ```text
//!  bucket (64 bytes, one cache line)
//! +--------+--------+--------+-----+--------+
//! | info   | item 1 | item 2 | ... | item 7 |
//! +--------+--------+--------+-----+--------+
//!
//!  info slot: low 32 bits = 1 + id of the overflow bucket, 0 = none;
//!             bits 32-39 = items homed here that went to a neighbour
//!
//!  item slot
//!  63       52 51     44 43              20 19           0
//! +-----------+---------+------------------+--------------+
//! | tag (12)  | freq(8) | segment id (24)  | offset (20)  |
//! +-----------+---------+------------------+--------------+
//!  offset counts 8-byte units, so segments can be up to 8 MiB.
//! ```
//!
//! A key's home bucket is its hash scaled to the bucket count, which need
//! not be a power of two, so the index can be sized to the memory budget.
//! An item whose home is full goes to one of the next [`NEIGHBOURS`]
//! buckets (the home counts how many did, so lookups only look there when
//! some did), and only when those are full too to an overflow bucket
//! chained from the first bucket of its group of [`GROUP`]: at the sized
//! load, that is one item in ten, and an index byte count per item of
//! about 11 where one overflow chain per bucket took 16. Items are never
//! refused and never move, so a slot's place stays valid for as long as
//! the item is linked. Overflow buckets live in a vector of their own,
//! after the primary ones in bucket numbering.

/// Slots per bucket (one cache line of u64s).
pub const SLOTS: usize = 8;
/// Slots per bucket that hold items (slot 0 is the info slot).
pub const ITEM_SLOTS: usize = SLOTS - 1;

/// Bit position of an item slot's tag.
pub const TAG_SHIFT: u32 = 52;
/// Tag bits (after shifting): 12 bits of the key's hash.
pub const TAG_MASK: u64 = 0xfff;
/// Bit position of an item slot's access frequency.
pub const FREQ_SHIFT: u32 = 44;
/// Frequency bits (after shifting).
pub const FREQ_MASK: u64 = 0xff;
/// Bit position of an item slot's segment id; also how far a segment's
/// incarnation number is shifted to form the CAS of items at an offset.
pub const SEG_SHIFT: u32 = 20;
/// Segment id bits (after shifting).
pub const SEG_MASK: u64 = 0xff_ffff;
/// Bit position of an item slot's offset.
pub const OFF_SHIFT: u32 = 0;
/// Offset bits: the record's offset in its segment, in 8-byte units.
pub const OFF_MASK: u64 = 0xf_ffff;
/// Info slot bits that hold 1 + the id of the next overflow bucket.
pub const NEXT_MASK: u64 = 0xffff_ffff;

/// Segments a slot can name, per shard.
pub const MAX_SEGMENTS: usize = SEG_MASK as usize + 1;
/// Largest segment, in bytes, whose every offset a slot can name.
pub const MAX_SEGMENT_SIZE: usize = (OFF_MASK as usize + 1) * 8;

/// One cache line of slots: an info slot and [`ITEM_SLOTS`] item slots
/// (0 = empty).
#[repr(C, align(64))]
#[derive(Clone, Copy, Default)]
pub struct Bucket {
    /// The info slot, then the item slots.
    pub slots: [u64; SLOTS],
}

/// Where an item's slot sits: bucket index and slot number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotRef {
    /// Bucket id: primary buckets first, then overflow ones.
    pub bucket: u32,
    /// Slot in the bucket, 1 to [`ITEM_SLOTS`].
    pub slot: u8,
}

/// The 12-bit tag of a key's hash, never 0.
#[inline]
pub fn tag_of(hash: u64) -> u64 {
    let t = (hash >> TAG_SHIFT) & TAG_MASK;
    // Tag 0 is reserved so an occupied slot is never all zero.
    t | (t == 0) as u64
}

/// An item slot from its fields (`off8` in 8-byte units).
#[inline]
pub fn pack(tag: u64, freq: u8, seg: u32, off8: u32) -> u64 {
    (tag << TAG_SHIFT)
        | ((freq as u64) << FREQ_SHIFT)
        | ((seg as u64 & SEG_MASK) << SEG_SHIFT)
        | ((off8 as u64 & OFF_MASK) << OFF_SHIFT)
}

/// An item slot's tag.
#[inline]
pub fn slot_tag(s: u64) -> u64 {
    (s >> TAG_SHIFT) & TAG_MASK
}
/// An item slot's access frequency.
#[inline]
pub fn slot_freq(s: u64) -> u8 {
    ((s >> FREQ_SHIFT) & FREQ_MASK) as u8
}
/// The segment an item slot points into.
#[inline]
pub fn slot_seg(s: u64) -> u32 {
    ((s >> SEG_SHIFT) & SEG_MASK) as u32
}
/// The offset an item slot points at, in 8-byte units.
#[inline]
pub fn slot_off8(s: u64) -> u32 {
    ((s >> OFF_SHIFT) & OFF_MASK) as u32
}
/// The slot with another frequency.
#[inline]
pub fn with_freq(s: u64, freq: u8) -> u64 {
    (s & !(FREQ_MASK << FREQ_SHIFT)) | ((freq as u64) << FREQ_SHIFT)
}
/// The slot pointing at another record (`off8` in 8-byte units).
#[inline]
pub fn with_location(s: u64, seg: u32, off8: u32) -> u64 {
    (s & !((SEG_MASK << SEG_SHIFT) | (OFF_MASK << OFF_SHIFT)))
        | ((seg as u64 & SEG_MASK) << SEG_SHIFT)
        | ((off8 as u64 & OFF_MASK) << OFF_SHIFT)
}

/// Items homed in a full bucket may go to this many buckets after it
/// before an overflow bucket is chained.
pub const NEIGHBOURS: u32 = 2;
/// Primary buckets per overflow chain: the chain hangs off the first
/// bucket of each group and holds items of any home in the group (their
/// tags tell them apart), so an overflow bucket fills before another is
/// added.
pub const GROUP: u32 = 16;
/// Share of item slots (percent) the primary buckets are sized to fill
/// with the expected number of items. Neighbours take most of what a full
/// bucket cannot hold, so overflow buckets stay rare at this load.
pub const LOAD_PERCENT: usize = 90;

/// Overflow buckets reserved up front, in percent of the primary ones:
/// what the sized load needs, so the vector does not grow (and double)
/// unless the load or the hash distribution is worse than expected.
pub const OVERFLOW_PERCENT: usize = 16;

const DISPLACED_SHIFT: u32 = 32;
const DISPLACED_MASK: u64 = 0xff;

/// The hash index: primary buckets, found by hash, and overflow buckets
/// chained to full ones.
pub struct Index {
    primary: Vec<Bucket>,
    overflow: Vec<Bucket>,
    /// Overflow buckets unlinked and ready for reuse (as bucket ids).
    free_overflow: Vec<u32>,
    /// Items linked.
    pub items: usize,
}

impl Index {
    /// Bytes of an index for `expected_items`: primary buckets that hold
    /// them at [`LOAD_PERCENT`] of their item slots, and the overflow
    /// buckets reserved with them.
    pub fn bytes_for(expected_items: usize) -> usize {
        let p = Self::primary_for(expected_items);
        (p + p * OVERFLOW_PERCENT / 100) * std::mem::size_of::<Bucket>()
    }

    fn primary_for(expected_items: usize) -> usize {
        (expected_items * 100)
            .div_ceil(ITEM_SLOTS * LOAD_PERCENT)
            .clamp(64, u32::MAX as usize / 2)
    }

    /// An index sized for about `expected_items` (see [`Index::bytes_for`]),
    /// its primary buckets on transparent huge pages if `huge_pages`.
    pub fn with_capacity(expected_items: usize, huge_pages: bool) -> Index {
        let want = Self::primary_for(expected_items);
        let mut primary = Vec::with_capacity(want);
        if huge_pages {
            let bytes = want * std::mem::size_of::<Bucket>();
            super::arena::advise_huge(primary.as_ptr() as *const u8, bytes);
        }
        primary.resize(want, Bucket::default());
        Index {
            primary,
            overflow: Vec::with_capacity(want * OVERFLOW_PERCENT / 100),
            free_overflow: Vec::new(),
            items: 0,
        }
    }

    /// Bytes allocated for buckets, primary and overflow (memcached's
    /// `hash_bytes`).
    pub fn bytes(&self) -> usize {
        (self.primary.capacity() + self.overflow.capacity()) * std::mem::size_of::<Bucket>()
    }

    /// Primary buckets.
    pub fn primary_buckets(&self) -> usize {
        self.primary.len()
    }

    /// Overflow buckets in use.
    pub fn overflow_buckets(&self) -> usize {
        self.overflow.len() - self.free_overflow.len()
    }

    /// The primary bucket of `hash`: its low 32 bits scaled to the bucket
    /// count (the tag is taken from the high bits).
    #[inline]
    pub fn home(&self, hash: u64) -> u32 {
        (((hash & 0xffff_ffff) * self.primary.len() as u64) >> 32) as u32
    }

    /// The first bucket of `hash`'s chain, where nearly every key sits.
    #[inline]
    pub fn home_bucket(&self, hash: u64) -> &Bucket {
        &self.primary[self.home(hash) as usize]
    }

    #[inline]
    fn bucket(&self, b: u32) -> &Bucket {
        let p = self.primary.len();
        if (b as usize) < p {
            &self.primary[b as usize]
        } else {
            &self.overflow[b as usize - p]
        }
    }

    #[inline]
    fn bucket_mut(&mut self, b: u32) -> &mut Bucket {
        let p = self.primary.len();
        if (b as usize) < p {
            &mut self.primary[b as usize]
        } else {
            &mut self.overflow[b as usize - p]
        }
    }

    /// The slot value at `r`.
    #[inline]
    pub fn get(&self, r: SlotRef) -> u64 {
        self.bucket(r.bucket).slots[r.slot as usize]
    }

    /// Overwrites the slot at `r`.
    #[inline]
    pub fn set(&mut self, r: SlotRef, v: u64) {
        self.bucket_mut(r.bucket).slots[r.slot as usize] = v;
    }

    #[inline]
    fn next(&self, b: u32) -> Option<u32> {
        let n = self.bucket(b).slots[0] & NEXT_MASK;
        if n == 0 {
            None
        } else {
            Some((n - 1) as u32)
        }
    }

    #[inline]
    fn displaced(&self, home: u32) -> u64 {
        (self.primary[home as usize].slots[0] >> DISPLACED_SHIFT) & DISPLACED_MASK
    }

    #[inline]
    fn neighbour(&self, home: u32, d: u32) -> u32 {
        let n = home + d;
        if n as usize >= self.primary.len() {
            n - self.primary.len() as u32
        } else {
            n
        }
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
                let s = bucket.slots[i];
                if s != 0 && slot_tag(s) == tag && f(s) {
                    return Some(SlotRef {
                        bucket: b,
                        slot: i as u8,
                    });
                }
            }
            None
        };
        if let Some(r) = scan(home, &self.primary[home as usize]) {
            return Some(r);
        }
        if self.displaced(home) > 0 {
            for d in 1..=NEIGHBOURS {
                let n = self.neighbour(home, d);
                if let Some(r) = scan(n, &self.primary[n as usize]) {
                    return Some(r);
                }
            }
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
        let free = |bucket: &Bucket| (1..SLOTS).find(|&i| bucket.slots[i] == 0);
        if let Some(i) = free(&self.primary[home as usize]) {
            return SlotRef {
                bucket: home,
                slot: i as u8,
            };
        }
        if self.displaced(home) < DISPLACED_MASK {
            for d in 1..=NEIGHBOURS {
                let n = self.neighbour(home, d);
                if let Some(i) = free(&self.primary[n as usize]) {
                    self.primary[home as usize].slots[0] += 1 << DISPLACED_SHIFT;
                    return SlotRef {
                        bucket: n,
                        slot: i as u8,
                    };
                }
            }
        }
        let group = Self::group(home);
        let mut b = group;
        loop {
            if b != group {
                if let Some(i) = free(self.bucket(b)) {
                    return SlotRef {
                        bucket: b,
                        slot: i as u8,
                    };
                }
            }
            match self.next(b) {
                Some(n) => b = n,
                None => {
                    let n = self.new_overflow();
                    let info = &mut self.bucket_mut(b).slots[0];
                    *info = (*info & !NEXT_MASK) | (n as u64 + 1);
                    return SlotRef { bucket: n, slot: 1 };
                }
            }
        }
    }

    fn new_overflow(&mut self) -> u32 {
        if let Some(n) = self.free_overflow.pop() {
            *self.bucket_mut(n) = Bucket::default();
            return n;
        }
        self.overflow.push(Bucket::default());
        (self.primary.len() + self.overflow.len() - 1) as u32
    }

    /// Clears a slot of `hash`'s; an overflow bucket at the end of a chain
    /// that becomes empty is unlinked and reused.
    pub fn clear(&mut self, r: SlotRef, hash: u64) {
        self.bucket_mut(r.bucket).slots[r.slot as usize] = 0;
        let home = self.home(hash);
        if (r.bucket as usize) < self.primary.len() {
            if r.bucket != home {
                self.primary[home as usize].slots[0] -= 1 << DISPLACED_SHIFT;
            }
            return;
        }
        let empty = self.bucket(r.bucket).slots[1..].iter().all(|&s| s == 0);
        if !empty || self.next(r.bucket).is_some() {
            return;
        }
        // Find the predecessor and unlink the tail bucket.
        let mut b = Self::group(home);
        while let Some(n) = self.next(b) {
            if n == r.bucket {
                self.bucket_mut(b).slots[0] &= !NEXT_MASK;
                self.free_overflow.push(n);
                return;
            }
            b = n;
        }
    }

    /// Empties the whole index (flush_all).
    pub fn reset(&mut self) {
        self.overflow.clear();
        self.primary.iter_mut().for_each(|b| *b = Bucket::default());
        self.free_overflow.clear();
        self.items = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_packing_roundtrips() {
        let s = pack(0xabc, 17, 0x12_3456, 0xf_edcb);
        assert_eq!(slot_tag(s), 0xabc);
        assert_eq!(slot_freq(s), 17);
        assert_eq!(slot_seg(s), 0x12_3456);
        assert_eq!(slot_off8(s), 0xf_edcb);
        let s2 = with_location(with_freq(s, 3), 5, 6);
        assert_eq!(
            (slot_tag(s2), slot_freq(s2), slot_seg(s2), slot_off8(s2)),
            (0xabc, 3, 5, 6)
        );
        assert_eq!(std::mem::size_of::<Bucket>(), 64);
    }

    #[test]
    fn chains_when_a_bucket_is_full_and_unlinks_when_empty() {
        let mut ix = Index::with_capacity(0, false);
        let hash = 0x5000_0000_0000_0001u64; // every insert has one home
        let mut refs = vec![];
        // 7 at home, 14 in the two neighbours, the rest in overflow buckets.
        for i in 0..40u32 {
            let r = ix.empty_slot(hash);
            ix.set(r, pack(tag_of(hash), 0, i, i));
            refs.push(r);
        }
        assert!(ix.overflow_buckets() >= 2);
        assert_eq!(ix.displaced(ix.home(hash)), 14);
        for (i, _) in refs.iter().enumerate() {
            let found = ix.find(hash, |s| slot_seg(s) == i as u32).unwrap();
            assert_eq!(found, refs[i]);
        }
        for r in refs.iter().rev() {
            ix.clear(*r, hash);
        }
        assert_eq!(ix.overflow_buckets(), 0);
        assert_eq!(ix.displaced(ix.home(hash)), 0);
        assert!(ix.find(hash, |_| true).is_none());
    }

    #[test]
    fn sized_load_needs_few_overflow_buckets_and_finds_everything() {
        let n = 200_000;
        let mut ix = Index::with_capacity(n, false);
        let mut x = 0x1234_5678_9abc_def1u64;
        let mut hashes = vec![];
        for i in 0..n as u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let r = ix.empty_slot(x);
            ix.set(r, pack(tag_of(x), 0, i, 0));
            hashes.push(x);
        }
        // Churn: replace items at random, as eviction and writes do.
        for round in 0..2 * n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let i = (x >> 20) as usize % n;
            let old = hashes[i];
            let r = ix.find(old, |s| slot_seg(s) == i as u32).expect("linked");
            ix.clear(r, old);
            let h = x.rotate_left(round as u32 % 64) ^ round as u64;
            let r = ix.empty_slot(h);
            ix.set(r, pack(tag_of(h), 0, i as u32, 0));
            hashes[i] = h;
        }
        // Neighbours and shared overflow buckets absorb what full homes
        // cannot hold.
        assert!(
            ix.overflow_buckets() * 100 < ix.primary_buckets() * 15,
            "{} overflow buckets for {} primary",
            ix.overflow_buckets(),
            ix.primary_buckets()
        );
        let used = (ix.primary_buckets() + ix.overflow_buckets()) * 64;
        let per_item = used as f64 / n as f64;
        assert!(per_item < 11.75, "{per_item} index bytes per item in use");
        assert_eq!(ix.bytes(), Index::bytes_for(n), "the reserve sufficed");
        for (i, &h) in hashes.iter().enumerate() {
            let r = ix.find(h, |s| slot_seg(s) == i as u32).expect("linked");
            if i % 2 == 0 {
                ix.clear(r, h);
            }
        }
        for (i, &h) in hashes.iter().enumerate() {
            let found = ix.find(h, |s| slot_seg(s) == i as u32).is_some();
            assert_eq!(found, i % 2 == 1);
        }
    }
}
