//! The admin port's brake on password guessing: each peer may fail to log
//! in [`FAILURES`] times within [`WINDOW`]; past that, its requests with
//! credentials get `429 Too Many Requests` (with `Retry-After`) without
//! their password being checked, until the window ends.
//!
//! The password file's salted hashes are one SHA-256 (fast, as memcached's
//! plain passwords are free to compare), so what makes guessing slow over
//! the admin port is this limit, not the hash. A right password is refused
//! too while its peer is braked: otherwise the brake would only change the
//! wrong answers, and guessing would go on.
//!
//! Peers are counted by address (an IPv6 address by its /64, which one
//! host usually holds whole). The table holds at most [`PEERS_MAX`] peers:
//! when it is full, windows that have ended are dropped, and if none has,
//! the peer with the fewest failures (of those, the one whose window began
//! first) makes room. A peer that never failed is never braked: new peers
//! once shared one entry when the table was full, and 4,106 failed logins
//! from as many addresses locked every other address out, the right
//! password included (found by a reviewer). A braked peer is never the one
//! to make room while a peer less braked is tracked: when the oldest window
//! made room, a braked peer freed itself with one failed login from each of
//! 4,096 other addresses (127/8 is 16 M addresses on one host), and went on
//! guessing at full speed (found by a breaker).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failed logins a peer may make within one [`WINDOW`].
pub const FAILURES: u32 = 10;
/// The window failures are counted in; it starts at a peer's first failure.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Peers the table tracks at most, besides the one entry they share when
/// it is full.
pub const PEERS_MAX: usize = 4096;

/// Failures by peer: (count, start of the window).
#[derive(Debug, Default)]
pub struct Throttle {
    peers: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

/// The address failures are counted under.
fn bucket(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = a.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

impl Throttle {
    /// How long `ip` must wait before its credentials are checked again;
    /// None when they may be checked now.
    pub fn wait(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        let key = bucket(ip);
        let (n, start) = peers.get(&key)?;
        let left = WINDOW.checked_sub(now.duration_since(*start))?;
        (*n >= FAILURES && !left.is_zero()).then_some(left)
    }

    /// Counts one failed login by `ip`.
    pub fn failed(&self, ip: IpAddr, now: Instant) {
        let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        let key = bucket(ip);
        if !peers.contains_key(&key) && peers.len() >= PEERS_MAX {
            peers.retain(|_, (_, start)| now.duration_since(*start) < WINDOW);
            if peers.len() >= PEERS_MAX {
                let least = peers
                    .iter()
                    .min_by_key(|(_, (n, start))| (*n, *start))
                    .map(|(k, _)| *k);
                if let Some(k) = least {
                    peers.remove(&k);
                }
            }
        }
        let e = peers.entry(key).or_insert((0, now));
        if now.duration_since(e.1) >= WINDOW {
            *e = (0, now);
        }
        e.0 = e.0.saturating_add(1);
    }

    /// Peers tracked now (for tests).
    pub fn len(&self) -> usize {
        self.peers.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether no peer is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn brakes_after_the_allowed_failures_until_the_window_ends() {
        let t = Throttle::default();
        let t0 = Instant::now();
        let a = ip("192.0.2.1");
        for _ in 0..FAILURES {
            assert_eq!(t.wait(a, t0), None);
            t.failed(a, t0);
        }
        let w = t.wait(a, t0 + Duration::from_secs(1)).unwrap();
        assert_eq!(w, WINDOW - Duration::from_secs(1));
        // Another peer is not braked.
        assert_eq!(t.wait(ip("192.0.2.2"), t0), None);
        // The window ends; the next failure starts a new one.
        assert_eq!(t.wait(a, t0 + WINDOW), None);
        t.failed(a, t0 + WINDOW);
        assert_eq!(t.wait(a, t0 + WINDOW), None);
    }

    #[test]
    fn an_ipv6_host_is_counted_by_its_64() {
        let t = Throttle::default();
        let now = Instant::now();
        for i in 0..FAILURES {
            t.failed(ip(&format!("2001:db8:1:2::{:x}", i + 1)), now);
        }
        assert!(t.wait(ip("2001:db8:1:2::ffff"), now).is_some());
        assert!(t.wait(ip("2001:db8:1:3::1"), now).is_none());
        // An IPv4-mapped address is its IPv4 address.
        for _ in 0..FAILURES {
            t.failed(ip("::ffff:198.51.100.7"), now);
        }
        assert!(t.wait(ip("198.51.100.7"), now).is_some());
    }

    #[test]
    fn a_flood_of_addresses_never_brakes_a_peer_that_did_not_fail() {
        let t = Throttle::default();
        let now = Instant::now();
        let braked = ip("192.0.2.9");
        for _ in 0..FAILURES {
            t.failed(braked, now);
        }
        for i in 0..PEERS_MAX as u32 + 50 {
            let at = now + Duration::from_millis(1 + i as u64 / 100);
            t.failed(IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i)), at);
        }
        // The table stays bounded; the oldest windows made room.
        assert_eq!(t.len(), PEERS_MAX);
        let later = now + Duration::from_secs(1);
        // Peers that never failed are not braked, whatever the flood.
        assert!(t.wait(ip("10.200.0.1"), later).is_none());
        assert!(t.wait(ip("127.0.0.1"), later).is_none());
        // The braked peer had the oldest window, and is braked still: the
        // peers of one failure made room for each other.
        assert!(t.wait(braked, later).is_some());
        // Once the windows end, the table makes room again.
        let after = now + WINDOW + Duration::from_secs(1);
        t.failed(ip("10.201.0.1"), after);
        assert_eq!(t.len(), 1);
    }
}
