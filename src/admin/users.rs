//! The admin port's users: with a password file (`-Y`, `-S`), the same
//! users as the data port log in over HTTP Basic, and the same rules
//! (`auth::acl::Rules`) decide what each may see and change.
//!
//! HTTP Basic, not a login form and a session: browsers prompt for it,
//! curl (`-u`) and Prometheus (`basic_auth`) send it, and a stateless
//! login checks every request against the table in force, so a SIGHUP
//! that removes a user or a right applies at that user's next request,
//! with no session to find and end. Each check is one SHA-256 and a
//! constant-time compare (`auth::Table::verify`); guessing is braked per
//! peer (`throttle.rs`).
//!
//! What each right allows here, as on the data port (`engine/access.rs`):
//! - any user: the dashboard page, `/metrics`, `/stats`, `/api/history`
//!   (figures, as `stats`);
//! - `read` of a key: `GET /api/key/K`; the key browser lists only keys
//!   the user may read;
//! - `write` of a key: `PUT` and `DELETE /api/key/K`, bulk delete (bulk
//!   TTL is a touch: read and write, as `touch`);
//! - `admin`: `/api/flush_prefix`, as text `flush_prefix` and `flush_all`.
//!
//! A refusal is `403` with a JSON error, counted and audited with the user.

use super::api::reply;
use super::audit::audit_as;
use crate::auth::acl::Rules;
use crate::auth::User;
use axum::extract::Extension;
use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// Who a request acts as, set by the middleware (`auth.rs`) on every
/// request it lets through.
#[derive(Clone, Debug)]
pub struct Who(Option<Arc<User>>);

impl Who {
    /// Every right: no password file (the port as it always was), or the
    /// admin token.
    pub fn anyone() -> Who {
        Who(None)
    }

    /// A user of the password file.
    pub fn user(u: Arc<User>) -> Who {
        Who(Some(u))
    }

    /// The user's name; None for [`Who::anyone`].
    pub fn name(&self) -> Option<&str> {
        self.0.as_ref().map(|u| u.name.as_str())
    }

    fn rules(&self) -> Option<&Rules> {
        self.0.as_ref().map(|u| &u.rules)
    }

    /// Whether `key` may be read.
    pub fn may_read(&self, key: &[u8]) -> bool {
        self.rules().is_none_or(|r| r.may_read(key))
    }

    /// Whether `key` may be written (stored, deleted, touched).
    pub fn may_write(&self, key: &[u8]) -> bool {
        self.rules().is_none_or(|r| r.may_write(key))
    }

    /// Whether no key at all may be read (the key browser is then refused
    /// rather than walked for nothing).
    pub fn reads_nothing(&self) -> bool {
        self.rules().is_some_and(|r| r.read.is_empty())
    }

    /// Whether administrative actions are allowed.
    pub fn admin(&self) -> bool {
        self.rules().is_none_or(|r| r.admin)
    }

    /// Refuses `what` (e.g. `key_set user:1`): counts it, audits it with
    /// the user and answers `403`.
    pub fn deny(&self, peer: SocketAddr, what: &str) -> Response {
        ACCESS.denied.fetch_add(1, Relaxed);
        audit_as("denied", &peer.to_string(), self.name(), what);
        reply(
            StatusCode::FORBIDDEN,
            json!({ "error": format!("user {} may not: {what}", self.name().unwrap_or("-")) }),
        )
    }
}

/// `GET /api/whoami`: the logged-in user and its rules (`user` null
/// without a password file, or with the admin token), as the dashboard
/// shows them; a prefix `*` is every key.
pub async fn whoami(Extension(who): Extension<Who>) -> Response {
    let shown = |ps: &[Vec<u8>]| -> Vec<String> {
        ps.iter()
            .map(|p| match p.is_empty() {
                true => "*".to_string(),
                false => String::from_utf8_lossy(p).into_owned(),
            })
            .collect()
    };
    let all = Rules::all();
    let r = who.rules().unwrap_or(&all);
    reply(
        StatusCode::OK,
        json!({
            "user": who.name(),
            "admin": r.admin,
            "read": shown(&r.read),
            "write": shown(&r.write),
        }),
    )
}

/// The admin port's login figures since start (`/metrics`).
#[derive(Debug, Default)]
pub struct AccessFigures {
    /// Requests whose user name or password was wrong.
    pub failures: AtomicU64,
    /// Requests with credentials refused unchecked (`throttle.rs`).
    pub throttled: AtomicU64,
    /// Requests a logged-in user had no right to make.
    pub denied: AtomicU64,
}

/// The process's admin login figures.
pub static ACCESS: AccessFigures = AccessFigures {
    failures: AtomicU64::new(0),
    throttled: AtomicU64::new(0),
    denied: AtomicU64::new(0),
};

/// The user and password of an `Authorization: Basic` value (RFC 7617:
/// base64 of `user:password`, the user ending at the first `:`); None for
/// any other scheme or a malformed value. The bytes are returned as sent,
/// for the password file to compare (it is bytes, not UTF-8).
pub fn basic(value: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let (scheme, rest) = value.split_at_checked(6)?;
    if !scheme.eq_ignore_ascii_case(b"basic ") {
        return None;
    }
    let d = base64::engine::general_purpose::STANDARD
        .decode(rest.trim_ascii())
        .ok()?;
    let i = d.iter().position(|&c| c == b':')?;
    Some((d[..i].to_vec(), d[i + 1..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_values() {
        // alice:s3:cret
        assert_eq!(
            basic(b"Basic YWxpY2U6czM6Y3JldA=="),
            Some((b"alice".to_vec(), b"s3:cret".to_vec()))
        );
        assert_eq!(
            basic(b"basic  YWxpY2U6 "),
            Some((b"alice".to_vec(), Vec::new()))
        );
        assert_eq!(basic(b"Bearer YWxpY2U6czM="), None);
        assert_eq!(basic(b"Basic !!"), None);
        // No ':' in "alice".
        assert_eq!(basic(b"Basic YWxpY2U="), None);
        assert_eq!(basic(b"Basic"), None);
        assert_eq!(basic(b""), None);
    }

    #[test]
    fn rights_follow_the_rules() {
        let t = crate::auth::Table::from_text(
            "ops:a\nweb:b\nnobody:c\n",
            Some("ops admin read=* write=*\nweb read=app: write=app:tmp:\n"),
        )
        .unwrap();
        let who = |n: &str| Who::user(t.user(n).unwrap());
        let (ops, web, nobody) = (who("ops"), who("web"), who("nobody"));
        assert!(ops.admin() && ops.may_read(b"x") && ops.may_write(b"x"));
        assert!(!web.admin() && web.may_read(b"app:1") && !web.may_read(b"x"));
        assert!(web.may_write(b"app:tmp:1") && !web.may_write(b"app:1"));
        assert!(nobody.reads_nothing() && !nobody.may_write(b"k") && !nobody.admin());
        assert!(!web.reads_nothing());
        let all = Who::anyone();
        assert!(all.admin() && all.may_read(b"k") && all.may_write(b"k") && !all.reads_nothing());
        assert_eq!((web.name(), all.name()), (Some("web"), None));
    }
}
