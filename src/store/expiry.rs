//! Expiry: segments whose items have all expired are freed whole, and a
//! crawler reclaims expired items from the others a few segments at a
//! time.
//!
//! The work is done in passes of bounded steps (`expiry_begin`, then
//! `expiry_step` between loop turns) so that no request waits behind more
//! than a step. Freeing a segment unlinks every record in it from the index,
//! about 0.4 µs a record with the index cold: a 1 MiB segment of 123-byte
//! records held the worker 3.3 ms, and the once-a-second pass that freed
//! up to 16 of them at once 53 ms (measured, 140 k items expiring together
//! beside 2.2 M that stay, examples in `docs/PERFORMANCE.md`).

use super::classes;
use super::item::DELETED;
use super::segment::{Segments, NONE};
use super::sweep::LOOKAHEAD;
use super::ttl::TtlBuckets;
use super::Store;

/// Records the crawler reads per pass, at most: about a millisecond's
/// work, once a second.
const CRAWL_RECORDS: usize = 32 * 1024;

/// Records one `expiry_step` reads at most when the worker asks: at about
/// 0.4 µs a record unlinked (the index's bucket a cache miss), some 13 µs.
pub const EXPIRY_STEP: usize = 32;

/// Segment headers one step looks at while finding the next segment to
/// crawl (a header that needs no crawl costs a few nanoseconds).
const HEADERS_PER_STEP: usize = 1024;

/// What is left of the current expiry pass.
#[derive(Debug, Default)]
pub(super) struct ExpiryPass {
    /// Expired segments to free, with the incarnation each had when found
    /// (a segment freed and taken again meanwhile is skipped).
    segments: Vec<(u32, u64)>,
    /// Offset reached in the first of `segments`.
    off: u32,
    /// Records the crawler may still read in this pass.
    crawl_budget: usize,
    /// Segment headers the crawler may still visit in this pass (one lap).
    crawl_headers: usize,
    /// The segment the crawler reads next or is inside.
    crawl_at: u32,
    /// Offset reached inside `crawl_at`, and that segment's incarnation
    /// then (0: at its start).
    crawl_off: u32,
    crawl_seq: u64,
    /// Earliest expiry still ahead among the records of `crawl_at` read so far.
    crawl_earliest: u32,
    /// Whether this pass's crawl has been counted (`crawler_starts` counts
    /// passes that read records, as memcached counts crawler runs, not
    /// steps).
    crawl_counted: bool,
}

impl Store {
    /// Frees whole segments whose items have all expired, at most `max` of
    /// them, then lets the crawler reclaim expired items from a few more,
    /// all at once (a whole pass; the worker runs passes in steps).
    /// Returns the segments freed.
    pub fn expire(&mut self, max: usize) -> usize {
        let before = self.stats.expired_segments;
        self.expiry_begin(max);
        while self.expiry_pending() {
            self.expiry_step(usize::MAX);
        }
        (self.stats.expired_segments - before) as usize
    }

    /// Starts an expiry pass (once a second): finds up to `max` segments
    /// whose items have all expired, and gives the crawler its budget. A
    /// pass still going on is folded into the new one.
    pub fn expiry_begin(&mut self, max: usize) {
        self.check_flush();
        let now = self.clock.now();
        let e = &mut self.expiry;
        // A segment half freed stays first, so its offset stays valid.
        e.segments.truncate(1);
        if e.segments.is_empty() {
            e.off = 0;
        }
        let going = e.segments.first().copied();
        let room = max.saturating_sub(e.segments.len());
        let found: Vec<(u32, u64)> = Self::expired_segments(&self.ttl, &self.segs, now)
            .filter(|&s| Some(s) != going)
            .take(room)
            .collect();
        let e = &mut self.expiry;
        e.segments.extend(found);
        e.crawl_budget = CRAWL_RECORDS;
        e.crawl_headers = self.segs.count();
        e.crawl_counted = false;
    }

    /// Hands a segment whose items have all expired, if there is one, to
    /// the expiry pass to free in its steps; whether there was one.
    pub(super) fn queue_expired_segment(&mut self) -> bool {
        let now = self.clock.now();
        let Some(found) = Self::expired_segments(&self.ttl, &self.segs, now).next() else {
            return false;
        };
        if self.expiry.segments.is_empty() {
            self.expiry.off = 0;
        }
        if !self.expiry.segments.contains(&found) {
            self.expiry.segments.push(found);
        }
        true
    }

    /// Whether the current expiry pass has whole expired segments left to
    /// free.
    #[inline]
    pub(super) fn expiry_has_segments(&self) -> bool {
        !self.expiry.segments.is_empty()
    }

    /// Whether the current expiry pass has work left.
    #[inline]
    pub fn expiry_pending(&self) -> bool {
        !self.expiry.segments.is_empty()
            || (self.expiry.crawl_budget > 0 && self.expiry.crawl_headers > 0)
    }

    /// Does at most `records` records' worth of the current pass: frees
    /// the expired segments it found, then crawls. Returns records read.
    pub fn expiry_step(&mut self, records: usize) -> usize {
        let now = self.clock.now();
        let mut read = 0;
        while read < records && !self.expiry.segments.is_empty() {
            let (id, seq) = self.expiry.segments[0];
            let h = self.segs.header(id);
            // Freed (by eviction, compaction or a sweep) and maybe taken
            // again, or written again since with a later expiry (an open
            // tail): not this pass's to free any more.
            if h.seq != seq || h.expire_at == 0 || h.expire_at > now {
                self.expiry.segments.remove(0);
                self.expiry.off = 0;
                continue;
            }
            let (off, n) = self.drop_records(id, self.expiry.off, records - read, true);
            read += n;
            self.expiry.off = off;
            if off >= self.segs.header(id).write_off {
                self.ttl.unlink(&mut self.segs, id);
                self.segs.release(id);
                self.stats.expired_segments += 1;
                self.expiry.segments.remove(0);
                self.expiry.off = 0;
            }
        }
        if read < records {
            read += self.crawl((records - read).min(self.expiry.crawl_budget));
        }
        read
    }

    /// Reclaims the expired items of segments that have some, reading at
    /// most `budget` records, from where the last call stopped (inside a
    /// segment if need be). Like memcached's LRU crawler, it keeps expired
    /// items from holding memory until eviction reaches them: the segments'
    /// live bytes then count only what is left, which is what compaction
    /// chooses by. Each segment crawled learns its earliest remaining
    /// expiry, so it is read again only once that has passed. Returns
    /// records read.
    pub(super) fn crawl(&mut self, budget: usize) -> usize {
        let now = self.clock.now();
        let n = self.segs.count() as u32;
        let mut read = 0;
        let mut visited = 0;
        while read < budget && self.expiry.crawl_headers > 0 && visited < HEADERS_PER_STEP {
            let e = &mut self.expiry;
            let id = e.crawl_at % n;
            let h = self.segs.header(id);
            if e.crawl_off == 0 || h.seq != e.crawl_seq {
                // At a segment's start (or its place was taken again).
                e.crawl_off = 0;
                e.crawl_earliest = 0;
                e.crawl_seq = h.seq;
                visited += 1;
                if h.seq == 0 || h.expire_min == 0 || h.expire_min > now {
                    e.crawl_at = (id + 1) % n;
                    e.crawl_headers -= 1;
                    continue;
                }
            }
            let end = h.write_off as usize;
            let mut off = e.crawl_off as usize;
            let mut earliest = e.crawl_earliest;
            while off < end && read < budget {
                let it = self.item_at(id, off as u32);
                let size = it.size();
                read += 1;
                let x = it.expire();
                if it.iflags() & DELETED == 0 && x != 0 {
                    if x <= now {
                        let hash = self.hash(it.key());
                        if let Some(r) = self.slot_at(hash, id, off as u32) {
                            self.count_reclaimed(it);
                            self.classes.at(classes::of_item(&it).0).crawler_reclaimed += 1;
                            self.stats.crawler_reclaimed += 1;
                            self.unlink(r, hash);
                        }
                    } else if earliest == 0 || x < earliest {
                        earliest = x;
                    }
                }
                off += size;
            }
            let e = &mut self.expiry;
            if off >= end {
                self.segs.header_mut(id).expire_min = earliest;
                e.crawl_at = (id + 1) % n;
                e.crawl_off = 0;
                e.crawl_headers -= 1;
            } else {
                // `crawl_off` > 0 marks the segment as entered.
                e.crawl_off = off as u32;
                e.crawl_earliest = earliest;
            }
        }
        self.expiry.crawl_budget -= read.min(self.expiry.crawl_budget);
        if read > 0 {
            if !self.expiry.crawl_counted {
                self.expiry.crawl_counted = true;
                self.stats.crawler_starts += 1;
            }
            self.stats.crawler_items_checked += read as u64;
        }
        read
    }

    /// Frees one segment whose items have all expired, now (a write that
    /// found no free segment); whether there was one.
    pub(super) fn expire_one_segment(&mut self) -> bool {
        self.check_flush();
        let now = self.clock.now();
        let Some((id, _)) = Self::expired_segments(&self.ttl, &self.segs, now).next() else {
            return false;
        };
        self.drop_segment(id, true);
        self.stats.expired_segments += 1;
        true
    }

    /// The segments in chains whose items have all expired by `now`, with
    /// their incarnations. Whole chains, not just their heads: a class spans
    /// a range of TTLs, so a later segment may expire before an earlier one.
    fn expired_segments<'a>(
        ttl: &'a TtlBuckets,
        segs: &'a Segments,
        now: u32,
    ) -> impl Iterator<Item = (u32, u64)> + 'a {
        ttl.chains.iter().flat_map(move |c| {
            std::iter::successors((c.head != NONE).then_some(c.head), move |&id| {
                let next = segs.header(id).next;
                (next != NONE).then_some(next)
            })
            .filter_map(move |id| {
                let h = segs.header(id);
                (h.expire_at != 0 && h.expire_at <= now).then_some((id, h.seq))
            })
        })
    }

    /// Runs steps of the current pass until it is done or `slice` has
    /// passed (at least one step): what the worker gives expiry in a loop
    /// turn. Returns records read.
    pub fn expiry_for(&mut self, slice: std::time::Duration) -> usize {
        let start = std::time::Instant::now();
        let mut read = 0;
        while self.expiry_pending() {
            read += self.expiry_step(EXPIRY_STEP);
            if start.elapsed() >= slice {
                break;
            }
        }
        read
    }

    /// Unlinks every live record of a segment from the index and frees it.
    pub(super) fn drop_segment(&mut self, id: u32, expired: bool) {
        self.drop_records(id, 0, usize::MAX, expired);
        self.ttl.unlink(&mut self.segs, id);
        self.segs.release(id);
    }

    /// Unlinks the live records of segment `id` from offset `from` on, at
    /// most `budget` records read, counting them reclaimed if `expired`
    /// (or flushed) and evicted otherwise. Returns the offset reached and
    /// the records read.
    fn drop_records(&mut self, id: u32, from: u32, budget: usize, expired: bool) -> (u32, usize) {
        let end = self.segs.header(id).write_off as usize;
        let (mut off, mut read) = (from as usize, 0);
        // The index buckets of the records a few ahead load while these
        // are unlinked, as the flush sweep does (`sweep.rs`).
        let mut ahead = from;
        for _ in 0..LOOKAHEAD.min(budget) {
            ahead = self.prefetch_record(id, ahead, end as u32);
        }
        while off < end && read < budget {
            ahead = self.prefetch_record(id, ahead, end as u32);
            let it = self.item_at(id, off as u32);
            let size = it.size();
            read += 1;
            if it.iflags() & DELETED == 0 {
                let key = it.key();
                let hash = self.hash(key);
                if let Some(r) = self.slot_at(hash, id, off as u32) {
                    // A flushed item met by eviction is reclaimed, as at
                    // memcached's LRU tail.
                    if expired || self.flush_hides(id, off as u32, it) {
                        self.count_reclaimed(it);
                    } else {
                        self.count_evicted(it);
                    }
                    self.unlink(r, hash);
                }
            }
            off += size;
        }
        (off as u32, read)
    }
}
