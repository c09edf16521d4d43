//! The store's sense of time: whole seconds since the process started, as
//! memcached's `current_time`. A manual clock lets tests move time without
//! sleeping.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// memcached's cut-over: larger exptimes are absolute Unix times.
pub const REALTIME_MAXDELTA: i64 = 60 * 60 * 24 * 30;

/// Store time of an item that expired on arrival; any `now` is past it.
pub const EXPIRED: u32 = 1;

/// Store time: whole seconds, starting at 2, that items' expiries and access
/// times are kept in.
#[derive(Clone, Debug)]
pub struct Clock {
    /// Unix time that store time 0 stands for.
    epoch_unix: i64,
    now: u32,
    source: Option<Instant>,
}

impl Clock {
    /// Follows the wall clock; call `tick` to advance.
    pub fn system() -> Clock {
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        // Start at 2 so that EXPIRED (1) is always in the past.
        Clock {
            epoch_unix: unix - 2,
            now: 2,
            source: Some(Instant::now()),
        }
    }

    /// Moves only when told to.
    pub fn manual(epoch_unix: i64) -> Clock {
        Clock {
            epoch_unix: epoch_unix - 2,
            now: 2,
            source: None,
        }
    }

    /// Re-reads the time source (a no-op for a manual clock).
    #[inline]
    pub fn tick(&mut self) -> u32 {
        if let Some(start) = self.source {
            self.now = 2 + start.elapsed().as_secs() as u32;
        }
        self.now
    }

    /// Moves the clock `secs` seconds forward (tests, and `debugtime`-like
    /// tools), its source along with it.
    pub fn advance(&mut self, secs: u32) {
        self.now += secs;
        if let Some(start) = self.source.as_mut() {
            *start -= std::time::Duration::from_secs(secs as u64);
        }
    }

    /// Store time as of the last `tick` (or `advance`).
    #[inline]
    pub fn now(&self) -> u32 {
        self.now
    }

    /// The Unix time (seconds) that `now` stands for.
    pub fn unix_now(&self) -> i64 {
        self.epoch_unix + self.now as i64
    }

    /// The Unix time (seconds) that store time `t` stands for.
    pub fn to_unix(&self, t: u32) -> i64 {
        self.epoch_unix + t as i64
    }

    /// memcached's `realtime()`: a client exptime to store time.
    /// 0 = never, negative = already expired, up to 30 days relative,
    /// beyond that an absolute Unix time.
    pub fn expire_at(&self, exptime: i64) -> u32 {
        if exptime == 0 {
            return 0;
        }
        if exptime < 0 {
            return EXPIRED;
        }
        if exptime > REALTIME_MAXDELTA {
            if exptime <= self.epoch_unix {
                return EXPIRED;
            }
            return (exptime - self.epoch_unix).min(u32::MAX as i64) as u32;
        }
        (self.now as i64 + exptime).min(u32::MAX as i64) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exptime_rules() {
        let c = Clock::manual(1_700_000_000);
        assert_eq!(c.expire_at(0), 0);
        assert_eq!(c.expire_at(-1), EXPIRED);
        assert_eq!(c.expire_at(10), c.now() + 10);
        assert_eq!(
            c.expire_at(REALTIME_MAXDELTA),
            c.now() + REALTIME_MAXDELTA as u32
        );
        assert_eq!(c.expire_at(c.unix_now() + 50), c.now() + 50);
        assert_eq!(c.expire_at(REALTIME_MAXDELTA + 1), EXPIRED);
    }

    #[test]
    fn manual_clock_advances() {
        let mut c = Clock::manual(0);
        let t = c.now();
        c.advance(5);
        assert_eq!(c.tick(), t + 5);
    }
}
