//! Expiry: segments whose items have all expired are freed whole, and a
//! crawler reclaims expired items from the others a few segments at a
//! time.

use super::classes;
use super::item::DELETED;
use super::segment::NONE;
use super::Store;

/// Records the crawler reads per call of `expire`, at most: about a
/// millisecond's work, once a second.
const CRAWL_RECORDS: usize = 32 * 1024;

impl Store {
    /// Frees whole segments whose items have all expired, at most `max` of
    /// them, then lets the crawler reclaim expired items from a few more:
    /// the bounded unit of work the worker loop calls between batches of
    /// requests (once a second). Returns the segments freed.
    pub fn expire(&mut self, max: usize) -> usize {
        let freed = self.expire_segments(max);
        self.crawl(CRAWL_RECORDS);
        freed
    }

    /// Reclaims the expired items of segments that have some, reading at
    /// most `budget` records, from where the last call stopped. Like
    /// memcached's LRU crawler, it keeps expired items from holding memory
    /// until eviction reaches them: the segments' live bytes then count only
    /// what is left, which is what compaction chooses by. Each segment
    /// crawled learns its earliest remaining expiry, so it is read again
    /// only once that has passed.
    pub(super) fn crawl(&mut self, budget: usize) {
        let now = self.clock.now();
        let n = self.segs.count() as u32;
        let mut read = 0;
        for _ in 0..n {
            if read >= budget {
                break;
            }
            let id = self.crawl_at;
            self.crawl_at = (id + 1) % n;
            let h = self.segs.header(id);
            if h.seq == 0 || h.expire_min == 0 || h.expire_min > now {
                continue;
            }
            let end = h.write_off as usize;
            let (mut off, mut earliest) = (0, 0u32);
            while off < end {
                let it = self.item_at(id, off as u32);
                let size = it.size();
                read += 1;
                let e = it.expire();
                if it.iflags() & DELETED == 0 && e != 0 {
                    if e <= now {
                        let hash = self.hash(it.key());
                        if let Some(r) = self.slot_at(hash, id, off as u32) {
                            self.count_reclaimed(it);
                            self.classes.at(classes::of_item(&it).0).crawler_reclaimed += 1;
                            self.stats.crawler_reclaimed += 1;
                            self.unlink(r, hash);
                        }
                    } else if earliest == 0 || e < earliest {
                        earliest = e;
                    }
                }
                off += size;
            }
            self.segs.header_mut(id).expire_min = earliest;
        }
        if read > 0 {
            self.stats.crawler_starts += 1;
            self.stats.crawler_items_checked += read as u64;
        }
    }

    /// Frees whole segments whose items have all expired, at most `max`.
    pub(super) fn expire_segments(&mut self, max: usize) -> usize {
        self.check_flush();
        let now = self.clock.now();
        let mut freed = 0;
        // Whole chains, not just their heads: a class spans a range of TTLs,
        // so a later segment may expire before an earlier one.
        for b in 0..self.ttl.chains.len() {
            let mut id = self.ttl.chains[b].head;
            while id != NONE && freed < max {
                let h = self.segs.header(id);
                let (next, e) = (h.next, h.expire_at);
                if e != 0 && e <= now {
                    self.drop_segment(id, true);
                    self.stats.expired_segments += 1;
                    freed += 1;
                }
                id = next;
            }
        }
        freed
    }

    /// Unlinks every live record of a segment from the index and frees it.
    pub(super) fn drop_segment(&mut self, id: u32, expired: bool) {
        let end = self.segs.header(id).write_off as usize;
        let mut off = 0;
        while off < end {
            let it = self.item_at(id, off as u32);
            let size = it.size();
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
        self.ttl.unlink(&mut self.segs, id);
        self.segs.release(id);
    }
}
