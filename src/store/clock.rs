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
    /// Store time at `source`'s instant: 2 from a fresh start, more when a
    /// warm restart continues an earlier process's clock (`resume`).
    base: u32,
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
            base: 2,
            source: Some(Instant::now()),
        }
    }

    /// Moves only when told to.
    pub fn manual(epoch_unix: i64) -> Clock {
        Clock {
            epoch_unix: epoch_unix - 2,
            now: 2,
            base: 2,
            source: None,
        }
    }

    /// Continues the store time of a clock whose store time 0 stood for
    /// `epoch_unix` (a warm restart: the restored records' expiries and
    /// access times stay as written), now that the wall clock reads
    /// `unix_now`. Never before `at_least` (the store time the old process
    /// stopped at), so a wall clock set back cannot revive what had expired.
    pub fn resume(&mut self, epoch_unix: i64, unix_now: i64, at_least: u32) {
        let now = (unix_now - epoch_unix)
            .max(at_least as i64)
            .min(u32::MAX as i64 / 2) as u32;
        self.epoch_unix = epoch_unix;
        self.now = now;
        self.base = now;
        if self.source.is_some() {
            self.source = Some(Instant::now());
        }
    }

    /// The Unix time (seconds) that store time 0 stands for.
    pub fn epoch_unix(&self) -> i64 {
        self.epoch_unix
    }

    /// Re-reads the time source (a no-op for a manual clock).
    #[inline]
    pub fn tick(&mut self) -> u32 {
        if let Some(start) = self.source {
            self.now = self.base + start.elapsed().as_secs() as u32;
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
    fn resume_continues_an_old_epoch_and_never_goes_back() {
        let mut c = Clock::manual(1_700_000_000);
        c.resume(1_699_000_000, 1_700_000_000, 5);
        assert_eq!(c.now(), 1_000_000);
        assert_eq!(c.to_unix(c.now()), 1_700_000_000);
        // The wall clock was set back below where the old process stopped.
        c.resume(1_699_000_000, 1_699_000_100, 500);
        assert_eq!(c.now(), 500);
        let mut s = Clock::system();
        s.resume(s.unix_now() - 1000, s.unix_now(), 0);
        assert!(s.tick() >= 1000);
    }

    #[test]
    fn manual_clock_advances() {
        let mut c = Clock::manual(0);
        let t = c.now();
        c.advance(5);
        assert_eq!(c.tick(), t + 5);
    }
}
