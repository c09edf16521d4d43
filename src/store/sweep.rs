//! A resumable walk over every record of a shard, a budget of records at a
//! time: how the flush sweeps (`flush.rs`, `prefix.rs`) reclaim what they
//! hide without holding a worker for more than a slice.
//!
//! A cursor may stop inside a segment. If that segment is freed and taken
//! again before the walk resumes, the offset would fall inside some new
//! record; the cursor keeps the incarnation it was reading, and a segment
//! that changed is skipped: a new incarnation holds only records written
//! after every mark (sweeps hide records written before one, and merge
//! eviction drops hidden records instead of copying them).

use super::item::{RawItem, DELETED};
use super::Store;

/// Where a walk stands.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Cursor {
    /// Segment id read next.
    seg: u32,
    /// Byte offset of the next record in it.
    off: u32,
    /// Its incarnation when the walk stopped inside it; 0 at its start.
    seq: u64,
}

impl Cursor {
    /// Whether the walk has read every segment.
    pub fn done(&self, segments: usize) -> bool {
        self.seg as usize >= segments
    }
}

/// Records ahead of the walk whose index buckets are being loaded.
pub(super) const LOOKAHEAD: usize = 8;

impl Store {
    /// Starts loading the index bucket of the record at `off` (if below
    /// `end` and live); returns the next record's offset.
    #[inline]
    pub(super) fn prefetch_record(&self, seg: u32, off: u32, end: u32) -> u32 {
        if off >= end {
            return off;
        }
        let it = self.item_at(seg, off);
        if it.iflags() & DELETED == 0 {
            self.prefetch_bucket(it.key());
        }
        off + it.size() as u32
    }

    /// Calls `f` for each live record from `cur` on, about `budget` of them
    /// (every record read counts); `f` may unlink the record it is given.
    /// After each segment it has finished, `seg_done` may free it. Returns
    /// the records read; `cur.done` tells whether the walk is over.
    pub(super) fn walk_records(
        &mut self,
        cur: &mut Cursor,
        budget: usize,
        mut f: impl FnMut(&mut Store, u32, u32, RawItem),
        mut seg_done: impl FnMut(&mut Store, u32),
    ) -> usize {
        let n = self.segs.count() as u32;
        let mut read = 0;
        while read < budget && cur.seg < n {
            let id = cur.seg;
            let h = *self.segs.header(id);
            if h.seq == 0 || (cur.off != 0 && h.seq != cur.seq) {
                *cur = Cursor {
                    seg: id + 1,
                    ..Cursor::default()
                };
                continue;
            }
            let end = if h.live_items == 0 { 0 } else { h.write_off };
            let mut off = cur.off;
            // The index buckets of the records a few ahead are loaded while
            // these are handled: most records a sweep reads it unlinks.
            let mut ahead = off;
            for _ in 0..LOOKAHEAD {
                ahead = self.prefetch_record(id, ahead, end);
            }
            while off < end && read < budget {
                ahead = self.prefetch_record(id, ahead, end);
                let it = self.item_at(id, off);
                read += 1;
                let size = it.size() as u32;
                if it.iflags() & DELETED == 0 {
                    f(self, id, off, it);
                }
                off += size;
            }
            if off < end {
                *cur = Cursor {
                    seg: id,
                    off,
                    seq: h.seq,
                };
                break;
            }
            seg_done(self, id);
            *cur = Cursor {
                seg: id + 1,
                ..Cursor::default()
            };
        }
        read
    }
}

#[cfg(test)]
mod tests {
    use super::Cursor;
    use crate::store::*;

    fn set(s: &mut Store, k: &str, v: &[u8]) {
        let o = s.set(&SetArgs::new(SetMode::Set, k.as_bytes(), v, 0, 0));
        assert!(matches!(o, SetOutcome::Stored { .. }), "{o:?}");
    }

    #[test]
    fn a_cursor_inside_a_segment_taken_again_skips_it() {
        let mut s = crate::store::test_store(16 << 20, 1_700_000_000);
        for i in 0..3000 {
            set(&mut s, &format!("a{i}"), &[b'a'; 300]);
        }
        // Stop three records into the first segment with records.
        let mut cur = Cursor::default();
        let mut seen = Vec::new();
        s.walk_records(
            &mut cur,
            3,
            |_, seg, off, _| seen.push((seg, off)),
            |_, _| {},
        );
        let (seg, _) = seen[0];
        assert_eq!((cur.seg, cur.seq != 0), (seg, true), "{cur:?}");
        // That segment is dropped and taken again (the free list is LIFO)
        // by records of another size, so the old offset is inside one.
        s.drop_segment(seg, false);
        for i in 0..3000 {
            set(&mut s, &format!("b{i}"), &[b'b'; 77]);
        }
        assert_ne!(s.segs.header(seg).seq, 0, "retaken");
        let mut bad = 0;
        s.walk_records(
            &mut cur,
            usize::MAX,
            |s, sg, off, it| {
                if sg == seg {
                    let key = it.key().to_vec();
                    bad += s.get(&key).is_none() as usize;
                    let _ = off;
                }
            },
            |_, _| {},
        );
        assert!(cur.done(s.segs.count()));
        assert_eq!(bad, 0, "records read at offsets inside other records");
    }
}
