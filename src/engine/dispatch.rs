//! The one dispatch point. Every request of every protocol is classified
//! here into what it does (`Op`) and where it runs (`Route`), the server's
//! policies are applied once for all protocols (authentication and the
//! ACLs, see `access.rs`; `-F`, `-A`, key length; item size is the
//! parsers', which must not buffer what they refuse), and
//! the request goes to this shard, its key's owner, every shard, or the
//! server commands (`server_cmd.rs`). A request for another worker's key
//! is answered from that worker's memory if it only reads
//! (`foreign_read.rs`), else run on its shard here if it sleeps
//! (`borrowed.rs`), else sent to it (the hop, `hop_io.rs`).

use super::conn::GetCursor;
use super::hop::Job;
use super::multiget::GetRun;
use super::route::owner;
use super::worker::Worker;
use crate::admin::family::Family;
use crate::exec;
use crate::exec::reply::push_line;
use crate::exec::value_ref::ZC_MIN;
use crate::protocol::ascii_auth::AsciiAuth;
use crate::protocol::binary::{self, status, Kind};
use crate::protocol::meta::{base64_decode, MetaCmd};
use crate::protocol::text;
use crate::protocol::KEY_MAX;
use std::time::Instant;

/// A parsed request of either wire protocol (meta travels as text).
#[derive(Debug)]
pub enum Request<'a> {
    /// A text or meta request.
    Text(text::Request<'a>),
    /// A binary request, or the header of a malformed one.
    Binary(Result<binary::Request<'a>, binary::Invalid>),
    /// A line (and data block) of a text connection that has yet to
    /// authenticate (`-Y`).
    AsciiAuth(AsciiAuth<'a>),
}

/// What a request does, whatever protocol carried it: the unit of policy,
/// and later of authorisation and latency accounting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// get, gets, mg, binary GET*.
    Get,
    /// gat, gats, touch, binary GAT*/TOUCH.
    Touch,
    /// set, add, replace, append, prepend, cas, ms, binary SET..PREPEND.
    Store,
    /// delete, md, binary DELETE.
    Delete,
    /// incr, decr, ma, binary INCREMENT/DECREMENT.
    Arith,
    /// flush_all, flush_prefix, binary FLUSH.
    Flush,
    /// cache_memlimit.
    MemLimit,
    /// stats, binary STAT.
    Stats,
    /// quit, binary QUIT.
    Quit,
    /// shutdown.
    Shutdown,
    /// verbosity, binary VERBOSITY.
    Verbosity,
    /// refresh_certs (TLS certificates read again).
    RefreshCerts,
    /// An authentication attempt: ASCII auth's `set`, binary SASL_*.
    Auth,
    /// version, mn, me, binary NOOP/VERSION.
    Other,
    /// A request the parser already answered with an error.
    Invalid,
}

/// Where a request runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route<'k> {
    /// Here: no key, or an error answered where it arrived.
    Local,
    /// On the worker that owns this key (maybe this one).
    Key(&'k [u8]),
    /// A text multi-key get: each key on its owner, replies in order.
    Split(&'k [u8]),
    /// On every worker; this one's reply answers.
    Broadcast,
    /// Concerns the connection or the whole server, not a shard.
    Server,
}

/// Why the dispatcher refuses a request before it runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// `-F`: flush_all is disabled.
    FlushDisabled,
    /// shutdown without `-A`.
    ShutdownDisabled,
    /// A get naming a key over 250 bytes.
    KeyTooLong,
    /// Authentication is required and the connection has not.
    Unauthenticated,
    /// The user's ACL does not allow it.
    Denied,
}

/// Classifies a request. `kbuf` holds a meta key decoded from base64.
pub fn classify<'k>(req: &Request<'k>, kbuf: &'k mut [u8; KEY_MAX + 6]) -> (Op, Route<'k>) {
    use text::Request as T;
    match *req {
        Request::Text(ref t) => match *t {
            T::Get { keys, touch, .. } => {
                let op = if touch.is_some() { Op::Touch } else { Op::Get };
                (op, Route::Split(keys))
            }
            T::Store(s) => (Op::Store, Route::Key(s.key)),
            T::TooLarge(o) => {
                let key = if o.base64 {
                    base64_decode(o.key, kbuf)
                } else {
                    Some(o.key)
                };
                (Op::Store, key.map_or(Route::Local, Route::Key))
            }
            T::Delete { key, .. } => (Op::Delete, Route::Key(key)),
            T::Delta { key, .. } => (Op::Arith, Route::Key(key)),
            T::Touch { key, .. } => (Op::Touch, Route::Key(key)),
            T::Meta(ref m) => {
                let op = match m.cmd {
                    MetaCmd::Get if m.f.touch.is_some() => Op::Touch,
                    MetaCmd::Get => Op::Get,
                    MetaCmd::Set => Op::Store,
                    MetaCmd::Delete => Op::Delete,
                    MetaCmd::Arith => Op::Arith,
                    MetaCmd::Noop => return (Op::Other, Route::Local),
                    MetaCmd::Debug => Op::Other,
                };
                let key = if m.f.base64 {
                    base64_decode(m.key, kbuf)
                } else {
                    Some(m.key)
                };
                // An undecodable key is answered here, by the executor.
                (op, key.map_or(Route::Local, Route::Key))
            }
            T::Flush { .. } | T::FlushPrefix { .. } => (Op::Flush, Route::Broadcast),
            T::CacheMemlimit { .. } => (Op::MemLimit, Route::Broadcast),
            T::Stats { .. } | T::Admin { .. } => (Op::Stats, Route::Server),
            T::Quit => (Op::Quit, Route::Server),
            T::Shutdown { .. } => (Op::Shutdown, Route::Server),
            T::RefreshCerts { .. } => (Op::RefreshCerts, Route::Server),
            T::Version => (Op::Other, Route::Local),
            T::Verbosity { .. } => (Op::Verbosity, Route::Local),
            T::Error(_) | T::Quiet(_) => (Op::Invalid, Route::Local),
        },
        Request::Binary(Err(_)) => (Op::Invalid, Route::Local),
        Request::Binary(Ok(ref r)) => match r.cmd.kind {
            Kind::Get => (Op::Get, Route::Key(r.key)),
            Kind::Gat | Kind::Touch => (Op::Touch, Route::Key(r.key)),
            Kind::Store(_) => (Op::Store, Route::Key(r.key)),
            Kind::Delete => (Op::Delete, Route::Key(r.key)),
            Kind::Arith(_) => (Op::Arith, Route::Key(r.key)),
            Kind::Flush => (Op::Flush, Route::Broadcast),
            Kind::Stat => (Op::Stats, Route::Server),
            Kind::Quit => (Op::Quit, Route::Server),
            Kind::Noop | Kind::Version => (Op::Other, Route::Local),
            Kind::Verbosity => (Op::Verbosity, Route::Local),
            Kind::SaslList | Kind::SaslAuth | Kind::SaslStep => (Op::Auth, Route::Server),
        },
        Request::AsciiAuth(AsciiAuth::NotAuth) => (Op::Invalid, Route::Local),
        Request::AsciiAuth(_) => (Op::Auth, Route::Server),
    }
}

/// What every other shard must do for a broadcast request.
fn broadcast_job(req: &Request) -> Option<Job> {
    match req {
        Request::Text(text::Request::Flush { delay, .. }) => Some(Job::Flush { delay: *delay }),
        Request::Text(text::Request::FlushPrefix { prefix, .. }) => Some(Job::FlushPrefix {
            prefix: prefix.to_vec(),
        }),
        Request::Text(text::Request::CacheMemlimit { mb, .. }) => Some(Job::MemLimit { mb: *mb }),
        Request::Binary(Ok(r)) if r.cmd.kind == Kind::Flush => Some(Job::Flush {
            delay: exec::binary::flush_delay(r),
        }),
        _ => None,
    }
}

impl Worker {
    /// Dispatches one whole request of connection `idx`; `raw` is its
    /// bytes as received (what a forward or broadcast carries). Returns
    /// false if the request is not finished (a multi-key get suspended,
    /// see multiget.rs) or not started (a `stats` waiting for this
    /// connection's replies from other shards, `Conn::stats_wait`): its
    /// bytes must stay where they are.
    pub(super) fn dispatch(&mut self, idx: u32, req: Request, raw: &[u8]) -> bool {
        let mut kbuf = [0u8; KEY_MAX + 6];
        let (op, route) = classify(&req, &mut kbuf);
        if op == Op::Stats && route == Route::Server {
            // Before anything is logged or counted: it runs again later.
            let c = self.conn(idx);
            c.stats_wait = c.waiting > 0;
            if c.stats_wait {
                return false;
            }
        }
        self.note_parsed(idx, op);
        let refusal = self
            .access(idx, op, route, &req)
            .or_else(|| self.policy(op, route));
        let conns = &self.conns;
        let fd = || conns[idx as usize].as_ref().map_or(-1, |c| c.fd);
        super::conn_log::request(fd, &req, raw, refusal);
        self.audit_admin(idx, op, &req, refusal);
        if let Some(why) = refusal {
            self.refuse(idx, why, &req);
            return true;
        }
        if op == Op::Verbosity {
            super::server_cmd::apply_verbosity(&req);
        }
        let pinned = self.conn(idx).pinned;
        if pinned {
            self.shard.c.worker_port_cmds += 1;
        }
        match route {
            Route::Local => self.exec_local(idx, &req),
            Route::Key(k) => {
                let to = self.owner_for(pinned, k);
                if to == self.id {
                    self.exec_local(idx, &req);
                } else if let Some(reply) = super::foreign_read::Reply::for_request(&req) {
                    if !self.foreign_get(idx, to, k, reply) && !self.exec_borrowed(idx, to, &req) {
                        self.forward_raw(idx, to, &req, raw, k);
                    }
                } else if !self.exec_borrowed(idx, to, &req) {
                    self.forward_raw(idx, to, &req, raw, k);
                }
            }
            Route::Split(keys) => return self.split_get(idx, &req, keys, raw),
            Route::Broadcast => {
                if let Some(job) = broadcast_job(&req) {
                    self.broadcast(idx, job);
                }
                self.exec_local(idx, &req);
                if op == Op::Flush {
                    // For `stats settings` (every shard flushes alike).
                    let oldest = self.shard.store.oldest_live();
                    self.shared
                        .oldest_live
                        .store(oldest, std::sync::atomic::Ordering::Relaxed);
                }
            }
            Route::Server if op == Op::Auth => self.auth_cmd(idx, &req),
            Route::Server => self.server_cmd(idx, op, &req),
        }
        true
    }

    /// Which worker runs a request for `key`: its owner, or this worker
    /// for a connection `pinned` to it (`-o worker_ports`: that port is
    /// this shard's alone, whoever owns the key on the shared port).
    pub(super) fn owner_for(&self, pinned: bool, key: &[u8]) -> usize {
        let n = self.shared.mesh.n;
        if pinned || n == 1 {
            self.id
        } else {
            owner(&self.route, n, key)
        }
    }

    /// Notes a request for the latency histograms (admin port), which
    /// record it when its reply is handed to the kernel (`send.rs`).
    fn note_parsed(&mut self, idx: u32, op: Op) {
        if self.shared.telemetry.latency(self.id).is_none() {
            return;
        }
        let family = match op {
            Op::Get => Family::Get,
            Op::Store => Family::Set,
            Op::Delete => Family::Delete,
            Op::Arith => Family::Arith,
            Op::Touch => Family::Touch,
            _ => Family::Other,
        };
        let now = *self.turn_now.get_or_insert_with(Instant::now);
        if let Some(c) = self.conns[idx as usize].as_mut() {
            c.lat.parsed(family, now);
        }
    }

    /// The server's policies, the same for every protocol.
    fn policy(&self, op: Op, route: Route) -> Option<Refusal> {
        let s = &self.shared.settings;
        match (op, route) {
            (Op::Flush, _) if !s.flush_enabled => Some(Refusal::FlushDisabled),
            (Op::Shutdown, _) if !s.shutdown_enabled => Some(Refusal::ShutdownDisabled),
            (_, Route::Split(keys)) if text::tokens(keys).any(|k| k.len() > KEY_MAX) => {
                Some(Refusal::KeyTooLong)
            }
            _ => None,
        }
    }

    /// Answers a refused request as memcached does in its protocol.
    fn refuse(&mut self, idx: u32, why: Refusal, req: &Request) {
        if matches!(why, Refusal::Unauthenticated | Refusal::Denied) {
            self.refuse_access(idx, why, req);
            return;
        }
        match req {
            Request::AsciiAuth(_) => {}
            Request::Text(t) => {
                let noreply = matches!(
                    t,
                    text::Request::Flush { noreply: true, .. }
                        | text::Request::FlushPrefix { noreply: true, .. }
                );
                let prefix = matches!(t, text::Request::FlushPrefix { .. });
                if why == Refusal::FlushDisabled && !prefix {
                    // memcached counts the refused flush (proto_text.c
                    // process_flush_all_command); binary does not.
                    self.shard.c.cmd_flush += 1;
                }
                if !noreply {
                    let out = self.conn(idx).reply_buf();
                    push_line(
                        out,
                        match why {
                            Refusal::FlushDisabled if prefix => {
                                "CLIENT_ERROR flush_prefix not allowed"
                            }
                            Refusal::FlushDisabled => "CLIENT_ERROR flush_all not allowed",
                            Refusal::ShutdownDisabled => "ERROR: shutdown not enabled",
                            _ => text::BAD_FORMAT,
                        },
                    );
                }
            }
            Request::Binary(Ok(r)) => {
                // memcached's process_bin_flush: an auth error, data kept.
                let out = self.conn(idx).reply_buf();
                exec::binary::error(out, r.h.opcode, status::AUTH_ERROR, r.h.opaque);
            }
            Request::Binary(Err(_)) => {}
        }
    }

    /// Runs a request on this shard into the connection's replies.
    /// When they go straight to the output (nothing waits on another
    /// shard before them), large values may be sent by reference.
    pub(super) fn exec_local(&mut self, idx: u32, req: &Request) {
        let fd = self.conns[idx as usize].as_ref().map(|c| c.fd);
        let id = self.id;
        self.exec_with(idx, |sh, out| {
            let start = out.len();
            match req {
                Request::Text(t) => exec::text::exec(sh, t, out),
                // Answered by the dispatcher (access.rs, auth_cmd.rs).
                Request::AsciiAuth(_) => {}
                Request::Binary(Ok(r)) => exec::binary::exec(sh, r, out),
                // Logged as parsed (conn_log::request).
                Request::Binary(Err(binary::Invalid::Args(h))) => {
                    return exec::binary::error(out, h.opcode, status::EINVAL, h.opaque);
                }
                Request::Binary(Err(binary::Invalid::Unknown(h) | binary::Invalid::Frame(h))) => {
                    return exec::binary::error(out, h.opcode, status::UNKNOWN_COMMAND, h.opaque);
                }
            }
            super::conn_log::reply_error(fd, id, out.get(start..).unwrap_or_default());
        });
        if let Request::Binary(Err(binary::Invalid::Args(_) | binary::Invalid::Frame(_))) = req {
            // memcached closes after invalid arguments and unreadable
            // frames: the rest of the stream cannot be framed with
            // confidence.
            self.conn(idx).closing = true;
        }
    }

    /// Runs `f` on this shard with the connection's reply buffer; values
    /// of `ZC_MIN` bytes or more go by reference.
    pub(super) fn exec_with(&mut self, idx: u32, f: impl FnOnce(&mut exec::Shard, &mut Vec<u8>)) {
        let Some(c) = self.conns[idx as usize].as_mut() else {
            return;
        };
        let fd = c.fd;
        let (out, refs) = c.reply_target();
        self.shard.zc_min = ZC_MIN;
        f(&mut self.shard, out);
        self.shard.zc_min = usize::MAX;
        if !self.shard.zc_refs.is_empty() {
            refs.append(&mut self.shard.zc_refs);
        }
        self.emit_notes(fd);
    }

    /// A text get/gets/gat/gats: one key here, read from its owner's
    /// memory (foreign_read.rs), or forwarded whole to its owner; several
    /// keys each so, in order (multiget.rs).
    /// Returns false if the keys are not all done yet.
    fn split_get(&mut self, idx: u32, req: &Request, keys: &[u8], raw: &[u8]) -> bool {
        let Request::Text(text::Request::Get { cas, touch, .. }) = *req else {
            self.exec_local(idx, req);
            return true;
        };
        let pinned = self.conn(idx).pinned;
        let mut it = text::tokens(keys);
        if let (Some(k), None) = (it.next(), it.next()) {
            let to = self.owner_for(pinned, k);
            if to == self.id {
                self.exec_local(idx, req);
            } else if touch.is_none()
                && self.foreign_get(idx, to, k, super::foreign_read::Reply::Text { cas })
            {
                self.conn(idx).reply_buf().extend_from_slice(b"END\r\n");
            } else if !self.exec_borrowed(idx, to, req) {
                self.forward_raw(idx, to, req, raw, k);
            }
            return true;
        }
        // `keys` is a slice of `raw`.
        let next = keys.as_ptr() as usize - raw.as_ptr() as usize;
        let cur = GetCursor {
            next,
            end: next + keys.len(),
            used: raw.len(),
            cas,
            touch,
        };
        match self.run_get(idx, raw, cur) {
            GetRun::Done => true,
            GetRun::Suspended(cur) => {
                self.conn(idx).get = Some(cur);
                false
            }
        }
    }
}
