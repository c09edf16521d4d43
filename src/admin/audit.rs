//! The audit trail: every administrative action (flush_all,
//! cache_memlimit, shutdown, verbosity, and later the dashboard's edits,
//! deletes, bulk actions and failed logins) logged at the default level
//! with the peer address, the user once authentication exists, the action
//! and its argument. The time is the log line's own (the journal's under
//! systemd). `--audit-log` also writes these lines to a file of their own.

use super::logging::AUDIT_TARGET;
use std::os::fd::RawFd;

/// Logs one administrative action. `peer` is who asked (see [`peer_of`]),
/// `arg` the action's argument as given (e.g. a flush_all delay, a
/// memlimit in megabytes; empty when there is none). Values are quoted
/// and escaped, so a client cannot forge a line.
pub fn audit(action: &str, peer: &str, arg: &str) {
    audit_as(action, peer, None, arg);
}

/// As [`audit`], with the authenticated user who acted.
pub fn audit_as(action: &str, peer: &str, user: Option<&str>, arg: &str) {
    tracing::info!(
        target: AUDIT_TARGET,
        action = ?action,
        peer = ?peer,
        user = ?user.unwrap_or("-"),
        arg = ?arg,
        "admin action"
    );
}

/// The peer address of a connected socket, as `ip:port` (`unix` for a
/// Unix socket, `unknown` when the socket has none). One system call: for
/// audit lines, which are rare, not for every request.
pub fn peer_of(fd: RawFd) -> String {
    // SAFETY: getpeername writes at most `len` bytes into `ss`, a
    // zero-initialised sockaddr_storage, and sets `len`.
    let (rc, ss, len) = unsafe {
        let mut ss: libc::sockaddr_storage = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        let rc = libc::getpeername(fd, &mut ss as *mut _ as *mut libc::sockaddr, &mut len);
        (rc, ss, len)
    };
    if rc != 0 {
        return "unknown".into();
    }
    match ss.ss_family as libc::c_int {
        libc::AF_INET if len as usize >= std::mem::size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let a = unsafe { &*(&ss as *const _ as *const libc::sockaddr_in) };
            let ip = std::net::Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            format!("{ip}:{}", u16::from_be(a.sin_port))
        }
        libc::AF_INET6 if len as usize >= std::mem::size_of::<libc::sockaddr_in6>() => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let a = unsafe { &*(&ss as *const _ as *const libc::sockaddr_in6) };
            let ip = std::net::Ipv6Addr::from(a.sin6_addr.s6_addr);
            format!("[{ip}]:{}", u16::from_be(a.sin6_port))
        }
        libc::AF_UNIX => "unix".into(),
        _ => "unknown".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// What the default-level (no `-v`) filter lets through, as text.
    fn logged(f: impl FnOnce()) -> String {
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::Layer;
        let buf = Buf::default();
        let w = buf.clone();
        let layer = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(move || w.clone())
            .with_filter(tracing_subscriber::filter::filter_fn(|m| {
                super::super::logging::passes(m, 0)
            }));
        let sub = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(sub, f);
        let out = buf.0.lock().unwrap().clone();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn audit_lines_pass_the_default_level_and_requests_do_not() {
        let out = logged(|| {
            audit("flush_all", "127.0.0.1:5000", "10");
            tracing::info!("connection opened");
            tracing::debug!("get foo");
            tracing::warn!("a warning");
        });
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 1, "{out}");
        let l = lines[0];
        assert!(l.contains("INFO audit: admin action"), "{l}");
        assert!(
            l.contains(r#"action="flush_all" peer="127.0.0.1:5000" user="-" arg="10""#),
            "{l}"
        );
        // An RFC 3339 time leads the line.
        assert!(l.as_bytes()[4] == b'-' && l.contains('T'), "{l}");
    }

    #[test]
    fn a_hostile_argument_stays_on_one_line() {
        let out = logged(|| audit_as("verbosity", "[::1]:9", Some("ann"), "1\nINFO fake"));
        assert_eq!(out.lines().count(), 1, "{out}");
        assert!(out.contains(r#"user="ann" arg="1\nINFO fake""#), "{out}");
    }

    #[test]
    fn peers_of_sockets() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, from) = l.accept().unwrap();
        assert_eq!(peer_of(s.as_raw_fd()), from.to_string());
        assert_eq!(peer_of(l.as_raw_fd()), "unknown");
        drop(c);
        if let Ok(l6) = std::net::TcpListener::bind("[::1]:0") {
            let _c = std::net::TcpStream::connect(l6.local_addr().unwrap()).unwrap();
            let (s, from) = l6.accept().unwrap();
            assert_eq!(peer_of(s.as_raw_fd()), from.to_string());
        }
    }
}
