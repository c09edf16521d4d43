//! Ghosts: a lossy memory of the small items merge eviction let go, so a
//! key written again soon after comes back with the stay of a read item.
//!
//! Under the hand ([`merge`](super::merge)) an item stays only while it is
//! read, and an item smaller than the mean record pays its read a turn
//! only with probability size / mean. A new item has read nothing, so it
//! gets one turn. Where large values are written fast, a turn of the log
//! is short, and small items read less often than once a turn go at the
//! first pass, however much they are wanted: memcached, whose size
//! classes each keep their own memory, holds them. A key that is written
//! again after the hand let it go has shown it is reused at a distance
//! longer than a turn (2Q's A1out, Johnson and Shasha, VLDB 1994; ARC's
//! B1 list, Megiddo and Modha, FAST 2003): it arrives with a frequency of
//! one, as if read once, and stays about mean / size turns. Only items
//! smaller than the mean are remembered: a large one's credit would keep
//! it one turn longer at the cost of many small ones.
//!
//! A key written once and never read again (a scan) never comes back, so
//! the credit never reaches it, as it would if every new item were given
//! a stay on arrival (`merge.rs` measured that).
//!
//! The table is one byte per entry, direct-mapped by the key's hash: an
//! entry holds 8 bits of the hash (never 0, which marks an empty entry),
//! overwritten by any later ghost that maps there, and cleared when it is
//! taken. A false match (a new key whose entry holds a ghost with its
//! tag, 1 in 255) only gives that key one turn more.
//!
//! ```text
//!  63      56 55            20 19            0
//! +----------+----------------+---------------+
//! | tag (8)  | entry (≤ 36)   |   (unused)    |
//! +----------+----------------+---------------+
//! ```
//! The index's buckets take the hash's low bits; the entry skips them so
//! that keys of one index bucket spread over the table.

/// Bit position of the entry number in a key's hash.
const ENTRY_SHIFT: u32 = 20;
/// Bit position of the 8-bit tag in a key's hash.
const TAG_SHIFT: u32 = 56;

/// Bytes of store memory per ghost entry (one byte each, so 0.2 % of
/// `-m`). Measured with `examples/hitsim.rs` on two key spaces, 50-200 B
/// keys taking 90 % of the requests and 16-64 KiB ones the rest
/// (`VALUES=twospace`, -m 32): hit ratio 0.7211 without ghosts, 0.7323
/// with one entry per 2 KiB, 0.7390 per 512 B, 0.7425 per 128 B.
pub const BYTES_PER_GHOST: usize = 512;

/// The ghost table of one shard (see the module doc).
#[derive(Debug)]
pub struct Ghosts {
    tags: Box<[u8]>,
    mask: u64,
}

impl Ghosts {
    /// A table for a store of `memory` bytes: one entry per
    /// [`BYTES_PER_GHOST`], rounded down to a power of two, at least one.
    pub fn for_memory(memory: usize) -> Ghosts {
        let want = (memory / BYTES_PER_GHOST).max(1);
        let n = 1usize << want.ilog2();
        Ghosts {
            tags: vec![0; n].into_boxed_slice(),
            mask: n as u64 - 1,
        }
    }

    /// Bytes the table takes (the store's budget pays for them, as for
    /// the index).
    pub fn bytes(&self) -> usize {
        self.tags.len()
    }

    #[inline]
    fn entry(&self, hash: u64) -> (usize, u8) {
        let t = (hash >> TAG_SHIFT) as u8;
        (
            ((hash >> ENTRY_SHIFT) & self.mask) as usize,
            t | (t == 0) as u8,
        )
    }

    /// Remembers that the item with key hash `hash` was evicted.
    #[inline]
    pub fn note(&mut self, hash: u64) {
        let (i, t) = self.entry(hash);
        self.tags[i] = t;
    }

    /// Whether a key with hash `hash` was evicted lately (its ghost is
    /// then forgotten: one credit per eviction).
    #[inline]
    pub fn take(&mut self, hash: u64) -> bool {
        let (i, t) = self.entry(hash);
        let hit = self.tags[i] == t;
        if hit {
            self.tags[i] = 0;
        }
        hit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_noted_hash_is_taken_once() {
        let mut g = Ghosts::for_memory(1 << 20);
        assert_eq!(g.bytes(), 2048);
        let h = 0xabcd_ef01_2345_6789;
        assert!(!g.take(h));
        g.note(h);
        assert!(g.take(h));
        assert!(!g.take(h), "a ghost gives one credit");
    }

    #[test]
    fn another_tag_in_the_entry_is_no_match_and_a_later_ghost_replaces() {
        let mut g = Ghosts::for_memory(1 << 20);
        let a = 0x0100_0000_0030_0000u64;
        let b = 0x0200_0000_0030_0000u64; // same entry, another tag
        g.note(a);
        assert!(!g.take(b));
        g.note(b);
        assert!(!g.take(a), "b's ghost replaced a's");
        assert!(g.take(b));
    }

    #[test]
    fn a_zero_tag_is_stored_as_one_so_an_empty_entry_never_matches() {
        let mut g = Ghosts::for_memory(4096);
        let zero_tag = 0x0000_0000_0010_0000u64;
        assert!(!g.take(zero_tag), "an empty entry is not a ghost");
        g.note(zero_tag);
        assert!(g.take(zero_tag));
    }
}
