//! TLS on the worker's own io_uring path (`-Z`): a rustls
//! `ServerConnection` per connection, fed the ciphertext the multishot
//! receive brings and drained into the connection's send buffer. No
//! thread per connection and no blocking handshake: the handshake is
//! records in and records out like any other bytes.
//!
//! ```text
//!  recv (ciphertext) ─► read_tls ─► process_new_packets ─► reader ─► inbuf ─► parse
//!  out (plaintext, values by reference) ─► writer ─► write_tls ─► sending ─► send
//! ```
//!
//! A plaintext connection never comes here: `recv.rs` and `send.rs` test
//! `Conn::tls` once (an `Option` of a box) and go on as before; the
//! prefetch pass skips TLS connections (their buffer holds ciphertext).
//!
//! Values sent by reference (`exec::value_ref`) are encrypted from their
//! pinned segments and released at once: user-space records have to copy
//! them anyway. With kTLS (not on this kernel) the keys would go to the
//! socket after the handshake and sends would stay as they are; see
//! docs/ARCHITECTURE.md.

use super::worker::Worker;
use crate::admin::audit::{audit_as, peer_of};
use rustls::ServerConnection;
use std::io::{Read, Write};
use std::sync::Arc;

/// Plaintext handed to rustls at once before its records are drained,
/// so a large reply is not held twice.
const SEAL_CHUNK: usize = 64 * 1024;

/// One connection's TLS state.
pub struct TlsConn {
    /// rustls' record layer and handshake.
    pub conn: ServerConnection,
    /// The handshake finished and the client's certificate was looked at.
    pub established: bool,
    /// close_notify queued, or not to be sent (the peer is gone, or a
    /// fatal alert went instead): the connection may close once drained.
    pub closed: bool,
    /// The peer does not speak TLS (its first byte was not a handshake
    /// record's): nothing is sent to it, not even the alert rustls queues,
    /// and the connection just closes, as memcached's does.
    pub silent: bool,
    /// Whether any byte was received yet.
    started: bool,
}

impl TlsConn {
    /// A server side for a connection accepted on a TLS listener.
    ///
    /// # Errors
    /// rustls' refusal of the configuration (not expected: it was built
    /// by `crate::tls::build`).
    pub fn new(config: Arc<rustls::ServerConfig>) -> Result<Box<TlsConn>, rustls::Error> {
        let mut conn = ServerConnection::new(config)?;
        // `seal` drains records as it writes; the limit would only refuse
        // plaintext written before the handshake ends (none is).
        conn.set_buffer_limit(None);
        Ok(Box::new(TlsConn {
            conn,
            established: false,
            closed: false,
            silent: false,
            started: false,
        }))
    }

    /// Whether records (handshake, alert, close_notify) wait to be sent.
    pub fn wants_write(&self) -> bool {
        !self.silent && self.conn.wants_write()
    }

    /// Moves every pending record to `sink`.
    fn drain(&mut self, sink: &mut Vec<u8>) {
        while self.wants_write() {
            // Writing to a Vec does not fail.
            if self.conn.write_tls(sink).unwrap_or(0) == 0 {
                break;
            }
        }
    }

    /// Encrypts `data` into records in `sink`.
    fn seal(&mut self, mut data: &[u8], sink: &mut Vec<u8>) {
        while !data.is_empty() {
            let n = data.len().min(SEAL_CHUNK);
            // Without a buffer limit the writer takes everything.
            let took = self.conn.writer().write(&data[..n]).unwrap_or(0);
            self.drain(sink);
            if took == 0 {
                break;
            }
            data = &data[took..];
        }
    }
}

/// What became of received ciphertext.
enum Fed {
    /// Plaintext (maybe none) was added to the input buffer.
    Ok,
    /// The handshake just finished.
    Established,
    /// The peer sent close_notify: its input has ended.
    PeerClosed,
    /// A protocol error: an alert may be queued; the connection closes.
    Failed(rustls::Error),
}

/// Feeds `data` to rustls and appends what it decrypts to `inbuf`.
fn feed(t: &mut TlsConn, mut data: &[u8], inbuf: &mut Vec<u8>) -> Fed {
    let was = t.established;
    let mut closed = false;
    if !t.started && !data.is_empty() {
        t.started = true;
        // TLS's handshake content type: every TLS client starts with it.
        t.silent = data[0] != 0x16;
    }
    while !data.is_empty() {
        if let Err(e) = t.conn.read_tls(&mut data) {
            return Fed::Failed(rustls::Error::General(e.to_string()));
        }
        let state = match t.conn.process_new_packets() {
            Ok(s) => s,
            Err(e) => return Fed::Failed(e),
        };
        let n = state.plaintext_bytes_to_read();
        if n > 0 {
            let at = inbuf.len();
            inbuf.resize(at + n, 0);
            if t.conn.reader().read_exact(&mut inbuf[at..]).is_err() {
                inbuf.truncate(at);
                return Fed::Failed(rustls::Error::General("short plaintext read".into()));
            }
        }
        closed |= state.peer_has_closed();
    }
    if !t.conn.is_handshaking() {
        t.established = true;
    }
    if closed {
        Fed::PeerClosed
    } else if t.established && !was {
        Fed::Established
    } else {
        Fed::Ok
    }
}

impl Worker {
    /// Received ciphertext on TLS connection `idx` (from `recv_data`).
    pub(super) fn recv_tls(&mut self, idx: u32, data: &[u8]) {
        let Some(c) = self.conns[idx as usize].as_mut() else {
            return;
        };
        let Some(t) = c.tls.as_mut() else { return };
        if c.in_start >= c.inbuf.len() {
            c.inbuf.clear();
            c.in_start = 0;
        }
        let fed = feed(t, data, &mut c.inbuf);
        let handshaking = !t.established;
        match fed {
            Fed::Ok => {}
            Fed::Established => self.tls_established(idx),
            Fed::PeerClosed => {
                self.process_unless_paused(idx);
                return self.end_input(idx);
            }
            Fed::Failed(e) => {
                if handshaking {
                    self.shard.c.ssl_handshake_errors += 1;
                }
                // Through the log queue (a worker never writes stderr
                // itself); memcached prints TLS failures with -v too.
                tracing::warn!(peer = %peer_of(c.fd), "TLS error: {e}");
                // A fatal alert may be queued: it goes, then the socket closes.
                t.closed = true;
                c.closing = true;
                c.inbuf.clear();
                c.in_start = 0;
                return;
            }
        }
        self.process_unless_paused(idx);
    }

    fn process_unless_paused(&mut self, idx: u32) {
        if self.conns[idx as usize]
            .as_ref()
            .is_some_and(|c| !c.paused && !c.closing)
        {
            self.process(idx);
        }
    }

    /// The handshake is done: with `-o ssl_user_from_cert`, a verified
    /// client certificate whose subject CN names a user of the password
    /// file logs the connection in as that user (it may still log in as
    /// another by password).
    fn tls_established(&mut self, idx: u32) {
        self.shard.c.ssl_new_sessions += 1;
        let Some(tls) = self.shared.tls.as_ref() else {
            return;
        };
        let (Some(reg), true) = (self.shared.auth.as_ref(), tls.config.user_from_cert) else {
            return;
        };
        let Some(c) = self.conns[idx as usize].as_mut() else {
            return;
        };
        let Some(t) = c.tls.as_ref() else { return };
        // rustls returns certificates only once they verified.
        let Some(cert) = t.conn.peer_certificates().and_then(|c| c.first()) else {
            return;
        };
        let Some(cn) = crate::tls::subject::common_name(cert) else {
            return;
        };
        let gen = reg.generation();
        match reg.current().user(&cn) {
            Some(u) => {
                c.user = Some(u);
                c.auth_gen = gen;
                self.shard.c.auth_cmds += 1;
                audit_as("tls_login", &peer_of(c.fd), Some(&cn), "client certificate");
            }
            None => audit_as("tls_unknown_user", &peer_of(c.fd), Some(&cn), ""),
        }
    }

    /// Encrypts TLS connection `idx`'s ready output (values by reference
    /// included, released here) and every pending record into `sending`,
    /// which must be empty (no send in flight).
    pub(super) fn seal(&mut self, idx: u32) {
        let Some(c) = self.conns[idx as usize].as_mut() else {
            return;
        };
        let Some(t) = c.tls.as_mut() else { return };
        debug_assert!(c.sending.is_empty() && c.sending_refs.is_empty());
        let mut refs = std::mem::take(&mut c.out_refs);
        let mut pos = 0;
        for r in &refs.list {
            t.seal(&c.out[pos..r.at], &mut c.sending);
            // SAFETY: the value lies in a pinned segment (exec::value_ref),
            // unchanged until `release_refs` below lets go of the pin.
            let v = unsafe { std::slice::from_raw_parts(r.ptr, r.len) };
            t.seal(v, &mut c.sending);
            pos = r.at;
        }
        t.seal(&c.out[pos..], &mut c.sending);
        t.drain(&mut c.sending);
        c.out.clear();
        self.release_refs(&mut refs);
        if let Some(c) = self.conns[idx as usize].as_mut() {
            c.out_refs = refs;
        }
    }

    /// Before a TLS connection closes cleanly: queues close_notify once.
    /// Returns whether it did (the close then waits for it to go).
    pub(super) fn tls_close_notify(&mut self, idx: u32) -> bool {
        let Some(c) = self.conns[idx as usize].as_mut() else {
            return false;
        };
        let Some(t) = c.tls.as_mut().filter(|t| !t.closed) else {
            return false;
        };
        t.closed = true;
        t.conn.send_close_notify();
        if !c.queued_for_send {
            c.queued_for_send = true;
            self.to_send.push(idx);
        }
        true
    }
}
