//! Foreign reads: a worker looks a key up in another shard's store and
//! copies the item out itself, without a hop to the owner and without a
//! lock (concurrent read, exclusive write: MICA, NSDI 2014; issue 13).
//!
//! The owner stays the only writer. What makes a read sound without locks:
//!
//! - the index (`view.rs`): atomic slots in buckets that never move, the
//!   geometry behind a sequence count that splits and in-place expiry
//!   rewrites make odd; a read that overlapped one is thrown away;
//! - the records: append-only, so a linked record's key, value, flags and
//!   lengths never change; the header bytes that do (item flags, access
//!   time, an expiry `touch` rewrites) are byte-wise atomics on both sides
//!   (`item.rs`);
//! - reuse: the owner waits out every read in progress before it renews
//!   a segment or gives its pages back (`grace.rs`), so a copy never
//!   races a write;
//! - lifetime: the view holds the index's buckets, the arena and the
//!   incarnations by `Arc`.
//!
//! A read falls back to the hop, never guesses, when the owner's store
//! is in a state the fast path does not model (`open` false: a flush or
//! prefix flush being swept or pending, `watch fetchers` on), when the
//! key would be in an overflow bucket past the shared room or down a
//! chain longer than [`MAX_CHAIN`], when the value is large enough to
//! be sent by reference (the owner pins it), or when the sequence count
//! moved twice.
//!
//! A foreign hit does not write the owner's memory. Whether the owner
//! should hear of it (frequency 0, not yet fetched, or last access a
//! second old or more) is returned, and the caller sends it lossily in a
//! batch (`Job::Accessed`), as Caffeine's read buffers do.

use super::arena::Arena;
use super::grace::Section;
use super::index::{self, Bucket, NEIGHBOURS, NEXT_MASK, SLOTS};
use super::item::{RawItem, ATIME_MASK, DELETED, FETCHED};
use super::view::{Geometry, IndexShared};
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64};
use std::sync::Arc;

/// Mask of the displaced-items count in a primary bucket's info slot.
const DISPLACED: u64 = index::DISPLACED_MASK << index::DISPLACED_SHIFT;
/// Mask of the count of items in the overflow chain, in the same slot.
const OVERFLOWED: u64 = index::OVERFLOWED_MASK << index::OVERFLOWED_SHIFT;

/// What another worker may read of one shard's store.
#[derive(Clone)]
pub struct ShardView {
    index: Arc<IndexShared>,
    arena: Arc<Arena>,
    incarnations: Arc<[AtomicU64]>,
    seg_size: usize,
    /// `StoreConfig::cas`: false reports every CAS as 0 (memcached's `-C`).
    cas: bool,
    /// Set by the owner while the fast path is valid for its store.
    open: Arc<AtomicBool>,
    /// The owner's store clock, as it last read it. Expiry is judged by
    /// the owner's clock, not the reader's: each worker's clock moves
    /// when that worker ticks, and a reader behind the owner would
    /// otherwise return an item the owner already found expired (a
    /// miss, then a hit, of a key nobody set again).
    now: Arc<AtomicU32>,
}

/// A record found and copied.
#[derive(Clone, Copy, Debug)]
pub struct Hit {
    /// The client flags.
    pub flags: u32,
    /// The item's CAS unique.
    pub cas: u64,
    /// Value bytes (copied by the caller's closure).
    pub vlen: usize,
    /// Key bytes.
    pub klen: usize,
    /// Absolute expiry in store time, 0 = never.
    pub expire: u32,
    /// The owner's store clock the read judged expiry by.
    pub now: u32,
    /// Item flags (`FETCHED`, `STALE`, `WIN_SENT`, ...).
    pub iflags: u8,
    /// Seconds since the last access (24-bit clock; may be torn, see
    /// `RawItem::shared_atime`).
    pub idle: u32,
    /// The record's segment in the owner's store (to tell it of the
    /// access).
    pub seg: u32,
    /// The record's byte offset in that segment.
    pub off: u32,
    /// The key's hash.
    pub hash: u64,
    /// Whether the owner should hear of this access.
    pub tell_owner: bool,
}

/// The outcome of a foreign read.
#[derive(Debug)]
pub enum Read {
    /// Found; the closure has copied it.
    Hit(Hit),
    /// Not stored.
    Miss,
    /// Ask the owner instead (why, for the counters).
    Fallback(Fallback),
}

/// Overflow buckets a reader walks before leaving the key to the owner
/// (who walks on). Chains are a few buckets long at the sized load,
/// and linear hashing leaves the buckets the split pointer has not reached
/// yet with up to twice the load just before a level completes, and their
/// chains keep the sparse buckets after the split: 17 were seen in a test
/// of 8,000 items (foreign_tests.rs). The bound also keeps a reader racing
/// chain changes (caught afterwards by the sequence count) from walking
/// long.
pub const MAX_CHAIN: usize = 64;

/// Why a foreign read gave way to the hop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fallback {
    /// The owner's store is flushing, sweeping, or watched.
    Closed,
    /// The owner moved slots or rewrote an expiry during both tries.
    Busy,
    /// The key may be in an overflow bucket only the owner reads (its
    /// private spill), or down a chain longer than [`MAX_CHAIN`].
    Overflow,
    /// The value is at least the send-by-reference size.
    Large,
    /// The caller's reply would change the item (a meta win token).
    Declined,
    /// Stored but expired by the owner's clock. The owner's own lookup
    /// reclaims it and counts `get_expired` in the same request, as
    /// memcached's `do_item_get` does, so a `stats` right after the reply
    /// sees it; a note for later would count it late (a CI run caught
    /// `get_expired` missing after `mg e T-1` and `get e`, with the owner
    /// asleep). Each record expires once, so this hops rarely.
    Expired,
}

impl ShardView {
    /// The view of a store (`Store::view`).
    pub(super) fn new(
        index: Arc<IndexShared>,
        arena: Arc<Arena>,
        incarnations: Arc<[AtomicU64]>,
        seg_size: usize,
        cas: bool,
        gate: &Gate,
    ) -> ShardView {
        ShardView {
            index,
            arena,
            incarnations,
            seg_size,
            cas,
            open: gate.open.clone(),
            now: gate.now.clone(),
        }
    }

    /// Reads `key` (of hash `hash`, the store's hash) inside the caller's
    /// open read section (`Readers::enter`, which must stay open until
    /// this returns: it is what keeps the segments from reuse). Values of
    /// `large` bytes or more fall back. On a hit, `copy` gets the record's
    /// key and value (valid only during the call) and the hit's fields,
    /// and writes the reply, or returns false to leave the read to the
    /// owner (having written nothing).
    pub fn read(
        &self,
        _section: &Section,
        hash: u64,
        key: &[u8],
        large: usize,
        mut copy: impl FnMut(&[u8], &[u8], &Hit) -> bool,
    ) -> Read {
        if !self.open.load(Acquire) {
            return Read::Fallback(Fallback::Closed);
        }
        let now = self.now.load(Acquire);
        for _ in 0..2 {
            let Some((s, g)) = self.index.read_begin() else {
                continue;
            };
            match self.lookup(hash, key, now, large, g) {
                Look::Found(it, hit) => {
                    if !self.index.read_valid(s) {
                        continue;
                    }
                    let ko = it.shared_key_offset(it.shared_iflags());
                    // SAFETY: the record is linked (its slot was loaded
                    // inside this read section), so the grace protocol
                    // keeps its segment from reuse until the section
                    // ends; these bytes were written before the slot was
                    // stored (Release) and loaded (Acquire) and never
                    // change while linked.
                    let (k, v) = unsafe {
                        let p = it.as_ptr().add(ko);
                        (
                            std::slice::from_raw_parts(p, hit.klen),
                            std::slice::from_raw_parts(p.add(hit.klen), hit.vlen),
                        )
                    };
                    if !copy(k, v, &hit) {
                        return Read::Fallback(Fallback::Declined);
                    }
                    return Read::Hit(hit);
                }
                Look::Missing => {
                    if self.index.read_valid(s) {
                        return Read::Miss;
                    }
                }
                Look::Again => {}
                Look::Give(f) => return Read::Fallback(f),
            }
        }
        Read::Fallback(Fallback::Busy)
    }

    /// First stage of a batch's prefetch (`store/prefetch.rs`) for a key
    /// of this shard: starts loading the home bucket of `hash` (the
    /// store's hash).
    #[inline]
    pub fn prefetch_bucket(&self, hash: u64) {
        if let Some(b) = self.home_hint(hash) {
            super::prefetch::bucket_lines(b);
        }
    }

    /// Second stage: starts loading the header and key of each record of
    /// the home bucket whose tag matches, after the bounds checks `scan`
    /// makes.
    #[inline]
    pub fn prefetch_items(&self, hash: u64) {
        let Some(b) = self.home_hint(hash) else {
            return;
        };
        for (seg, off) in super::prefetch::tagged_slots(b, hash) {
            let (seg, off) = (seg as usize, off as usize);
            if seg < self.incarnations.len() && off < self.seg_size {
                super::prefetch::prefetch(
                    self.arena
                        .base_ptr()
                        .wrapping_add(seg * self.seg_size + off),
                );
            }
        }
    }

    /// `hash`'s home bucket under the geometry as it is now, read outside
    /// a read section: good only for a prefetch, where a stale bucket
    /// wastes a load. None past the buckets in use, as `lookup` does.
    #[inline]
    fn home_hint(&self, hash: u64) -> Option<&Bucket> {
        let g = self.index.geometry_hint();
        let b = home(hash, g);
        (b < g.len).then(|| self.index.bucket(b))
    }

    /// One lookup with geometry `g`, inside a read section.
    fn lookup(&self, hash: u64, key: &[u8], now: u32, large: usize, g: Geometry) -> Look {
        let home = home(hash, g);
        if home >= g.len {
            return Look::Again;
        }
        let tag = index::tag_of(hash);
        let info = self.index.bucket(home).slot(0);
        let last = if info & DISPLACED != 0 {
            (home + NEIGHBOURS).min(g.len - 1)
        } else {
            home
        };
        for b in home..=last {
            if let Some(found) = self.scan(self.index.bucket(b), tag, hash, key, now, large) {
                return found;
            }
        }
        // Not in the primary buckets: it may be in the group's overflow
        // chain, if some item of this home is. A chain past
        // [`MAX_CHAIN`], or a bucket past the shared room (the owner's
        // private spill), is left to the owner.
        if info & OVERFLOWED == 0 {
            return Look::Missing;
        }
        let group = home - home % index::GROUP;
        let mut next = self.index.bucket(group).slot(0) & NEXT_MASK;
        for _ in 0..MAX_CHAIN {
            if next == 0 {
                return Look::Missing;
            }
            let b = next - 1;
            if b as usize >= self.index.cap() {
                return Look::Give(Fallback::Overflow);
            }
            let bucket = self.index.bucket(b as u32);
            if let Some(found) = self.scan(bucket, tag, hash, key, now, large) {
                return found;
            }
            next = bucket.slot(0) & NEXT_MASK;
        }
        Look::Give(Fallback::Overflow)
    }

    /// The record of `key` among `bucket`'s item slots, if one holds it.
    #[inline]
    fn scan(
        &self,
        bucket: &Bucket,
        tag: u64,
        hash: u64,
        key: &[u8],
        now: u32,
        large: usize,
    ) -> Option<Look> {
        for i in 1..SLOTS {
            let s = bucket.slot(i);
            if s == 0 || index::slot_tag(s) != tag {
                continue;
            }
            let (seg, off) = (index::slot_seg(s), index::slot_off(s));
            if seg as usize >= self.incarnations.len() || off as usize >= self.seg_size {
                return Some(Look::Again);
            }
            // SAFETY: inside the arena (checked above); see `read`.
            let it = unsafe {
                RawItem::at(
                    self.arena
                        .base()
                        .add(seg as usize * self.seg_size + off as usize),
                )
            };
            let (klen, vlen) = it.shared_lens();
            let iflags = it.shared_iflags();
            let ko = it.shared_key_offset(iflags);
            if klen != key.len() || off as usize + ko + klen + vlen > self.seg_size {
                continue;
            }
            // SAFETY: as above, and within the segment (checked).
            let k = unsafe { std::slice::from_raw_parts(it.as_ptr().add(ko), klen) };
            if k != key {
                continue;
            }
            if iflags & DELETED != 0 {
                // Being replaced or unlinked right now.
                return Some(Look::Again);
            }
            let expire = it.shared_expire(iflags);
            if expire != 0 && expire <= now {
                // Only the owner writes: its lookup reclaims it.
                return Some(Look::Give(Fallback::Expired));
            }
            if vlen >= large {
                return Some(Look::Give(Fallback::Large));
            }
            let (flags, stored) = it.shared_fixed(iflags);
            let cas = match stored {
                _ if !self.cas => 0,
                Some(c) => c,
                None => {
                    (self.incarnations[seg as usize].load(Relaxed) << index::SEG_SHIFT) | off as u64
                }
            };
            let idle = now.wrapping_sub(it.shared_atime()) & ATIME_MASK as u32;
            let tell_owner = index::slot_freq(s) == 0 || iflags & FETCHED == 0 || idle >= 1;
            let hit = Hit {
                flags,
                cas,
                vlen,
                klen,
                expire,
                now,
                iflags,
                idle,
                seg,
                off,
                hash,
                tell_owner,
            };
            return Some(Look::Found(it, hit));
        }
        None
    }
}

enum Look {
    Found(RawItem, Hit),
    Missing,
    Again,
    Give(Fallback),
}

/// A key's home bucket under geometry `g`: `Index::home` with plain
/// division (the owner's `fastmod` is exact for 32-bit hashes, so both
/// agree).
#[inline]
fn home(hash: u64, g: Geometry) -> u32 {
    let h = hash as u32;
    if g.low == 0 {
        return 0;
    }
    let b = h % g.low;
    if b < g.split {
        h % (2 * g.low)
    } else {
        b
    }
}

/// What the owner publishes for the fast path of its store: whether it
/// is open, and the owner's clock.
#[derive(Clone, Default)]
pub struct Gate {
    open: Arc<AtomicBool>,
    now: Arc<AtomicU32>,
}

impl Gate {
    /// Opens or closes the fast path (owner only).
    pub fn set(&self, open: bool) {
        if self.open.load(Relaxed) != open {
            self.open.store(open, Release);
        }
    }

    /// Publishes the owner's clock (owner only), before the owner judges
    /// any item by it.
    pub fn set_now(&self, now: u32) {
        if self.now.load(Relaxed) != now {
            self.now.store(now, Release);
        }
    }
}

#[cfg(test)]
#[path = "foreign_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "foreign_tidy_tests.rs"]
mod tidy_tests;
