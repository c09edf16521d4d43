//! TTL buckets: segments grouped by item lifetime, each group a chain in
//! creation order, so that the chain's head expires first and is freed
//! whole without scanning. The widths follow Segcache: 1024 buckets in four
//! tiers, plus one bucket for items that never expire.

use super::segment::{Segments, NONE};

pub const TIERS: [(u32, u32); 4] = [(2048, 3), (32768, 7), (524288, 11), (u32::MAX, 15)];
pub const BUCKETS_PER_TIER: usize = 256;
/// The bucket for items without an expiry.
pub const NEVER: u16 = (TIERS.len() * BUCKETS_PER_TIER) as u16;
pub const COUNT: usize = NEVER as usize + 1;

/// Which bucket an item with `ttl` seconds to live belongs in (0 = never).
pub fn bucket_of(ttl: u32) -> u16 {
    if ttl == 0 {
        return NEVER;
    }
    let mut base = 0;
    for &(limit, shift) in TIERS.iter() {
        if ttl < limit {
            return (base + ((ttl >> shift) as usize).min(BUCKETS_PER_TIER - 1)) as u16;
        }
        base += BUCKETS_PER_TIER;
    }
    (COUNT - 2) as u16
}

#[derive(Clone, Copy, Debug)]
pub struct Chain {
    pub head: u32,
    pub tail: u32,
    pub len: u32,
}

pub struct TtlBuckets {
    pub chains: Vec<Chain>,
}

impl Default for TtlBuckets {
    fn default() -> Self {
        Self::new()
    }
}

impl TtlBuckets {
    pub fn new() -> TtlBuckets {
        TtlBuckets {
            chains: vec![
                Chain {
                    head: NONE,
                    tail: NONE,
                    len: 0
                };
                COUNT
            ],
        }
    }

    pub fn reset(&mut self) {
        *self = TtlBuckets::new();
    }

    /// The segment new items of this bucket are appended to.
    #[inline]
    pub fn tail(&self, b: u16) -> Option<u32> {
        let t = self.chains[b as usize].tail;
        (t != NONE).then_some(t)
    }

    pub fn push_back(&mut self, segs: &mut Segments, b: u16, id: u32) {
        let c = &mut self.chains[b as usize];
        let h = segs.header_mut(id);
        h.prev = c.tail;
        h.next = NONE;
        if c.tail == NONE {
            c.head = id;
        } else {
            let old = c.tail;
            segs.header_mut(old).next = id;
        }
        let c = &mut self.chains[b as usize];
        c.tail = id;
        c.len += 1;
    }

    /// Puts `id` in the chain just before `before` (or at the end).
    pub fn insert_before(&mut self, segs: &mut Segments, b: u16, id: u32, before: u32) {
        if before == NONE {
            return self.push_back(segs, b, id);
        }
        let prev = segs.header(before).prev;
        {
            let h = segs.header_mut(id);
            h.prev = prev;
            h.next = before;
        }
        segs.header_mut(before).prev = id;
        let c = &mut self.chains[b as usize];
        if prev == NONE {
            c.head = id;
        } else {
            segs.header_mut(prev).next = id;
        }
        self.chains[b as usize].len += 1;
    }

    pub fn unlink(&mut self, segs: &mut Segments, id: u32) {
        let h = *segs.header(id);
        let c = &mut self.chains[h.ttl_bucket as usize];
        if h.prev == NONE {
            c.head = h.next;
        } else {
            segs.header_mut(h.prev).next = h.next;
        }
        let c = &mut self.chains[h.ttl_bucket as usize];
        if h.next == NONE {
            c.tail = h.prev;
        } else {
            segs.header_mut(h.next).prev = h.prev;
        }
        self.chains[h.ttl_bucket as usize].len -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_widths_follow_segcache() {
        assert_eq!(bucket_of(0), NEVER);
        assert_eq!(bucket_of(1), 0);
        assert_eq!(bucket_of(8), 1);
        assert_eq!(bucket_of(2047), 255);
        assert_eq!(bucket_of(2048), 256 + 16);
        assert_eq!(bucket_of(32768), 512 + 16);
        assert_eq!(bucket_of(524288), 768 + 16);
        assert_eq!(bucket_of(u32::MAX - 1), 1023);
        let mut last = 0;
        for ttl in 1..2_000_000u32 {
            let b = bucket_of(ttl);
            assert!(b >= last, "buckets are monotonic in ttl");
            last = b;
        }
    }
}
