//! The admin side: an HTTP port (Prometheus `/metrics`, `/healthz`,
//! `/readyz`, `/stats` as JSON) served on its own small runtime and thread,
//! leveled logging, the audit trail, the latency histograms the workers
//! record into, and systemd's readiness and watchdog notifications.
//!
//! Workers only publish (their counters, their own histogram, a flag that
//! they serve); everything here reads, off the workers' hot path.

pub mod api;
pub mod audit;
pub mod auth;
pub mod browse;
pub mod cpu;
pub mod dashboard;
pub mod exposition;
pub mod family;
pub mod figures;
pub mod health;
pub mod histogram;
pub mod history;
pub mod json;
pub mod listener;
pub mod log_writer;
pub mod logging;
pub mod metrics;
pub mod server;
pub mod stall;
pub mod systemd;
pub mod throttle;
pub mod users;

use crate::process::{StartError, EX_OSERR, EX_USAGE};
use clap::Args;
use histogram::Latency;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering::Relaxed};

/// Where the admin port listens when `--admin` is not given.
pub const DEFAULT_ADDR: &str = "127.0.0.1:11212";

/// The admin and logging flags, flattened into the command line.
#[derive(Args, Debug, Clone, Default)]
pub struct AdminArgs {
    /// Admin HTTP port (/metrics, /healthz, /readyz, /stats): ADDR:PORT, or
    /// `off`. Default 127.0.0.1:11212; loopback only unless
    /// --admin-allow-remote.
    #[arg(long = "admin", value_name = "ADDR")]
    pub admin: Option<String>,
    /// Turn the admin port (and the latency histograms) off.
    #[arg(long = "no-admin")]
    pub no_admin: bool,
    /// Allow the admin port on a non-loopback address (a login is then
    /// required: a password file, -Y or -S, or --admin-token(-file)).
    #[arg(long = "admin-allow-remote")]
    pub allow_remote: bool,
    /// Token the admin port asks of every request but the health probes
    /// (`Authorization: Bearer TOKEN`, or HTTP Basic with TOKEN as the
    /// password). Prefer --admin-token-file: arguments are visible in ps.
    #[arg(long = "admin-token", value_name = "TOKEN")]
    pub token: Option<String>,
    /// Read the admin token from this file (surrounding white space
    /// trimmed).
    #[arg(long = "admin-token-file", value_name = "PATH")]
    pub token_file: Option<String>,
    /// With a password file (-Y, -S), serve GET /metrics without a login,
    /// for a scraper without credentials (everything else still asks
    /// for one). Without a password file it changes nothing.
    #[arg(long = "admin-open-metrics")]
    pub open_metrics: bool,
    /// Also write the audit trail (administrative actions) to this file.
    #[arg(long = "audit-log", value_name = "PATH")]
    pub audit_log: Option<String>,
    /// Most admin HTTP connections served at once; one more is answered
    /// 503 and closed. Default 64.
    #[arg(id = "admin_max_conns", long = "admin-max-conns", value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_conns: Option<u32>,
    /// Seconds the admin port waits for a request's headers, on a new
    /// connection and between keep-alive requests, before it closes the
    /// connection. Default 10.
    #[arg(id = "admin_timeout", long = "admin-timeout", value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout: Option<u64>,
}

impl AdminArgs {
    /// The admin token, from --admin-token or --admin-token-file.
    ///
    /// # Errors
    /// The file cannot be read, or the token is empty.
    pub fn token(&self) -> Result<Option<String>, String> {
        let t = match (&self.token, &self.token_file) {
            (Some(t), _) => t.trim().to_string(),
            (None, Some(p)) => std::fs::read_to_string(p)
                .map_err(|e| format!("--admin-token-file {p}: {e}"))?
                .trim()
                .to_string(),
            (None, None) => return Ok(None),
        };
        if t.is_empty() {
            return Err("the admin token is empty".into());
        }
        Ok(Some(t))
    }

    /// The connection cap and timeouts the admin port serves within.
    pub fn limits(&self) -> listener::Limits {
        listener::Limits {
            max_conns: self
                .max_conns
                .map_or(listener::DEFAULT_MAX_CONNS, |n| n as usize),
            timeout: std::time::Duration::from_secs(
                self.timeout.unwrap_or(listener::DEFAULT_TIMEOUT),
            ),
        }
    }

    /// Whether the admin port is wanted at all.
    pub fn enabled(&self) -> bool {
        !self.no_admin && self.admin.as_deref() != Some("off")
    }
}

/// Binds the admin port, before the workers start, so a bad or taken
/// address given with `--admin` stops start-up. Returns `None` when the
/// port is off, or when the default address is taken (then a warning is
/// logged and the cache serves without it: a second instance on one host
/// must not fail for want of the default admin port).
///
/// `users` says whether a password file (`-Y`, `-S`) asks every admin
/// request for a login.
///
/// Errors: `EX_USAGE` (64) for an address that does not resolve or a
/// non-loopback address without both `--admin-allow-remote` and a login
/// (a token or a password file: the port can change and read every item); 1 for an unreadable token
/// file (as memcached's unreadable `-Y` file); `EX_OSERR` (71) for an
/// explicit address that cannot be bound, memcached's status for a port
/// in use.
pub fn bind(a: &AdminArgs, users: bool) -> Result<Option<TcpListener>, StartError> {
    let usage = |m: String| StartError::new(EX_USAGE, format!("corecache: {m}"));
    if !a.enabled() {
        return Ok(None);
    }
    let explicit = a.admin.is_some();
    let spec = a.admin.as_deref().unwrap_or(DEFAULT_ADDR);
    let addrs: Vec<SocketAddr> = spec
        .to_socket_addrs()
        .map_err(|e| usage(format!("invalid --admin '{spec}': {e}")))?
        .collect();
    if addrs.is_empty() {
        return Err(usage(format!("--admin '{spec}' resolves to no address")));
    }
    let token = a
        .token()
        .map_err(|e| StartError::new(1, format!("corecache: {e}")))?;
    if let Some(r) = addrs.iter().find(|s| !s.ip().is_loopback()) {
        if !a.allow_remote || (token.is_none() && !users) {
            return Err(usage(format!(
                "refusing the admin port on non-loopback {r}: it needs \
                 --admin-allow-remote and a login (a password file, -Y or -S, \
                 or a token: --admin-token-file or --admin-token)"
            )));
        }
    }
    match TcpListener::bind(&addrs[..]) {
        Ok(l) => Ok(Some(l)),
        Err(e) if !explicit => {
            // At every verbosity: an operator expecting the dashboard
            // must learn why it is not there.
            log_writer::say(&format!(
                "corecache: admin port {spec} unavailable ({e}); serving without it"
            ));
            Ok(None)
        }
        // memcached's status for a port it cannot listen on.
        Err(e) => Err(StartError::new(
            EX_OSERR,
            format!("corecache: cannot listen on admin port {spec}: {e}"),
        )),
    }
}

/// What a worker publishes for the admin side, besides its counters.
#[derive(Debug, Default)]
struct WorkerSlot {
    /// The worker thread's Linux thread id (for its CPU time), 0 before start.
    tid: AtomicI32,
    /// Set from the moment the worker serves until its loop returns.
    serving: AtomicBool,
}

/// The admin side's handle in `Shared`: per-worker latency histograms and
/// liveness, and the admin port's address.
#[derive(Debug)]
pub struct Telemetry {
    latency: Vec<Latency>,
    workers: Vec<WorkerSlot>,
    addr: Option<SocketAddr>,
}

impl Telemetry {
    /// Slots for `workers` workers. `admin` is the bound admin port, if
    /// any; without one the histograms are off too (nothing would read
    /// them), which is also the "metrics off" side of an overhead run.
    pub fn new(workers: usize, admin: Option<&TcpListener>) -> Telemetry {
        let addr = admin.and_then(|l| l.local_addr().ok());
        let hist = if addr.is_some() { workers } else { 0 };
        Telemetry {
            latency: (0..hist).map(|_| Latency::default()).collect(),
            workers: (0..workers).map(|_| WorkerSlot::default()).collect(),
            addr,
        }
    }

    /// Worker `id`'s histogram, or `None` when histograms are off. The
    /// engine records with `if let Some(h) = telemetry.latency(id) { .. }`.
    #[inline]
    pub fn latency(&self, id: usize) -> Option<&Latency> {
        self.latency.get(id)
    }

    /// Whether histograms are being recorded.
    pub fn histograms_on(&self) -> bool {
        !self.latency.is_empty()
    }

    /// The admin port's bound address, if it is on.
    pub fn addr(&self) -> Option<SocketAddr> {
        self.addr
    }

    /// How many worker slots there are.
    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// Called on worker `id`'s own thread once it serves.
    pub fn worker_started(&self, id: usize) {
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() };
        self.workers[id].tid.store(tid, Relaxed);
        self.workers[id].serving.store(true, Relaxed);
    }

    /// Called on worker `id`'s thread when its loop has returned.
    pub fn worker_stopped(&self, id: usize) {
        self.workers[id].serving.store(false, Relaxed);
    }

    /// Whether worker `id` is serving.
    pub fn serving(&self, id: usize) -> bool {
        self.workers[id].serving.load(Relaxed)
    }

    /// Worker `id`'s thread id, once started.
    pub fn tid(&self, id: usize) -> Option<i32> {
        match self.workers[id].tid.load(Relaxed) {
            0 => None,
            t => Some(t),
        }
    }
}

/// The `admin` row of `stats settings`: the port's address, or `off`.
pub fn settings_value(t: &Telemetry) -> String {
    t.addr()
        .map_or_else(|| "off".to_string(), |a| a.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(admin: Option<&str>) -> AdminArgs {
        AdminArgs {
            admin: admin.map(str::to_string),
            ..Default::default()
        }
    }

    fn bind_(a: &AdminArgs) -> Result<Option<TcpListener>, StartError> {
        bind(a, false)
    }

    #[test]
    fn off_by_flag_or_value() {
        assert!(bind_(&args(Some("off"))).unwrap().is_none());
        let a = AdminArgs {
            no_admin: true,
            ..Default::default()
        };
        assert!(bind_(&a).unwrap().is_none());
    }

    #[test]
    fn non_loopback_needs_permission() {
        for spec in ["0.0.0.0:0", "[::]:0", "192.0.2.1:0"] {
            let e = bind_(&args(Some(spec))).unwrap_err();
            assert!(e.msg.contains("--admin-allow-remote"), "{spec}: {}", e.msg);
        }
        let mut a = AdminArgs {
            admin: Some("0.0.0.0:0".into()),
            allow_remote: true,
            ..Default::default()
        };
        let e = bind_(&a).unwrap_err();
        assert!(e.msg.contains("token"), "{}", e.msg);
        // A password file is a login too.
        assert!(bind(&a, true).unwrap().is_some());
        a.token = Some("t".into());
        assert!(bind_(&a).unwrap().is_some());
    }

    #[test]
    fn loopback_binds_and_explicit_conflict_fails() {
        let l = bind_(&args(Some("127.0.0.1:0"))).unwrap().unwrap();
        let at = l.local_addr().unwrap().to_string();
        let e = bind_(&args(Some(&at))).unwrap_err();
        assert!(e.msg.contains("cannot listen"), "{}", e.msg);
        assert!(bind_(&args(Some("[::1]:0"))).is_ok());
        assert!(bind_(&args(Some("nonsense"))).is_err());
    }

    #[test]
    fn admin_limits_are_their_own_flags() {
        let argv = |a: &[&str]| -> crate::config::Args {
            let v: Vec<String> = std::iter::once("corecache")
                .chain(a.iter().copied())
                .map(str::to_string)
                .collect();
            match crate::config::load(&v).unwrap() {
                crate::config::Loaded::Run(a) => *a,
                crate::config::Loaded::Print(p) => panic!("{p}"),
            }
        };
        // `-c` is memcached's max_conns: it must not leak into the admin cap.
        let a = argv(&["-c", "7", "--admin-max-conns", "3", "--admin-timeout", "4"]);
        assert_eq!(a.max_conns, 7);
        let l = a.admin.limits();
        assert_eq!((l.max_conns, l.timeout.as_secs()), (3, 4));
        let l = argv(&["-c", "7"]).admin.limits();
        assert_eq!(
            (l.max_conns, l.timeout.as_secs()),
            (listener::DEFAULT_MAX_CONNS, listener::DEFAULT_TIMEOUT)
        );
    }

    #[test]
    fn histograms_follow_the_port() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let on = Telemetry::new(3, Some(&l));
        assert!(on.latency(2).is_some() && on.latency(3).is_none());
        let off = Telemetry::new(3, None);
        assert!(off.latency(0).is_none());
        assert_eq!(settings_value(&off), "off");
        assert_eq!(settings_value(&on), l.local_addr().unwrap().to_string());
    }
}
