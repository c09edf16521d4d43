//! The admin HTTP server: axum on a current-thread tokio runtime, in a
//! thread of its own, never on a worker. The observability handlers read
//! what the workers publish (figures.rs); the dashboard's API asks workers
//! for bounded jobs through their admin inboxes (`engine::admin_jobs`).

use super::auth::{self, Guard};
use super::figures::gather;
use super::health::Heartbeats;
use super::history::{History, INTERVAL};
use super::listener::Limits;
use super::{api, browse, dashboard, json, metrics, users};
use crate::engine::Shared;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// What every handler shares.
#[derive(Clone)]
pub struct App {
    /// The workers' shared state.
    pub shared: Arc<Shared>,
    beats: Arc<Heartbeats>,
    /// Access token and CSRF token.
    pub guard: Arc<Guard>,
    /// The overview's samples.
    pub history: Arc<Mutex<History>>,
    /// Which worker owns a key (`engine::route`).
    pub route: ahash::RandomState,
    /// The key browser's gate (`browse.rs`).
    pub scans: Arc<tokio::sync::Semaphore>,
}

fn text(status: StatusCode, ctype: &'static str, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, ctype)], body).into_response()
}

async fn metrics_page(State(app): State<App>, headers: HeaderMap) -> Response {
    let f = gather(&app.shared);
    let om = metrics::openmetrics(&f);
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    if metrics::wants_openmetrics(accept) {
        text(StatusCode::OK, metrics::OPENMETRICS, om)
    } else {
        text(StatusCode::OK, metrics::CLASSIC, metrics::to_classic(&om))
    }
}

async fn healthz() -> Response {
    text(StatusCode::OK, "text/plain; charset=utf-8", "ok\n".into())
}

async fn readyz(State(app): State<App>) -> Response {
    let f = gather(&app.shared);
    match app.beats.check(&f, Instant::now()) {
        Ok(()) => text(
            StatusCode::OK,
            "text/plain; charset=utf-8",
            "ready\n".into(),
        ),
        Err(why) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain; charset=utf-8",
            why.join("\n") + "\n",
        ),
    }
}

async fn stats_json(State(app): State<App>) -> Response {
    let f = gather(&app.shared);
    text(
        StatusCode::OK,
        "application/json",
        json::render(&app.shared, &f),
    )
}

/// The admin routes over `shared`, guarded by `guard` (and the password
/// file in `shared.auth`, if any), with the overview's `history`.
pub fn router(shared: Arc<Shared>, guard: Arc<Guard>, history: Arc<Mutex<History>>) -> Router {
    let app = App {
        shared,
        beats: Arc::new(Heartbeats::default()),
        guard,
        history,
        route: crate::engine::route::route_hasher(),
        scans: Arc::new(browse::gate()),
    };
    Router::new()
        .route("/metrics", get(metrics_page))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/stats", get(stats_json))
        .route("/", get(dashboard::index))
        .route("/assets/{file}", get(dashboard::asset))
        .route("/api/csrf", get(api::csrf))
        .route("/api/history", get(api::history))
        .route("/api/whoami", get(users::whoami))
        .route("/api/flush_prefix", post(api::flush_prefix))
        .route("/api/keys", get(browse::keys))
        .route("/api/keys/bulk", post(api::bulk))
        .route(
            "/api/key/{*key}",
            get(api::get_key).put(api::put_key).delete(api::delete_key),
        )
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            auth::check,
        ))
        .with_state(app)
}

/// Samples the figures every `INTERVAL` into `history`.
async fn sample(shared: Arc<Shared>, history: Arc<Mutex<History>>) {
    let mut tick = tokio::time::interval(INTERVAL);
    loop {
        tick.tick().await;
        let f = gather(&shared);
        history
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .record(f, Instant::now());
    }
}

/// Serves the admin port on `listener` (bound by `admin::bind`) from a
/// thread named `admin`, until the process exits, asking for what `guard`
/// asks (a token, a user's login), within `limits` (connections,
/// timeouts). Errors: the thread or its runtime cannot be created.
pub fn spawn(
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    guard: Guard,
    limits: Limits,
) -> Result<std::thread::JoinHandle<()>, String> {
    let guard = Arc::new(guard);
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("admin port: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| format!("admin runtime: {e}"))?;
    std::thread::Builder::new()
        .name("admin".into())
        .spawn(move || {
            yield_to_workers();
            rt.block_on(async move {
                let l = match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => return tracing::error!("admin port {addr}: {e}"),
                };
                tracing::info!("admin port listening on http://{addr}");
                let history = Arc::new(Mutex::new(History::default()));
                tokio::spawn(sample(shared.clone(), history.clone()));
                super::listener::serve(l, router(shared, guard, history), limits).await;
            })
        })
        .map_err(|e| format!("admin thread: {e}"))
}

/// How much lower than the workers' the admin thread's priority is, in
/// nice steps: the workers (pinned one per core) win every contended CPU,
/// and the admin side gets what is left. 50 scrapers in a loop took 60 %
/// of a core beside the workers. Relative, so a server started under
/// `nice` (or systemd's `Nice=`) keeps the same gap.
pub const ADMIN_NICE: i32 = 10;

/// Lowers this thread's priority [`ADMIN_NICE`] steps below the process's
/// (per-thread on Linux: `setpriority` on the thread id), at most to 19.
/// Lowering a priority needs no privilege; a refusal leaves the thread at
/// the process's.
fn yield_to_workers() {
    // SAFETY: gettid has no failure mode; setpriority on our own thread id
    // only changes its scheduling weight.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        // -1 is also a valid nice value; errno is not worth telling apart
        // here, as the fallback (nice 0 + gap) only lowers the priority.
        let own = libc::getpriority(libc::PRIO_PROCESS, tid);
        libc::setpriority(libc::PRIO_PROCESS, tid, (own + ADMIN_NICE).min(19));
    }
}
