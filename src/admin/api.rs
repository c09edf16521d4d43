//! The HTTP API under the dashboard (`/api/...`), for the page and for
//! scripts (README has `curl` examples). Everything that touches items
//! runs on the owning worker as an admin job (`engine::admin_jobs`), with
//! memcached's semantics; every change goes to the audit trail.

use super::audit::audit_as;
use super::server::App;
use super::users::Who;
use crate::engine::admin_jobs::{AdminJob, AdminReply};
use crate::engine::route::owner;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Extension, State};
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::Instant;

pub use super::browse::{PAGE_MAX, STEP_RECORDS};
/// Keys one bulk request names at most.
pub const BULK_MAX: usize = 10_000;

pub(super) fn reply(status: StatusCode, v: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

pub(super) fn bad(msg: &str) -> Response {
    reply(StatusCode::BAD_REQUEST, json!({ "error": msg }))
}

pub(super) fn unavailable() -> Response {
    reply(
        StatusCode::SERVICE_UNAVAILABLE,
        json!({"error": "a worker did not answer (stopping?)"}),
    )
}

/// `%XX` and `+` decoded; None on a bad escape.
pub fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                // Two hex digits: `from_str_radix` alone took `%+1` as 1.
                let h = s
                    .get(i + 1..i + 3)
                    .filter(|h| h.bytes().all(|c| c.is_ascii_hexdigit()))?;
                out.push(u8::from_str_radix(h, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Some(out)
}

/// The query string's value for `name`, decoded.
pub(super) fn query(uri: &Uri, name: &str) -> Option<Vec<u8>> {
    uri.query()?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == name).then(|| percent_decode(v)).flatten()
    })
}

/// Whether memcached's text protocol can carry this key: 1 to 250 bytes,
/// no space or control character.
pub fn valid_key(k: &[u8]) -> bool {
    !k.is_empty() && k.len() <= crate::protocol::KEY_MAX && k.iter().all(|&c| c > b' ' && c != 0x7f)
}

/// What a value looks like, as the key browser labels it ("data type").
pub fn content_type(v: &[u8]) -> &'static str {
    let Ok(s) = std::str::from_utf8(v) else {
        return "binary";
    };
    let t = s.trim();
    if (t.starts_with('{') || t.starts_with('[')) && serde_json::from_str::<Value>(t).is_ok() {
        "json"
    } else if t.starts_with('<') && t.ends_with('>') {
        "xml"
    } else if s.chars().all(|c| !c.is_control() || c.is_whitespace()) {
        "text"
    } else {
        "binary"
    }
}

pub(super) async fn ask(app: &App, to: usize, job: AdminJob) -> Option<AdminReply> {
    app.shared.ask_worker(to, job).await.ok()
}

async fn run_text(app: &App, key: &[u8], cmd: Vec<u8>) -> Option<Vec<u8>> {
    let to = owner(&app.route, app.shared.mesh.n, key);
    match ask(app, to, AdminJob::Text(cmd)).await? {
        AdminReply::Text(b) => Some(b),
        _ => None,
    }
}

/// `GET /api/csrf`: the token state-changing requests carry.
pub async fn csrf(State(app): State<App>) -> Response {
    reply(StatusCode::OK, json!({ "token": app.guard.csrf() }))
}

/// `GET /api/history`: the overview's samples.
pub async fn history(State(app): State<App>) -> Response {
    let v = app
        .history
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .to_json();
    reply(StatusCode::OK, v)
}

/// `POST /api/flush_prefix?prefix=P` (or JSON `{"prefix": P}`): hides
/// every item stored so far under P on every worker. An empty P hides
/// everything, so it needs `all=1` (or `"all": true`) too. Answers with
/// the server time the action took (all workers done), in microseconds.
/// A refusal is audited as `flush_prefix refused (why)`, as memcached
/// clients' refused `flush_prefix` (`-F`) is. With a password file it
/// needs the `admin` right, as text `flush_prefix` does.
pub async fn flush_prefix(
    State(app): State<App>,
    Extension(who): Extension<Who>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    uri: Uri,
    body: Bytes,
) -> Response {
    let json = serde_json::from_slice::<Value>(&body).ok();
    let field = |k: &str| json.as_ref().map_or(&Value::Null, |v| &v[k]).clone();
    let prefix = query(&uri, "prefix").or_else(|| field("prefix").as_str().map(|s| s.into()));
    let all = query(&uri, "all").is_some_and(|v| v == b"1" || v == b"true")
        || field("all") == Value::Bool(true);
    let shown = String::from_utf8_lossy(prefix.as_deref().unwrap_or_default()).into_owned();
    if !who.admin() {
        return who.deny(peer, &format!("flush_prefix {shown}"));
    }
    let refuse = |status: StatusCode, why: &str, msg: &str| {
        audit_as(
            &format!("flush_prefix refused ({why})"),
            &peer.to_string(),
            who.name(),
            &shown,
        );
        reply(status, json!({ "error": msg }))
    };
    let Some(prefix) = prefix else {
        return refuse(StatusCode::BAD_REQUEST, "no prefix", "prefix missing");
    };
    if prefix.len() > crate::protocol::KEY_MAX {
        return refuse(
            StatusCode::BAD_REQUEST,
            "prefix over 250 bytes",
            "prefix over 250 bytes",
        );
    }
    if prefix.is_empty() && !all {
        return refuse(
            StatusCode::BAD_REQUEST,
            "empty prefix",
            "an empty prefix flushes every item: add all=1 to mean it",
        );
    }
    if !app.shared.settings.flush_enabled {
        return refuse(StatusCode::FORBIDDEN, "-F", "flush_prefix not allowed (-F)");
    }
    audit_as(
        "flush_prefix",
        &peer.to_string(),
        who.name(),
        &String::from_utf8_lossy(&prefix),
    );
    let t = Instant::now();
    let rx: Vec<_> = (0..app.shared.mesh.n)
        .map(|w| {
            app.shared
                .ask_worker(w, AdminJob::FlushPrefix(prefix.clone()))
        })
        .collect();
    for r in rx {
        if r.await.is_err() {
            return unavailable();
        }
    }
    let us = t.elapsed().as_secs_f64() * 1e6;
    reply(StatusCode::OK, json!({"ok": true, "server_us": us}))
}

const BAD_KEY: &str = "a key is 1 to 250 bytes without spaces or control characters";

/// The key named by the path, decoded; None if it is not a valid key.
fn key_of(uri: &Uri) -> Option<Vec<u8>> {
    let raw = uri.path().strip_prefix("/api/key/").unwrap_or("");
    percent_decode(raw).filter(|k| valid_key(k))
}

/// `GET /api/key/<key>`: the item (value as base64 and, when it is UTF-8,
/// as text; detected type; flags; TTL, -1 = none; CAS), without counting
/// an access. 404 when missing; 403 when the user may not read it.
pub async fn get_key(
    State(app): State<App>,
    Extension(who): Extension<Who>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    uri: Uri,
) -> Response {
    let Some(key) = key_of(&uri) else {
        return bad(BAD_KEY);
    };
    if !who.may_read(&key) {
        return who.deny(peer, &format!("key_get {}", String::from_utf8_lossy(&key)));
    }
    let to = owner(&app.route, app.shared.mesh.n, &key);
    match ask(&app, to, AdminJob::Get(key.clone())).await {
        Some(AdminReply::Item(Some(it))) => reply(
            StatusCode::OK,
            json!({
                "key": String::from_utf8_lossy(&key),
                "key_b64": base64::engine::general_purpose::STANDARD.encode(&key),
                "size": it.value.len(),
                "type": content_type(&it.value),
                "text": std::str::from_utf8(&it.value).ok(),
                "value_b64": base64::engine::general_purpose::STANDARD.encode(&it.value),
                "flags": it.flags,
                "ttl": it.ttl,
                "cas": it.cas,
                "idle": it.idle,
                "stored": it.stored_unix,
                "worker": to,
            }),
        ),
        Some(AdminReply::Item(None)) => reply(StatusCode::NOT_FOUND, json!({"error": "not found"})),
        _ => unavailable(),
    }
}

/// `PUT /api/key/<key>` with JSON `{"value": "..."}` (or `"value_b64"`),
/// optional `"flags"` (default 0), `"ttl"` (memcached exptime, default 0
/// = none) and `"mode"` (`set`, the default, or `add`, which answers 409
/// when the key exists). 403 when the user may not write the key.
pub async fn put_key(
    State(app): State<App>,
    Extension(who): Extension<Who>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    uri: Uri,
    body: Bytes,
) -> Response {
    let Some(key) = key_of(&uri) else {
        return bad(BAD_KEY);
    };
    if !who.may_write(&key) {
        return who.deny(peer, &format!("key_set {}", String::from_utf8_lossy(&key)));
    }
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return bad("body must be JSON");
    };
    let value = match (&v["value"], &v["value_b64"]) {
        (Value::String(s), _) => s.as_bytes().to_vec(),
        (_, Value::String(b)) => match base64::engine::general_purpose::STANDARD.decode(b) {
            Ok(d) => d,
            Err(_) => return bad("value_b64 is not base64"),
        },
        _ => return bad("value or value_b64 missing"),
    };
    let flags = match &v["flags"] {
        Value::Null => 0,
        f => match f.as_u64().and_then(|f| u32::try_from(f).ok()) {
            Some(f) => f,
            None => return bad("flags must be 0..4294967295"),
        },
    };
    let ttl = match &v["ttl"] {
        Value::Null => 0,
        t => match t.as_i64().filter(|t| i32::try_from(*t).is_ok()) {
            Some(t) => t,
            None => return bad("ttl must be a 32-bit integer"),
        },
    };
    let mode = match v["mode"].as_str().unwrap_or("set") {
        m @ ("set" | "add") => m,
        _ => return bad("mode must be set or add"),
    };
    let mut cmd = [
        mode.as_bytes(),
        b" ",
        &key,
        format!(" {flags} {ttl} {}\r\n", value.len()).as_bytes(),
    ]
    .concat();
    cmd.extend_from_slice(&value);
    cmd.extend_from_slice(b"\r\n");
    audit_as(
        if mode == "add" { "key_add" } else { "key_set" },
        &peer.to_string(),
        who.name(),
        &String::from_utf8_lossy(&key),
    );
    match run_text(&app, &key, cmd).await.as_deref() {
        Some(b"STORED\r\n") => reply(StatusCode::OK, json!({"ok": true})),
        Some(b"NOT_STORED\r\n") => reply(StatusCode::CONFLICT, json!({"error": "key exists"})),
        Some(other) => reply(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"error": String::from_utf8_lossy(other).trim_end()}),
        ),
        None => unavailable(),
    }
}

/// `DELETE /api/key/<key>`: 200 when deleted, 404 when missing, 403 when
/// the user may not write the key.
pub async fn delete_key(
    State(app): State<App>,
    Extension(who): Extension<Who>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    uri: Uri,
) -> Response {
    let Some(key) = key_of(&uri) else {
        return bad(BAD_KEY);
    };
    if !who.may_write(&key) {
        return who.deny(
            peer,
            &format!("key_delete {}", String::from_utf8_lossy(&key)),
        );
    }
    audit_as(
        "key_delete",
        &peer.to_string(),
        who.name(),
        &String::from_utf8_lossy(&key),
    );
    match run_text(&app, &key, [b"delete ", &key[..], b"\r\n"].concat())
        .await
        .as_deref()
    {
        Some(b"DELETED\r\n") => reply(StatusCode::OK, json!({"ok": true})),
        Some(_) => reply(StatusCode::NOT_FOUND, json!({"error": "not found"})),
        None => unavailable(),
    }
}

/// `POST /api/keys/bulk` with JSON `{"action": "delete", "keys": [...]}`
/// or `{"action": "ttl", "ttl": SECONDS, "keys": [...]}` (a memcached
/// exptime, as `touch` takes it): at most [`BULK_MAX`] keys; answers how
/// many were changed and how many were not found. With a password file
/// the user must be allowed every key (delete: write; ttl, a touch: read
/// and write), or nothing is done and the answer is 403.
pub async fn bulk(
    State(app): State<App>,
    Extension(who): Extension<Who>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: Bytes,
) -> Response {
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return bad("body must be JSON");
    };
    // `keys_b64` names keys by their exact bytes (the key browser's
    // `key_b64`), `keys` by UTF-8 text.
    let (keys, b64) = match (v["keys_b64"].as_array(), v["keys"].as_array()) {
        (Some(k), _) => (k, true),
        (None, Some(k)) => (k, false),
        (None, None) => return bad("keys missing"),
    };
    if keys.len() > BULK_MAX {
        return bad("too many keys (10000 at most)");
    }
    let mut ks = Vec::with_capacity(keys.len());
    for k in keys {
        let k = k.as_str().and_then(|k| {
            if b64 {
                base64::engine::general_purpose::STANDARD.decode(k).ok()
            } else {
                Some(k.as_bytes().to_vec())
            }
        });
        match k {
            Some(k) if valid_key(&k) => ks.push(k),
            _ => return bad(BAD_KEY),
        }
    }
    let action = v["action"].as_str().unwrap_or("");
    let tail = match action {
        "delete" => "\r\n".to_string(),
        "ttl" => match v["ttl"].as_i64().filter(|t| i32::try_from(*t).is_ok()) {
            Some(t) => format!(" {t}\r\n"),
            None => return bad("ttl must be a 32-bit integer"),
        },
        _ => return bad("action must be delete or ttl"),
    };
    let verb: &[u8] = if action == "delete" {
        b"delete "
    } else {
        b"touch "
    };
    let may = |k: &[u8]| who.may_write(k) && (action == "delete" || who.may_read(k));
    if let Some(k) = ks.iter().find(|k| !may(k)) {
        return who.deny(
            peer,
            &format!("bulk_{action} {}", String::from_utf8_lossy(k)),
        );
    }
    audit_as(
        &format!("bulk_{action}"),
        &peer.to_string(),
        who.name(),
        &format!("{} keys{}", ks.len(), tail.trim_end()),
    );
    let rx: Vec<_> = ks
        .iter()
        .map(|k| {
            let to = owner(&app.route, app.shared.mesh.n, k);
            let cmd = [verb, &k[..], tail.as_bytes()].concat();
            app.shared.ask_worker(to, AdminJob::Text(cmd))
        })
        .collect();
    let (mut done, mut missing) = (0, 0);
    for r in rx {
        match r.await {
            Ok(AdminReply::Text(b)) if b == b"DELETED\r\n" || b == b"TOUCHED\r\n" => done += 1,
            Ok(_) => missing += 1,
            Err(_) => return unavailable(),
        }
    }
    reply(
        StatusCode::OK,
        json!({"changed": done, "not_found": missing}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding_and_validation() {
        assert_eq!(percent_decode("a%3Ab+c").unwrap(), b"a:b c");
        assert!(percent_decode("%4").is_none());
        assert!(percent_decode("%zz").is_none());
        assert!(percent_decode("%+1").is_none());
        assert!(percent_decode("%e2%8").is_none());
        assert!(valid_key(b"user:1"));
        assert!(!valid_key(b"a b"));
        assert!(!valid_key(b""));
        assert!(!valid_key(&[b'k'; 251]));
        assert!(!valid_key(b"a\x7f"));
    }

    #[test]
    fn content_types() {
        assert_eq!(content_type(br#" {"a": [1, 2]} "#), "json");
        assert_eq!(content_type(b"{not json"), "text");
        assert_eq!(content_type(b"<a><b/></a>"), "xml");
        assert_eq!(content_type(b"hello\nworld"), "text");
        assert_eq!(content_type(b"\x00\x01"), "binary");
        assert_eq!(content_type(&[0xff, 0xfe]), "binary");
    }
}
