//! The version corecache reports, and why it has two parts.
//!
//! Clients decide what a server can do from its version: libmemcached
//! (`memcping`, `memcstat`, php-memcached) reads `VERSION` with `strtol`
//! as major.minor.micro and rejects a major of 0. So the version clients
//! see (`version`, binary VERSION, `STAT version`) is the memcached
//! release whose protocol corecache implements and is tested against
//! (Debian 12's memcached, the oracle of the server tests), followed by
//! corecache's own version as a `-` suffix that `strtol` stops at and
//! that version parsers take for a pre-release tag (Ruby's Gem::Version
//! accepts it; a `+` would not be).

/// The memcached release whose protocol corecache speaks: the major, minor
/// and micro clients parse.
pub const MEMCACHED: &str = "1.6.18";

/// corecache's own version (Cargo.toml), shown by `--version` and as
/// `STAT corecache_version`.
pub const CORECACHE: &str = env!("CARGO_PKG_VERSION");

/// What `version` answers, e.g. `1.6.18-corecache-0.1.0`.
pub const VERSION: &str = concat!("1.6.18", "-corecache-", env!("CARGO_PKG_VERSION"));

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses the way libmemcached's version.cc does: strtol on each part.
    fn strtol_parts(v: &str) -> (u32, u32, u32) {
        let lead = |s: &str| -> u32 {
            let d: String = s.chars().take_while(|c| c.is_ascii_digit()).collect();
            d.parse().unwrap()
        };
        let major = lead(v);
        let rest = &v[v.find('.').unwrap() + 1..];
        let minor = lead(rest);
        let rest = &rest[rest.find('.').unwrap() + 1..];
        (major, minor, lead(rest))
    }

    #[test]
    fn clients_parse_the_memcached_release() {
        assert!(VERSION.starts_with(&format!("{MEMCACHED}-corecache-")));
        assert!(VERSION.ends_with(CORECACHE));
        let (major, minor, micro) = strtol_parts(VERSION);
        assert_eq!((major, minor), (1, 6));
        assert_eq!(format!("{major}.{minor}.{micro}"), MEMCACHED);
        assert!(!VERSION.contains(' '), "one token on the VERSION line");
    }
}
