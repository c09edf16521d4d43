//! The admin HTTP server: axum on a current-thread tokio runtime, in a
//! thread of its own, never on a worker. Every handler reads what the
//! workers publish (figures.rs); none writes anything a worker reads.

use super::figures::gather;
use super::health::Heartbeats;
use super::{json, metrics};
use crate::engine::Shared;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::sync::Arc;
use std::time::Instant;

#[derive(Clone)]
struct App {
    shared: Arc<Shared>,
    beats: Arc<Heartbeats>,
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

/// The admin routes over `shared`.
pub fn router(shared: Arc<Shared>) -> Router {
    let app = App {
        shared,
        beats: Arc::new(Heartbeats::default()),
    };
    Router::new()
        .route("/metrics", get(metrics_page))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/stats", get(stats_json))
        .with_state(app)
}

/// Serves the admin port on `listener` (bound by `admin::bind`) from a
/// thread named `admin`, until the process exits. Errors: the thread or
/// its runtime cannot be created.
pub fn spawn(
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
) -> Result<std::thread::JoinHandle<()>, String> {
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
            rt.block_on(async move {
                let l = match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => return tracing::error!("admin port {addr}: {e}"),
                };
                tracing::info!("admin port listening on http://{addr}");
                if let Err(e) = axum::serve(l, router(shared)).await {
                    tracing::error!("admin port {addr}: {e}");
                }
            })
        })
        .map_err(|e| format!("admin thread: {e}"))
}
