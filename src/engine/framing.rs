//! Framing: cuts a connection's bytes into whole requests of its protocol
//! (chosen from the first byte), drops refused data blocks as they arrive,
//! continues a suspended multi-key get, and hands each request to the
//! dispatcher. Work is linear in the bytes: a text line arriving in pieces
//! is searched for its end once (`Conn::scanned`), not once per piece.
use super::dispatch::Request;
use super::incoming;
use super::multiget::GetRun;
use super::worker::Worker;
use crate::protocol::{ascii_auth, binary, text, Parse, Proto};

impl Worker {
    /// Parses and executes whole requests from `inbuf`, which starts at the
    /// connection's first unparsed byte; returns the bytes used. Stops at
    /// an incomplete or unfinished request, a closing connection, or when
    /// the connection is at its memory cap.
    pub(super) fn parse_loop(&mut self, idx: u32, inbuf: &[u8]) -> usize {
        let mut pos = 0;
        let item_max = self.shared.settings.item_max;
        let cap = self.conn_cap();
        while let Some(c) = self.conns[idx as usize].as_mut() {
            if c.watch.is_some() {
                // A watcher sends nothing more that is read (memcached
                // stops reading it).
                return inbuf.len();
            }
            if c.closing || c.over_cap(cap) || c.dump.is_some() {
                break;
            }
            if let Some(cur) = c.get.take() {
                // Only ever at the front: nothing is parsed behind it.
                match self.run_get(idx, &inbuf[pos..], cur) {
                    GetRun::Done => {
                        pos += cur.used;
                        continue;
                    }
                    GetRun::Suspended(cur) => {
                        self.conn(idx).get = Some(cur);
                        break;
                    }
                }
            }
            if c.skip > 0 {
                let n = c.skip.min(inbuf.len() - pos);
                c.skip -= n;
                pos += n;
                if c.skip > 0 {
                    break;
                }
            }
            if pos >= inbuf.len() {
                break;
            }
            let proto = *c.proto.get_or_insert(Proto::detect(inbuf[pos]));
            let buf = &inbuf[pos..];
            let used = match proto {
                Proto::Text if c.user.is_none() && self.shared.auth.is_some() => {
                    // -Y: every line is read as an authentication attempt
                    // until one succeeds (protocol/ascii_auth.rs).
                    self.step(idx, ascii_auth::parse(buf), buf, |w, req, raw| {
                        w.dispatch(idx, Request::AsciiAuth(req), raw)
                    })
                }
                Proto::Text => {
                    let mut scanned = c.scanned;
                    let read_full = c.read_full;
                    let parsed = text::parse_stream(buf, item_max, &mut scanned, read_full);
                    c.scanned = scanned;
                    let parsed = self.admit(idx, parsed, buf.len(), || {
                        incoming::refuse_text(buf, &mut scanned, read_full)
                    });
                    self.step(idx, parsed, buf, |w, req, raw| {
                        w.dispatch(idx, Request::Text(req), raw)
                    })
                }
                Proto::Binary => {
                    let parsed = binary::parse(buf, item_max);
                    let parsed =
                        self.admit(idx, parsed, buf.len(), || incoming::refuse_binary(buf));
                    self.step(idx, parsed, buf, |w, req, raw| {
                        w.dispatch(idx, Request::Binary(req), raw)
                    })
                }
            };
            let Some(used) = used else { break };
            pos += used;
        }
        pos
    }

    /// Acts on one parse result, for either protocol: dispatches a whole
    /// request (arranging to drop a refused data block), or says to stop
    /// (more bytes needed, the request is not finished, or the connection
    /// must close). Returns the bytes used.
    pub(super) fn step<T>(
        &mut self,
        idx: u32,
        parsed: Parse<T>,
        buf: &[u8],
        dispatch: impl FnOnce(&mut Self, T, &[u8]) -> bool,
    ) -> Option<usize> {
        match parsed {
            Parse::Done(req, used) => {
                self.release_incoming(idx);
                if !dispatch(self, req, &buf[..used]) {
                    return None;
                }
                Some(used)
            }
            Parse::Skip(req, used, skip) => {
                self.release_incoming(idx);
                dispatch(self, req, &buf[..used]);
                if let Some(c) = self.conns[idx as usize].as_mut() {
                    c.skip = skip;
                }
                Some(used)
            }
            Parse::NeedMore(n) => {
                if let Some(c) = self.conns[idx as usize].as_mut() {
                    c.need = n;
                }
                None
            }
            Parse::Close => {
                self.conn(idx).closing = true;
                None
            }
        }
    }
}
