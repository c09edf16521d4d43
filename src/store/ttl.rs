//! TTL classes: segments grouped by item lifetime, each group a chain in
//! creation order, so that a segment's items expire close together and the
//! segment is freed whole, without scanning, once its last item expires.
//!
//! Every chain has its own open segment that new items are appended to,
//! and a segment in no chain's tail is what eviction works with, so the
//! number of chains in use must be bounded by the segments there are: a
//! store with few segments cannot give one to each of hundreds of TTLs.
//! (Segcache's 1024 fixed buckets assume gigabytes of heap and a handful of
//! TTLs; with TTLs jittered over a range, a 64 MiB store evicted a nearly
//! empty segment for nearly every write.) [`Layout`] chooses, from the
//! segment count, how many classes there are and whether each has a hot
//! chain, so that open segments are at most one in [`SEGMENTS_PER_OPEN`].
//! Lifetimes are measured on a log scale, [`STEPS_PER_DOUBLING`] steps per
//! doubling, and consecutive steps are coalesced into classes of equal
//! width. Items of one class may differ in TTL by the class's ratio; each
//! item's own expiry is still exact (checked on every read, and when
//! eviction visits it), only the whole-segment free waits for the latest.

use super::segment::{Segments, NONE};

/// Steps per doubling of the TTL at the finest granularity.
pub const STEPS_PER_DOUBLING: u32 = 4;
/// TTLs of 2^22 s (48 days) and beyond share the last step: memcached's
/// relative TTLs stop at 30 days, and absolute times further out are rare.
pub const MAX_DOUBLINGS: u32 = 22;
/// Finest steps for items that expire: TTL 1 s is step 0.
pub const STEPS: usize = (MAX_DOUBLINGS * STEPS_PER_DOUBLING) as usize + 1;
/// The chain for items without an expiry; always a class of its own, so
/// that a mix of no-TTL and short-TTL items cannot keep short ones alive.
pub const NEVER: u16 = STEPS as u16;
/// Classes: one per finest step (a class is named by its first step) plus
/// [`NEVER`].
pub const COUNT: usize = STEPS + 1;
/// The hot chain, for items that replace one (whatever their TTL), when
/// the layout has one. Keys that are written often leave dead versions
/// behind; kept apart, their segments empty fast and are compacted at
/// little cost, instead of spreading dead bytes over every segment (the
/// hot/cold separation of log-structured file systems). Their TTLs need
/// no class: compaction drops the expired ones with the dead.
pub const HOT: u16 = COUNT as u16;
/// Chains: the classes and [`HOT`].
pub const CHAINS: usize = COUNT + 1;
/// Segments per open segment at most: the rest are sealed, for eviction
/// to choose among. An open segment is half empty on average, and merge
/// eviction drops expired items wherever they are, so few classes do
/// better than many at small sizes: measured (`examples/hitsim.rs`, zipf
/// load, -m 64, one and two shards) against 4, 8, 16 and 32.
pub const SEGMENTS_PER_OPEN: usize = 10;

/// The finest step of a TTL in seconds (at least 1): the doubling it is in
/// and which quarter of it (quarters of equal length in seconds, so a step
/// spans a ratio between 1.14 and 1.25).
pub fn step_of(ttl: u32) -> usize {
    let ttl = ttl.max(1);
    let lg = 31 - ttl.leading_zeros(); // floor(log2)
    if lg >= MAX_DOUBLINGS {
        return STEPS - 1;
    }
    // The two bits below the leading one give the quarter-doubling.
    let frac = if lg >= 2 {
        (ttl >> (lg - 2)) & 3
    } else {
        (ttl << (2 - lg)) & 3
    };
    (lg * STEPS_PER_DOUBLING + frac) as usize
}

/// How a store with a given number of segments groups items into chains.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Finest steps per class.
    pub width: usize,
    /// Whether items without a TTL have a class of their own ([`NEVER`]);
    /// if not, every item is in class 0.
    pub never_apart: bool,
    /// Whether items that replace one go to [`HOT`].
    pub hot: bool,
}

impl Layout {
    /// The layout for a store that may use `segments` segments: at most
    /// `segments / SEGMENTS_PER_OPEN` open ones (and at least one): the hot
    /// chain first, then [`NEVER`] apart, then the finest classes that fit.
    pub fn for_segments(segments: usize) -> Layout {
        let open = (segments / SEGMENTS_PER_OPEN).max(1);
        let hot = open >= 2;
        let classes = if hot { open - 1 } else { open };
        if classes < 2 {
            return Layout {
                width: STEPS,
                never_apart: false,
                hot,
            };
        }
        Layout {
            width: STEPS.div_ceil((classes - 1).min(STEPS)),
            never_apart: true,
            hot,
        }
    }

    /// The chain for an item with `ttl` seconds to live (0 = never
    /// expires): [`HOT`] if it replaces an item and the layout has it.
    pub fn chain(&self, ttl: u32, replaces: bool) -> u16 {
        let class = if ttl == 0 {
            if self.never_apart {
                NEVER
            } else {
                0
            }
        } else {
            (step_of(ttl) / self.width * self.width) as u16
        };
        if replaces && self.hot {
            HOT
        } else {
            class
        }
    }

    /// Open segments this layout may have at once.
    pub fn max_open(&self) -> usize {
        let classes = if self.never_apart {
            STEPS.div_ceil(self.width) + 1
        } else {
            1
        };
        classes + self.hot as usize
    }
}

/// One TTL class's segments, oldest first.
#[derive(Clone, Copy, Debug)]
pub struct Chain {
    /// Oldest segment, [`NONE`] if the chain is empty.
    pub head: u32,
    /// The open segment new items are appended to, [`NONE`] if empty.
    pub tail: u32,
    /// Segments in the chain.
    pub len: u32,
}

/// The chains of all TTL classes, indexed by [`Layout::chain`].
pub struct TtlBuckets {
    /// [`CHAINS`] chains; at a given class width only the first step of
    /// each class is used.
    pub chains: Vec<Chain>,
}

impl Default for TtlBuckets {
    fn default() -> Self {
        Self::new()
    }
}

impl TtlBuckets {
    /// Empty chains.
    pub fn new() -> TtlBuckets {
        TtlBuckets {
            chains: vec![
                Chain {
                    head: NONE,
                    tail: NONE,
                    len: 0
                };
                CHAINS
            ],
        }
    }

    /// The segment new items of this bucket are appended to.
    #[inline]
    pub fn tail(&self, b: u16) -> Option<u32> {
        let t = self.chains[b as usize].tail;
        (t != NONE).then_some(t)
    }

    /// Appends `id` to bucket `b`'s chain, making it the open segment.
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

    /// Puts `id` into bucket `b`'s chain just before `before` (which must be
    /// in that chain).
    pub fn insert_before(&mut self, segs: &mut Segments, b: u16, id: u32, before: u32) {
        let prev = segs.header(before).prev;
        {
            let h = segs.header_mut(id);
            h.prev = prev;
            h.next = before;
        }
        segs.header_mut(before).prev = id;
        if prev == NONE {
            self.chains[b as usize].head = id;
        } else {
            segs.header_mut(prev).next = id;
        }
        self.chains[b as usize].len += 1;
    }

    /// Takes `id` out of the chain named in its header.
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
    fn steps_are_log_scale_and_monotonic() {
        assert_eq!(step_of(1), 0);
        assert_eq!(step_of(2), 4);
        assert_eq!(step_of(3), 6);
        assert_eq!(step_of(4), 8);
        assert_eq!(step_of(5), 9);
        assert_eq!(step_of(6), 10);
        assert_eq!(step_of(7), 11);
        assert_eq!(step_of(8), 12);
        assert_eq!(step_of(1 << 21), 84);
        assert_eq!(step_of(u32::MAX), STEPS - 1);
        let mut last = 0;
        for ttl in 1..5_000_000u32 {
            let s = step_of(ttl);
            assert!(s >= last && s < STEPS, "monotonic, in range");
            last = s;
        }
    }

    #[test]
    fn open_segments_are_bounded_by_segments() {
        for segments in [3usize, 8, 16, 31, 32, 63, 64, 100, 256, 1024, 4096, 1 << 20] {
            let l = Layout::for_segments(segments);
            let mut used = std::collections::BTreeSet::new();
            for ttl in (1..3_000_000u32).step_by(7).chain([0, u32::MAX]) {
                used.insert(l.chain(ttl, false));
                used.insert(l.chain(ttl, true));
            }
            assert!(used.len() <= l.max_open(), "{segments}: {l:?}");
            assert!(
                l.max_open() <= (segments / SEGMENTS_PER_OPEN).max(1),
                "{segments} segments: {l:?} opens {}",
                l.max_open()
            );
        }
        // Plenty of memory: the finest steps are used.
        assert_eq!(Layout::for_segments(1 << 20).width, 1);
        // -m 64 on one worker: the hot chain, one for items without a TTL
        // and four classes for those with one.
        assert_eq!(
            Layout::for_segments(64),
            Layout {
                width: STEPS.div_ceil(4),
                never_apart: true,
                hot: true
            }
        );
        // Tiny: one chain for everything.
        assert_eq!(Layout::for_segments(8).max_open(), 1);
    }

    #[test]
    fn chains_keep_never_and_hot_apart_when_they_can() {
        let l = Layout::for_segments(1024);
        assert_eq!(l.chain(0, false), NEVER);
        assert_eq!(l.chain(0, true), HOT);
        assert_eq!(l.chain(60, true), HOT);
        assert_ne!(l.chain(1, false), l.chain(3600, false));
        // Neighbouring TTLs share a class; a class spans a bounded ratio.
        assert_eq!(l.chain(1000, false), l.chain(1001, false));
        let one = Layout::for_segments(8);
        assert_eq!(one.chain(0, true), one.chain(5, false));
    }
}
