//! A write mark: which records were written before a moment, exact to the
//! write. `flush_all` and `flush_prefix` hide what was stored before them
//! with one, instead of visiting every item when they are called.
//!
//! A record's CAS is (segment incarnation, offset) unless it carries one (a
//! moved item keeps its old CAS), and new records only ever go to segments
//! that did not exist yet or to the open segments (chain tails) past their
//! write offset. So the mark is the next incarnation number plus the write
//! offset of every open segment at that moment, and "written before" is a
//! comparison on the CAS.

use super::index::SEG_SHIFT;
use super::segment::NONE;
use super::Store;

/// The records written before one moment.
#[derive(Clone, Debug)]
pub struct WriteMark {
    /// Segment incarnations at or above this were taken afterwards.
    next_seq: u64,
    /// The open segments then: (incarnation, write offset), sorted.
    open: Vec<(u64, u32)>,
}

impl WriteMark {
    /// Whether a record with this CAS was written before the mark.
    #[inline]
    pub fn hides_cas(&self, cas: u64) -> bool {
        let seq = cas >> SEG_SHIFT;
        if seq >= self.next_seq {
            return false;
        }
        let off = (cas & ((1 << SEG_SHIFT) - 1)) as u32;
        match self.open.binary_search_by_key(&seq, |&(s, _)| s) {
            Ok(i) => off < self.open[i].1,
            Err(_) => true,
        }
    }
}

impl Store {
    /// A mark of everything written so far. Costs O(open segments).
    pub(super) fn write_mark(&self) -> WriteMark {
        let mut open: Vec<(u64, u32)> = self
            .ttl
            .chains
            .iter()
            .filter(|c| c.tail != NONE)
            .map(|c| {
                let h = self.segs.header(c.tail);
                (h.seq, h.write_off)
            })
            .collect();
        open.sort_unstable();
        WriteMark {
            next_seq: self.segs.next_seq(),
            open,
        }
    }
}
