//! The key browser's paging (`GET /api/keys`): a walk over every shard in
//! small steps, each run by the shard's worker between its own requests.
//!
//! What a scan may cost the data path is bounded three ways:
//! - one step reads at most [`STEP_RECORDS`] records (a few µs of the
//!   worker's time, see the constant);
//! - a page waits for each step's answer before asking the next, so a
//!   worker has at most one step of it queued (its loop runs at most
//!   `engine::admin_jobs::JOBS_PER_TURN` admin jobs a turn in any case);
//! - while the worker is busy (not asleep in its ring), the next step
//!   waits [`BUSY_PACE`]: a step and its wake-ups then cost a worker well
//!   under 1 % of its time, while an idle worker is scanned at full speed;
//! - [`SCANS_IN_FLIGHT`] pages walk at once; others wait up to
//!   [`SCAN_WAIT`] for their turn, then get `429 Too Many Requests` with
//!   `Retry-After`.
//!
//! Twenty parallel scans once took 85 % of the data port's throughput by
//! queueing twenty 100 µs steps on every worker each loop turn; smaller
//! steps alone made it worse (more round trips, each waking the admin
//! thread on the workers' cores): what bounds the cost is the pace.

use super::api::{ask, bad, query, reply, unavailable};
use super::server::App;
use super::users::Who;
use crate::engine::admin_jobs::{AdminJob, AdminReply};
use crate::store::scan::{ScanCursor, ScanFilter, TtlFilter, SCAN_DONE};
use axum::extract::{ConnectInfo, Extension, State};
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::json;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

/// Records a scan step reads at most on one worker (segments skipped
/// whole count as one each). Measured (`benches/scan.rs`): about 0.2 µs a
/// record when every record matches (each is checked against the index
/// and copied out), so about 3 µs a step; under 0.3 µs when none does.
pub const STEP_RECORDS: usize = 16;
/// Keys one `/api/keys` page returns at most.
pub const PAGE_MAX: usize = 1000;
/// Key pages walked at once.
pub const SCANS_IN_FLIGHT: usize = 1;
/// The pause between two steps on a worker that is serving requests
/// (tokio's timer granularity; at most one step per worker per pause).
pub const BUSY_PACE: Duration = Duration::from_millis(1);
/// How long a page waits for its turn before `429`.
pub const SCAN_WAIT: Duration = Duration::from_secs(2);
/// How long one page walks at most: a sparse match ends the page early,
/// with a cursor to go on from, and frees the turn for the next page.
pub const PAGE_TIME: Duration = Duration::from_millis(200);

/// The gate [`SCANS_IN_FLIGHT`] pages pass at once.
pub fn gate() -> tokio::sync::Semaphore {
    tokio::sync::Semaphore::new(SCANS_IN_FLIGHT)
}

fn parse_cursor(s: &str) -> Option<(usize, ScanCursor)> {
    if s.is_empty() {
        return Some((0, 0));
    }
    let (w, c) = s.split_once('-')?;
    Some((w.parse().ok()?, u64::from_str_radix(c, 16).ok()?))
}

fn parse_ttl(s: &str) -> Option<TtlFilter> {
    Some(match s {
        "" | "any" => TtlFilter::Any,
        "none" => TtlFilter::NoTtl,
        _ => {
            let (k, v) = s.split_once(':')?;
            let n = v.parse().ok()?;
            match k {
                "lt" => TtlFilter::ExpiresWithin(n),
                "gt" => TtlFilter::Above(n),
                _ => return None,
            }
        }
    })
}

fn busy() -> Response {
    let mut r = reply(
        StatusCode::TOO_MANY_REQUESTS,
        json!({"error": "another key scan is running; retry"}),
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    r.into_response()
}

/// `GET /api/keys?prefix=&pattern=&ttl=&cursor=&limit=`: one page of the
/// key browser. `ttl` is `any`, `none` (no TTL), `lt:S` (expires within S
/// seconds) or `gt:S` (more than S seconds left). Walks the workers in
/// turn, each in steps of [`STEP_RECORDS`] records, for at most
/// [`PAGE_TIME`]; `cursor` in the answer continues the walk (`null` once
/// every worker has been read). `429` when other pages hold the gate.
/// With a password file, only keys the user may read are listed (a page
/// may then hold fewer than `limit` keys before its cursor), and a user
/// who may read no key is refused (403).
pub async fn keys(
    State(app): State<App>,
    Extension(who): Extension<Who>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    uri: Uri,
) -> Response {
    if who.reads_nothing() {
        return who.deny(peer, "key_browse");
    }
    let text = |n| query(&uri, n).map(|v| String::from_utf8_lossy(&v).into_owned());
    let filter = ScanFilter {
        prefix: query(&uri, "prefix").unwrap_or_default(),
        pattern: query(&uri, "pattern").filter(|p| !p.is_empty()),
        ttl: match parse_ttl(&text("ttl").unwrap_or_default()) {
            Some(t) => t,
            None => return bad("ttl must be any, none, lt:SECONDS or gt:SECONDS"),
        },
    };
    let Some((mut w, mut cur)) = parse_cursor(&text("cursor").unwrap_or_default()) else {
        return bad("bad cursor");
    };
    let limit = text("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(100)
        .clamp(1, PAGE_MAX);
    let Ok(Ok(_turn)) = tokio::time::timeout(SCAN_WAIT, app.scans.acquire()).await else {
        return busy();
    };
    let n = app.shared.mesh.n;
    let mut out = Vec::new();
    let t = Instant::now();
    while w < n && out.len() < limit && t.elapsed() < PAGE_TIME {
        let job = AdminJob::Scan {
            cursor: cur,
            filter: filter.clone(),
            max_records: STEP_RECORDS,
            max_items: limit - out.len(),
        };
        let Some(AdminReply::Scan(st)) = ask(&app, w, job).await else {
            return unavailable();
        };
        for i in st.items.into_iter().filter(|i| who.may_read(&i.key)) {
            out.push(json!({
                "key": String::from_utf8_lossy(&i.key),
                // The exact bytes: `key` is lossy for a key that is not
                // UTF-8, and two such keys could show the same.
                "key_b64": base64::engine::general_purpose::STANDARD.encode(&i.key),
                "size": i.value_len,
                "flags": i.flags,
                "ttl": i.ttl,
                "last_access": i.atime_unix,
                "stored": i.stored_unix,
                "cas": i.cas,
                "worker": w,
            }));
        }
        if st.next == SCAN_DONE {
            (w, cur) = (w + 1, 0);
        } else {
            cur = st.next;
            if !app.shared.mesh.sleeping[w].load(Relaxed) {
                tokio::time::sleep(BUSY_PACE).await;
            }
        }
    }
    let cursor = (w < n).then(|| format!("{w}-{cur:x}"));
    reply(StatusCode::OK, json!({"keys": out, "cursor": cursor}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_and_ttl_filters() {
        assert_eq!(parse_cursor(""), Some((0, 0)));
        assert_eq!(parse_cursor("1-ff"), Some((1, 255)));
        assert_eq!(parse_cursor("x"), None);
        assert_eq!(parse_ttl("lt:60"), Some(TtlFilter::ExpiresWithin(60)));
        assert_eq!(parse_ttl("none"), Some(TtlFilter::NoTtl));
        assert_eq!(parse_ttl("zz"), None);
    }
}
