//! `flush_all`, lazy as memcached's: the call costs O(open segments), and
//! the items it hides are reclaimed afterwards, a slice at a time.
//!
//! memcached sets `oldest_live` (and `oldest_cas`) and treats an item older
//! than that as missing when a lookup meets it (counting `get_flushed`);
//! its LRU maintainer reclaims the rest within moments. Here the flush is a
//! [`WriteMark`]: a lookup that meets a record written before it unlinks
//! the record and misses, merge eviction drops such records instead of
//! copying them, and the worker's paced sweep (`Store::sweep_step`) walks
//! every segment once, unlinking what the mark hides and freeing segments
//! left empty. An eager flush had to clear the whole hash index at once:
//! 2.2 ms of one worker's time at `-m 1024`, 13 ms at 4 GB, against
//! memcached's 24 µs.

use super::item::RawItem;
use super::mark::WriteMark;
use super::sweep::Cursor;
use super::{clock, Store};

/// A `flush_all` whose sweep has not yet read every segment.
#[derive(Clone, Debug)]
pub(super) struct PendingFlush {
    /// Records written before this are flushed.
    mark: WriteMark,
    /// Where the sweep stands.
    cursor: Cursor,
}

impl Store {
    /// `flush_all`: with `delay` 0 (or negative) every item stored so far is
    /// a miss from now on; otherwise that happens when memcached's would,
    /// a second before `delay` (an exptime as memcached reads it:
    /// relative up to 30 days, else absolute), and what is stored during
    /// that second is a miss too. A later call replaces a pending time.
    pub fn flush(&mut self, delay: i64) {
        let now = self.clock.now();
        if delay <= 0 {
            self.flush_at = 0;
            self.oldest_live = now - 1;
            self.flush_now();
            return;
        }
        // memcached (with CAS): oldest_live = realtime(delay) - 1, and items
        // are flushed once that is at or before now, so `flush_all 1` acts
        // at once and `flush_all N` N - 1 seconds on. An absolute time
        // before the process started makes realtime() 1, oldest_live 0,
        // which memcached reads as "no flush": it never flushes then.
        let at = self.clock.expire_at(delay);
        if at <= clock::EXPIRED {
            return;
        }
        let oldest = at - 1;
        self.oldest_live = oldest;
        if oldest <= now {
            self.flush_now();
            self.flush_again(now);
        } else {
            self.flush_at = oldest;
        }
    }

    /// After a delayed flush acted at `now`: memcached hides every item
    /// whose time (its store second) is at or before `oldest_live`, so
    /// what is written during the rest of that second is hidden too, and
    /// only what comes from the next second on stays (a breaker found
    /// `flush_all 2`, then a set a second later, read back here and not in
    /// memcached 1.6.18). The mark is taken once more when that second
    /// ends; that second taking, a second after `oldest_live`, asks for
    /// none again.
    fn flush_again(&mut self, now: u32) {
        if self.oldest_live == now {
            self.flush_at = now + 1;
        }
    }

    /// memcached's `oldest_live` (`stats settings` `oldest`): the store
    /// time of the last `flush_all`, or the one pending, less one second
    /// (memcached's with CAS on); 0 before any.
    pub fn oldest_live(&self) -> u32 {
        self.oldest_live
    }

    /// Runs the pending delayed flush if its time has come.
    #[inline]
    pub(super) fn check_flush(&mut self) {
        let now = self.clock.now();
        if self.flush_at != 0 && now >= self.flush_at {
            self.flush_now();
            self.flush_again(now);
        }
    }

    /// Hides everything written so far. Pending prefix rows hide part of
    /// what the new mark hides, and a pending flush all of it: they go.
    fn flush_now(&mut self) {
        self.flush_at = 0;
        self.clear_prefixes();
        self.flushed = Some(PendingFlush {
            mark: self.write_mark(),
            cursor: Cursor::default(),
        });
    }

    /// Empties the store before returning, in O(records): a warm restart
    /// that failed part-way starts cold, before any client is served.
    pub(super) fn empty_now(&mut self) {
        self.flush_now();
        while self.flushed.is_some() {
            self.sweep_flush(usize::MAX);
        }
    }

    /// Whether the pending `flush_all` hides the record at (`seg`, `off`).
    #[inline]
    pub(super) fn flush_hides(&self, seg: u32, off: u32, it: RawItem) -> bool {
        self.flush_second_runs()
            || self
                .flushed
                .as_ref()
                .is_some_and(|f| f.mark.hides_cas(self.record_cas(seg, off, it)))
    }

    /// Whether a lookup must ask [`Store::flush_hides`]: a flush is being
    /// swept, or one acted this second (whose sweep, in a small store,
    /// may be over within it).
    #[inline]
    pub(super) fn flush_may_hide(&self) -> bool {
        self.sweep_pending() || self.flush_second_runs()
    }

    /// Whether a delayed flush acted this second and is to be taken again
    /// when it ends ([`Store::flush_again`]): until then memcached hides
    /// even what is written now, whose time is this second.
    #[inline]
    fn flush_second_runs(&self) -> bool {
        self.flush_at != 0
            && self.flush_at == self.oldest_live + 1
            && self.clock.now() == self.oldest_live
    }

    /// Whether a flush, whole or by prefix, hides the record: it is no
    /// longer there for a read, a scan, a copy or a snapshot.
    #[inline]
    pub(super) fn hidden(&self, seg: u32, off: u32, it: RawItem) -> bool {
        self.flush_hides(seg, off, it) || self.prefix_hides(seg, off, it)
    }

    /// Whether a flush, whole or by prefix, still has records to reclaim:
    /// the worker then calls [`Store::sweep_step`] every millisecond.
    pub fn sweep_pending(&self) -> bool {
        self.flushed.is_some() || !self.prefixes.is_empty()
    }

    /// One slice of reclaiming what flushes hide, reading at most about
    /// `budget` records: the pending `flush_all` first, then prefix rows.
    /// Returns the records read.
    pub fn sweep_step(&mut self, budget: usize) -> usize {
        let (read, _) = self.sweep_flush(budget);
        if read < budget && !self.prefixes.is_empty() {
            self.sweep_prefixes(budget - read);
        }
        read
    }

    /// For eviction: reclaims flushed records until a segment is freed or
    /// the sweep is over. Reclaiming what was flushed comes before evicting
    /// anything stored since. Unbounded in records on purpose: a segment
    /// holds up to hundreds of thousands of tiny records (a budget of 64 Ki
    /// records freed none of an 8 MiB segment, and `-M` answered out of
    /// memory with the store full of flushed items); what it reads, the
    /// sweep never reads again.
    pub(super) fn sweep_flush_for_room(&mut self) -> bool {
        while self.flushed.is_some() {
            if self.sweep_flush(4096).1 > 0 {
                return true;
            }
        }
        false
    }

    /// Sweeps the pending `flush_all` for `budget` records; drops the
    /// flush once every segment has been read. Returns (records read,
    /// segments freed).
    fn sweep_flush(&mut self, budget: usize) -> (usize, usize) {
        let Some(mut cur) = self.flushed.as_ref().map(|f| f.cursor) else {
            return (0, 0);
        };
        let mut freed = 0;
        let read = self.walk_records(
            &mut cur,
            budget,
            |s, seg, off, it| {
                if s.flush_hides(seg, off, it) {
                    s.reclaim_hidden(seg, off, it);
                }
            },
            |s, seg| freed += s.free_if_empty(seg) as usize,
        );
        if cur.done(self.segs.count()) {
            self.flushed = None;
        } else if let Some(f) = self.flushed.as_mut() {
            f.cursor = cur;
        }
        (read, freed)
    }

    /// Unlinks a flushed record the sweep met, counting it `reclaimed`.
    fn reclaim_hidden(&mut self, seg: u32, off: u32, it: RawItem) {
        // Counted after: unlinking keeps the FETCHED bit the count reads.
        if self.unlink_record(seg, off, it) {
            self.count_reclaimed(it);
        }
    }

    /// Frees a segment left with no live record (emptied by a sweep, or
    /// all replaced and deleted before) rather than wait for eviction,
    /// unless writes still go there (a chain's open tail, the reserve).
    pub(super) fn free_if_empty(&mut self, id: u32) -> bool {
        let h = self.segs.header(id);
        if h.seq == 0
            || h.live_items != 0
            || id == self.reserve
            || self.ttl.chains[h.ttl_bucket as usize].tail == id
        {
            return false;
        }
        self.ttl.unlink(&mut self.segs, id);
        self.segs.release(id);
        true
    }
}

#[cfg(test)]
#[path = "flush_tests.rs"]
mod tests;
