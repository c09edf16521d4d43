//! `stats detail`: memcached's per-prefix counts of gets, hits, sets and
//! deletes (its stats_prefix.c), kept while `stats detail on` (or `-D`)
//! asks for them.
//!
//! One table for all workers behind a mutex, as memcached's behind its
//! stats lock: it is a debugging aid, off by default, and while off a
//! command pays one relaxed load. The table holds at most
//! [`MAX_PREFIXES`] prefixes (memcached's grows without bound); keys of
//! further prefixes are not counted.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Mutex;

/// Prefixes the table holds at most.
pub const MAX_PREFIXES: usize = 10_000;

/// One prefix's counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Row {
    gets: u64,
    hits: u64,
    sets: u64,
    deletes: u64,
}

/// The per-prefix table and whether it is being kept.
#[derive(Debug)]
pub struct Detail {
    on: AtomicBool,
    delimiter: u8,
    rows: Mutex<BTreeMap<Box<[u8]>, Row>>,
}

impl Default for Detail {
    fn default() -> Self {
        Detail::new(b':', false)
    }
}

impl Detail {
    /// A table for prefixes ending at `delimiter` (`-D`), kept from the
    /// start when `on`.
    pub fn new(delimiter: u8, on: bool) -> Detail {
        Detail {
            on: AtomicBool::new(on),
            delimiter,
            rows: Mutex::new(BTreeMap::new()),
        }
    }

    /// Whether commands are being counted (`stats settings`
    /// `detail_enabled`).
    #[inline]
    pub fn enabled(&self) -> bool {
        self.on.load(Relaxed)
    }

    /// `stats detail on|off`. Counts kept so far stay (memcached's).
    pub fn set_enabled(&self, on: bool) {
        self.on.store(on, Relaxed);
    }

    /// A text get/gets/gat/gats key, binary GET/GAT/TOUCH: counted, and
    /// as a hit when `hit`.
    #[inline]
    pub fn get(&self, key: &[u8], hit: bool) {
        if self.enabled() {
            self.record(key, |r| {
                r.gets += 1;
                r.hits += hit as u64;
            });
        }
    }

    /// A store command (text set/add/replace/append/prepend/cas, binary
    /// SET/ADD/REPLACE/APPEND/PREPEND), whatever its outcome.
    #[inline]
    pub fn set(&self, key: &[u8]) {
        if self.enabled() {
            self.record(key, |r| r.sets += 1);
        }
    }

    /// A text or binary delete, found or not.
    #[inline]
    pub fn delete(&self, key: &[u8]) {
        if self.enabled() {
            self.record(key, |r| r.deletes += 1);
        }
    }

    /// `stats reset` empties the table (memcached's stats_prefix_clear).
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// `stats detail dump`: one `PREFIX <p> get <n> hit <n> set <n> del
    /// <n>` line per prefix (sorted; memcached's order is its hash
    /// table's), then `END`.
    pub fn dump(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (p, r) in self.lock().iter() {
            out.extend_from_slice(b"PREFIX ");
            out.extend_from_slice(p);
            let nums = format!(
                " get {} hit {} set {} del {}\r\n",
                r.gets, r.hits, r.sets, r.deletes
            );
            out.extend_from_slice(nums.as_bytes());
        }
        out.extend_from_slice(b"END\r\n");
        out
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<Box<[u8]>, Row>> {
        // A panic elsewhere while holding it leaves counts, not a broken
        // structure: keep serving them.
        self.rows.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The key's prefix: the bytes before the delimiter; none (not
    /// counted) without one, or with a NUL before it (memcached's C
    /// string ends there).
    fn prefix<'k>(&self, key: &'k [u8]) -> Option<&'k [u8]> {
        let end = key.iter().position(|&c| c == self.delimiter || c == 0)?;
        (key[end] == self.delimiter).then(|| &key[..end])
    }

    fn record(&self, key: &[u8], f: impl FnOnce(&mut Row)) {
        let Some(p) = self.prefix(key) else { return };
        let mut rows = self.lock();
        if let Some(r) = rows.get_mut(p) {
            f(r);
        } else if rows.len() < MAX_PREFIXES {
            f(rows.entry(p.into()).or_default());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_prefix_only_while_on() {
        let d = Detail::new(b':', false);
        d.get(b"a:1", true);
        d.set(b"a:1");
        assert_eq!(d.dump(), b"END\r\n");
        d.set_enabled(true);
        d.get(b"a:1", true);
        d.get(b"a:2", false);
        d.set(b"a:3");
        d.delete(b"b:1");
        d.set(b"nodelimiter");
        d.set(b":empty");
        assert_eq!(
            String::from_utf8(d.dump()).unwrap(),
            "PREFIX  get 0 hit 0 set 1 del 0\r\n\
             PREFIX a get 2 hit 1 set 1 del 0\r\n\
             PREFIX b get 0 hit 0 set 0 del 1\r\nEND\r\n"
        );
        d.clear();
        assert_eq!(d.dump(), b"END\r\n");
    }

    #[test]
    fn bounded() {
        let d = Detail::new(b'/', true);
        for i in 0..MAX_PREFIXES + 5 {
            d.set(format!("{i}/k").as_bytes());
        }
        d.set(b"0/k");
        let dump = String::from_utf8(d.dump()).unwrap();
        assert_eq!(dump.lines().count(), MAX_PREFIXES + 1);
        assert!(dump.contains("PREFIX 0 get 0 hit 0 set 2 del 0\r\n"));
    }
}
