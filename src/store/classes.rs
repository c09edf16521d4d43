//! memcached's slab classes, as a lens on the segment store: every item
//! is counted in the class memcached would have put it in, so `stats
//! items`, `stats slabs`, `lru_crawler metadump` (`cls=`, `size=`) and
//! tools that parse class ids (memcached-tool `display`, libmemcached's
//! `memcdump`) keep working. The store has no slabs: items are packed
//! into segments whatever their size; the classes only sort the counts.
//!
//! Counts are kept where the store links, retires, moves, evicts and
//! reclaims a record (`write`, `retire`, `copy_record`, `count_evicted`,
//! `count_reclaimed`): an array increment beside the store's own counters.
//! A bitmask says which classes changed, so the engine publishes only
//! those (engine/worker.rs `publish`).

/// memcached's default smallest chunk (`-n`, `chunk_size`), bytes.
pub const CHUNK_SIZE: usize = 48;
/// memcached's default growth factor (`-f`).
pub const GROWTH_FACTOR: f64 = 1.25;
/// memcached's `slab_chunk_max` for the default 1 MiB page: half a page.
pub const SLAB_CHUNK_MAX: usize = 512 * 1024;
/// memcached's slab page (`slab_page_size`), bytes.
pub const SLAB_PAGE: usize = 1024 * 1024;
/// memcached's `sizeof(item)` on a 64-bit build, bytes.
const ITEM_HEADER: usize = 48;
/// Most classes memcached has (`MAX_NUMBER_OF_SLAB_CLASSES` - 1); class
/// ids run from 1, id 0 is unused.
pub const MAX_CLASSES: usize = 63;

/// The chunk size of each class, index 0 = class 1: memcached's
/// `slabs_init` for the default `-n 48 -f 1.25` and 1 MiB pages (96, 120,
/// 152, ... 394840, then 524288 for class 39).
pub fn chunk_sizes() -> &'static [usize] {
    static SIZES: std::sync::OnceLock<Vec<usize>> = std::sync::OnceLock::new();
    SIZES.get_or_init(|| {
        let mut v = Vec::new();
        let mut size = (ITEM_HEADER + CHUNK_SIZE) as f64;
        while v.len() < MAX_CLASSES - 1 {
            let s = (size as usize).next_multiple_of(8);
            if s as f64 > SLAB_CHUNK_MAX as f64 / GROWTH_FACTOR {
                break;
            }
            v.push(s);
            size = s as f64 * GROWTH_FACTOR;
        }
        v.push(SLAB_CHUNK_MAX);
        v
    })
}

/// The bytes memcached 1.6 would allocate for an item (`item_make_header`
/// plus CAS): header, key and its NUL, the client flags when not 0, the
/// value and its `\r\n`, 8 bytes of CAS. What `metadump`'s `size=` and
/// `mem_requested` report.
#[inline]
pub fn memcached_size(klen: usize, vlen: usize, flags: u32) -> usize {
    ITEM_HEADER + 8 + klen + 1 + if flags == 0 { 0 } else { 4 } + vlen + 2
}

/// The class id (1-based) memcached would store an item of `size`
/// (`memcached_size`) bytes in; items over `slab_chunk_max` are chunked
/// by memcached and counted in the largest class, as here.
#[inline]
pub fn class_of(size: usize) -> u8 {
    let s = chunk_sizes();
    let i = s.partition_point(|&c| c < size);
    (i.min(s.len() - 1) + 1) as u8
}

/// An item's class and `memcached_size`.
#[inline]
pub fn of_item(it: &super::RawItem) -> (u8, usize) {
    let m = memcached_size(it.klen(), it.vlen(), it.flags());
    (class_of(m), m)
}

/// One class's figures, memcached's `stats items` / `stats slabs` names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClassStats {
    /// Items linked now (`number`, `used_chunks`).
    pub number: u64,
    /// Sum of their `memcached_size` (`mem_requested`), bytes.
    pub mem_requested: u64,
    /// Sum of their record sizes in segments, bytes (what they really
    /// take here; `total_pages` is this in 1 MiB pages, rounded up).
    pub bytes: u64,
    /// Live items evicted (`evicted`).
    pub evicted: u64,
    /// Of those, with a TTL (`evicted_nonzero`).
    pub evicted_nonzero: u64,
    /// Seconds since the last evicted item's last access (`evicted_time`).
    pub evicted_time: u64,
    /// Of those, never read (`evicted_unfetched`).
    pub evicted_unfetched: u64,
    /// Writes refused for want of memory (`outofmemory`).
    pub outofmemory: u64,
    /// Expired items reclaimed (`reclaimed`).
    pub reclaimed: u64,
    /// Of those, never read (`expired_unfetched`).
    pub expired_unfetched: u64,
    /// Expired items the crawler reclaimed (`crawler_reclaimed`).
    pub crawler_reclaimed: u64,
    /// Items the crawler looked at (`crawler_items_checked`).
    pub crawler_items_checked: u64,
    /// Reads that hit (`get_hits`): `get`/`gets`/`gat` through the store.
    pub get_hits: u64,
    /// Stores of a new value into this class (`cmd_set`).
    pub cmd_set: u64,
    /// `delete_hits`, `incr_hits`, `decr_hits`, `cas_hits`, `cas_badval`,
    /// `touch_hits`: as memcached's per-class counters.
    pub delete_hits: u64,
    /// See `delete_hits`.
    pub incr_hits: u64,
    /// See `delete_hits`.
    pub decr_hits: u64,
    /// See `delete_hits`.
    pub cas_hits: u64,
    /// See `delete_hits`.
    pub cas_badval: u64,
    /// See `delete_hits`.
    pub touch_hits: u64,
    /// Last access time (store seconds) of the least recently accessed
    /// item the last complete census pass found (`age`); 0 = none seen.
    pub oldest_atime: u32,
}

/// Every class's figures for one shard, and which changed since the
/// engine last published them.
#[derive(Clone, Debug)]
pub struct ClassTable {
    /// Index = class id (0 unused).
    pub c: [ClassStats; MAX_CLASSES + 1],
    /// Bit i: class i changed since `take_dirty`.
    pub dirty: u64,
    /// The census (`Store::census_step`): where it stands, and the oldest
    /// access time per class it has seen so far in this pass.
    pub(super) census_at: super::scan::ScanCursor,
    pub(super) census_oldest: [u32; MAX_CLASSES + 1],
}

impl Default for ClassTable {
    fn default() -> Self {
        ClassTable {
            c: [ClassStats::default(); MAX_CLASSES + 1],
            dirty: 0,
            census_at: 0,
            census_oldest: [0; MAX_CLASSES + 1],
        }
    }
}

impl ClassTable {
    /// The class's figures, marked changed.
    #[inline]
    pub fn at(&mut self, cls: u8) -> &mut ClassStats {
        self.dirty |= 1 << cls;
        &mut self.c[cls as usize]
    }

    /// Which classes changed since the last call (bit i = class i).
    pub fn take_dirty(&mut self) -> u64 {
        std::mem::take(&mut self.dirty)
    }
}

impl super::Store {
    /// One bounded step of the census that finds each class's least
    /// recently accessed item (`stats items` `age`): reads at most
    /// `max_records` records in segment order from where the last step
    /// stopped; at the end of a pass, publishes what it found and starts
    /// over. Returns the records read.
    pub fn census_step(&mut self, max_records: usize) -> usize {
        let now = self.clock.now();
        let n = self.segs.count() as u32;
        let t = &mut self.classes;
        let (mut seg, mut off) = ((t.census_at >> 32) as u32, t.census_at as u32);
        let mut read = 0;
        while seg < n {
            let h = self.segs.header(seg);
            if h.seq == 0 || h.live_items == 0 || off >= h.write_off {
                (seg, off) = (seg + 1, 0);
                continue;
            }
            if read >= max_records {
                t.census_at = ((seg as u64) << 32) | off as u64;
                return read;
            }
            // SAFETY: offsets below `write_off` step from record to record
            // of a segment in use, as `scan` walks them.
            let it = unsafe { super::RawItem::at(self.segs.ptr(seg, off as usize)) };
            read += 1;
            let e = it.expire();
            if it.iflags() & super::item::DELETED == 0 && (e == 0 || e > now) {
                let cls = of_item(&it).0 as usize;
                let a = now.saturating_sub(it.idle_secs(now)).max(1);
                if t.census_oldest[cls] == 0 || a < t.census_oldest[cls] {
                    t.census_oldest[cls] = a;
                }
            }
            off += it.size() as u32;
        }
        for cls in 1..=MAX_CLASSES {
            let a = std::mem::take(&mut t.census_oldest[cls]);
            if t.c[cls].oldest_atime != a {
                t.at(cls as u8).oldest_atime = a;
            }
        }
        t.census_at = 0;
        read
    }

    /// Seconds since `oldest_atime` (memcached's `age`); 0 when unknown.
    pub fn class_age(&self, c: &ClassStats) -> u64 {
        if c.oldest_atime == 0 || c.number == 0 {
            return 0;
        }
        self.clock.now().saturating_sub(c.oldest_atime) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_are_memcached_defaults() {
        let s = chunk_sizes();
        assert_eq!(s.len(), 39);
        assert_eq!(&s[..6], &[96, 120, 152, 192, 240, 304]);
        assert_eq!(s[37], 394_840);
        assert_eq!(s[38], 524_288);
    }

    #[test]
    fn items_land_where_memcached_puts_them() {
        // Measured on memcached 1.6.18: `set k 0 0 100` -> class 4, 160 b;
        // `set kf 5 100 3` -> class 1, 68 b.
        assert_eq!(memcached_size(1, 100, 0), 160);
        assert_eq!(class_of(160), 4);
        assert_eq!(memcached_size(2, 3, 5), 68);
        assert_eq!(class_of(68), 1);
        assert_eq!(class_of(96), 1);
        assert_eq!(class_of(97), 2);
        assert_eq!(class_of(2 << 20), 39);
    }
}
