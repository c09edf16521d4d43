//! The dashboard's HTTP API on the real binary over real sockets, checked
//! through a memcached connection: the key browser finds exactly the keys
//! under a prefix across shards, edits and bulk actions take effect, and
//! state-changing requests without the CSRF token are refused.

mod common;

use common::{exchange, read_until, Server};
use std::io::{Read, Write};
use std::net::TcpStream;

struct Admin {
    srv: Server,
    addr: String,
    csrf: String,
}

fn start(args: &[&str]) -> Admin {
    let mut all = vec!["--admin", "127.0.0.1:0"];
    all.extend_from_slice(args);
    let srv = Server::start(&all);
    let st = String::from_utf8(exchange(&srv, b"stats settings\r\n", b"END\r\n")).unwrap();
    let addr = st
        .lines()
        .find_map(|l| l.strip_prefix("STAT admin "))
        .unwrap()
        .trim()
        .to_string();
    let mut a = Admin {
        srv,
        addr,
        csrf: String::new(),
    };
    let (_, body) = a.http("GET", "/api/csrf", None, false);
    a.csrf = json(&body)["token"].as_str().unwrap().to_string();
    a
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}: {s}"))
}

impl Admin {
    /// One HTTP/1.1 request: (status, body).
    fn http(&self, method: &str, path: &str, body: Option<&str>, csrf: bool) -> (u16, String) {
        let (status, _, body) = self.http_full(method, path, body, csrf);
        (status, body)
    }

    /// One HTTP/1.1 request: (status, header lines, body).
    fn http_full(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        csrf: bool,
    ) -> (u16, String, String) {
        let mut s = TcpStream::connect(&self.addr).unwrap();
        let body = body.unwrap_or("");
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
            self.addr,
            body.len()
        );
        if csrf {
            req.push_str(&format!("X-CSRF-Token: {}\r\n", self.csrf));
        }
        req.push_str("\r\n");
        req.push_str(body);
        s.write_all(req.as_bytes()).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        let status = out[9..12].parse().unwrap();
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        (status, head.to_string(), body.to_string())
    }

    /// Every key the browser finds for a query, following the cursor.
    fn keys(&self, q: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut cursor = String::new();
        loop {
            let (st, body) = self.http(
                "GET",
                &format!("/api/keys?{q}&limit=1000&cursor={cursor}"),
                None,
                false,
            );
            assert_eq!(st, 200, "{body}");
            let v = json(&body);
            for k in v["keys"].as_array().unwrap() {
                out.push(k["key"].as_str().unwrap().to_string());
            }
            match v["cursor"].as_str() {
                Some(c) => cursor = c.to_string(),
                None => break,
            }
        }
        out.sort();
        out
    }

    fn get(&self, key: &str) -> Vec<u8> {
        exchange(&self.srv, format!("get {key}\r\n").as_bytes(), b"END\r\n")
    }
}

fn set_many(srv: &Server, prefix: &str, n: usize, exptime: u32) {
    let mut s = srv.connect();
    let mut buf = Vec::new();
    for i in 0..n {
        buf.extend_from_slice(
            format!("set {prefix}{i} 0 {exptime} 2 noreply\r\nvv\r\n").as_bytes(),
        );
        // In batches, so a loaded host does not hit the read timeout.
        if i % 5000 == 4999 || i == n - 1 {
            buf.extend_from_slice(b"mn\r\n");
            s.write_all(&buf).unwrap();
            read_until(&mut s, b"MN\r\n");
            buf.clear();
        }
    }
}

#[test]
fn prefix_and_pattern_search_find_exactly_the_keys_across_shards() {
    let a = start(&["-t", "2"]);
    set_many(&a.srv, "user:", 3000, 0);
    set_many(&a.srv, "users", 10, 0);
    set_many(&a.srv, "product:", 500, 100);
    let mut want: Vec<String> = (0..3000).map(|i| format!("user:{i}")).collect();
    want.sort();
    assert_eq!(a.keys("prefix=user:"), want);
    assert_eq!(a.keys("pattern=product:1?").len(), 10);
    assert_eq!(a.keys("ttl=lt:200").len(), 500);
    assert_eq!(a.keys("ttl=none").len(), 3010);
    // The workers both own some of them.
    let (_, body) = a.http("GET", "/api/keys?prefix=user:&limit=1000", None, false);
    let v = json(&body);
    let workers: std::collections::BTreeSet<u64> = v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["worker"].as_u64().unwrap())
        .collect();
    assert!(workers.len() == 2 || v["cursor"].is_string(), "{workers:?}");
    assert_eq!(a.http("GET", "/api/keys?ttl=bogus", None, false).0, 400);
}

#[test]
fn edits_take_effect_as_memcached_clients_see_them() {
    let a = start(&["-t", "2"]);
    let (st, _) = a.http(
        "PUT",
        "/api/key/k%3A1",
        Some(r#"{"value":"{\"a\":1}","flags":7,"ttl":0}"#),
        true,
    );
    assert_eq!(st, 200);
    assert_eq!(a.get("k:1"), b"VALUE k:1 7 7\r\n{\"a\":1}\r\nEND\r\n");
    let (st, body) = a.http("GET", "/api/key/k:1", None, false);
    assert_eq!(st, 200);
    let v = json(&body);
    assert_eq!(v["type"], "json");
    assert_eq!(v["ttl"], -1);
    assert_eq!(v["flags"], 7);
    // add of an existing key: 409, value unchanged.
    let (st, _) = a.http(
        "PUT",
        "/api/key/k:1",
        Some(r#"{"value":"x","mode":"add"}"#),
        true,
    );
    assert_eq!(st, 409);
    assert_eq!(a.get("k:1"), b"VALUE k:1 7 7\r\n{\"a\":1}\r\nEND\r\n");
    // Bulk TTL: -1 makes them expire at once, as touch does.
    set_many(&a.srv, "b:", 20, 0);
    let keys: Vec<String> = (0..10).map(|i| format!("\"b:{i}\"")).collect();
    let body = format!(r#"{{"action":"ttl","ttl":-1,"keys":[{}]}}"#, keys.join(","));
    let (st, r) = a.http("POST", "/api/keys/bulk", Some(&body), true);
    assert_eq!((st, json(&r)["changed"].as_u64()), (200, Some(10)));
    assert_eq!(a.keys("prefix=b:").len(), 10);
    let body = r#"{"action":"ttl","ttl":500,"keys":["b:10","b:11","nope"]}"#;
    let since = std::time::Instant::now();
    let (_, r) = a.http("POST", "/api/keys/bulk", Some(body), true);
    assert_eq!(json(&r)["not_found"], 1);
    let (_, body) = a.http("GET", "/api/key/b:10", None, false);
    // Whole seconds of the server's clock: a tick between the two requests
    // takes one off, and each whole second that passed one more.
    let ttl = json(&body)["ttl"].as_u64().unwrap();
    let floor = 500 - 1 - since.elapsed().as_secs();
    assert!((floor..=500).contains(&ttl), "ttl {ttl}");
    let (st, _) = a.http(
        "POST",
        "/api/keys/bulk",
        Some(r#"{"action":"delete","keys":["b:12"]}"#),
        true,
    );
    assert_eq!(st, 200);
    assert_eq!(a.get("b:12"), b"END\r\n");
    let (st, _) = a.http("DELETE", "/api/key/k:1", None, true);
    assert_eq!(st, 200);
    assert_eq!(a.get("k:1"), b"END\r\n");
    assert_eq!(a.http("DELETE", "/api/key/k:1", None, true).0, 404);
    assert_eq!(a.http("GET", "/api/key/k:1", None, false).0, 404);
    assert_eq!(a.http("GET", "/api/key/a%20b", None, false).0, 400);
}

/// DNS rebinding: a page on another domain whose name now points at
/// 127.0.0.1 sends its own name as Host; without a token, such requests
/// are refused even carrying the CSRF token (which `/api/csrf` would
/// otherwise hand that page).
#[test]
fn a_request_naming_another_host_is_refused_without_a_token() {
    let a = start(&["-t", "2"]);
    set_many(&a.srv, "r:", 4, 0);
    let raw = |req: String| {
        let mut s = std::net::TcpStream::connect(&a.addr).unwrap();
        s.write_all(req.as_bytes()).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out.lines().next().unwrap_or("").to_string()
    };
    for (host, want) in [
        ("attacker.example", "403"),
        ("attacker.example:80", "403"),
        ("localhost", "200"),
    ] {
        let get = raw(format!(
            "GET /api/csrf HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        ));
        assert!(get.contains(want), "{host}: {get}");
        let del = raw(format!(
            "DELETE /api/key/r:1 HTTP/1.1\r\nHost: {host}\r\nX-CSRF-Token: {}\r\nConnection: close\r\n\r\n",
            a.csrf
        ));
        if want == "403" {
            assert!(del.contains("403"), "{host}: {del}");
        }
    }
    // The rebinding attempts changed nothing; the localhost one deleted r:1.
    assert_eq!(a.get("r:1"), b"END\r\n".to_vec());
    assert_eq!(a.get("r:2"), b"VALUE r:2 0 2\r\nvv\r\nEND\r\n".to_vec());
    // Health probes answer whatever the Host.
    let probe =
        raw("GET /healthz HTTP/1.1\r\nHost: attacker.example\r\nConnection: close\r\n\r\n".into());
    assert!(probe.contains("200"), "{probe}");
}

#[test]
fn changes_without_the_csrf_token_are_refused() {
    let a = start(&["-t", "2"]);
    set_many(&a.srv, "c:", 10, 0);
    for (m, p, b) in [
        ("POST", "/api/flush_prefix?prefix=c:", None),
        ("PUT", "/api/key/c:1", Some(r#"{"value":"x"}"#)),
        ("DELETE", "/api/key/c:2", None),
        (
            "POST",
            "/api/keys/bulk",
            Some(r#"{"action":"delete","keys":["c:3"]}"#),
        ),
    ] {
        assert_eq!(a.http(m, p, b, false).0, 403, "{m} {p}");
    }
    for i in 0..10 {
        assert_eq!(
            a.get(&format!("c:{i}")),
            b"VALUE c:"
                .iter()
                .copied()
                .chain(format!("{i} 0 2\r\nvv\r\nEND\r\n").bytes())
                .collect::<Vec<u8>>()
        );
    }
}

#[test]
fn flush_prefix_over_http_hides_100k_keys_and_reports_server_time() {
    let a = start(&["-t", "2", "-m", "256"]);
    set_many(&a.srv, "gone:", 100_000, 0);
    set_many(&a.srv, "kept:", 1000, 0);
    let (st, body) = a.http(
        "POST",
        "/api/flush_prefix",
        Some(r#"{"prefix":"gone:"}"#),
        true,
    );
    assert_eq!(st, 200, "{body}");
    eprintln!(
        "flush_prefix 100k keys over HTTP: server_us {}",
        json(&body)["server_us"]
    );
    assert_eq!(a.get("gone:1"), b"END\r\n");
    assert_eq!(a.get("gone:99999"), b"END\r\n");
    assert!(a.keys("prefix=gone:").is_empty());
    assert_eq!(a.keys("prefix=kept:").len(), 1000);
}

#[test]
fn flush_prefix_over_http_is_refused_under_dash_f() {
    let audit = std::env::temp_dir().join(format!("cc-api-audit-f-{}", std::process::id()));
    let _ = std::fs::remove_file(&audit);
    let f = start(&["-F", "--audit-log", audit.to_str().unwrap()]);
    set_many(&f.srv, "x:", 1, 0);
    let (st, _) = f.http("POST", "/api/flush_prefix?prefix=x:", None, true);
    assert_eq!(st, 403);
    assert_eq!(f.get("x:0"), b"VALUE x:0 0 2\r\nvv\r\nEND\r\n");
    let trail = std::fs::read_to_string(&audit).unwrap();
    assert!(
        trail.contains(r#"action="flush_prefix refused (-F)""#) && trail.contains(r#"arg="x:""#),
        "{trail}"
    );
    let _ = std::fs::remove_file(&audit);
}

#[test]
fn an_empty_prefix_over_http_needs_all_and_refusals_are_audited() {
    let audit = std::env::temp_dir().join(format!("cc-api-audit-e-{}", std::process::id()));
    let _ = std::fs::remove_file(&audit);
    let f = start(&["--audit-log", audit.to_str().unwrap()]);
    set_many(&f.srv, "x:", 3, 0);
    for (path, body) in [
        ("/api/flush_prefix?prefix=", None),
        ("/api/flush_prefix", Some(r#"{"prefix": ""}"#)),
        ("/api/flush_prefix?prefix=&all=0", None),
        ("/api/flush_prefix", Some("{}")),
        (
            "/api/flush_prefix",
            Some(&*format!(r#"{{"prefix": "{}"}}"#, "p".repeat(251))),
        ),
    ] {
        let (st, b) = f.http("POST", path, body, true);
        assert_eq!(st, 400, "{path} {body:?}: {b}");
        assert_eq!(f.get("x:2"), b"VALUE x:2 0 2\r\nvv\r\nEND\r\n");
    }
    let trail = std::fs::read_to_string(&audit).unwrap();
    assert_eq!(
        trail.matches("flush_prefix refused (empty prefix)").count(),
        3,
        "{trail}"
    );
    assert_eq!(
        trail.matches("flush_prefix refused (no prefix)").count(),
        1,
        "{trail}"
    );
    assert_eq!(
        trail
            .matches("flush_prefix refused (prefix over 250 bytes)")
            .count(),
        1,
        "{trail}"
    );
    // Meant: every item goes.
    let (st, b) = f.http("POST", "/api/flush_prefix?prefix=&all=1", None, true);
    assert_eq!(st, 200, "{b}");
    for i in 0..3 {
        assert_eq!(f.get(&format!("x:{i}")), b"END\r\n");
    }
    let trail = std::fs::read_to_string(&audit).unwrap();
    assert!(trail.contains(r#"action="flush_prefix" peer="#), "{trail}");
    let _ = std::fs::remove_file(&audit);
}

/// The `stored` of `key` in the key listing and in the key's own view
/// (they must agree), Unix seconds.
fn stored(a: &Admin, key: &str) -> i64 {
    let (st, body) = a.http("GET", &format!("/api/key/{key}"), None, false);
    assert_eq!(st, 200, "{body}");
    let one = json(&body)["stored"].as_i64().unwrap();
    let (_, body) = a.http("GET", &format!("/api/keys?prefix={key}"), None, false);
    let listed = json(&body)["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["key"] == key)
        .map(|k| k["stored"].as_i64().unwrap());
    assert_eq!(listed, Some(one), "{body}");
    one
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn store_time_is_approximate_but_in_order() {
    let started = unix_now();
    let a = start(&["-t", "2"]);
    set_many(&a.srv, "first", 1, 0);
    let set_first = unix_now();
    std::thread::sleep(std::time::Duration::from_millis(2200));
    let before_second = unix_now();
    set_many(&a.srv, "second", 1, 0);
    let set_second = unix_now();
    let (t1, t2) = (stored(&a, "first0"), stored(&a, "second0"));
    // The server's clock is whole seconds since its start, so it may lag
    // the wall clock by up to 2 s; it is never ahead of it.
    assert!(
        t1 >= started - 2 && t1 <= set_first,
        "{t1} {started}..{set_first}"
    );
    // The last key written to a segment is dated exactly; whichever
    // segment "first0" shares, it is dated before the key written after.
    assert!(t2 >= before_second - 2 && t2 <= set_second, "{t2}");
    assert!(t1 < t2, "{t1} {t2}");
}

/// Keys that are not UTF-8 show alike in `key` (lossy) but each carries
/// its exact bytes in `key_b64`, and the item and bulk endpoints take
/// those bytes (%-escaped in the path, `keys_b64` in a bulk body), so an
/// action on one never lands on the other.
#[test]
fn keys_that_are_not_utf8_are_named_by_their_bytes() {
    let a = start(&[]);
    let set = exchange(
        &a.srv,
        b"set nu\xff 0 0 3\r\none\r\nset nu\xfe 0 0 3\r\ntwo\r\n",
        b"STORED\r\nSTORED\r\n",
    );
    assert_eq!(set, b"STORED\r\nSTORED\r\n");
    let (st, body) = a.http("GET", "/api/keys?prefix=nu&limit=10", None, false);
    assert_eq!(st, 200, "{body}");
    let v = json(&body);
    let keys = v["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "{body}");
    assert_eq!(keys[0]["key"], keys[1]["key"], "both lossy alike");
    let mut b64: Vec<&str> = keys
        .iter()
        .map(|k| k["key_b64"].as_str().unwrap())
        .collect();
    b64.sort_unstable();
    assert_eq!(b64, ["bnX+", "bnX/"]); // nu\xfe, nu\xff
    let (st, body) = a.http("GET", "/api/key/nu%FE", None, false);
    assert_eq!(st, 200);
    assert_eq!(json(&body)["text"], "two");
    assert_eq!(json(&body)["key_b64"], "bnX+");
    let (st, r) = a.http(
        "POST",
        "/api/keys/bulk",
        Some(r#"{"action":"delete","keys_b64":["bnX/"]}"#),
        true,
    );
    assert_eq!((st, json(&r)["changed"].as_u64()), (200, Some(1)), "{r}");
    let left = exchange(&a.srv, b"get nu\xff nu\xfe\r\n", b"END\r\n");
    assert_eq!(left, b"VALUE nu\xfe 0 3\r\ntwo\r\nEND\r\n");
    // Not base64: refused, nothing done.
    let (st, _) = a.http(
        "POST",
        "/api/keys/bulk",
        Some(r#"{"action":"delete","keys_b64":["@@"]}"#),
        true,
    );
    assert_eq!(st, 400);
}
