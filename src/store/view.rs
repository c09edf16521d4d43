//! What other workers may read of a shard's index: the primary buckets
//! and the geometry that maps a hash to them, behind a sequence count.
//!
//! Foreign reads (`foreign.rs`, issue 13: MICA's concurrent read,
//! exclusive write) look keys up in another shard's index without locks.
//! Its owner is the only writer. Three things make that sound:
//!
//! - the primary buckets live in one allocation made for the most buckets
//!   the index may ever have, owned by this `Arc`, so a reader's pointer
//!   stays valid for as long as it holds the view, and growing the index
//!   never moves a bucket (the memory is an anonymous mapping the kernel
//!   zeroes, so a new bucket is empty without being written, and pages no
//!   bucket has reached yet are not resident). Overflow buckets follow
//!   them in the same mapping, up to a quarter of the primary count
//!   (`overflow_room`); a chained bucket is linked only once it is empty
//!   (zeroed or cleared), by a `Release` store of its predecessor's info
//!   slot;
//! - slots are `AtomicU64` (`index::Bucket`): the owner stores `Release`,
//!   readers load `Acquire`;
//! - the geometry (`low`, `split`, `len`) and every slot move of a split
//!   happen inside a write section of `seq`, a seqlock count: odd while
//!   the owner is in one. A reader that saw it odd, or changed across its
//!   lookup, throws the lookup away (an item between its old and new slot
//!   would have read as missing). The owner also opens a section around
//!   an expiry rewritten in place (`touch`), so a reader never uses a
//!   half-written one, and around the unlinking of an emptied overflow
//!   bucket: a reader still inside it when it is reused for another chain
//!   would walk that chain and miss the rest of its own.
//!
//! The reader's side is Boehm's seqlock reader ("Can seqlocks get along
//! with programming language memory models?", MSPC 2012): `seq` loaded
//! `Acquire`, the data loaded, an `Acquire` fence, `seq` loaded again.

use super::index::Bucket;
use memmap2::{MmapMut, MmapOptions};
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::atomic::{fence, AtomicU32, AtomicU64};

/// The shared part of one shard's index.
pub struct IndexShared {
    buckets: *mut Bucket,
    /// The mapping `buckets` points into. Not `alloc_zeroed`: buckets are
    /// 128-byte aligned, and for alignments above 16 Rust's system allocator
    /// zeroes with a memset, which made the whole capacity resident (80 MiB
    /// at -m 256, RSS/-m 1.30 instead of 1.04).
    _map: MmapMut,
    /// Buckets the allocation holds: the index's most primary buckets,
    /// then its overflow room.
    cap: usize,
    /// Sequence count: odd while the owner moves slots or changes the
    /// geometry.
    seq: AtomicU64,
    /// Buckets at the current level (see `Index::home`).
    low: AtomicU32,
    /// The next bucket to split.
    split: AtomicU32,
    /// Primary buckets in use.
    len: AtomicU32,
}

// SAFETY: `buckets` points into a mapping this value owns (unmapped on
// drop); every access to its contents goes through atomics (`Bucket`'s
// slots), and the pointer itself never changes.
unsafe impl Send for IndexShared {}
// SAFETY: as above: shared access is only ever atomic loads and stores.
unsafe impl Sync for IndexShared {}

/// The geometry a reader saw, inside one read section.
#[derive(Clone, Copy, Debug)]
pub struct Geometry {
    /// Buckets at the current level.
    pub low: u32,
    /// The next bucket to split.
    pub split: u32,
    /// Primary buckets in use.
    pub len: u32,
}

/// An open write section; it closes (the count goes even) on drop.
pub struct WriteSection<'a>(&'a AtomicU64);

impl Drop for WriteSection<'_> {
    fn drop(&mut self) {
        // Release: the section's slot stores happen before a reader can
        // see the count even again.
        self.0.fetch_add(1, Release);
    }
}

impl IndexShared {
    /// Overflow buckets kept in the shared mapping for an index of at most
    /// `primary` primary buckets. At the sized load they number about one
    /// in six or seven primary ones (index_tests.rs bounds them under 18 %
    /// under churn); a quarter leaves room for unlucky hashing, and only
    /// what is used becomes resident.
    pub fn overflow_room(primary: usize) -> usize {
        primary / 4 + 64
    }

    /// Room for `cap` buckets, zeroed, of which the first `len` are in use
    /// (`low` = `len`, nothing split). Mapped without swap reservation
    /// (MAP_NORESERVE): the room for the most items `-m` could hold is
    /// about a sixth of `-m`, touched only as the index grows into it, and
    /// the kernel's overcommit heuristic refused such a mapping past RAM
    /// and swap (`-m 200000` on a 24 GiB host panicked here, where
    /// memcached starts).
    ///
    /// # Errors
    /// The mapping's, e.g. under strict overcommit (`vm.overcommit_memory`
    /// 2), which counts it whole.
    pub fn try_new(cap: usize, len: u32) -> std::io::Result<IndexShared> {
        let cap = cap.max(1);
        let bytes = cap
            .checked_mul(std::mem::size_of::<Bucket>())
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::OutOfMemory))?;
        let mut map = MmapOptions::new().len(bytes).no_reserve_swap().map_anon()?;
        // Page-aligned, so aligned for `Bucket`; an all-zero `Bucket` is a
        // valid one (zero atomics).
        let buckets = map.as_mut_ptr() as *mut Bucket;
        debug_assert!(buckets.align_offset(std::mem::align_of::<Bucket>()) == 0);
        Ok(IndexShared {
            buckets,
            _map: map,
            cap,
            seq: AtomicU64::new(0),
            low: AtomicU32::new(len),
            split: AtomicU32::new(0),
            len: AtomicU32::new(len),
        })
    }

    /// As [`IndexShared::try_new`], panicking if it cannot map (tests).
    pub fn new(cap: usize, len: u32) -> IndexShared {
        Self::try_new(cap, len).unwrap_or_else(|e| panic!("mapping the hash index: {e}"))
    }

    /// Gives the kernel back the pages wholly inside buckets
    /// `from..to` (owner only, for overflow buckets no chain links any
    /// more: `Index::compact`). The mapping stays; a reader still walking
    /// into one of them reads zeros, and its section check throws that
    /// lookup away, as the compaction that freed them is a write section.
    pub fn discard(&self, from: usize, to: usize) {
        debug_assert!(from <= to && to <= self.cap);
        let size = std::mem::size_of::<Bucket>();
        let (start, end) = (
            (from * size).next_multiple_of(4096),
            to * size / 4096 * 4096,
        );
        if end <= start {
            return;
        }
        // SAFETY: the range lies inside the mapping (`to` ≤ `cap`), page
        // aligned, and holds only buckets on no chain: zeroing them loses
        // nothing, and every access to them is atomic.
        unsafe { super::arena::discard_pages((self.buckets as *mut u8).add(start), end - start) }
    }

    /// Buckets the mapping holds, primary and overflow.
    #[inline]
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Bucket `b`, which must be below the capacity.
    #[inline]
    pub fn bucket(&self, b: u32) -> &Bucket {
        assert!((b as usize) < self.cap);
        // SAFETY: in bounds of the mapping (checked above), which lives
        // as long as `self`; buckets are only accessed through atomics.
        unsafe { &*self.buckets.add(b as usize) }
    }

    /// Opens a write section (owner only): readers that overlap it throw
    /// their lookup away.
    pub fn write_begin(&self) -> WriteSection<'_> {
        let s = self.seq.load(Relaxed);
        debug_assert!(s & 1 == 0, "nested write section");
        self.seq.store(s + 1, Relaxed);
        // The odd count is ordered before the section's stores: a reader
        // that sees any of them (then fences) sees the count odd or moved.
        fence(Release);
        WriteSection(&self.seq)
    }

    /// Whether a write section is open (owner only: only it opens them).
    #[inline]
    pub fn writing(&self) -> bool {
        self.seq.load(Relaxed) & 1 == 1
    }

    /// Publishes the geometry (owner only, inside a write section).
    pub fn publish(&self, low: u32, split: u32, len: u32) {
        debug_assert!(len as usize <= self.cap);
        self.low.store(low, Relaxed);
        self.split.store(split, Relaxed);
        self.len.store(len, Relaxed);
    }

    /// Starts a read: the count to check at the end and the geometry, or
    /// None if the owner is in a write section.
    #[inline]
    pub fn read_begin(&self) -> Option<(u64, Geometry)> {
        let s = self.seq.load(Acquire);
        if s & 1 == 1 {
            return None;
        }
        Some((s, self.geometry_hint()))
    }

    /// The geometry as it is now. Outside a read section (`read_begin`)
    /// it may be torn: good only for a hint (a prefetch), which never
    /// changes what a lookup finds.
    #[inline]
    pub fn geometry_hint(&self) -> Geometry {
        Geometry {
            low: self.low.load(Relaxed),
            split: self.split.load(Relaxed),
            len: self.len.load(Relaxed),
        }
    }

    /// Whether nothing was written since `read_begin` returned `s`: the
    /// loads in between saw one consistent state.
    #[inline]
    pub fn read_valid(&self, s: u64) -> bool {
        fence(Acquire);
        self.seq.load(Relaxed) == s
    }
}
