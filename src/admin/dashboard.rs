//! The dashboard page and its static assets, embedded in the binary
//! (`include_str!`), so the admin port serves it on a machine without
//! node. The page gets the CSRF token in a `<meta>` tag.

use super::server::App;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

const INDEX: &str = include_str!("assets/index.html");

/// (name, content type, body) of every asset under `/assets/`.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/app.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("assets/app.css"),
    ),
    (
        "uPlot.iife.min.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/vendor/uPlot.iife.min.js"),
    ),
    (
        "uPlot.min.css",
        "text/css; charset=utf-8",
        include_str!("assets/vendor/uPlot.min.css"),
    ),
];

/// Headers every page and asset carries: no framing by other sites
/// (clickjacking), no content-type sniffing, scripts from this origin only.
const SECURITY: [(header::HeaderName, &str); 3] = [
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (
        header::CONTENT_SECURITY_POLICY,
        "default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
    ),
];

/// `GET /`: the page, with this process's CSRF token.
pub async fn index(State(app): State<App>) -> Response {
    let html = INDEX.replace("{{CSRF}}", app.guard.csrf());
    (
        StatusCode::OK,
        SECURITY,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        html,
    )
        .into_response()
}

/// `GET /assets/<file>`.
pub async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == file) {
        Some((_, ctype, body)) => (
            StatusCode::OK,
            SECURITY,
            [
                (header::CONTENT_TYPE, *ctype),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            *body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such asset\n").into_response(),
    }
}
