//! Authentication commands: ASCII auth's `set` (`-Y`) and the binary
//! protocol's SASL_LIST_MECHS, SASL_AUTH and SASL_STEP with PLAIN (`-S`),
//! both against the one password file (`auth/`). Counted as memcached
//! counts them (`auth_cmds`, `auth_errors`); failures are audited.

use super::dispatch::Request;
use super::worker::Worker;
use crate::admin::audit::{audit_as, peer_of};
use crate::auth::sasl;
use crate::exec::reply::push_line;
use crate::protocol::ascii_auth::AsciiAuth;
use crate::protocol::binary::{self, status, Kind};

impl Worker {
    /// Runs an authentication request of connection `idx`.
    pub(super) fn auth_cmd(&mut self, idx: u32, req: &Request) {
        match req {
            Request::AsciiAuth(a) => {
                let line = match *a {
                    AsciiAuth::Credentials { user, password } => {
                        if self.login(idx, user, password, "ascii") {
                            "STORED"
                        } else {
                            "CLIENT_ERROR authentication failure"
                        }
                    }
                    AsciiAuth::BadTermination => "CLIENT_ERROR bad command line termination",
                    AsciiAuth::BadFormat => "CLIENT_ERROR bad authentication token format",
                    AsciiAuth::NotAuth => super::access::UNAUTHENTICATED,
                };
                push_line(self.conn(idx).reply_buf(), line);
            }
            Request::Binary(Ok(r)) => {
                let (op, opaque) = (r.h.opcode, r.h.opaque);
                if self.shared.auth.is_none() {
                    // memcached without -S does not know these opcodes.
                    let out = self.conn(idx).reply_buf();
                    crate::exec::binary::error(out, op, status::UNKNOWN_COMMAND, opaque);
                    return;
                }
                // SASL mechanism names are case-insensitive (RFC 4422 3.1):
                // memcached's cyrus logs `plain` in as `PLAIN`.
                let plain = r.key.eq_ignore_ascii_case(sasl::MECHS.as_bytes());
                let reply = match r.cmd.kind {
                    Kind::SaslList => Ok(sasl::MECHS.as_bytes()),
                    Kind::SaslAuth if plain && r.value.is_empty() => {
                        // PLAIN without an initial response: an empty
                        // challenge, the response comes in SASL_STEP.
                        self.conn(idx).sasl_step = true;
                        Err(status::AUTH_CONTINUE)
                    }
                    Kind::SaslAuth | Kind::SaslStep => {
                        let step_ok = r.cmd.kind == Kind::SaslAuth || self.conn(idx).sasl_step;
                        self.conn(idx).sasl_step = false;
                        let creds = sasl::parse_plain(r.value).filter(|_| plain);
                        let ok = match creds {
                            Some(p) if step_ok => self.login(idx, p.authcid, p.passwd, "sasl"),
                            // Never the message itself: it holds a password.
                            Some(p) => self.login_failed(idx, p.authcid, "sasl"),
                            None => self.login_failed(idx, b"", "sasl"),
                        };
                        if ok {
                            Ok(&b"Authenticated"[..])
                        } else {
                            Err(status::AUTH_ERROR)
                        }
                    }
                    _ => Err(status::UNKNOWN_COMMAND),
                };
                let out = self.conn(idx).reply_buf();
                match reply {
                    Ok(v) => binary::write_response(out, op, 0, opaque, 0, &[], &[], v),
                    Err(status::AUTH_CONTINUE) => binary::write_response(
                        out,
                        op,
                        status::AUTH_CONTINUE,
                        opaque,
                        0,
                        &[],
                        &[],
                        &[],
                    ),
                    Err(st) => crate::exec::binary::error(out, op, st, opaque),
                }
            }
            Request::Binary(Err(_)) | Request::Text(_) => {}
        }
    }

    /// Checks a user and password; on success the connection acts as
    /// that user from its next request. Returns whether it matched.
    fn login(&mut self, idx: u32, user: &[u8], password: &[u8], how: &str) -> bool {
        let Some(reg) = self.shared.auth.as_ref() else {
            return false;
        };
        let gen = reg.generation();
        match reg.current().verify(user, password) {
            Some(u) => {
                self.shard.c.auth_cmds += 1;
                let c = self.conn(idx);
                c.user = Some(u);
                c.auth_gen = gen;
                true
            }
            None => self.login_failed(idx, user, how),
        }
    }

    /// Counts and audits a failed attempt (`user` as the client gave it,
    /// or the raw message); the connection is unauthenticated after it.
    fn login_failed(&mut self, idx: u32, user: &[u8], how: &str) -> bool {
        self.shard.c.auth_cmds += 1;
        self.shard.c.auth_errors += 1;
        let c = self.conn(idx);
        c.user = None;
        let name = String::from_utf8_lossy(&user[..user.len().min(64)]).into_owned();
        audit_as("auth_failure", &peer_of(c.fd), Some(&name), how);
        false
    }
}
