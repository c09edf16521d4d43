//! The hash index: cache-line buckets of eight u64 slots, as in Segcache.
//!
//! ```text
//!  bucket (64 bytes, one cache line)
//! +--------+--------+--------+-----+--------+
//! | info   | item 1 | item 2 | ... | item 7 |
//! +--------+--------+--------+-----+--------+
//!
//!  info slot: low 32 bits = 1 + index of the overflow bucket, 0 = none
//!
//!  item slot
//!  63       52 51     44 43              20 19           0
//! +-----------+---------+------------------+--------------+
//! | tag (12)  | freq(8) | segment id (24)  | offset (20)  |
//! +-----------+---------+------------------+--------------+
//!  offset counts 8-byte units, so segments can be up to 8 MiB.
//! ```
//!
//! A full bucket chains to an overflow bucket instead of refusing the
//! insert; overflow buckets live after the primary ones in the same vector.

pub const SLOTS: usize = 8;
pub const ITEM_SLOTS: usize = SLOTS - 1;

pub const TAG_SHIFT: u32 = 52;
pub const TAG_MASK: u64 = 0xfff;
pub const FREQ_SHIFT: u32 = 44;
pub const FREQ_MASK: u64 = 0xff;
pub const SEG_SHIFT: u32 = 20;
pub const SEG_MASK: u64 = 0xff_ffff;
pub const OFF_SHIFT: u32 = 0;
pub const OFF_MASK: u64 = 0xf_ffff;
pub const NEXT_MASK: u64 = 0xffff_ffff;

pub const MAX_SEGMENTS: usize = SEG_MASK as usize + 1;
pub const MAX_SEGMENT_SIZE: usize = (OFF_MASK as usize + 1) * 8;

#[repr(C, align(64))]
#[derive(Clone, Copy, Default)]
pub struct Bucket {
    pub slots: [u64; SLOTS],
}

/// Where an item's slot sits: bucket index and slot number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotRef {
    pub bucket: u32,
    pub slot: u8,
}

#[inline]
pub fn tag_of(hash: u64) -> u64 {
    let t = (hash >> TAG_SHIFT) & TAG_MASK;
    // Tag 0 is reserved so an occupied slot is never all zero.
    t | (t == 0) as u64
}

#[inline]
pub fn pack(tag: u64, freq: u8, seg: u32, off8: u32) -> u64 {
    (tag << TAG_SHIFT)
        | ((freq as u64) << FREQ_SHIFT)
        | ((seg as u64 & SEG_MASK) << SEG_SHIFT)
        | ((off8 as u64 & OFF_MASK) << OFF_SHIFT)
}

#[inline]
pub fn slot_tag(s: u64) -> u64 {
    (s >> TAG_SHIFT) & TAG_MASK
}
#[inline]
pub fn slot_freq(s: u64) -> u8 {
    ((s >> FREQ_SHIFT) & FREQ_MASK) as u8
}
#[inline]
pub fn slot_seg(s: u64) -> u32 {
    ((s >> SEG_SHIFT) & SEG_MASK) as u32
}
#[inline]
pub fn slot_off8(s: u64) -> u32 {
    ((s >> OFF_SHIFT) & OFF_MASK) as u32
}
#[inline]
pub fn with_freq(s: u64, freq: u8) -> u64 {
    (s & !(FREQ_MASK << FREQ_SHIFT)) | ((freq as u64) << FREQ_SHIFT)
}
#[inline]
pub fn with_location(s: u64, seg: u32, off8: u32) -> u64 {
    (s & !((SEG_MASK << SEG_SHIFT) | (OFF_MASK << OFF_SHIFT)))
        | ((seg as u64 & SEG_MASK) << SEG_SHIFT)
        | ((off8 as u64 & OFF_MASK) << OFF_SHIFT)
}

pub struct Index {
    buckets: Vec<Bucket>,
    primary: usize,
    mask: u64,
    free_overflow: Vec<u32>,
    pub items: usize,
}

impl Index {
    /// An index sized for about `expected_items` without chaining, on
    /// transparent huge pages if `huge_pages`.
    pub fn with_capacity(expected_items: usize, huge_pages: bool) -> Index {
        let want = (expected_items / 6).max(64).next_power_of_two();
        let mut buckets = Vec::with_capacity(want);
        if huge_pages {
            let bytes = want * std::mem::size_of::<Bucket>();
            super::arena::advise_huge(buckets.as_ptr() as *const u8, bytes);
        }
        buckets.resize(want, Bucket::default());
        Index {
            buckets,
            primary: want,
            mask: (want - 1) as u64,
            free_overflow: Vec::new(),
            items: 0,
        }
    }

    pub fn bytes(&self) -> usize {
        self.buckets.capacity() * std::mem::size_of::<Bucket>()
    }

    pub fn primary_buckets(&self) -> usize {
        self.primary
    }

    pub fn overflow_buckets(&self) -> usize {
        self.buckets.len() - self.primary - self.free_overflow.len()
    }

    #[inline]
    pub fn home(&self, hash: u64) -> u32 {
        (hash & self.mask) as u32
    }

    /// The first bucket of `hash`'s chain, where nearly every key sits.
    #[inline]
    pub fn home_bucket(&self, hash: u64) -> &Bucket {
        &self.buckets[self.home(hash) as usize]
    }

    #[inline]
    pub fn get(&self, r: SlotRef) -> u64 {
        self.buckets[r.bucket as usize].slots[r.slot as usize]
    }

    #[inline]
    pub fn set(&mut self, r: SlotRef, v: u64) {
        self.buckets[r.bucket as usize].slots[r.slot as usize] = v;
    }

    #[inline]
    fn next(&self, b: u32) -> Option<u32> {
        let n = self.buckets[b as usize].slots[0] & NEXT_MASK;
        if n == 0 {
            None
        } else {
            Some((n - 1) as u32)
        }
    }

    /// Calls `f` on every occupied slot whose tag matches, in chain order,
    /// until `f` returns true; returns that slot.
    #[inline]
    pub fn find(&self, hash: u64, mut f: impl FnMut(u64) -> bool) -> Option<SlotRef> {
        let tag = tag_of(hash);
        let mut b = self.home(hash);
        loop {
            let bucket = &self.buckets[b as usize];
            for i in 1..SLOTS {
                let s = bucket.slots[i];
                if s != 0 && slot_tag(s) == tag && f(s) {
                    return Some(SlotRef {
                        bucket: b,
                        slot: i as u8,
                    });
                }
            }
            b = self.next(b)?;
        }
    }

    /// An empty slot in the chain of `hash`, chaining a new bucket if needed.
    pub fn empty_slot(&mut self, hash: u64) -> SlotRef {
        let mut b = self.home(hash);
        loop {
            let bucket = &self.buckets[b as usize];
            for i in 1..SLOTS {
                if bucket.slots[i] == 0 {
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
                    let info = &mut self.buckets[b as usize].slots[0];
                    *info = (*info & !NEXT_MASK) | (n as u64 + 1);
                    return SlotRef { bucket: n, slot: 1 };
                }
            }
        }
    }

    fn new_overflow(&mut self) -> u32 {
        if let Some(n) = self.free_overflow.pop() {
            self.buckets[n as usize] = Bucket::default();
            return n;
        }
        self.buckets.push(Bucket::default());
        (self.buckets.len() - 1) as u32
    }

    /// Clears a slot; an overflow bucket at the end of a chain that becomes
    /// empty is unlinked and reused.
    pub fn clear(&mut self, r: SlotRef, hash: u64) {
        self.buckets[r.bucket as usize].slots[r.slot as usize] = 0;
        if (r.bucket as usize) < self.primary {
            return;
        }
        let empty = self.buckets[r.bucket as usize].slots[1..]
            .iter()
            .all(|&s| s == 0);
        if !empty || self.next(r.bucket).is_some() {
            return;
        }
        // Find the predecessor and unlink the tail bucket.
        let mut b = self.home(hash);
        while let Some(n) = self.next(b) {
            if n == r.bucket {
                self.buckets[b as usize].slots[0] &= !NEXT_MASK;
                self.free_overflow.push(n);
                return;
            }
            b = n;
        }
    }

    /// Empties the whole index (flush_all).
    pub fn reset(&mut self) {
        self.buckets.truncate(self.primary);
        self.buckets.iter_mut().for_each(|b| *b = Bucket::default());
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
        let hash = 0x5000_0000_0000_0001u64; // every insert lands in one bucket
        let mut refs = vec![];
        for i in 0..20u32 {
            let r = ix.empty_slot(hash);
            ix.set(r, pack(tag_of(hash), 0, i, i));
            refs.push(r);
        }
        assert!(ix.overflow_buckets() >= 2);
        for (i, _) in refs.iter().enumerate() {
            let found = ix.find(hash, |s| slot_seg(s) == i as u32).unwrap();
            assert_eq!(found, refs[i]);
        }
        for r in refs.iter().rev() {
            ix.clear(*r, hash);
        }
        assert_eq!(ix.overflow_buckets(), 0);
        assert!(ix.find(hash, |_| true).is_none());
    }
}
