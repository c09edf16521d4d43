//! Notes of what the store did, for memcached's `watch` streams: each
//! lookup's outcome (fetchers), each store command's (mutations, written
//! by the execution layer), each eviction. Kept only while a watcher asks
//! for that kind: the engine sets `WatchNotes::kinds` once per loop turn
//! and takes the notes after each request; while no one watches, a
//! lookup pays one test of a field it already has in cache.

use super::classes;
use super::item::{RawItem, FETCHED};
use super::Store;

/// `kinds` bit: lookups (memcached's `fetchers`).
pub const FETCHERS: u32 = 1;
/// `kinds` bit: store commands (`mutations`).
pub const MUTATIONS: u32 = 2;
/// `kinds` bit: evictions (`evictions`).
pub const EVICTIONS: u32 = 4;

/// How a lookup ended: memcached's `item_get` statuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GetStatus {
    /// `not_found`.
    NotFound,
    /// `found`.
    Found,
    /// `flushed` (hidden by a `flush_prefix`).
    Flushed,
    /// `expired`.
    Expired,
}

/// One note.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Note {
    /// A lookup (memcached's `type=item_get`).
    Get {
        /// The key looked up.
        key: Box<[u8]>,
        /// What it found.
        status: GetStatus,
        /// The item's memcached size class when found, else 0.
        clsid: u8,
        /// The item's value length in bytes when found, else 0.
        size: usize,
    },
    /// A store command's outcome (`type=item_store`).
    Store {
        /// The key stored.
        key: Box<[u8]>,
        /// memcached's status word (`stored`, `not_stored`, `exists`,
        /// `not_found`, `too_large`, `no_memory`).
        status: &'static str,
        /// memcached's command word (`set`, `add`, `replace`, `append`,
        /// `prepend`, `cas`).
        cmd: &'static str,
        /// Seconds left to live, 0 for none.
        ttl: u32,
        /// The memcached size class of the item.
        clsid: u8,
        /// The value's length in bytes.
        size: usize,
    },
    /// A live item evicted (`type=eviction`).
    Evict {
        /// Its key.
        key: Box<[u8]>,
        /// It was read since stored.
        fetched: bool,
        /// Seconds it had left, -1 for none.
        ttl: i64,
        /// Seconds since its last access.
        la: u32,
        /// Its memcached size class.
        clsid: u8,
        /// Its value length in bytes.
        size: usize,
    },
}

/// The notes kept, and which kinds are wanted.
#[derive(Debug, Default)]
pub struct WatchNotes {
    /// The kinds wanted (`FETCHERS | MUTATIONS | EVICTIONS` bits).
    pub kinds: u32,
    /// Notes not yet taken, oldest first.
    pub notes: Vec<Note>,
}

impl WatchNotes {
    /// Whether notes of kind `k` are kept.
    #[inline]
    pub fn wants(&self, k: u32) -> bool {
        self.kinds & k != 0
    }

    pub(super) fn get(&mut self, key: &[u8], status: GetStatus, it: Option<&RawItem>) {
        let (clsid, size) = it.map_or((0, 0), |it| (classes::of_item(it).0, it.vlen()));
        self.notes.push(Note::Get {
            key: key.into(),
            status,
            clsid,
            size,
        });
    }

    pub(super) fn evict(&mut self, it: &RawItem, now: u32) {
        let e = it.expire();
        self.notes.push(Note::Evict {
            key: it.key().into(),
            fetched: it.iflags() & FETCHED != 0,
            ttl: if e == 0 {
                -1
            } else {
                i64::from(e) - i64::from(now)
            },
            la: it.idle_secs(now),
            clsid: classes::of_item(it).0,
            size: it.vlen(),
        });
    }
}

impl Store {
    /// Runs `f` with no `watch` fetch or mutation notes taken (a lookup
    /// or store the command does on top of the one memcached would log).
    /// Evictions are still noted: a store may evict, or assist a merge
    /// that evicts (`merge_assist`), and those items are gone all the same.
    pub fn unnoted<R>(&mut self, f: impl FnOnce(&mut Store) -> R) -> R {
        let kinds = self.notes.kinds;
        self.notes.kinds = kinds & EVICTIONS;
        let r = f(self);
        self.notes.kinds = kinds;
        r
    }

    /// A linked item's value length, expiry (store time, 0 = none) and
    /// memcached size class, without a lookup's side effects or notes
    /// (`watch`'s mutation lines describe the item just stored).
    pub fn peek(&self, key: &[u8]) -> Option<(usize, u32, u8)> {
        let slot = self.slot_for_key(self.hash(key), key)?;
        let it = self.slot_item(self.index.get(slot));
        Some((it.vlen(), it.expire(), classes::of_item(&it).0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{SetArgs, SetMode};

    fn store() -> Store {
        crate::store::test_store(8 << 20, 1_700_000_000)
    }

    fn statuses(s: &mut Store) -> Vec<GetStatus> {
        s.notes
            .notes
            .drain(..)
            .filter_map(|n| match n {
                Note::Get { status, .. } => Some(status),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn lookups_noted_only_while_wanted() {
        let mut s = store();
        s.find(b"k");
        assert!(s.notes.notes.is_empty());
        s.notes.kinds = FETCHERS;
        s.find(b"k");
        s.set(&SetArgs::new(SetMode::Set, b"k", b"v", 0, 0));
        s.set(&SetArgs::new(SetMode::Set, b"e", b"v", 0, -1));
        s.find(b"k");
        s.find(b"e");
        s.unnoted(|s| s.find(b"k"));
        use GetStatus::*;
        // set looks the key up first, as memcached's do_store_item.
        assert_eq!(
            statuses(&mut s),
            [NotFound, NotFound, NotFound, Found, Expired]
        );
        assert_eq!(s.peek(b"k").map(|p| p.0), Some(1));
    }

    /// A store run unnoted (as `mg` with `N` vivifies) still notes what it
    /// evicts, but not itself.
    #[test]
    fn an_unnoted_store_still_notes_its_evictions() {
        let mut s = store();
        s.notes.kinds = FETCHERS | MUTATIONS | EVICTIONS;
        let v = [b'v'; 1000];
        let mut i = 0;
        while s.stats.evictions == 0 {
            s.unnoted(|s| {
                s.set(&SetArgs::new(
                    SetMode::Set,
                    format!("k{i}").as_bytes(),
                    &v,
                    0,
                    0,
                ))
            });
            i += 1;
        }
        let notes = std::mem::take(&mut s.notes.notes);
        assert!(notes.iter().any(|n| matches!(n, Note::Evict { .. })));
        assert!(
            notes.iter().all(|n| matches!(n, Note::Evict { .. })),
            "only evictions"
        );
        assert_eq!(s.notes.kinds, FETCHERS | MUTATIONS | EVICTIONS);
    }
}
