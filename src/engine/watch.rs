//! `watch`: memcached's log streams (fetchers, mutations, evictions, ...)
//! to connections that ask for them.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Log lines dropped because a watcher's buffer was full
/// (`log_watcher_skipped`).
static SKIPPED: AtomicU64 = AtomicU64::new(0);
/// Log lines handed to watchers (`log_watcher_sent`).
static SENT: AtomicU64 = AtomicU64::new(0);
/// Watchers connected now (`log_watchers`).
static WATCHERS: AtomicU64 = AtomicU64::new(0);

/// `log_watcher_skipped`.
pub fn skipped() -> u64 {
    SKIPPED.load(Relaxed)
}

/// `log_watcher_sent`.
pub fn sent() -> u64 {
    SENT.load(Relaxed)
}

/// `log_watchers`.
pub fn watchers() -> u64 {
    WATCHERS.load(Relaxed)
}
