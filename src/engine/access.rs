//! Authentication and authorisation, checked once for every protocol at
//! the dispatch point (`dispatch.rs` `Worker::dispatch` asks `access`
//! before any other policy). Without `-Y`/`-S` nothing here refuses.
//!
//! - A connection that has not authenticated may only authenticate (text:
//!   ASCII auth's `set`; binary: SASL_*, and VERSION, as memcached's
//!   `authenticated()` allows). Anything else gets memcached's reply:
//!   text `CLIENT_ERROR unauthenticated` (the connection stays open),
//!   binary status 0x20 "Auth failure." and the connection closes.
//! - An authenticated user's request is checked against its ACL rules
//!   (`auth/acl.rs`): administrative commands need `admin`; gets need
//!   `read` of every key; stores, deletes, incr/decr need `write`; touch
//!   and gat need both. A refusal gets the same replies (binary keeps the
//!   connection), is counted in `auth_denied` and written to the audit
//!   trail with the user, the command and its key.

use super::dispatch::{Op, Refusal, Request, Route};
use super::worker::Worker;
use crate::admin::audit::{audit_as, peer_of};
use crate::auth::acl::Rules;
use crate::exec::reply::push_line;
use crate::protocol::binary::{op, status};
use crate::protocol::text;

/// memcached's text reply to a request before authentication; corecache
/// also gives it for a request the user's rules refuse.
pub const UNAUTHENTICATED: &str = "CLIENT_ERROR unauthenticated";

/// Whether a request is administrative: it changes or reveals the whole
/// cache rather than keys (flush_all, cache_memlimit, shutdown, verbosity,
/// `stats reset`, `stats detail`, `stats cachedump`; `watch` and
/// `lru_crawler metadump`, which show every user's keys; `lru_crawler`'s
/// and `slabs`' other sub-commands, which steer the whole server).
pub fn is_admin(op: Op, req: &Request) -> bool {
    match op {
        Op::Flush | Op::MemLimit | Op::Shutdown | Op::Verbosity | Op::RefreshCerts => true,
        Op::Stats => {
            let group = match req {
                Request::Text(text::Request::Admin { .. }) => return true,
                Request::Text(text::Request::Stats { arg }) => text::tokens(arg).next(),
                // "detail dump": the group is the first word.
                Request::Binary(Ok(r)) => r.key.split(|&b| b == b' ').next(),
                _ => None,
            };
            matches!(
                group,
                Some(b"reset" | b"detail" | b"cachedump" | b"sizes_enable" | b"sizes_disable")
            )
        }
        _ => false,
    }
}

/// Whether `rules` allow the request.
pub fn allowed(rules: &Rules, op: Op, route: Route, req: &Request) -> bool {
    if is_admin(op, req) {
        return rules.admin;
    }
    let (read, write) = match op {
        Op::Get | Op::Other => (true, false),
        Op::Touch => (true, true),
        Op::Store | Op::Delete | Op::Arith => (false, true),
        _ => return true,
    };
    let may = |k: &[u8]| (!read || rules.may_read(k)) && (!write || rules.may_write(k));
    match route {
        Route::Key(k) => may(k),
        Route::Split(keys) => text::tokens(keys).all(may),
        _ => true,
    }
}

/// Binary opcodes memcached serves before authentication
/// (`authenticated()` in memcached.c): VERSION and the SASL commands,
/// malformed ones included (they get "Invalid arguments", not 0x20).
fn before_auth(req: &Request) -> bool {
    let opcode = match req {
        Request::Binary(Ok(r)) => r.h.opcode,
        Request::Binary(Err(e)) => e.header().opcode,
        _ => return false,
    };
    matches!(
        opcode,
        op::VERSION | op::SASL_LIST_MECHS | op::SASL_AUTH | op::SASL_STEP
    )
}

/// A short name of what was refused, for the audit line.
fn what(op: Op, route: Route) -> String {
    let key = match route {
        Route::Key(k) | Route::Split(k) => String::from_utf8_lossy(&k[..k.len().min(250)])
            .trim()
            .to_string(),
        _ => String::new(),
    };
    format!("{op:?} {key}").trim_end().to_string()
}

impl Worker {
    /// The access policy: None when the request may run.
    pub(super) fn access(
        &mut self,
        idx: u32,
        op: Op,
        route: Route,
        req: &Request,
    ) -> Option<Refusal> {
        let reg = self.shared.auth.as_ref()?;
        let c = self.conns[idx as usize].as_mut()?;
        let gen = reg.generation();
        if c.auth_gen != gen {
            // The files were reloaded: the user may be gone or changed.
            c.auth_gen = gen;
            if let Some(u) = c.user.take() {
                c.user = reg.current().user(&u.name);
            }
        }
        let refusal = match &c.user {
            None => (op != Op::Auth && !before_auth(req)).then_some(Refusal::Unauthenticated),
            Some(u) => (!allowed(&u.rules, op, route, req)).then_some(Refusal::Denied),
        }?;
        self.shard.c.auth_denied += 1;
        if refusal == Refusal::Denied {
            let user = c.user.as_ref().map(|u| u.name.clone());
            audit_as("denied", &peer_of(c.fd), user.as_deref(), &what(op, route));
        }
        Some(refusal)
    }

    /// Answers a request refused by `access`, in its protocol.
    pub(super) fn refuse_access(&mut self, idx: u32, why: Refusal, req: &Request) {
        match req {
            Request::Text(t) => {
                if why == Refusal::Denied && text_noreply(t) {
                    return;
                }
                push_line(self.conn(idx).reply_buf(), UNAUTHENTICATED);
            }
            Request::AsciiAuth(_) => push_line(self.conn(idx).reply_buf(), UNAUTHENTICATED),
            Request::Binary(r) => {
                let (opcode, opaque) = match r {
                    Ok(r) => (r.h.opcode, r.h.opaque),
                    Err(e) => (e.header().opcode, e.header().opaque),
                };
                let c = self.conn(idx);
                crate::exec::binary::error(c.reply_buf(), opcode, status::AUTH_ERROR, opaque);
                // memcached closes a connection that sent a command before
                // authenticating (proto_bin.c, close_after_write).
                if why == Refusal::Unauthenticated {
                    c.closing = true;
                }
            }
        }
    }
}

/// Whether a text request asked for no reply (a refusal then sends none,
/// or the client would read it as the next command's reply). Meta
/// commands show errors whatever their `q` flag.
fn text_noreply(t: &text::Request) -> bool {
    use text::Request as T;
    match t {
        T::Store(s) => s.noreply,
        T::TooLarge(o) => o.noreply && o.cmd != crate::protocol::StoreCmd::Meta,
        T::Delete { noreply, .. }
        | T::Delta { noreply, .. }
        | T::Touch { noreply, .. }
        | T::Flush { noreply, .. }
        | T::Verbosity { noreply, .. }
        | T::CacheMemlimit { noreply, .. }
        | T::RefreshCerts { noreply } => *noreply,
        _ => false,
    }
}
