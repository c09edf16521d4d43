//! `-l` entries as memcached 1.6 reads them (`server_sockets` in
//! memcached.c): `[notls:]HOST[:PORT]`, an IPv6 host in brackets when a
//! port follows (`[::1]:11212`), a bare IPv6 host without one.

use super::ConfigError;

/// One `-l` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenSpec {
    /// The host or address, brackets removed.
    pub host: String,
    /// Its own port; None: `-p`'s.
    pub port: Option<u16>,
    /// `notls:`: plaintext even with `-Z`.
    pub notls: bool,
}

/// Reads one entry (already split on commas).
///
/// # Errors
/// `ConfigError::Invalid` with memcached's words for a port that is not a
/// number, or an unclosed `[`.
pub fn parse_listen(entry: &str) -> Result<ListenSpec, ConfigError> {
    let (notls, mut p) = match entry.strip_prefix("notls:") {
        Some(rest) => (true, rest),
        None => (false, entry),
    };
    let mut host = None;
    if let Some(rest) = p.strip_prefix('[') {
        let end = rest
            .find(']')
            .ok_or_else(|| ConfigError::Invalid(format!("Invalid IPV6 address: \"{entry}\"")))?;
        host = Some(&rest[..end]);
        p = &rest[end + 1..];
    }
    let mut port = None;
    if let Some(i) = p.find(':') {
        // One colon: HOST:PORT. More, without brackets: a bare IPv6 host.
        if host.is_some() || !p[i + 1..].contains(':') {
            let n = &p[i + 1..];
            port = Some(
                n.parse::<u16>()
                    .map_err(|_| ConfigError::Invalid(format!("Invalid port number: \"{n}\"")))?,
            );
            p = &p[..i];
        }
    }
    Ok(ListenSpec {
        host: host.unwrap_or(p).to_string(),
        port,
        notls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(host: &str, port: Option<u16>, notls: bool) -> ListenSpec {
        ListenSpec {
            host: host.into(),
            port,
            notls,
        }
    }

    #[test]
    fn memcached_forms() {
        let ok = |s| parse_listen(s).unwrap();
        assert_eq!(ok("127.0.0.1"), l("127.0.0.1", None, false));
        assert_eq!(ok("127.0.0.1:11300"), l("127.0.0.1", Some(11300), false));
        assert_eq!(
            ok("notls:127.0.0.1:11301"),
            l("127.0.0.1", Some(11301), true)
        );
        assert_eq!(ok("notls:localhost"), l("localhost", None, true));
        assert_eq!(ok("::1"), l("::1", None, false));
        assert_eq!(ok("[::1]"), l("::1", None, false));
        assert_eq!(ok("[::1]:11302"), l("::1", Some(11302), false));
        assert_eq!(ok("notls:[::1]:11303"), l("::1", Some(11303), true));
    }

    #[test]
    fn bad_ports_and_brackets_are_refused() {
        for bad in ["127.0.0.1:x", "127.0.0.1:70000", "[::1", "[::1]:", "h:"] {
            assert!(parse_listen(bad).is_err(), "{bad}");
        }
    }
}
