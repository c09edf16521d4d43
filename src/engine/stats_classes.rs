//! `stats items`, `stats slabs` and `stats sizes`: memcached's per-class
//! groups, from the store's accounting by memcached's size classes
//! (`store::classes`), summed over shards.
//!
//! Each worker publishes the classes that changed, at most once per loop
//! turn, into its own board (`ClassBoard`), behind a mutex only a `stats`
//! reader contends for; `stats` reads the boards and never asks a worker
//! for anything.

use crate::store::classes::{chunk_sizes, ClassStats, MAX_CLASSES, SLAB_PAGE};
use crate::store::Store;
use std::sync::Mutex;

/// One worker's published classes.
#[derive(Clone, Debug)]
pub struct Board {
    /// Index = class id (0 unused).
    pub classes: Vec<ClassStats>,
    /// Unix time of each class's least recently accessed item (0 =
    /// unknown), from the store's census.
    pub oldest_unix: Vec<i64>,
    /// Bytes of segments holding items (memcached's `total_malloced`).
    pub malloced: u64,
}

impl Default for Board {
    fn default() -> Self {
        Board {
            classes: vec![ClassStats::default(); MAX_CLASSES + 1],
            oldest_unix: vec![0; MAX_CLASSES + 1],
            malloced: 0,
        }
    }
}

/// Every worker's board.
pub struct ClassBoards(Vec<Mutex<Board>>);

impl ClassBoards {
    /// Empty boards for `n` workers.
    pub fn new(n: usize) -> ClassBoards {
        ClassBoards((0..n).map(|_| Mutex::new(Board::default())).collect())
    }

    /// Copies the classes of `store` that changed onto worker `id`'s board.
    pub fn publish(&self, id: usize, store: &mut Store) {
        let dirty = store.classes.take_dirty();
        if dirty == 0 {
            return;
        }
        let mut b = self.0[id].lock().unwrap_or_else(|e| e.into_inner());
        for cls in 1..=MAX_CLASSES {
            if dirty & (1 << cls) != 0 {
                let c = store.classes.c[cls];
                b.classes[cls] = c;
                b.oldest_unix[cls] = match c.oldest_atime {
                    0 => 0,
                    a => store.clock().to_unix(a),
                };
            }
        }
        b.malloced = store.segment_bytes_in_use() as u64;
    }

    /// The sum over workers: per class, and the bytes taken.
    fn sum(&self) -> (Vec<ClassStats>, Vec<i64>, u64) {
        let mut t = vec![ClassStats::default(); MAX_CLASSES + 1];
        let mut oldest = vec![0i64; MAX_CLASSES + 1];
        let mut malloced = 0;
        for b in &self.0 {
            let b = b.lock().unwrap_or_else(|e| e.into_inner());
            malloced += b.malloced;
            for (i, c) in b.classes.iter().enumerate() {
                add(&mut t[i], c);
                let o = b.oldest_unix[i];
                if o != 0 && c.number != 0 && (oldest[i] == 0 || o < oldest[i]) {
                    oldest[i] = o;
                }
            }
        }
        (t, oldest, malloced)
    }
}

fn add(t: &mut ClassStats, c: &ClassStats) {
    t.number += c.number;
    t.mem_requested += c.mem_requested;
    t.bytes += c.bytes;
    t.evicted += c.evicted;
    t.evicted_nonzero += c.evicted_nonzero;
    // The latest eviction's figure is per shard; the largest one stands
    // for the class.
    t.evicted_time = t.evicted_time.max(c.evicted_time);
    t.evicted_unfetched += c.evicted_unfetched;
    t.outofmemory += c.outofmemory;
    t.reclaimed += c.reclaimed;
    t.expired_unfetched += c.expired_unfetched;
    t.crawler_reclaimed += c.crawler_reclaimed;
    t.crawler_items_checked += c.crawler_items_checked;
    t.get_hits += c.get_hits;
    t.cmd_set += c.cmd_set;
    t.delete_hits += c.delete_hits;
    t.incr_hits += c.incr_hits;
    t.decr_hits += c.decr_hits;
    t.cas_hits += c.cas_hits;
    t.cas_badval += c.cas_badval;
    t.touch_hits += c.touch_hits;
}

/// Class ids with items now, in order.
fn with_items(t: &[ClassStats]) -> impl Iterator<Item = usize> + '_ {
    (1..t.len()).filter(|&i| t[i].number != 0 && i <= chunk_sizes().len())
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// `stats items`: memcached's 28 fields for every class holding items.
///
/// The store has one queue per TTL class, not memcached's hot/warm/cold
/// LRUs: every item counts as cold (`number_cold`, `hits_to_cold`), and
/// the hot and warm figures are 0, as memcached's are when its
/// segmented LRU is off. `age` is the least recently accessed item's idle
/// time as the store's census last found it. Figures of LRU machinery the
/// store does not have (tail repairs, reference-locked tails, moves
/// between LRUs, direct reclaims, evictions of active items: merge
/// eviction keeps read items instead) are 0, as memcached's are while
/// nothing triggers them.
pub fn items(boards: &ClassBoards) -> Vec<(String, String)> {
    let (t, oldest, _) = boards.sum();
    let now = unix_now();
    let mut v = Vec::new();
    for i in with_items(&t) {
        let c = &t[i];
        let age = if oldest[i] == 0 {
            0
        } else {
            (now - oldest[i]).max(0) as u64
        };
        let rows: [(&str, u64); 28] = [
            ("number", c.number),
            ("number_hot", 0),
            ("number_warm", 0),
            ("number_cold", c.number),
            ("age_hot", 0),
            ("age_warm", 0),
            ("age", age),
            ("mem_requested", c.mem_requested),
            ("evicted", c.evicted),
            ("evicted_nonzero", c.evicted_nonzero),
            ("evicted_time", c.evicted_time),
            ("outofmemory", c.outofmemory),
            ("tailrepairs", 0),
            ("reclaimed", c.reclaimed),
            ("expired_unfetched", c.expired_unfetched),
            ("evicted_unfetched", c.evicted_unfetched),
            ("evicted_active", 0),
            ("crawler_reclaimed", c.crawler_reclaimed),
            ("crawler_items_checked", c.crawler_items_checked),
            ("lrutail_reflocked", 0),
            ("moves_to_cold", 0),
            ("moves_to_warm", 0),
            ("moves_within_lru", 0),
            ("direct_reclaims", 0),
            ("hits_to_hot", 0),
            ("hits_to_warm", 0),
            ("hits_to_cold", c.get_hits),
            ("hits_to_temp", 0),
        ];
        for (k, n) in rows {
            v.push((format!("items:{i}:{k}"), n.to_string()));
        }
    }
    v
}

/// `stats slabs`: memcached's fields for every class holding items, then
/// `active_slabs` and `total_malloced`.
///
/// Segments are shared by all sizes, so a class has no pages of its own:
/// `total_pages` is what memcached would need for the class's items (its
/// chunks rounded up to 1 MiB pages), `total_chunks` those pages' chunks.
/// `total_malloced` is the segment memory really holding items.
pub fn slabs(boards: &ClassBoards) -> Vec<(String, String)> {
    let (t, _, malloced) = boards.sum();
    let sizes = chunk_sizes();
    let mut v = Vec::new();
    let mut active = 0;
    // memcached lists a class in `stats slabs` once it has pages, and a
    // flush keeps them: a class stays listed once an item was stored in
    // it (its cmd_set), not only while it holds items.
    let used =
        (1..t.len()).filter(|&i| (t[i].number != 0 || t[i].cmd_set != 0) && i <= sizes.len());
    for i in used {
        active += 1;
        let c = &t[i];
        let chunk = sizes[i - 1];
        let per_page = (SLAB_PAGE / chunk).max(1) as u64;
        let pages = c.number.div_ceil(per_page);
        let total = pages * per_page;
        let rows: [(&str, u64); 15] = [
            ("chunk_size", chunk as u64),
            ("chunks_per_page", per_page),
            ("total_pages", pages),
            ("total_chunks", total),
            ("used_chunks", c.number),
            ("free_chunks", total - c.number),
            ("free_chunks_end", 0),
            ("get_hits", c.get_hits),
            ("cmd_set", c.cmd_set),
            ("delete_hits", c.delete_hits),
            ("incr_hits", c.incr_hits),
            ("decr_hits", c.decr_hits),
            ("cas_hits", c.cas_hits),
            ("cas_badval", c.cas_badval),
            ("touch_hits", c.touch_hits),
        ];
        for (k, n) in rows {
            v.push((format!("{i}:{k}"), n.to_string()));
        }
    }
    v.push(("active_slabs".to_string(), active.to_string()));
    v.push(("total_malloced".to_string(), malloced.to_string()));
    v
}

/// `stats sizes`: memcached keeps the per-size histogram only with `-o
/// track_sizes`, off by default, and then answers this line alone; the
/// store keeps none either.
pub fn sizes() -> Vec<(String, String)> {
    vec![("sizes_status".to_string(), "disabled".to_string())]
}
