//! The segment store: one per shard, used by one thread, no locks.
//!
//! Items are appended to fixed-size segments (see `item` for the record
//! layout), found through a bucketed hash index (`index`), grouped by TTL
//! (`ttl`) so expired segments are freed whole, and evicted a segment at a
//! time (`eviction`). The memcached operations live in `ops`.

#![warn(missing_docs)]

pub mod arena;
mod budget;
pub mod classes;
pub mod clock;
mod config;
pub mod eviction;
mod expiry;
mod fault_ahead;
mod flush;
pub mod foreign;
mod ghost;
pub mod grace;
pub mod index;
pub mod item;
mod mark;
mod merge;
mod merge_job;
pub mod notes;
pub mod ops;
pub mod prefetch;
pub mod prefix;
pub mod scan;
pub mod segment;
pub mod slot;
pub mod snapshot;
mod sweep;
#[cfg(test)]
mod test_rng;
pub mod ttl;
pub mod view;
mod write;

pub use arena::PageKind;
pub use budget::{INDEX_MIN_ITEM_BYTES, INDEX_START_ITEM_BYTES};
pub use clock::Clock;
pub use config::{segment_size_ok, ConfigError, StoreConfig, StoreStats};
pub use eviction::Eviction;
pub use expiry::EXPIRY_STEP;
pub use item::RawItem;
pub use merge_job::{AHEAD_HAND_SEGMENTS, MERGE_STEP};
pub use ops::*;
pub use write::WriteError;

use budget::segments_within;
use index::{Index, SlotRef};
use item::{ItemMeta, DELETED, FETCHED};
use notes::GetStatus;
use segment::Segments;
use std::sync::Arc;
use ttl::TtlBuckets;

/// A found item: where its slot is and its record. Valid until the store
/// is next written to.
#[derive(Clone, Copy)]
pub struct Found {
    /// The item's index slot.
    pub slot: SlotRef,
    /// The item's record.
    pub item: RawItem,
    /// The key's hash.
    pub hash: u64,
}

/// One shard's cache: segments, TTL chains, hash index and clock.
pub struct Store {
    segs: Segments,
    index: Index,
    ttl: TtlBuckets,
    clock: Clock,
    hasher: ahash::RandomState,
    cfg: StoreConfig,
    rng: u64,
    /// Scratch space for values rebuilt from old ones (append, incr), so a
    /// write never reads from a segment the same write may evict.
    scratch: Vec<u8>,
    /// A segment kept free for merge eviction to copy into.
    reserve: u32,
    /// The reserve's pages are given back to the kernel between merges, so
    /// it takes no memory at rest and the budget does not pay for it: one
    /// more segment of items in every shard (at -m 64, 1.5-4 % more live
    /// items). Not with hugetlb pages (reserved when mapped, and a
    /// segment is half of one), `-k` or `-o prefault` (memory wanted
    /// resident up front).
    reserve_unpaid: bool,
    /// Whether a short segment may be made (`budget.rs`): its pages past
    /// its end must go back to the kernel, which locked pages (`-k`:
    /// `MADV_DONTNEED` refuses them) and hugetlb pages (reserved when
    /// mapped) do not.
    shortens: bool,
    /// Pending `flush_all <delay>`: store time at which everything goes.
    flush_at: u32,
    /// What `watch` asked to be told of, and the notes (notes.rs).
    pub notes: notes::WatchNotes,
    /// memcached's `oldest_live`: the store time of the last `flush_all`
    /// (or the one pending) less one second; 0 before any.
    oldest_live: u32,
    live_bytes: usize,
    /// Segments that may be in use at once, the merge reserve and the
    /// short segment included (`cache_memlimit` lowers it; it never
    /// exceeds the mapping).
    seg_limit: usize,
    /// Bytes the short segment may fill: what the budget leaves below a
    /// whole segment, in pages (0: none; see `budget.rs`).
    partial: usize,
    /// The short segment in use and its incarnation (`NONE`: none).
    short: (u32, u64),
    /// The segment the last merge reserve put to use became, and its
    /// incarnation: where a merge that evicted the short segment copied
    /// its kept items, so the one to make short in its place.
    reserve_used: (u32, u64),
    /// Bytes the store may use, index included (`memory_limit`).
    limit: usize,
    /// How items are grouped into chains at `seg_limit` (see `ttl`).
    layout: ttl::Layout,
    /// Items unlinked so far: a write that saw it unchanged across `alloc`
    /// may keep using the slot it looked up before.
    unlinks: u64,
    /// The expiry pass going on, and where the crawler is.
    expiry: expiry::ExpiryPass,
    /// The merge in progress, run in steps (`merge_job.rs`).
    merge_job: Option<merge_job::MergeJob>,
    /// Eviction ahead of need found nothing it may do at this (store
    /// second, merges done, `tail_fill`): it waits for one to change.
    ahead_blocked: Option<(u32, u64, merge_job::TailFill)>,
    /// The least room (bytes) a write has left in its open segment since
    /// one was last opened, whichever chain it wrote: how soon a write
    /// will need a fresh segment, for eviction ahead (`TailFill`) and a
    /// write's assist (`merge_assist`).
    tail_room: usize,
    /// Pending prefix invalidations (`flush_prefix`).
    prefixes: prefix::PrefixTable,
    /// The last `flush_all`, while its sweep has not read every segment.
    flushed: Option<flush::PendingFlush>,
    /// Counters since the store was made.
    pub stats: StoreStats,
    /// The same accounting by memcached's size classes (`classes`).
    pub classes: classes::ClassTable,
    /// Open while other workers may read this store directly
    /// (`foreign.rs`); shut while it is in a state they do not model.
    gate: foreign::Gate,
    /// Whether other workers read this store (`share_with`).
    shared: bool,
    /// Small items merge eviction let go lately (`ghost.rs`).
    ghosts: ghost::Ghosts,
}

impl Store {
    /// A store of `cfg.memory` bytes: as many segments as fit beside their
    /// headers and a hash index sized for [`INDEX_START_ITEM_BYTES`]-byte
    /// items, which grows (taking segments) as items come.
    ///
    /// # Errors
    ///
    /// [`ConfigError::SegmentSize`] for a segment size out of range,
    /// [`ConfigError::TooLittleMemory`] if fewer than three segments fit,
    /// [`ConfigError::Map`] if the memory cannot be mapped.
    pub fn new(cfg: StoreConfig, clock: Clock) -> Result<Store, ConfigError> {
        if !segment_size_ok(cfg.segment_size) {
            return Err(ConfigError::SegmentSize);
        }
        let start_index = Index::bytes_for(cfg.memory / INDEX_START_ITEM_BYTES);
        let ghosts = ghost::Ghosts::for_memory(cfg.memory);
        let nseg = segments_within(cfg.memory, cfg.segment_size, start_index + ghosts.bytes());
        if nseg < 3 {
            return Err(ConfigError::TooLittleMemory);
        }
        if nseg > index::MAX_SEGMENTS {
            return Err(ConfigError::TooMuchMemory);
        }
        // Room to grow into with cache_memlimit, and for the merge reserve
        // beside the segments the budget pays for (see `reserve_unpaid`),
        // unless growth is ruled out (`max_memory`).
        let growable = cfg.max_memory > cfg.memory;
        let room = if growable {
            cfg.max_memory.max((nseg + 1) * cfg.segment_size)
        } else {
            cfg.memory
        }
        .min(index::MAX_SEGMENTS * cfg.segment_size);
        let arena = arena::Arena::with_room(nseg * cfg.segment_size, room, cfg.huge_pages)
            .map_err(ConfigError::Map)?;
        let reserve_unpaid = growable
            && !cfg.locked
            && arena.kind() != PageKind::HugeTlb
            && arena.len() >= (nseg + 1) * cfg.segment_size;
        let shortens = !cfg.locked && arena.kind() != PageKind::HugeTlb;
        let nseg = nseg + reserve_unpaid as usize;
        // One more carved for the short segment, if the arena has room
        // (`rebudget` below decides whether the budget pays for it).
        let mut segs = Segments::new(arena, cfg.segment_size, nseg + 1);
        // Taken untouched, before fault-ahead starts on the free ones.
        let reserve = segs.take(ttl::NEVER, clock.now()).expect("nseg >= 3");
        if reserve_unpaid {
            // Not resident until a merge copies into it, so that a huge
            // page faulted in beside it is given back (`give_back_spill`).
            segs.give_back_pages(reserve);
        }
        if cfg.fault_ahead {
            segs.enable_fault_ahead();
        }
        let index = Index::try_new(
            cfg.memory / INDEX_START_ITEM_BYTES,
            cfg.memory / INDEX_MIN_ITEM_BYTES,
            cfg.huge_pages,
        )
        .map_err(ConfigError::Map)?;
        let limit = cfg.memory;
        let mut store = Store {
            segs,
            index,
            ttl: TtlBuckets::new(),
            clock,
            hasher: ahash::RandomState::with_seeds(
                0x243f_6a88_85a3_08d3,
                0x1319_8a2e_0370_7344,
                0xa409_3822_299f_31d0,
                0x082e_fa98_ec4e_6c89,
            ),
            cfg,
            rng: 0x9e37_79b9_7f4a_7c15,
            scratch: Vec::new(),
            reserve,
            reserve_unpaid,
            flush_at: 0,
            notes: Default::default(),
            oldest_live: 0,
            live_bytes: 0,
            seg_limit: nseg,
            partial: 0,
            short: (segment::NONE, 0),
            reserve_used: (segment::NONE, 0),
            shortens,
            limit,
            layout: ttl::Layout::for_segments(nseg),
            unlinks: 0,
            expiry: Default::default(),
            merge_job: None,
            ahead_blocked: None,
            tail_room: usize::MAX,
            prefixes: prefix::PrefixTable::default(),
            flushed: None,
            stats: StoreStats::default(),
            classes: classes::ClassTable::default(),
            gate: foreign::Gate::default(),
            shared: false,
            ghosts,
        };
        store.rebudget();
        store.settle();
        Ok(store)
    }

    /// The configuration the store was made with.
    pub fn config(&self) -> &StoreConfig {
        &self.cfg
    }

    /// Touches all item memory now; see `Arena::prefault`.
    pub fn prefault(&mut self) {
        if self.reserve_unpaid {
            self.reserve_unpaid = false;
            self.rebudget();
            self.settle();
        }
        self.segs.prefault();
    }

    /// What backs the segment memory.
    pub fn page_kind(&self) -> PageKind {
        self.segs.arena().kind()
    }

    /// The store's clock.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The store's clock, to move (tests, `debugtime`-like tools).
    pub fn clock_mut(&mut self) -> &mut Clock {
        &mut self.clock
    }

    /// Store time now, in seconds (see [`Clock`]).
    #[inline]
    pub fn now(&self) -> u32 {
        self.clock.now()
    }

    /// Items currently linked (expired ones not yet reclaimed included).
    pub fn curr_items(&self) -> usize {
        self.index.items
    }

    /// Bytes of live records, headers and padding included (memcached's
    /// `bytes`).
    pub fn bytes(&self) -> usize {
        self.live_bytes
    }

    /// Bytes of segment memory mapped for this shard.
    pub fn memory_bytes(&self) -> usize {
        self.segs.count() * self.segs.seg_size
    }

    /// Bytes of the segments holding items (live records, records dead
    /// but not yet reclaimed, and the unwritten tail of open segments):
    /// how full the store is against its limit, where `bytes` counts only
    /// live items and never nears the limit. The merge reserve counts only
    /// when the budget pays for it (see `reserve_unpaid`).
    pub fn segment_bytes_in_use(&self) -> usize {
        let unpaid = self.reserve_unpaid && self.reserve != segment::NONE;
        let short = match self.live_short() {
            Some(id) if !(unpaid && id == self.reserve) => {
                self.segs.seg_size - self.segs.header(id).end as usize
            }
            _ => 0,
        };
        (self.segs.in_use() - unpaid as usize) * self.segs.seg_size - short
    }

    /// Bytes of the hash index and its ghost table (memcached's
    /// `hash_bytes`), part of the store's memory budget.
    pub fn index_bytes(&self) -> usize {
        self.index.bytes() + self.ghosts.bytes()
    }

    /// The index's primary buckets (each holds several items' slots).
    pub fn index_buckets(&self) -> usize {
        self.index.primary_buckets()
    }

    /// Whether the index is splitting buckets to grow.
    pub fn index_growing(&self) -> bool {
        self.index.wants_growth()
    }

    /// Segments mapped.
    pub fn segments_total(&self) -> usize {
        self.segs.count()
    }

    /// Segments on the free list.
    pub fn segments_free(&self) -> usize {
        self.segs.free_count()
    }

    /// A self-check for tests and fault hunts: the first segment in use
    /// (`seq` non-zero) whose records run past its end, or whose end is
    /// past the segment's size. A record written past its end lands on
    /// the next segment's bytes, which may be free or given back, so a
    /// read alone can miss it (51f8357).
    pub fn segment_overrun(&self) -> Option<u32> {
        (0..self.segs.count() as u32).find(|&id| {
            let h = self.segs.header(id);
            h.seq != 0 && (h.write_off > h.end || h.end as usize > self.segs.seg_size)
        })
    }

    /// Segments holding items (or kept for merge eviction, or parked while
    /// pinned): neither free nor handed back to the kernel.
    pub fn segments_in_use(&self) -> usize {
        self.segs.in_use()
    }

    /// Segments the store may use now (its limit less what the index took).
    pub fn segments_limit(&self) -> usize {
        self.seg_limit
    }

    /// The index hash of a key.
    #[inline]
    pub fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    pub(super) fn rand(&mut self) -> u64 {
        // xorshift64*: cheap, and only steers frequency counting and random eviction.
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    #[inline]
    fn item_at(&self, seg: u32, off: u32) -> RawItem {
        // SAFETY: slots only ever hold locations of records written by
        // `RawItem::write`, inside the arena.
        unsafe { RawItem::at(self.segs.ptr(seg, off as usize)) }
    }

    #[inline]
    fn slot_item(&self, slot: u64) -> RawItem {
        self.item_at(index::slot_seg(slot), index::slot_off(slot))
    }

    /// The CAS a client sees for an item and compares its unique with:
    /// the item's own (`cas_of`), or 0 for every item with CAS off
    /// (memcached's `-C`, `StoreConfig::cas`).
    #[inline]
    pub fn client_cas(&self, f: &Found) -> u64 {
        if self.cfg.cas {
            self.cas_of(f)
        } else {
            0
        }
    }

    /// Whether clients see CAS uniques (`StoreConfig::cas`).
    pub fn cas_enabled(&self) -> bool {
        self.cfg.cas
    }

    /// The CAS of the item a slot points at: where its record sits, or
    /// the unique it was given; what a move keeps and flush marks
    /// compare. Clients see `client_cas`.
    #[inline]
    pub fn cas_of(&self, f: &Found) -> u64 {
        if let Some(c) = f.item.stored_cas() {
            return c;
        }
        let s = self.index.get(f.slot);
        (self.segs.header(index::slot_seg(s)).seq << index::SEG_SHIFT) | index::slot_off(s) as u64
    }

    /// The slot of the item linked under `key`.
    fn slot_for_key(&self, hash: u64, key: &[u8]) -> Option<SlotRef> {
        let segs = &self.segs;
        self.index.find(hash, |s| {
            // SAFETY: see `item_at`.
            let it =
                unsafe { RawItem::at(segs.ptr(index::slot_seg(s), index::slot_off(s) as usize)) };
            it.key() == key
        })
    }

    /// The slot pointing at the record at (`seg`, `off`), if it is linked.
    fn slot_at(&self, hash: u64, seg: u32, off: u32) -> Option<SlotRef> {
        self.index.find(hash, |s| {
            (index::slot_seg(s), index::slot_off(s)) == (seg, off)
        })
    }

    /// Looks a key up for a client's read (get, gat, mg, a binary get),
    /// as [`Store::find`], which leaves counting the access to the
    /// caller; a miss is told to the ghosts: if merge eviction let the key
    /// go lately, its next write arrives as if read once (`ghost.rs`). A
    /// read served by another worker tells its misses through
    /// [`Store::accessed`].
    pub fn find_read(&mut self, key: &[u8]) -> Option<Found> {
        let hash = self.hash(key);
        let found = self.find_hashed(hash, key);
        if found.is_none() {
            self.ghosts.want(hash);
        }
        found
    }

    /// Looks a key up without counting an access; expired items are
    /// reclaimed on the way and reported as missing.
    pub fn find(&mut self, key: &[u8]) -> Option<Found> {
        self.find_hashed(self.hash(key), key)
    }

    /// [`Store::find`] for a key whose hash is `hash`.
    fn find_hashed(&mut self, hash: u64, key: &[u8]) -> Option<Found> {
        self.check_flush();
        let Some(slot) = self.slot_for_key(hash, key) else {
            if self.notes.wants(notes::FETCHERS) {
                self.notes.get(key, GetStatus::NotFound, None);
            }
            return None;
        };
        let item = self.slot_item(self.index.get(slot));
        let exp = item.expire();
        if exp != 0 && exp <= self.clock.now() {
            self.stats.get_expired += 1;
            if self.notes.wants(notes::FETCHERS) {
                self.notes.get(key, GetStatus::Expired, None);
            }
            self.count_reclaimed(item);
            self.unlink(slot, hash);
            return None;
        }
        if self.flush_may_hide() {
            let s = self.index.get(slot);
            let (seg, off) = (index::slot_seg(s), index::slot_off(s));
            if self.flush_hides(seg, off, item) {
                self.stats.get_flushed += 1;
                if self.notes.wants(notes::FETCHERS) {
                    self.notes.get(key, GetStatus::Flushed, None);
                }
                self.unlink(slot, hash);
                return None;
            }
            if self.prefix_hides(seg, off, item) {
                self.stats.prefix_reclaimed += 1;
                self.stats.get_flushed += 1;
                if self.notes.wants(notes::FETCHERS) {
                    self.notes.get(key, GetStatus::Flushed, None);
                }
                self.unlink(slot, hash);
                return None;
            }
        }
        if self.notes.wants(notes::FETCHERS) {
            self.notes.get(key, GetStatus::Found, Some(&item));
        }
        Some(Found { slot, item, hash })
    }

    /// Counts an access: frequency for merge eviction, last-access time,
    /// fetched bit.
    #[inline]
    pub fn bump(&mut self, f: &Found) {
        self.bump_access(f);
        f.item.set_iflags(FETCHED, 0);
    }

    /// Counts an access for eviction (frequency, access time) without
    /// marking the item fetched: memcached's do_item_update, as incr and
    /// decr do.
    pub(super) fn bump_access(&mut self, f: &Found) {
        let s = self.index.get(f.slot);
        let freq = index::slot_freq(s);
        // Segcache's counter: +1 up to 16, then with probability 1/freq, capped at 127.
        if freq < 16 || (freq < 127 && self.rand().is_multiple_of(freq as u64)) {
            self.index.set(f.slot, index::with_freq(s, freq + 1));
        }
        f.item.set_atime(self.clock.now());
    }

    /// Drops the item a slot points at from the index.
    fn unlink(&mut self, slot: SlotRef, hash: u64) {
        let s = self.index.get(slot);
        let it = self.slot_item(s);
        self.retire(index::slot_seg(s), it);
        self.index.clear(slot, hash);
        self.index.items -= 1;
        self.unlinks += 1;
    }

    /// Unlinks the record at (`seg`, `off`) if the index still points at
    /// it (a sweep's find by location); whether it did.
    pub(super) fn unlink_record(&mut self, seg: u32, off: u32, it: RawItem) -> bool {
        let hash = self.hash(it.key());
        let Some(r) = self.slot_at(hash, seg, off) else {
            return false;
        };
        self.unlink(r, hash);
        true
    }

    /// Marks a record dead and takes it off its segment's live counts.
    fn retire(&mut self, seg: u32, it: RawItem) {
        it.set_iflags(DELETED, 0);
        let size = it.size();
        let h = self.segs.header_mut(seg);
        h.live_items -= 1;
        h.live_bytes -= size as u32;
        self.live_bytes -= size;
        let (cls, msize) = classes::of_item(&it);
        let c = self.classes.at(cls);
        c.number -= 1;
        c.mem_requested -= msize as u64;
        c.bytes -= size as u64;
    }

    /// Counts a record linked at `size` bytes in its class.
    fn count_linked(&mut self, it: RawItem, size: usize) {
        let (cls, msize) = classes::of_item(&it);
        let c = self.classes.at(cls);
        c.number += 1;
        c.mem_requested += msize as u64;
        c.bytes += size as u64;
    }

    /// Counts an expired item about to be unlinked (`reclaimed`,
    /// `expired_unfetched`), overall and in its class.
    fn count_reclaimed(&mut self, it: RawItem) {
        let unfetched = (it.iflags() & FETCHED == 0) as u64;
        self.stats.reclaimed += 1;
        self.stats.expired_unfetched += unfetched;
        let c = self.classes.at(classes::of_item(&it).0);
        c.reclaimed += 1;
        c.expired_unfetched += unfetched;
    }

    /// Counts a live item about to be evicted (`evictions`,
    /// `evicted_unfetched`; per class also `evicted_nonzero` and
    /// `evicted_time`).
    fn count_evicted(&mut self, it: RawItem) {
        if self.notes.wants(notes::EVICTIONS) {
            self.notes.evict(&it, self.clock.now());
        }
        let unfetched = (it.iflags() & FETCHED == 0) as u64;
        self.stats.evictions += 1;
        self.stats.evicted_unfetched += unfetched;
        let idle = it.idle_secs(self.clock.now()) as u64;
        let c = self.classes.at(classes::of_item(&it).0);
        c.evicted += 1;
        c.evicted_unfetched += unfetched;
        c.evicted_nonzero += (it.expire() != 0) as u64;
        c.evicted_time = idle;
    }

    /// Removes a found item.
    pub fn remove(&mut self, f: &Found) {
        self.unlink(f.slot, f.hash);
    }

    /// Whether a reply may read a value straight from segment memory:
    /// pinned segments stay out of reuse, so at most a quarter of them may
    /// be pinned at once and eviction always has the rest to work with.
    pub fn may_pin(&self) -> bool {
        self.segs.pinned_count() < self.segs.count() / 4
    }

    /// Pins the segment holding `value` (a slice of a record this store
    /// returned) until `unpin`: its bytes stay as they are even if the
    /// item is replaced, deleted, expired, evicted or flushed meanwhile.
    /// Returns the segment id to unpin with.
    pub fn pin(&mut self, value: &[u8]) -> u32 {
        let id = self.segs.id_of(value.as_ptr());
        self.segs.pin(id);
        id
    }

    /// Lets go of a pin `pin` returned.
    pub fn unpin(&mut self, seg: u32) {
        self.segs.unpin(seg);
    }

    /// Segments a send in flight still reads from (`stats pinned_segments`).
    pub fn pinned_segments(&self) -> usize {
        self.segs.pinned_count()
    }

    /// Gives back what huge pages faulted in of segments that hold
    /// nothing (`Segments::give_back_spill`); called once a second.
    pub fn give_back_spill(&mut self) {
        self.segs.give_back_spill();
    }

    /// Advances the store clock from its source.
    pub fn tick(&mut self) -> u32 {
        let t = self.clock.tick();
        self.gate.set_now(t);
        self.check_flush();
        self.refresh_gate();
        t
    }

    /// Lets other workers read this store directly (foreign reads):
    /// segments are then reused only after a grace period (`grace.rs`).
    /// `me` is this store's worker in `readers`.
    pub fn share_with(&mut self, readers: Arc<grace::Readers>, me: usize) {
        self.segs.share_with(readers, me);
        self.shared = true;
        self.refresh_gate();
    }

    /// What other workers read of this store.
    pub fn view(&self) -> foreign::ShardView {
        foreign::ShardView::new(
            self.index.shared().clone(),
            self.segs.arena_shared().clone(),
            self.segs.incarnations().clone(),
            self.segs.seg_size,
            self.cfg.cas,
            &self.gate,
        )
    }

    /// Opens the foreign-read fast path when nothing it does not model is
    /// going on (a flush pending or being swept, a prefix flush, `watch
    /// fetchers`), and shuts it otherwise. Called whenever those may have
    /// changed, before any reply that depends on them leaves.
    pub fn refresh_gate(&mut self) {
        self.gate.set_now(self.clock.now());
        let open = self.shared
            && self.flush_at == 0
            && !self.sweep_pending()
            && !self.notes.wants(notes::FETCHERS);
        self.gate.set(open);
    }

    /// Foreign reads this store's owner waited out before reusing a
    /// segment.
    pub fn grace_waits(&self) -> u64 {
        self.segs.grace_waits
    }

    /// Another worker read the record at (`seg`, `off`) of key hash
    /// `hash`: count the access as a local read would (frequency, access
    /// time, fetched bit) if that record is still linked, or, if it found
    /// it expired, reclaim it as a local lookup would (`get_expired`).
    /// `seg` [`segment::NONE`]: the read missed the key (as
    /// [`Store::find_read`] tells the ghosts).
    pub fn accessed(&mut self, hash: u64, seg: u32, off: u32) {
        if seg == segment::NONE {
            self.ghosts.want(hash);
            return;
        }
        let Some(slot) = self.slot_at(hash, seg, off) else {
            return;
        };
        let item = self.slot_item(self.index.get(slot));
        let exp = item.expire();
        if exp != 0 && exp <= self.clock.now() {
            self.stats.get_expired += 1;
            self.count_reclaimed(item);
            self.unlink(slot, hash);
            return;
        }
        self.bump(&Found { slot, item, hash });
    }
}

/// A store of `memory` bytes on ordinary pages, every other setting the
/// default, whose clock stands at Unix time `unix` until a test moves it:
/// what the unit tests build.
#[cfg(test)]
pub(crate) fn test_store(memory: usize, unix: i64) -> Store {
    let cfg = StoreConfig {
        memory,
        huge_pages: false,
        ..StoreConfig::default()
    };
    Store::new(cfg, Clock::manual(unix)).unwrap()
}

/// The host's memory in bytes (`MemTotal` of /proc/meminfo), 0 if unknown:
/// what `cache_memlimit` may grow a store to by default.
pub fn physical_memory() -> usize {
    let info = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    info.lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .map_or(0, |kb| kb * 1024)
}

#[cfg(test)]
#[path = "store_tidy_tests.rs"]
mod store_tidy_tests;

#[cfg(test)]
#[path = "short_tests.rs"]
mod short_tests;

#[cfg(test)]
#[path = "short_review_tests.rs"]
mod short_review_tests;

#[cfg(test)]
#[path = "memlimit_large_tests.rs"]
mod memlimit_large_tests;
