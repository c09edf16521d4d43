//! Notes of what the store did, for memcached's `watch` streams: each
//! lookup's outcome (fetchers), each store command's (mutations, written
//! by the execution layer), each eviction. Kept only while a watcher asks
//! for that kind: the engine sets `WatchNotes::kinds` once per loop turn
//! and takes the notes after each request; while no one watches, a
//! lookup pays one test of a field it already has in cache.

use super::classes;
use super::item::{RawItem, FETCHED};

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
