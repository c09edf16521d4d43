//! Prefix invalidation (`flush_prefix`): every item stored under a prefix
//! up to now becomes a miss at once, without a scan.
//!
//! An invalidation is a row of a small per-shard table: the prefix and a
//! [`WriteMark`] saying which records were written before it, exact to the
//! write, not to the second as memcached's `flush_all` time is.
//!
//! Reads (`Store::find`) test a found item against the table, which costs
//! one branch while the table is empty, and otherwise one hash lookup per
//! distinct prefix length among the rows (plus a CAS comparison when a
//! prefix matches). A sweep in the background
//! (`Store::sweep_prefixes`, from the worker's paced sweep step) walks every
//! segment once per row, reclaiming what the row hides, and then drops the
//! row; merge eviction drops hidden items instead of copying them, so none
//! can move behind the sweep.

#[cfg(test)]
pub use self::MAX_PREFIXES as _MAX;
use super::index::SEG_SHIFT;
use super::item::RawItem;
use super::mark::WriteMark;
use super::sweep::Cursor;
use super::Store;

/// Rows a shard keeps at most; a row beyond that first finishes the
/// oldest row's sweep at once (a full walk of the shard's segments).
pub const MAX_PREFIXES: usize = 64;

/// One pending invalidation.
#[derive(Clone, Debug)]
pub struct PrefixRow {
    /// The prefix (raw key bytes; empty hides everything).
    pub prefix: Box<[u8]>,
    /// What the row hides: records written before it.
    mark: WriteMark,
    /// Store time of the invalidation, seconds.
    pub at: u32,
    /// Where the row's sweep stands.
    cursor: Cursor,
}

/// Prefixes of one length, each with its row.
type SameLength = ahash::HashMap<Box<[u8]>, usize>;

/// The table of pending prefix invalidations of one shard.
#[derive(Clone, Debug, Default)]
pub struct PrefixTable {
    rows: Vec<PrefixRow>,
    /// For each prefix length in use, its prefixes and their rows: a read
    /// costs one hash lookup per distinct length, not one comparison per
    /// row. No two rows share a prefix (a newer row replaces an older one
    /// under it).
    by_len: Vec<(usize, SameLength)>,
}

impl PrefixTable {
    /// Whether no invalidation is pending (the read path's one branch).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The pending rows, oldest first.
    pub fn rows(&self) -> &[PrefixRow] {
        &self.rows
    }

    /// Whether a row hides a record with this key and CAS.
    #[inline]
    pub fn hides(&self, key: &[u8], cas: u64) -> bool {
        self.by_len.iter().any(|(len, m)| {
            *len <= key.len()
                && m.get(&key[..*len])
                    .is_some_and(|&i| self.rows[i].mark.hides_cas(cas))
        })
    }

    /// Rebuilds `by_len` after rows came or went (rare: flush_prefix and
    /// the end of a sweep).
    fn reindex(&mut self) {
        self.by_len.clear();
        for (i, r) in self.rows.iter().enumerate() {
            let len = r.prefix.len();
            let at = match self.by_len.iter().position(|(l, _)| *l == len) {
                Some(at) => at,
                None => {
                    self.by_len.push((len, Default::default()));
                    self.by_len.len() - 1
                }
            };
            self.by_len[at].1.insert(r.prefix.clone(), i);
        }
    }
}

impl Store {
    /// `flush_prefix`: every item whose key starts with `prefix` and that
    /// was stored before this call is a miss from now on; items stored
    /// afterwards are not affected. Costs O(open segments), whatever the
    /// number of items; the space is reclaimed by `sweep_prefixes`.
    pub fn flush_prefix(&mut self, prefix: &[u8]) {
        // A newer row covers every older one under a longer prefix.
        self.prefixes.rows.retain(|r| !r.prefix.starts_with(prefix));
        self.prefixes.reindex();
        if self.prefixes.rows.len() >= MAX_PREFIXES {
            self.sweep_prefix_row(0, usize::MAX);
            self.prefixes.rows.remove(0);
            self.prefixes.reindex();
        }
        let mark = self.write_mark();
        self.prefixes.rows.push(PrefixRow {
            prefix: prefix.into(),
            mark,
            at: self.clock.now(),
            cursor: Cursor::default(),
        });
        self.prefixes.reindex();
    }

    /// Prefix invalidations still being swept.
    pub fn prefixes_pending(&self) -> usize {
        self.prefixes.rows.len()
    }

    /// The CAS of the record at (`seg`, `off`).
    #[inline]
    pub(super) fn record_cas(&self, seg: u32, off: u32, it: RawItem) -> u64 {
        it.stored_cas()
            .unwrap_or((self.segs.header(seg).seq << SEG_SHIFT) | off as u64)
    }

    /// Whether a pending invalidation hides the record at (`seg`, `off`).
    #[inline]
    pub(super) fn prefix_hides(&self, seg: u32, off: u32, it: RawItem) -> bool {
        !self.prefixes.is_empty() && self.prefixes.hides(it.key(), self.record_cas(seg, off, it))
    }

    /// Reclaims items that pending invalidations hide, reading at most
    /// `budget` records; a row whose sweep has read every segment is
    /// dropped. Called from the worker's paced sweep step.
    pub fn sweep_prefixes(&mut self, budget: usize) {
        let mut left = budget;
        while left > 0 && !self.prefixes.rows.is_empty() {
            left -= self.sweep_prefix_row(0, left).min(left);
            if !self.prefixes.rows[0].cursor.done(self.segs.count()) {
                break;
            }
            self.prefixes.rows.remove(0);
            self.prefixes.reindex();
        }
    }

    /// Sweeps row `i` for at most `budget` records (its cursor then tells
    /// whether it has read every segment). Returns the records read.
    fn sweep_prefix_row(&mut self, i: usize, budget: usize) -> usize {
        let mut cur = self.prefixes.rows[i].cursor;
        let read = self.walk_records(
            &mut cur,
            budget,
            |s, seg, off, it| {
                if s.prefix_hides(seg, off, it) && s.unlink_record(seg, off, it) {
                    s.stats.prefix_reclaimed += 1;
                }
            },
            |s, seg| {
                s.free_if_empty(seg);
            },
        );
        self.prefixes.rows[i].cursor = cur;
        read
    }

    /// flush_all: nothing is left for a row to hide.
    pub(super) fn clear_prefixes(&mut self) {
        self.prefixes.rows.clear();
        self.prefixes.by_len.clear();
    }
}

#[cfg(test)]
#[path = "prefix_tests.rs"]
mod tests;
