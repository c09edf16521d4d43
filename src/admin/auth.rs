//! Who may use the admin port, and CSRF protection for what changes state.
//!
//! - With a password file (`-Y`, `-S`), every request but the health
//!   probes logs in as one of its users over HTTP Basic and acts with that
//!   user's rights (`users.rs`); a wrong user or password is `401`,
//!   counted and audited, and braked per peer (`throttle.rs`).
//!   `--admin-open-metrics` exempts `GET /metrics`. An admin token, if
//!   also set, still works as `Authorization: Bearer`, with every right.
//! - Without one, a token (`--admin-token` or `--admin-token-file`), when
//!   set, is asked of every request but the health probes: `Authorization:
//!   Bearer <token>`, or HTTP Basic with the token as password (any user
//!   name), which is what a browser prompts for. A failed attempt goes to
//!   the audit trail. A non-loopback bind needs a token or a password file
//!   (`admin::bind`).
//! - With neither, the port is open to this host only, and a request
//!   must name it by address or as `localhost` in its `Host` header: a web
//!   page on another domain that rebinds its name to 127.0.0.1 (DNS
//!   rebinding) sends its own name there, and is refused with 403.
//! - Every request that changes state (any method but GET and HEAD) must
//!   carry `X-CSRF-Token` equal to the per-process token the dashboard
//!   page embeds and `GET /api/csrf` returns. Another origin's page can
//!   neither read it (no CORS headers are ever sent) nor set a custom
//!   header on a cross-origin form post, so it cannot forge a change.

use super::audit::audit_as;
use super::server::App;
use super::throttle::Throttle;
use super::users::{self, Who, ACCESS};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

/// The header a state-changing request carries its CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The admin port's credentials: the optional access token, the
/// per-process CSRF token (32 hex digits from the kernel's RNG), the
/// brake on password guessing, and whether `/metrics` needs no login.
#[derive(Debug)]
pub struct Guard {
    token: Option<String>,
    csrf: String,
    throttle: Throttle,
    open_metrics: bool,
}

impl Guard {
    /// A guard asking for `token` (none: open, loopback only) with a fresh
    /// CSRF token.
    pub fn new(token: Option<String>) -> Guard {
        let mut b = [0u8; 16];
        // SAFETY: getrandom writes at most `b.len()` bytes into `b`.
        let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
        assert_eq!(n, b.len() as isize, "getrandom failed");
        Guard {
            token,
            csrf: b.iter().map(|x| format!("{x:02x}")).collect(),
            throttle: Throttle::default(),
            open_metrics: false,
        }
    }

    /// `--admin-open-metrics`: `GET /metrics` without a login.
    pub fn with_open_metrics(mut self, open: bool) -> Guard {
        self.open_metrics = open;
        self
    }

    /// The CSRF token state-changing requests must carry.
    pub fn csrf(&self) -> &str {
        &self.csrf
    }

    /// Whether an access token is required.
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// Whether the request's `Authorization` header carries the token as
    /// `Bearer`.
    fn bearer(&self, h: &HeaderMap) -> bool {
        let (Some(want), Some(v)) = (&self.token, h.get(header::AUTHORIZATION)) else {
            return false;
        };
        bearer_token(v.as_bytes()).is_some_and(|t| same(t, want.as_bytes()))
    }

    /// Whether the request's `Authorization` header carries the token (or
    /// none is required), when there is no password file.
    pub fn authorized(&self, h: &HeaderMap) -> bool {
        let Some(want) = &self.token else {
            return true;
        };
        let Some(v) = h.get(header::AUTHORIZATION) else {
            return false;
        };
        if let Some(t) = bearer_token(v.as_bytes()) {
            return same(t, want.as_bytes());
        }
        users::basic(v.as_bytes()).is_some_and(|(_, password)| same(&password, want.as_bytes()))
    }

    /// Whether the request carries the CSRF token.
    pub fn csrf_ok(&self, h: &HeaderMap) -> bool {
        h.get(CSRF_HEADER)
            .is_some_and(|v| same(v.as_bytes(), self.csrf.as_bytes()))
    }
}

/// The token of a `Bearer` credential; the scheme's case is ignored, as
/// HTTP's authentication schemes are case-insensitive (RFC 9110, 11.1),
/// and as `users::basic` ignores Basic's.
fn bearer_token(v: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = v.split_at_checked(7)?;
    scheme
        .eq_ignore_ascii_case(b"bearer ")
        .then(|| rest.trim_ascii())
}

/// Whether the request names this host by address (`127.0.0.1:11212`,
/// `[::1]:11212`) or as `localhost`, not by a domain name another site
/// could point at it: its one `Host` header (none, as HTTP/1.0 may send,
/// passes; two are refused, as RFC 9112 3.2 has a server refuse them) and
/// the authority of an absolute-form target (`GET http://host/...`), which
/// a server must prefer to `Host`. A breaker found a second `Host`, text
/// after `[::1]`, and an absolute target each naming another host let in.
fn host_is_local(h: &HeaderMap, uri: &Uri) -> bool {
    let mut hosts = h.get_all(header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return false;
    }
    if uri
        .authority()
        .is_some_and(|a| !names_this_host(a.as_str()))
    {
        return false;
    }
    host.is_none_or(|v| v.to_str().is_ok_and(names_this_host))
}

/// Whether one `Host` value names this host: an IPv4 address, a bracketed
/// IPv6 address or `localhost`, then nothing or a `:port`.
fn names_this_host(v: &str) -> bool {
    let (ok, port) = match v.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((ip, port)) => (ip.parse::<std::net::Ipv6Addr>().is_ok(), port),
            None => return false,
        },
        None => {
            let (host, port) = v.find(':').map_or((v, ""), |i| v.split_at(i));
            let ok = host.eq_ignore_ascii_case("localhost")
                || host.parse::<std::net::Ipv4Addr>().is_ok();
            (ok, port)
        }
    };
    ok && (port.is_empty()
        || port
            .strip_prefix(':')
            .is_some_and(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit())))
}

/// Compares in time independent of where the bytes differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// Why a request is not let in.
enum Refused {
    /// No, or wrong, credentials: `401`, asking for a Basic login.
    Unauthorized,
    /// Too many failed logins from the peer: `429`, retry in so many seconds.
    Throttled(u64),
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        match self {
            Refused::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Basic realm=\"corecache\"")],
                "authentication required\n",
            )
                .into_response(),
            Refused::Throttled(secs) => (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, secs.to_string())],
                "too many failed logins from this address; retry later\n",
            )
                .into_response(),
        }
    }
}

/// Who the request acts as, or the refusal: with a password file, the
/// Bearer token or a user's HTTP Basic login; without one, the token (if
/// any). A failed login is counted, audited (the user name as sent, never
/// the password) and counted against the peer's brake.
fn login(app: &App, h: &HeaderMap, peer: SocketAddr, path: &str) -> Result<Who, Refused> {
    let g = &app.guard;
    let Some(v) = h.get(header::AUTHORIZATION) else {
        return match app.shared.auth.is_none() && g.authorized(h) {
            true => Ok(Who::anyone()),
            false => Err(Refused::Unauthorized),
        };
    };
    // Credentials sent: the brake comes first, for the token as for a
    // password (a braked peer must not learn that a guess was right).
    let now = Instant::now();
    if let Some(wait) = g.throttle.wait(peer.ip(), now) {
        ACCESS.throttled.fetch_add(1, Relaxed);
        return Err(Refused::Throttled(wait.as_secs() + 1));
    }
    // One failed login, by `user` as sent if a user was named.
    let failed = |user: Option<&str>| {
        g.throttle.failed(peer.ip(), now);
        ACCESS.failures.fetch_add(1, Relaxed);
        audit_as("login_failed", &peer.to_string(), user, path);
        Err(Refused::Unauthorized)
    };
    let Some(reg) = app.shared.auth.as_ref() else {
        if g.authorized(h) {
            return Ok(Who::anyone());
        }
        return failed(None);
    };
    if g.bearer(h) {
        return Ok(Who::anyone());
    }
    let (user, verified) = match users::basic(v.as_bytes()) {
        Some((user, password)) => {
            let u = reg.current().verify(&user, &password);
            (user, u)
        }
        None => (b"-".to_vec(), None),
    };
    match verified {
        Some(u) => Ok(Who::user(u)),
        None => failed(Some(&String::from_utf8_lossy(&user[..user.len().min(64)]))),
    }
}

/// The middleware: health probes pass; then the `Host` check (no
/// credentials configured), the login, and CSRF on anything but GET and
/// HEAD. The request then carries its [`Who`].
pub async fn check(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut req: Request,
    next: Next,
) -> Response {
    let g = &app.guard;
    if !matches!(
        *req.method(),
        Method::GET | Method::HEAD | Method::POST | Method::PUT | Method::DELETE
    ) {
        // Before CSRF, which answered TRACE or OPTIONS 403 as if a token
        // could make them work.
        return (StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n").into_response();
    }
    // A bad escape anywhere in the query is the client's error: read as
    // absent, `prefix=%e2%8` listed every key.
    let query = req.uri().query().unwrap_or("");
    if query
        .split('&')
        .any(|kv| super::api::percent_decode(kv).is_none())
    {
        return (StatusCode::BAD_REQUEST, "bad %-escape in the query\n").into_response();
    }
    let path = req.uri().path();
    if path == "/healthz" || path == "/readyz" {
        return next.run(req).await;
    }
    let users = app.shared.auth.is_some();
    if !g.has_token() && !users && !host_is_local(req.headers(), req.uri()) {
        return (
            StatusCode::FORBIDDEN,
            "Host must name this host by address or as localhost\n",
        )
            .into_response();
    }
    let open = g.open_metrics && path == "/metrics" && *req.method() == Method::GET;
    let who = if open {
        Who::anyone()
    } else {
        match login(&app, req.headers(), peer, path) {
            Ok(who) => who,
            Err(r) => return r.into_response(),
        }
    };
    if !matches!(*req.method(), Method::GET | Method::HEAD) && !g.csrf_ok(req.headers()) {
        return (
            StatusCode::FORBIDDEN,
            [(header::CONTENT_TYPE, "application/json")],
            "{\"error\":\"missing or wrong X-CSRF-Token\"}",
        )
            .into_response();
    }
    req.extensions_mut().insert(who);
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with(name: &'static str, v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn tokens_bearer_and_basic() {
        let g = Guard::new(Some("s3cret".into()));
        assert!(g.authorized(&with("authorization", "Bearer s3cret")));
        assert!(!g.authorized(&with("authorization", "Bearer s3cre")));
        assert!(!g.authorized(&HeaderMap::new()));
        // admin:s3cret
        assert!(g.authorized(&with("authorization", "Basic YWRtaW46czNjcmV0")));
        // admin:nope
        assert!(!g.authorized(&with("authorization", "Basic YWRtaW46bm9wZQ==")));
        assert!(Guard::new(None).authorized(&HeaderMap::new()));
    }

    #[test]
    fn only_addresses_and_localhost_name_this_host() {
        let local: Uri = "/stats".parse().unwrap();
        for ok in [
            "127.0.0.1:11212",
            "127.0.0.1",
            "localhost:11212",
            "LOCALHOST",
            "[::1]:11212",
            "10.0.0.5:80",
        ] {
            assert!(host_is_local(&with("host", ok), &local), "{ok}");
        }
        for bad in [
            "attacker.example",
            "attacker.example:11212",
            "127.0.0.1.nip.io:11212",
            "[::1",
            "[evil]:1",
            "[::1]evil.example",
            "[::1]:80evil",
            "127.0.0.1:",
            ":80",
            "",
        ] {
            assert!(!host_is_local(&with("host", bad), &local), "{bad}");
        }
        assert!(host_is_local(&HeaderMap::new(), &local));
        // Two Host headers, the second another site's.
        let mut two = with("host", "127.0.0.1");
        two.append(header::HOST, HeaderValue::from_static("evil.example"));
        assert!(!host_is_local(&two, &local));
        // An absolute-form target names the host the request is for.
        let h = with("host", "127.0.0.1");
        let evil: Uri = "http://evil.example/stats".parse().unwrap();
        assert!(!host_is_local(&h, &evil));
        let mine: Uri = "http://127.0.0.1:11212/stats".parse().unwrap();
        assert!(host_is_local(&h, &mine));
    }

    #[test]
    fn csrf_is_random_and_checked() {
        let (a, b) = (Guard::new(None), Guard::new(None));
        assert_eq!(a.csrf().len(), 32);
        assert_ne!(a.csrf(), b.csrf());
        assert!(a.csrf_ok(&with(CSRF_HEADER, a.csrf())));
        assert!(!a.csrf_ok(&with(CSRF_HEADER, b.csrf())));
        assert!(!a.csrf_ok(&HeaderMap::new()));
    }
}
