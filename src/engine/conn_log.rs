//! memcached's `-vv` and `-vvv` lines: connections opened and closed and
//! client errors at INFO (`-vv`), every command at DEBUG (`-vvv`).
//!
//! memcached prints `<fd new auto-negotiating client connection`, `<fd get
//! k`, `>fd END`, `<fd connection closed.`; these carry the same facts
//! (the connection's descriptor, the peer, the command line) as `tracing`
//! fields, so journald and log shippers can filter them. Replies are not
//! logged. What a line would reveal of a secret is never logged: a data
//! block, ASCII auth's credentials, a SASL payload.
//!
//! Cost: when the level is off (the default) a request pays one relaxed
//! load of the `-v` count and a compare; when on, lines leave the worker
//! through `admin/log_writer.rs`'s queue, dropped and counted if the
//! writer falls behind, so `-vvv` under load cannot stall a shard.

use super::dispatch::{Refusal, Request};
use crate::admin::audit::peer_of;
use crate::admin::logging::verbosity;
use crate::protocol::binary;
use std::os::fd::RawFd;

/// The longest part of a command line a DEBUG line shows, bytes.
const LINE_SHOWN: usize = 200;

/// A new connection on descriptor `fd` (`pinned`: on a worker port).
pub fn opened(fd: RawFd, pinned: bool) {
    tracing::info!(conn = fd, peer = %peer_of(fd), pinned, "connection opened");
    super::watch::conn_event(fd, None);
}

/// Connection `fd` closed; `eof`: the client ended its input first.
pub fn closed(fd: RawFd, eof: bool) {
    tracing::info!(conn = fd, eof, "connection closed");
    super::watch::conn_event(fd, Some("normal"));
}

/// Connection `fd` failed: a receive or a send (`op`) ended with `errno`,
/// and the connection is abandoned. memcached prints both at `-v`
/// ("Failed to read, and not due to blocking" while it reads a value's
/// data, "Failed to write, ..." with perror's text); here both are WARN
/// (`-v`) whatever was being read, with the error, so a dropped client
/// is always explained.
pub fn failed(fd: RawFd, op: &'static str, errno: i32) {
    let why = std::io::Error::from_raw_os_error(errno);
    tracing::warn!(conn = fd, "Failed to {op}, and not due to blocking: {why}");
}

/// One request as dispatched: DEBUG with its command line; then INFO
/// when it is a client error (`refused`: the dispatch point refused it).
/// `fd` is asked for only when a line is written.
pub fn request(fd: impl Fn() -> RawFd, req: &Request, raw: &[u8], refused: Option<Refusal>) {
    // The -v count, not `tracing::enabled!`: with per-layer filters an
    // `enabled!` not followed by an event leaves the registry's per-thread
    // filter state set, and the next event (an audit line) was dropped.
    let v = verbosity();
    if v < 2 {
        return;
    }
    let fd = fd();
    if v >= 3 {
        match req {
            Request::Text(_) => tracing::debug!(conn = fd, line = %shown(raw), "command"),
            Request::Binary(Ok(r)) => {
                let key = String::from_utf8_lossy(r.key).escape_debug().to_string();
                tracing::debug!(conn = fd, opcode = r.h.opcode, key, "binary command");
            }
            Request::Binary(Err(_)) => {}
            Request::AsciiAuth(_) => tracing::debug!(conn = fd, "ascii auth attempt"),
        }
    }
    let why = match refused {
        Some(Refusal::KeyTooLong) => Some("CLIENT_ERROR bad command line format"),
        Some(Refusal::FlushDisabled) => Some("flush_all not allowed (-F)"),
        Some(Refusal::ShutdownDisabled) => Some("shutdown not enabled (-A)"),
        // Logged by access.rs with the user.
        Some(Refusal::Unauthenticated | Refusal::Denied) => None,
        None => client_error(req),
    };
    if let Some(what) = why {
        tracing::info!(conn = fd, error = what, line = %shown(raw), "client error");
    }
}

/// A client error found when the request ran (`incr` on a value that is
/// not a number, a meta flag that does not apply, ...): `reply` is the
/// request's reply, logged at INFO (`-vv`) when it is a text
/// `CLIENT_ERROR` line or a binary "invalid arguments" or "non-numeric
/// value" status, as memcached's `-vv` shows it. `conn` is the
/// connection's descriptor, or None when the request was forwarded to
/// `shard`, the worker that ran it. Costs one relaxed load below `-vv`.
pub fn reply_error(conn: Option<RawFd>, shard: usize, reply: &[u8]) {
    if verbosity() < 2 {
        return;
    }
    let what = if reply.starts_with(b"CLIENT_ERROR ") {
        shown(reply)
    } else if reply.len() >= 24 && reply[0] == 0x81 {
        match u16::from_be_bytes([reply[6], reply[7]]) {
            0x04 => "binary: invalid arguments".to_string(),
            0x06 => "binary: incr/decr on a non-numeric value".to_string(),
            _ => return,
        }
    } else {
        return;
    };
    match conn {
        Some(fd) => tracing::info!(conn = fd, error = %what, "client error"),
        None => tracing::info!(shard, error = %what, "client error"),
    }
}

/// The error a request is, if it is one the client caused.
fn client_error(req: &Request) -> Option<&'static str> {
    match req {
        Request::Text(crate::protocol::text::Request::Error(msg)) => Some(msg.trim_end()),
        Request::Binary(Err(binary::Invalid::Args(_))) => Some("binary: invalid arguments"),
        Request::Binary(Err(binary::Invalid::Unknown(_))) => Some("binary: unknown command"),
        Request::Binary(Err(binary::Invalid::Frame(_))) => {
            Some("binary: key and extras past the body")
        }
        _ => None,
    }
}

/// The first line of `raw`, at most `LINE_SHOWN` bytes, escaped.
fn shown(raw: &[u8]) -> String {
    let end = raw
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(raw.len())
        .min(LINE_SHOWN);
    raw[..end].escape_ascii().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_shows_the_command_not_the_data_block() {
        assert_eq!(shown(b"set k 0 0 6\r\nsecret\r\n"), "set k 0 0 6");
        assert_eq!(shown(b"get \x01k\r\n"), "get \\x01k");
        assert_eq!(shown(&[b'a'; 500]).len(), LINE_SHOWN);
    }
}
