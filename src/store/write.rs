//! The write path: room for a record (allocating, evicting, merging), the
//! record written, and its slot linked in place of the old one.
use super::*;

impl Store {
    /// Whether a record of this size fits the item size limit.
    pub fn fits(&self, klen: usize, vlen: usize, meta: &ItemMeta) -> bool {
        (1..=item::MAX_KEY_LEN).contains(&klen)
            && vlen <= item::MAX_VALUE_LEN
            && item::record_size(klen, vlen, meta)
                <= self.cfg.item_size_max.min(self.cfg.segment_size)
    }

    /// Whether a client may store an item of this size: it fits, and
    /// memcached would take it. memcached's limit (`-I`) bounds its whole
    /// item (`item_size_ok`: header, CAS, key, flags when not 0, value and
    /// "\r\n"), so its largest value is some 70 bytes under `-I`, where
    /// this store's smaller record would take more; a client moving
    /// between the two sees the same refusals. Only what clients store
    /// asks this: records already stored (a restore, a touch) are not
    /// refused again.
    pub fn admits(&self, klen: usize, vlen: usize, meta: &ItemMeta) -> bool {
        self.fits(klen, vlen, meta)
            && classes::memcached_size(klen, vlen, meta.flags) <= self.cfg.item_size_max
    }

    /// Space for a record in the TTL bucket `bucket`: the bucket's tail
    /// segment if it has room, else a fresh segment, evicting if needed.
    fn alloc(&mut self, bucket: u16, size: usize) -> Option<(u32, u32)> {
        // Each eviction step frees a segment or lowers frequencies (the
        // hand), so this ends; the bound makes sure a policy that only
        // claims progress answers out-of-memory rather than spin a worker.
        let mut evictions = 0usize;
        loop {
            if let Some(tail) = self.ttl.tail(bucket) {
                let room = self.segs.room(tail);
                if room >= size {
                    // Lowered here, reset when a segment is opened
                    // (`open_tail`), whatever the mix of chains written.
                    self.tail_room = self.tail_room.min(room - size);
                    let h = self.segs.header_mut(tail);
                    let off = h.write_off;
                    h.write_off += size as u32;
                    return Some((tail, off));
                }
            }
            if let Some(id) = self.take_segment(bucket, size) {
                self.open_tail(bucket, id);
                continue;
            }
            // One segment is all this write needs; the rest is the
            // expiry pass's, in steps (a whole pass held the worker 53 ms).
            self.expire_one_segment();
            if self.may_take(size) && self.segs.free_count() > 0 {
                continue;
            }
            evictions += 1;
            if evictions > 256 * self.segs.count() || !self.evict() {
                return None;
            }
            if self.segs.usable() > self.seg_limit {
                self.settle();
            }
        }
    }

    /// Makes segment `id` the open tail of chain `bucket`, which writes
    /// (and the hand's keeps) append to from now on. A fresh open segment
    /// has its room: eviction ahead waits again (`tail_fill`), whichever
    /// chain it is for, so that the fill changes three times a segment.
    pub(super) fn open_tail(&mut self, bucket: u16, id: u32) {
        self.tail_room = usize::MAX;
        self.ttl.push_back(&mut self.segs, bucket, id);
    }

    /// Whether the budget lets one more segment be taken for a record of
    /// `size` bytes: while the short segment's slot is free, only a
    /// record that fits its bytes may take that slot (it is then made
    /// short, see `budget.rs`); a larger one needs a whole segment, which
    /// the budget does not pay for there.
    ///
    /// While the short segment is the merge reserve, unused, a whole
    /// segment holds its place in the chains (`renew_reserve`), so no
    /// take may use the last slot: the next segment needed then costs an
    /// eviction, and the budget is right again.
    #[inline]
    pub(super) fn may_take(&self, size: usize) -> bool {
        let taken_whole = self.partial > 0
            && if self.short_live() {
                self.short.0 == self.reserve
            } else {
                size > self.partial
            };
        self.segs.in_use() + usize::from(taken_whole) < self.seg_limit
    }

    /// Whether a write of a small record that needs a fresh segment can
    /// take one now, without evicting.
    #[inline]
    pub(super) fn segment_ready(&self) -> bool {
        self.may_take(0) && self.segs.free_count() > 0
    }

    /// A free segment for chain `bucket` if the budget allows one for a
    /// record of `size` bytes (`may_take`), made the short segment when it
    /// is the last the budget pays for and the budget has one.
    pub(super) fn take_segment(&mut self, bucket: u16, size: usize) -> Option<u32> {
        self.forget_freed_short();
        if !self.may_take(size) {
            return None;
        }
        let id = self.segs.take(bucket, self.clock.now())?;
        self.maybe_shorten(id, size);
        Some(id)
    }

    /// A free segment made the short one at once for `size` bytes, if the
    /// budget has a short segment, none is in use and they fit: a warm
    /// restart puts the segment that was short into the short slot
    /// wherever it comes in the file (segments are saved oldest first).
    pub(super) fn take_short(&mut self, bucket: u16, size: usize) -> Option<u32> {
        self.forget_freed_short();
        if self.partial == 0 || size > self.partial || self.short_live() {
            return None;
        }
        // With no short segment in use, the last slot is the short one's:
        // `may_take` keeps records larger than it out of that slot.
        debug_assert!(self.segs.in_use() < self.seg_limit);
        let id = self.segs.take(bucket, self.clock.now())?;
        self.make_short(id);
        Some(id)
    }

    /// Writes a new version of `key` and links it in place of the old one.
    /// The value is `v1` followed by `v2`. Returns the new item.
    ///
    /// # Errors
    ///
    /// [`WriteError::TooLarge`] if the record exceeds the item size limit,
    /// [`WriteError::NoMemory`] if eviction could free nothing (policy
    /// `none`, or every segment pinned); the old version is then left as
    /// it was.
    pub fn write(
        &mut self,
        key: &[u8],
        v1: &[u8],
        v2: &[u8],
        meta: ItemMeta,
    ) -> Result<Found, WriteError> {
        let vlen = v1.len() + v2.len();
        if !self.fits(key.len(), vlen, &meta) {
            return Err(WriteError::TooLarge);
        }
        let size = item::record_size(key.len(), vlen, &meta);
        let now = self.clock.now();
        let ttl = match meta.expire {
            0 => 0,
            e => e.saturating_sub(now).max(1),
        };
        let hash = self.hash(key);
        let old = self.slot_for_key(hash, key);
        let bucket = self.layout.chain(ttl, old.is_some());
        let unlinks = self.unlinks;
        // The merge in progress is paced by the writes that use up its
        // room; an unlink it makes is seen below, as alloc's are.
        self.merge_assist(bucket, size);
        let Some((seg, off)) = self.alloc(bucket, size) else {
            let m = classes::memcached_size(key.len(), vlen, meta.flags);
            self.classes.at(classes::class_of(m)).outofmemory += 1;
            return Err(WriteError::NoMemory);
        };
        let ptr = self.segs.ptr(seg, off as usize);
        // SAFETY: `alloc` reserved `size` bytes at this offset in a
        // segment; the inputs are client buffers or `scratch`, never arena
        // memory, so they cannot overlap.
        let it = unsafe { item::RawItem::write(ptr, key, v1, v2, &meta, now) };
        let h = self.segs.header_mut(seg);
        h.note_record(size, meta.expire);
        h.write_at = now;
        self.live_bytes += size;
        self.count_linked(it, size);
        // Moves keep a slot where it is; only an unlink may have changed
        // the index since the lookup.
        let old = if self.unlinks == unlinks {
            old
        } else {
            self.slot_for_key(hash, key)
        };
        Ok(self.link(old, hash, seg, off, it))
    }

    /// Points the key's slot at a new record, retiring the old one.
    pub(super) fn link(
        &mut self,
        old: Option<SlotRef>,
        hash: u64,
        seg: u32,
        off: u32,
        it: RawItem,
    ) -> Found {
        let slot = match old {
            Some(r) => {
                let s = self.index.get(r);
                let o = self.slot_item(s);
                self.retire(index::slot_seg(s), o);
                self.index.set(r, index::with_location(s, seg, off));
                r
            }
            None => {
                if self.index.wants_growth() {
                    self.grow_index();
                }
                if self.index.wants_tidy() {
                    self.tidy_index();
                }
                let bytes = self.index.bytes();
                let r = self.index.empty_slot(hash);
                // A key evicted lately and missed since comes back as if
                // read once, and while many do so may any small new key
                // (`ghost.rs`).
                let small = it.size() < self.mean_record();
                let rand = self.rand();
                let credit = self.ghosts.credit(hash, small, rand);
                match credit {
                    ghost::Credit::Ghost => self.stats.ghost_credits += 1,
                    ghost::Credit::Arrival => self.stats.arrival_credits += 1,
                    ghost::Credit::None => {}
                }
                let freq = credit.freq();
                self.index
                    .set(r, index::pack(index::tag_of(hash), freq, seg, off));
                self.index.items += 1;
                // An overflow bucket chained for this item is paid for
                // with segment memory too, as growth is.
                if self.index.bytes() != bytes {
                    self.pay_for_index();
                }
                r
            }
        };
        Found {
            slot,
            item: it,
            hash,
        }
    }

    /// Copies a value into the scratch buffer (see `scratch`).
    pub(super) fn take_scratch(&mut self, parts: &[&[u8]]) -> Vec<u8> {
        let mut v = std::mem::take(&mut self.scratch);
        v.clear();
        for p in parts {
            v.extend_from_slice(p);
        }
        v
    }

    pub(super) fn give_scratch(&mut self, v: Vec<u8>) {
        if v.capacity() <= 2 * self.cfg.item_size_max {
            self.scratch = v;
        }
    }
}

/// Why `write` stored nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteError {
    /// The record exceeds the item size limit or the segment size.
    TooLarge,
    /// Nothing could be freed for it.
    NoMemory,
}
