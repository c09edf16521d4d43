//! The admin port's accept loop: a cap on open connections and hyper's
//! own timeouts, so idle or slow clients cannot take the process's
//! descriptors or the admin thread (a slowloris, or 10,000 idle
//! keep-alive connections).
//!
//! - At most [`Limits::max_conns`] connections are served at once; one
//!   more is answered `503` at once and closed, and counted (as memcached
//!   answers `ERROR Too many open connections` past `-c`).
//! - One remote address holds at most [`per_peer_cap`] of them (a quarter,
//!   as nginx's `limit_conn` per address), so a client holding idle
//!   connections open cannot shut everyone else out for the idle timeout.
//!   The host's own default addresses (127.0.0.1, ::1) are exempt: a
//!   reverse proxy on the host brings every user's connections from them.
//! - hyper's `header_read_timeout` closes a connection whose request head
//!   is not complete [`Limits::timeout`] after hyper began waiting for it.
//!   hyper starts that clock whenever it waits for a head, after a reply
//!   too, so the same setting is the keep-alive idle timeout; the clock is
//!   a deadline, which bytes trickling in one by one do not move.
//! - A reply that its client has read none of for [`Limits::timeout`]
//!   closes the connection (`stall.rs`).
//! - A request whose handler (reading its body included) takes longer than
//!   [`REQUEST_TIMEOUT`] is answered `503` and the connection closed.

use axum::extract::ConnectInfo;
use axum::http::{header, Response, StatusCode};
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

use super::stall::StallGuard;

/// The whole-request bound: a handler never needs this long (a key page
/// stops at `api::PAGE_TIME`), so only a client sending its body slowly
/// reaches it.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Default of `--admin-max-conns`: a browser opens about 6 connections
/// and a Prometheus server one per scrape target.
pub const DEFAULT_MAX_CONNS: usize = 64;
/// Default of `--admin-timeout`, seconds.
pub const DEFAULT_TIMEOUT: u64 = 10;

/// What the accept loop enforces.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Connections served at once; more are refused.
    pub max_conns: usize,
    /// Header read and keep-alive idle timeout.
    pub timeout: Duration,
}

/// The admin port's connection figures since start (`/metrics`).
#[derive(Debug, Default)]
pub struct ConnFigures {
    /// Open now.
    pub open: AtomicU64,
    /// Accepted and served.
    pub total: AtomicU64,
    /// Refused past the cap.
    pub rejected: AtomicU64,
    /// Closed by the header read / idle timeout or the request timeout.
    pub timed_out: AtomicU64,
}

/// The one set of figures (one admin port per process).
pub static CONNS: ConnFigures = ConnFigures {
    open: AtomicU64::new(0),
    total: AtomicU64::new(0),
    rejected: AtomicU64::new(0),
    timed_out: AtomicU64::new(0),
};

const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\
Content-Type: text/plain\r\nContent-Length: 34\r\n\r\ntoo many admin connections, retry\n";

/// The most connections one address (but 127.0.0.1 and ::1) may hold open at once:
/// a quarter of `max_conns`, at least 8 (a browser opens about 6).
pub fn per_peer_cap(max_conns: usize) -> usize {
    (max_conns / 4).max(8)
}

/// Connections open per remote address (but 127.0.0.1 and ::1).
#[derive(Default)]
struct PeerCounts(std::sync::Mutex<HashMap<IpAddr, usize>>);

/// One connection's place in [`PeerCounts`], given back when dropped.
struct PeerSlot(Arc<PeerCounts>, IpAddr);

impl PeerCounts {
    /// A place for `ip`, or None if it holds `cap` already.
    fn take(self: &Arc<Self>, ip: IpAddr, cap: usize) -> Option<PeerSlot> {
        let mut m = self.0.lock().unwrap();
        let n = m.entry(ip).or_insert(0);
        (*n < cap).then(|| {
            *n += 1;
            PeerSlot(self.clone(), ip)
        })
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut m = self.0 .0.lock().unwrap();
        if let Some(n) = m.get_mut(&self.1) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.1);
            }
        }
    }
}

/// Answers the refusal on a connection not served, and closes it.
fn refuse(stream: tokio::net::TcpStream) {
    CONNS.rejected.fetch_add(1, Relaxed);
    // A fresh socket's send buffer takes these bytes at once; if not, the
    // close alone says it. Written on the std socket: tokio's `try_write`
    // answers WouldBlock until its reactor has seen the socket writable,
    // which one accepted in a burst (a loaded admin thread) has not, and
    // the 503 went unsent. Blocking, for at most 50 ms: under memory
    // pressure even a fresh socket may refuse a non-blocking write (a CI
    // run on a loaded host once saw a refused connection closed with no
    // 503), and the accept loop can afford that wait at the cap.
    if let Ok(mut s) = stream.into_std() {
        let _ = s.set_nonblocking(false);
        let _ = s.set_write_timeout(Some(Duration::from_millis(50)));
        let _ = std::io::Write::write_all(&mut s, REFUSAL);
    }
}

/// Serves `app` on `listener` until the process exits.
pub async fn serve(listener: tokio::net::TcpListener, app: Router, limits: Limits) {
    let slots = Arc::new(Semaphore::new(limits.max_conns));
    let peers = Arc::new(PeerCounts::default());
    let peer_cap = per_peer_cap(limits.max_conns);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(a) => a,
            Err(e) => {
                // Out of descriptors (EMFILE) and the like: wait rather
                // than spin; connections closing free them.
                tracing::warn!("admin port: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let ip = peer.ip().to_canonical();
        let peer_slot = if ip == IpAddr::from([127, 0, 0, 1]) || ip == std::net::Ipv6Addr::LOCALHOST
        {
            None
        } else {
            let Some(p) = peers.take(ip, peer_cap) else {
                refuse(stream);
                continue;
            };
            Some(p)
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            refuse(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        CONNS.total.fetch_add(1, Relaxed);
        CONNS.open.fetch_add(1, Relaxed);
        let app = app.clone();
        tokio::spawn(async move {
            connection(stream, peer, app, limits).await;
            CONNS.open.fetch_sub(1, Relaxed);
            drop((slot, peer_slot));
        });
    }
}

async fn connection(stream: tokio::net::TcpStream, peer: SocketAddr, app: Router, limits: Limits) {
    let tower = TowerToHyperService::new(app);
    let svc = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        // What `ConnectInfo<SocketAddr>` extractors read (the audit's peer).
        req.extensions_mut().insert(ConnectInfo(peer));
        let fut = hyper::service::Service::call(&tower, req);
        async move {
            match tokio::time::timeout(REQUEST_TIMEOUT, fut).await {
                Ok(r) => r,
                Err(_) => {
                    CONNS.timed_out.fetch_add(1, Relaxed);
                    let mut r = Response::new(axum::body::Body::from("request timed out\n"));
                    *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                    r.headers_mut()
                        .insert(header::CONNECTION, "close".parse().expect("valid header"));
                    Ok(r)
                }
            }
        }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.timeout)
        .serve_connection(TokioIo::new(StallGuard::new(stream, limits.timeout)), svc);
    if let Err(e) = conn.await {
        if e.is_timeout() {
            CONNS.timed_out.fetch_add(1, Relaxed);
        }
    }
}
