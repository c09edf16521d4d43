//! The audit trail of administrative commands, whichever protocol carried
//! them: every flush_all, flush_prefix, cache_memlimit, shutdown,
//! verbosity, `stats reset`/`detail`/`cachedump`, `lru_crawler`
//! (metadump lists every key), `slabs` and `watch`, done or refused (`-F`,
//! `-A`, not authenticated), with the peer, the user and the argument as given.
//! Refusals by a user's rules are logged by `access.rs` as `denied`.
//! `admin/audit.rs` writes the lines; they are rare, so the peer lookup
//! (one system call) costs nothing on the request path.

use super::access::is_admin;
use super::dispatch::{Op, Refusal, Request};
use super::worker::Worker;
use crate::admin::audit::{audit_as, peer_of};
use crate::exec;
use crate::protocol::binary::Kind;
use crate::protocol::text;

/// The command's name as memcached users know it, and its argument.
fn describe(req: &Request) -> (&'static str, String) {
    use text::Request as T;
    match req {
        Request::Text(T::Flush { delay, .. }) => ("flush_all", delay.to_string()),
        Request::Text(T::FlushPrefix { prefix, .. }) => {
            ("flush_prefix", String::from_utf8_lossy(prefix).into_owned())
        }
        Request::Text(T::CacheMemlimit { mb, .. }) => ("cache_memlimit", mb.to_string()),
        Request::Text(T::Shutdown { graceful, .. }) => (
            "shutdown",
            if *graceful { "graceful" } else { "" }.to_string(),
        ),
        Request::Text(T::RefreshCerts { .. }) => ("refresh_certs", String::new()),
        Request::Text(T::Verbosity { level, .. }) => (
            "verbosity",
            level.map_or_else(|| "?".into(), |l| l.to_string()),
        ),
        // lru_crawler (metadump lists every key), slabs, watch.
        Request::Text(T::Admin { cmd, arg }) => (
            match *cmd {
                b"lru_crawler" => "lru_crawler",
                b"slabs" => "slabs",
                b"watch" => "watch",
                _ => "other",
            },
            String::from_utf8_lossy(arg).trim().to_string(),
        ),
        Request::Text(T::Stats { arg }) => {
            ("stats", String::from_utf8_lossy(arg).trim().to_string())
        }
        Request::Binary(Ok(r)) => match r.cmd.kind {
            Kind::Flush => ("flush_all", exec::binary::flush_delay(r).to_string()),
            Kind::Verbosity if r.extras.len() >= 4 => ("verbosity", r.extra_u32(0).to_string()),
            Kind::Verbosity => ("verbosity", "?".into()),
            Kind::Stat => ("stats", String::from_utf8_lossy(r.key).into_owned()),
            _ => ("other", String::new()),
        },
        _ => ("other", String::new()),
    }
}

/// The audit action: the command, and why it was refused if it was.
fn action(name: &str, refusal: Option<Refusal>) -> String {
    match refusal {
        None => name.to_string(),
        Some(Refusal::FlushDisabled) => format!("{name} refused (-F)"),
        Some(Refusal::ShutdownDisabled) => format!("{name} refused (no -A)"),
        Some(Refusal::Unauthenticated) => format!("{name} refused (unauthenticated)"),
        Some(r) => format!("{name} refused ({r:?})"),
    }
}

impl Worker {
    /// Logs an administrative request of connection `idx` and what became
    /// of it (`refusal`: None when it runs).
    pub(super) fn audit_admin(&self, idx: u32, op: Op, req: &Request, refusal: Option<Refusal>) {
        if refusal == Some(Refusal::Denied) || !is_admin(op, req) {
            return;
        }
        let Some(c) = self.conns[idx as usize].as_ref() else {
            return;
        };
        let (name, arg) = describe(req);
        let user = c.user.as_ref().map(|u| u.name.as_str());
        audit_as(&action(name, refusal), &peer_of(c.fd), user, &arg);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_arguments() {
        let r = Request::Text(text::Request::Flush {
            delay: 30,
            noreply: false,
        });
        assert_eq!(describe(&r), ("flush_all", "30".to_string()));
        let r = Request::Text(text::Request::Verbosity {
            level: None,
            noreply: true,
        });
        assert_eq!(describe(&r), ("verbosity", "?".to_string()));
        assert_eq!(
            action("flush_all", Some(Refusal::FlushDisabled)),
            "flush_all refused (-F)"
        );
        assert_eq!(action("shutdown", None), "shutdown");
        let r = Request::Text(text::Request::Shutdown {
            graceful: true,
            bad_mode: false,
        });
        assert_eq!(describe(&r), ("shutdown", "graceful".to_string()));
    }
}
