//! A warm restart (`-e`, `process::warm`) as the engine sees it: the hook
//! each worker runs on its store once it has stopped serving, and what
//! the restore at start-up brought back, for `stats`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use crate::store::snapshot::SnapshotCounts;
use crate::store::Store;

/// Runs on worker `id`'s thread after its last request, with its store
/// (saving it for the next process).
pub type AtStop = Box<dyn Fn(usize, &Store) + Send + Sync>;

/// What the restore at start-up did, summed over shards. Written by the
/// workers before they serve, read by `stats`.
#[derive(Default)]
pub struct Restored {
    /// `-e` was given: `stats` shows these figures.
    pub enabled: AtomicBool,
    /// Every shard was restored from a clean stop's files.
    pub warm: AtomicBool,
    /// Items linked again.
    pub items: AtomicU64,
    /// Items that had expired while no process ran.
    pub expired: AtomicU64,
    /// Items not restored for want of room.
    pub dropped: AtomicU64,
    /// The slowest shard's restore, microseconds (shards restore at once).
    pub micros: AtomicU64,
}

impl Restored {
    /// Adds one shard's restore, which took `micros`.
    pub fn add(&self, c: &SnapshotCounts, micros: u64) {
        self.items.fetch_add(c.items, Relaxed);
        self.expired.fetch_add(c.expired, Relaxed);
        self.dropped.fetch_add(c.dropped, Relaxed);
        self.micros.fetch_max(micros, Relaxed);
    }

    /// With `-e`: whether the start was warm, items restored, expired,
    /// dropped, and the restore's microseconds; None without `-e`.
    pub fn figures(&self) -> Option<(bool, u64, u64, u64, u64)> {
        self.enabled.load(Relaxed).then(|| {
            (
                self.warm.load(Relaxed),
                self.items.load(Relaxed),
                self.expired.load(Relaxed),
                self.dropped.load(Relaxed),
                self.micros.load(Relaxed),
            )
        })
    }

    /// `stats` lines (with `-e` only: memcached has no such fields).
    pub fn stats(&self) -> Vec<(&'static str, String)> {
        let Some((warm, items, expired, dropped, micros)) = self.figures() else {
            return Vec::new();
        };
        vec![
            ("warm_restart", (warm as u8).to_string()),
            ("warm_restored_items", items.to_string()),
            ("warm_expired_items", expired.to_string()),
            ("warm_dropped_items", dropped.to_string()),
            ("warm_restore_usec", micros.to_string()),
        ]
    }
}
