//! `stats conns`: memcached's per-connection lines, for every worker's
//! listeners and connections.
//!
//! The worker that receives the command asks every other one for its
//! lines (`Job::Conns`, answered into reply slots in order), writes its
//! own, then `END`. The binary protocol has no such group (memcached
//! 1.6.18 answers it "Not found").

use super::conn::Conn;
use super::worker::Worker;
use socket2::{SockAddr, SockRef};
use std::os::fd::{BorrowedFd, RawFd};

impl Worker {
    /// This worker's `STAT <fd>:<field> <value>` lines: its listening
    /// sockets (worker 0 speaks for the shared ones, each worker for its
    /// own port's), then its connections; `asking` is the connection
    /// running `stats conns`, in the middle of a command.
    pub(super) fn conns_lines(&self, asking: Option<u32>) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, &fd) in self.listeners.iter().enumerate() {
            if i >= self.pinned_from || self.id == 0 {
                let addr = addr_text(local(fd));
                row(&mut out, fd, "addr", &addr);
                row(&mut out, fd, "state", "conn_listening");
                // A listener's last command time is when it was made
                // (memcached's conn_new): seconds since the start.
                let secs = self.shared.started.elapsed().as_secs();
                row(&mut out, fd, "secs_since_last_cmd", &secs.to_string());
            }
        }
        for (idx, c) in self.conns.iter().enumerate() {
            let Some(c) = c else { continue };
            let fd = c.fd;
            row(&mut out, fd, "addr", &addr_text(peer(fd)));
            // The local address a connection arrived at: the listener's
            // own, but for a wildcard listener (memcached names the
            // listener, 0.0.0.0 then).
            row(&mut out, fd, "listen_addr", &addr_text(local(fd)));
            row(&mut out, fd, "state", state(c, asking == Some(idx as u32)));
            let idle = self.last_sec.saturating_sub(c.last_active);
            row(&mut out, fd, "secs_since_last_cmd", &idle.to_string());
        }
        out
    }
}

/// memcached's connection states, mapped from what the connection is
/// doing between two loop turns.
fn state(c: &Conn, asking: bool) -> &'static str {
    if asking {
        "conn_parse_cmd"
    } else if c.closing {
        "conn_closing"
    } else if c.skip > 0 {
        "conn_swallow"
    } else if c.send_inflight || !c.out.is_empty() || c.dump.is_some() {
        "conn_mwrite"
    } else if c.inbuf[c.in_start.min(c.inbuf.len())..].contains(&b'\n') {
        // A whole command line waits for its data block.
        "conn_nread"
    } else {
        // Waiting for (the rest of) a command line.
        "conn_read"
    }
}

fn row(out: &mut Vec<u8>, fd: RawFd, field: &str, value: &str) {
    out.extend_from_slice(format!("STAT {fd}:{field} {value}\r\n").as_bytes());
}

fn local(fd: RawFd) -> Option<SockAddr> {
    // SAFETY: the fd is a socket this worker owns and keeps open meanwhile.
    let b = unsafe { BorrowedFd::borrow_raw(fd) };
    SockRef::from(&b).local_addr().ok()
}

fn peer(fd: RawFd) -> Option<SockAddr> {
    // SAFETY: as in `local`.
    let b = unsafe { BorrowedFd::borrow_raw(fd) };
    SockRef::from(&b).peer_addr().ok()
}

/// memcached's forms: `tcp:1.2.3.4:5`, `tcp6:[::1]:5`, `unix:/path`.
fn addr_text(a: Option<SockAddr>) -> String {
    let Some(a) = a else {
        return "unknown".to_string();
    };
    if let Some(s) = a.as_socket() {
        return match s {
            std::net::SocketAddr::V4(v) => format!("tcp:{}:{}", v.ip(), v.port()),
            std::net::SocketAddr::V6(v) => format!("tcp6:[{}]:{}", v.ip(), v.port()),
        };
    }
    let path = a.as_pathname().map(|p| p.display().to_string());
    format!("unix:{}", path.unwrap_or_default())
}
