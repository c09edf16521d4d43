//! TTLs as memcached reads them.
//!
//! memcached's exptime is seconds: 0 means never, up to 30 days it is
//! relative, above that it is an absolute Unix time (`REALTIME_MAXDELTA`
//! in memcached.c). This client takes every TTL as a relative
//! [`Duration`]: zero means no expiry, a fraction of a second rounds up to
//! a whole one (a TTL given must not vanish), and a TTL above 30 days is
//! sent as the absolute time it ends at, clamped to `i32::MAX` (2038-01-19
//! 03:14:07 UTC): both servers read the exptime as a signed 32-bit number,
//! so a later time would come out in the past and the item would vanish at
//! once while the store reported success. Any TTL, up to `Duration::MAX`,
//! is accepted; one ending after 2038 ends then.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The longest exptime memcached takes as relative, in seconds.
const REALTIME_MAXDELTA: u64 = 60 * 60 * 24 * 30;

/// The latest absolute exptime the servers read as the future.
pub(crate) const MAX_ABSOLUTE: u64 = i32::MAX as u64;

/// The exptime token for a relative TTL.
pub(crate) fn exptime(ttl: Duration) -> u64 {
    if ttl.is_zero() {
        return 0;
    }
    let secs = ttl
        .as_secs()
        .saturating_add(u64::from(ttl.subsec_nanos() > 0));
    if secs <= REALTIME_MAXDELTA {
        return secs;
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    now.saturating_add(secs).min(MAX_ABSOLUTE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_zero_rounding_and_absolute() {
        assert_eq!(exptime(Duration::ZERO), 0);
        assert_eq!(exptime(Duration::from_millis(1)), 1);
        assert_eq!(exptime(Duration::from_millis(1500)), 2);
        assert_eq!(
            exptime(Duration::from_secs(REALTIME_MAXDELTA)),
            REALTIME_MAXDELTA
        );
        // The absolute time is read from the clock between `before` and
        // `after`: bounded by both, however long a loaded machine takes.
        let unix = || {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs()
        };
        let before = unix();
        let abs = exptime(Duration::from_secs(REALTIME_MAXDELTA + 1));
        let after = unix();
        let ttl = REALTIME_MAXDELTA + 1;
        assert!(abs >= before + ttl && abs <= after + ttl, "{abs}");
        for huge in [
            Duration::MAX,
            Duration::from_secs(u64::MAX),
            Duration::from_secs(u32::MAX as u64),
            Duration::from_secs(100 * 365 * 86_400),
        ] {
            assert_eq!(exptime(huge), MAX_ABSOLUTE, "{huge:?}");
        }
    }
}
