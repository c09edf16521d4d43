//! Segment eviction. When no segment is free, one policy picks what goes:
//! merge (Segcache's default), or whole-segment FIFO, random,
//! closest-to-expire, least-utilized, volatile-only, or none at all.

use super::index;
use super::item::{self, ItemMeta, RawItem, DELETED};
use super::segment::NONE;
use super::ttl;
use super::Store;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Eviction {
    /// Merge a run of segments of one TTL bucket into one, keeping the most
    /// frequently read items.
    Merge,
    /// Evict the oldest segment.
    Fifo,
    Random,
    /// Closest to expire.
    Cte,
    /// Least utilized (fewest live bytes).
    Util,
    /// Only segments whose items have a TTL, closest to expire first.
    Volatile,
    /// Never evict: a full store refuses writes (memcached `-M`).
    None,
}

impl std::str::FromStr for Eviction {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "merge" => Eviction::Merge,
            "fifo" => Eviction::Fifo,
            "random" => Eviction::Random,
            "cte" => Eviction::Cte,
            "util" => Eviction::Util,
            "volatile" => Eviction::Volatile,
            "none" => Eviction::None,
            _ => {
                return Err(format!(
                    "unknown eviction policy '{s}' (merge, fifo, random, cte, util, volatile, none)"
                ))
            }
        })
    }
}

/// Segments merged in one pass, as in Segcache.
const MERGE_RUN: usize = 4;

impl Store {
    /// Frees at least one segment; false if the policy allows none.
    pub(super) fn evict(&mut self) -> bool {
        let victim = match self.cfg.eviction {
            Eviction::None => return false,
            Eviction::Merge => {
                if self.merge() {
                    return true;
                }
                self.pick(|h| Some(h.seq))
            }
            Eviction::Fifo => self.pick(|h| Some(h.seq)),
            Eviction::Random => {
                let r = self.rand();
                self.pick(move |h| Some(h.seq.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ r))
            }
            Eviction::Cte => self.pick(|h| {
                Some(if h.expire_at == 0 {
                    u64::MAX
                } else {
                    h.expire_at as u64
                })
            }),
            Eviction::Util => self.pick(|h| Some(h.live_bytes as u64)),
            Eviction::Volatile => {
                self.pick(|h| (h.ttl_bucket != ttl::NEVER).then_some(h.expire_at as u64))
            }
        };
        match victim {
            Some(id) => {
                self.drop_segment(id, false);
                self.stats.evicted_segments += 1;
                true
            }
            None => false,
        }
    }

    /// The in-use segment with the lowest score.
    fn pick(&self, score: impl Fn(&super::segment::SegHeader) -> Option<u64>) -> Option<u32> {
        let mut best: Option<(u64, u32)> = None;
        for (id, h) in self.segs.headers.iter().enumerate() {
            if h.seq == 0 || id as u32 == self.reserve || self.segs.is_pinned(id as u32) {
                continue;
            }
            if let Some(s) = score(h) {
                if best.is_none_or(|(b, _)| s < b) {
                    best = Some((s, id as u32));
                }
            }
        }
        best.map(|(_, id)| id)
    }

    /// One merge pass: picks a TTL bucket with a run of at least two
    /// sealed segments at its head, copies the most frequently read items
    /// of the run into the reserve segment, and frees the run. Net gain:
    /// run length - 1 segments.
    fn merge(&mut self) -> bool {
        // The bucket whose head segment is oldest: merging follows the
        // order data arrived in across buckets, so a large bucket gives up
        // memory in proportion to its size.
        let mut best: Option<(u64, usize)> = None;
        for (b, c) in self.ttl.chains.iter().enumerate() {
            // A run excludes the tail, which is still being written.
            if c.len as usize >= 3 {
                let seq = self.segs.header(c.head).seq;
                if best.is_none_or(|(s, _)| seq < s) {
                    best = Some((seq, b));
                }
            }
        }
        match best {
            Some((_, b)) => self.merge_bucket(b as u16),
            None => false,
        }
    }

    fn merge_bucket(&mut self, b: u16) -> bool {
        let mut run = Vec::with_capacity(MERGE_RUN);
        let mut id = self.ttl.chains[b as usize].head;
        let tail = self.ttl.chains[b as usize].tail;
        // A pinned segment (a send reads from it) ends the run: merging it
        // would free nothing until the send is done.
        while id != NONE && id != tail && run.len() < MERGE_RUN && !self.segs.is_pinned(id) {
            run.push(id);
            id = self.segs.header(id).next;
        }
        if run.len() < 2 {
            return false;
        }
        // The merged segment takes the run's place: before the first
        // segment after it (at least the tail, which a run never includes).
        let after = id;

        // Frequency classes that fit the destination whole are kept whole;
        // the class at the boundary fills what room is left, newest first.
        let mut hist = [0usize; 256];
        for &s in &run {
            self.for_each_live(s, |st, it, slot| {
                hist[index::slot_freq(st.index.get(slot)) as usize] += it.size() + 8;
            });
        }
        let budget = self.segs.seg_size;
        let mut boundary = None;
        let mut kept = 0;
        for level in (0..256).rev() {
            kept += hist[level];
            if kept > budget {
                boundary = Some(level as u8);
                break;
            }
        }

        let dest = self.reserve;
        let now = self.clock.now();
        self.segs.renew(dest, b, now);
        let create_at = self.segs.header(run[0]).create_at;
        self.segs.header_mut(dest).create_at = create_at;
        let whole = |f: u8| boundary.is_none_or(|b| f > b);
        for &s in &run {
            self.merge_pass(s, dest, &whole);
        }
        if let Some(b) = boundary {
            for &s in run.iter().rev() {
                self.merge_pass(s, dest, &|f| f == b);
            }
        }
        for &s in &run {
            self.drop_segment(s, false);
        }
        self.ttl.insert_before(&mut self.segs, b, dest, after);
        self.reserve = self
            .segs
            .take(ttl::NEVER, now)
            .expect("a merge frees at least two segments");
        self.stats.merges += 1;
        true
    }

    /// Moves the live records of `seg` whose frequency `keep` accepts into
    /// the merge destination, while they fit.
    fn merge_pass(&mut self, seg: u32, dest: u32, keep: &dyn Fn(u8) -> bool) {
        let mut off = 0;
        let end = self.segs.header(seg).write_off as usize;
        while off < end {
            let it = self.item_at(seg, (off / 8) as u32);
            let size = it.size();
            if it.iflags() & DELETED == 0 {
                self.merge_item(seg, off, it, dest, keep);
            }
            off += size;
        }
    }

    /// Moves one live record into the merge destination if `keep` accepts
    /// its frequency and it fits; otherwise leaves it to be evicted with its
    /// segment.
    fn merge_item(
        &mut self,
        seg: u32,
        off: usize,
        it: RawItem,
        dest: u32,
        keep: &dyn Fn(u8) -> bool,
    ) {
        let key = it.key();
        let hash = self.hash(key);
        let off8 = (off / 8) as u32;
        let Some(r) = self.slot_at(hash, seg, off8) else {
            return;
        };
        let slot = self.index.get(r);
        let freq = index::slot_freq(slot);
        if !keep(freq) {
            return;
        }
        // Keep the item's CAS across the move: it has not changed.
        let cas = it
            .stored_cas()
            .unwrap_or((self.segs.header(seg).seq << index::SEG_SHIFT) | off8 as u64);
        let meta = ItemMeta {
            expire: it.expire(),
            flags: it.flags(),
            cas: Some(cas),
            iflags: it.iflags(),
        };
        let size = item::record_size(key.len(), it.vlen(), &meta);
        if self.segs.room(dest) < size {
            return;
        }
        let h = self.segs.header_mut(dest);
        let doff = h.write_off;
        h.write_off += size as u32;
        h.live_items += 1;
        h.live_bytes += size as u32;
        if meta.expire != 0 {
            h.expire_at = h.expire_at.max(meta.expire);
        }
        let atime = it.atime();
        // SAFETY: dest is the reserve segment, distinct from `seg`, and
        // `doff..doff+size` was just reserved in it.
        let new = unsafe {
            RawItem::write(
                self.segs.ptr(dest, doff as usize),
                key,
                it.value(),
                &[],
                &meta,
                atime,
            )
        };
        self.live_bytes += size;
        self.retire(seg, it);
        self.index.set(
            r,
            index::with_location(
                index::with_freq(slot, freq.saturating_sub(1)),
                dest,
                doff / 8,
            ),
        );
        let _ = new;
    }

    /// Calls `f` on each live, linked record of a segment.
    fn for_each_live(&self, seg: u32, mut f: impl FnMut(&Store, RawItem, index::SlotRef)) {
        let end = self.segs.header(seg).write_off as usize;
        let mut off = 0;
        while off < end {
            let it = self.item_at(seg, (off / 8) as u32);
            if it.iflags() & DELETED == 0 {
                let hash = self.hash(it.key());
                if let Some(r) = self.slot_at(hash, seg, (off / 8) as u32) {
                    f(self, it, r);
                }
            }
            off += it.size();
        }
    }
}
