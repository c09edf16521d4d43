//! The admin port with a password file, on the real binary over real
//! sockets: no login or a wrong one is refused (401), counted and audited
//! without the password; each user's ACL rules limit what the key browser
//! lists, which keys may be read, edited and deleted, and who may
//! invalidate a prefix; guessing is braked; a SIGHUP reload changes who
//! may log in; `--admin-open-metrics` opens `/metrics` alone.

mod common;

use base64::Engine;
use common::{free_port, read_until, AS_ROOT};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PASSWD: &str = "ops:opspw\nweb:webpw\nro:ropw\nscrape:scrapepw\n";
const ACL: &str = "ops admin read=* write=*\nweb read=app: write=app:\nro read=app:\n";

struct Srv {
    child: Child,
    port: u16,
    admin: String,
    dir: PathBuf,
}

impl Drop for Srv {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

struct Reply {
    status: u16,
    head: String,
    body: String,
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}: {s}"))
}

/// ASCII auth, then `stats`: whether the data port answers as `pid`.
fn answers(port: u16, pid: u32) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    if s.write_all(b"set a 0 0 9\r\nops opspw\r\nstats\r\n")
        .is_err()
    {
        return false;
    }
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    while !out.ends_with(b"END\r\n") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return false,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).contains(&format!("STAT pid {pid}\r\n"))
}

impl Srv {
    /// corecache with the password and ACL files above (in a directory of
    /// its own), an explicit admin port and the audit trail in a file.
    fn start(tag: &str, extra: &[&str]) -> Srv {
        let dir = std::env::temp_dir().join(format!("cc-admin-users-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("passwd"), PASSWD).unwrap();
        std::fs::write(dir.join("acl"), ACL).unwrap();
        for _ in 0..5 {
            let (port, aport) = (free_port(), free_port());
            let admin = format!("127.0.0.1:{aport}");
            // Asked to, the port listens on every address (reached here
            // over loopback all the same).
            let bind = match extra.contains(&"--admin-allow-remote") {
                true => format!("0.0.0.0:{aport}"),
                false => admin.clone(),
            };
            let child = Command::new(env!("CARGO_BIN_EXE_corecache"))
                .args(["-p", &port.to_string(), "-t", "2"])
                .args(AS_ROOT)
                .args(["-Y", dir.join("passwd").to_str().unwrap()])
                .args(["-o", &format!("acl_file={}", dir.join("acl").display())])
                .args(["--admin", &bind])
                .args(["--audit-log", dir.join("audit").to_str().unwrap()])
                .args(extra)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let mut srv = Srv {
                child,
                port,
                admin,
                dir: dir.clone(),
            };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Some(st) = srv.child.try_wait().unwrap() {
                    // 71: one of the two ports was taken meanwhile.
                    assert_eq!(st.code(), Some(71), "server died at start: {st}");
                    break;
                }
                if answers(port, srv.child.id()) && srv.http("GET", "/healthz", None).status == 200
                {
                    return srv;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("server did not start");
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// One request as `login` (user, password), with the CSRF token when
    /// it changes state.
    fn req(&self, method: &str, path: &str, login: Option<(&str, &str)>, body: &str) -> Reply {
        let mut extra = String::new();
        if let Some((u, p)) = login {
            let b = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
            extra.push_str(&format!("Authorization: Basic {b}\r\n"));
            if method != "GET" {
                let csrf = self.http("GET", "/api/csrf", login);
                assert_eq!(csrf.status, 200, "{}", csrf.body);
                let t = json(&csrf.body)["token"].as_str().unwrap().to_string();
                extra.push_str(&format!("X-CSRF-Token: {t}\r\n"));
            }
        }
        self.raw(method, path, &extra, body)
    }

    fn http(&self, method: &str, path: &str, login: Option<(&str, &str)>) -> Reply {
        self.req(method, path, login, "")
    }

    fn raw(&self, method: &str, path: &str, headers: &str, body: &str) -> Reply {
        self.raw_from("127.0.0.1", method, path, headers, body)
    }

    /// As `raw`, from the local address `from` (127/8 is all this host's,
    /// and the admin port brakes guessing per address).
    fn raw_from(&self, from: &str, method: &str, path: &str, headers: &str, body: &str) -> Reply {
        let mut s = common::connect_from(from, &self.admin);
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let host = match headers.starts_with("Host:") {
            true => String::new(),
            false => format!("Host: {}\r\n", self.admin),
        };
        let req = format!(
            "{method} {path} HTTP/1.1\r\n{host}Connection: close\r\n{headers}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        Reply {
            status: head[9..12].parse().unwrap(),
            head: head.to_string(),
            body: body.to_string(),
        }
    }

    /// A sample of the classic exposition, scraped as `ops`.
    fn metric(&self, name: &str) -> u64 {
        let r = self.http("GET", "/metrics", Some(("ops", "opspw")));
        assert_eq!(r.status, 200);
        r.body
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name}"))
            .trim()
            .parse::<f64>()
            .unwrap() as u64
    }

    /// Every key the browser lists for `login`.
    fn keys(&self, login: (&str, &str)) -> Vec<String> {
        let r = self.http("GET", "/api/keys?limit=1000", Some(login));
        assert_eq!(r.status, 200, "{}", r.body);
        let v = json(&r.body);
        assert!(v["cursor"].is_null(), "one page holds them all");
        let mut k: Vec<String> = v["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["key"].as_str().unwrap().to_string())
            .collect();
        k.sort();
        k
    }

    fn put(&self, login: (&str, &str), key: &str, value: &str) -> u16 {
        let body = format!("{{\"value\":\"{value}\"}}");
        self.req("PUT", &format!("/api/key/{key}"), Some(login), &body)
            .status
    }
}

/// The audit lines of `action`, each as the whole line.
fn audited(path: &Path, action: &str) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(&format!("action=\"{action}\"")))
        .map(str::to_string)
        .collect()
}

const OPS: (&str, &str) = ("ops", "opspw");
const WEB: (&str, &str) = ("web", "webpw");
const RO: (&str, &str) = ("ro", "ropw");
const SCRAPE: (&str, &str) = ("scrape", "scrapepw");

#[test]
fn no_login_or_a_wrong_one_is_refused_counted_and_audited() {
    let srv = Srv::start("login", &[]);
    for path in [
        "/",
        "/stats",
        "/metrics",
        "/api/keys",
        "/api/csrf",
        "/api/key/app:1",
    ] {
        let r = srv.http("GET", path, None);
        assert_eq!(r.status, 401, "{path}: {}", r.body);
        assert!(
            r.head
                .to_ascii_lowercase()
                .contains("www-authenticate: basic realm=\"corecache\""),
            "{}",
            r.head
        );
    }
    // The health probes stay open, for the orchestrator.
    assert_eq!(srv.http("GET", "/healthz", None).status, 200);
    assert_eq!(srv.http("GET", "/readyz", None).status, 200);
    // A wrong password, an unknown user, a malformed value.
    assert_eq!(
        srv.http("GET", "/stats", Some(("ops", "Wr0ngPassw0rd")))
            .status,
        401
    );
    assert_eq!(
        srv.http("GET", "/stats", Some(("mallory", "opspw"))).status,
        401
    );
    assert_eq!(
        srv.raw("GET", "/stats", "Authorization: Basic !!!\r\n", "")
            .status,
        401
    );
    // Another user's password is no password.
    assert_eq!(
        srv.http("GET", "/stats", Some(("web", "opspw"))).status,
        401
    );
    // A data-port right password works; each user logs in as itself.
    let r = srv.http("GET", "/stats", Some(OPS));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(srv.http("GET", "/", Some(RO)).status, 200);
    assert_eq!(srv.http("GET", "/metrics", Some(SCRAPE)).status, 200);
    assert_eq!(srv.metric("corecache_admin_login_failures_total"), 4);
    let failed = audited(&srv.path("audit"), "login_failed");
    assert_eq!(failed.len(), 4, "{failed:?}");
    assert!(failed[0].contains("user=\"ops\""), "{}", failed[0]);
    assert!(failed[1].contains("user=\"mallory\""), "{}", failed[1]);
    assert!(failed[0].contains("peer=\"127.0.0.1:"), "{}", failed[0]);
    // No password, right or wrong, is ever written.
    let all = std::fs::read_to_string(srv.path("audit")).unwrap();
    assert!(
        !all.contains("Wr0ngPassw0rd") && !all.contains("opspw"),
        "{all}"
    );
}

#[test]
fn each_user_sees_and_changes_only_what_its_rules_allow() {
    let srv = Srv::start("rules", &[]);
    for k in ["app:1", "app:2", "secret:1", "secret:2"] {
        assert_eq!(srv.put(OPS, k, "v"), 200, "{k}");
    }
    // The key browser lists only keys the user may read.
    assert_eq!(srv.keys(OPS), ["app:1", "app:2", "secret:1", "secret:2"]);
    assert_eq!(srv.keys(WEB), ["app:1", "app:2"]);
    assert_eq!(srv.keys(RO), ["app:1", "app:2"]);
    // Asking for another prefix finds nothing readable.
    let r = srv.http("GET", "/api/keys?prefix=secret:", Some(WEB));
    assert_eq!(json(&r.body)["keys"].as_array().unwrap().len(), 0);
    // A user that may read nothing may not browse, but reads figures.
    let r = srv.http("GET", "/api/keys", Some(SCRAPE));
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(srv.http("GET", "/stats", Some(SCRAPE)).status, 200);
    assert_eq!(srv.http("GET", "/api/history", Some(SCRAPE)).status, 200);

    // Each user can see who it is logged in as.
    let me = json(&srv.http("GET", "/api/whoami", Some(WEB)).body);
    assert_eq!(
        me,
        serde_json::json!({"user": "web", "admin": false, "read": ["app:"], "write": ["app:"]})
    );
    let me = json(&srv.http("GET", "/api/whoami", Some(OPS)).body);
    assert_eq!(
        (me["admin"].as_bool(), me["read"][0].as_str()),
        (Some(true), Some("*"))
    );

    // Reads.
    assert_eq!(srv.http("GET", "/api/key/app:1", Some(RO)).status, 200);
    assert_eq!(srv.http("GET", "/api/key/secret:1", Some(RO)).status, 403);
    assert_eq!(srv.http("GET", "/api/key/secret:1", Some(WEB)).status, 403);
    assert_eq!(srv.http("GET", "/api/key/app:1", Some(SCRAPE)).status, 403);
    // Writes: web within app:, read-only ro nowhere.
    assert_eq!(srv.put(WEB, "app:3", "w"), 200);
    assert_eq!(srv.put(WEB, "secret:3", "w"), 403);
    assert_eq!(srv.put(RO, "app:1", "changed"), 403);
    assert_eq!(srv.http("DELETE", "/api/key/app:2", Some(RO)).status, 403);
    assert_eq!(
        srv.http("DELETE", "/api/key/secret:1", Some(WEB)).status,
        403
    );
    // A bulk action with one key out of bounds does nothing at all.
    let body = r#"{"action":"delete","keys":["app:1","secret:1"]}"#;
    let r = srv.req("POST", "/api/keys/bulk", Some(WEB), body);
    assert_eq!(r.status, 403, "{}", r.body);
    let r = srv.req(
        "POST",
        "/api/keys/bulk",
        Some(RO),
        r#"{"action":"ttl","ttl":100,"keys":["app:1"]}"#,
    );
    assert_eq!(r.status, 403, "{}", r.body);
    // Nothing refused took effect.
    let v = |k: &str| json(&srv.http("GET", &format!("/api/key/{k}"), Some(OPS)).body);
    assert_eq!(v("app:1")["text"], "v");
    assert_eq!(v("app:2")["text"], "v");
    assert_eq!(v("secret:1")["text"], "v");
    assert_eq!(v("secret:3")["error"], "not found");
    assert_eq!(v("app:3")["text"], "w");
    // What is allowed works.
    let r = srv.req(
        "POST",
        "/api/keys/bulk",
        Some(WEB),
        r#"{"action":"delete","keys":["app:1","app:3"]}"#,
    );
    assert_eq!(
        (r.status, json(&r.body)["changed"].as_u64()),
        (200, Some(2)),
        "{}",
        r.body
    );
    assert_eq!(srv.http("DELETE", "/api/key/app:2", Some(WEB)).status, 200);

    // Prefix invalidation is administrative, as text flush_prefix.
    let inval = |login| {
        srv.req("POST", "/api/flush_prefix?prefix=secret:", Some(login), "")
            .status
    };
    assert_eq!(inval(WEB), 403);
    assert_eq!(inval(RO), 403);
    assert_eq!(v("secret:1")["text"], "v");
    assert_eq!(inval(OPS), 200);
    assert_eq!(v("secret:1")["error"], "not found");
    let r = srv.req("POST", "/api/flush_prefix?prefix=&all=1", Some(WEB), "");
    assert_eq!(r.status, 403);

    // Counted and audited with the user.
    assert_eq!(srv.metric("corecache_admin_denied_total"), 13);
    let denied = audited(&srv.path("audit"), "denied");
    assert_eq!(denied.len(), 13, "{denied:?}");
    assert!(
        denied
            .iter()
            .any(|l| l.contains("user=\"web\"") && l.contains("arg=\"key_set secret:3\"")),
        "{denied:?}"
    );
    assert!(
        denied
            .iter()
            .any(|l| l.contains("user=\"ro\"") && l.contains("arg=\"flush_prefix secret:\"")),
        "{denied:?}"
    );
    let done = audited(&srv.path("audit"), "flush_prefix");
    assert!(
        done.len() == 1 && done[0].contains("user=\"ops\""),
        "{done:?}"
    );
    let sets = audited(&srv.path("audit"), "key_set");
    assert!(
        sets.iter()
            .any(|l| l.contains("user=\"web\"") && l.contains("app:3")),
        "{sets:?}"
    );
}

#[test]
fn guessing_is_braked_per_address() {
    let srv = Srv::start("brake", &["--admin-token", "tk"]);
    for i in 0..10 {
        let r = srv.http("GET", "/stats", Some(("ops", &format!("guess{i}"))));
        assert_eq!(r.status, 401);
    }
    // Past ten failures a minute, even the right password waits.
    let r = srv.http("GET", "/stats", Some(OPS));
    assert_eq!(r.status, 429, "{}", r.body);
    let after: u64 = r
        .head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("retry-after: ")
                .map(str::to_string)
        })
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&after), "{after}");
    // Checked failures: ten; the braked request was not checked.
    assert_eq!(audited(&srv.path("audit"), "login_failed").len(), 10);
    // A request without credentials is not a guess: it is asked to log in.
    assert_eq!(srv.http("GET", "/stats", None).status, 401);
    // The token is a secret to guess as a password is: the braked address
    // waits with it too (it was let in, and a breaker guessed tokens at
    // 10,000 a second). Another address is not braked.
    let r = srv.raw("GET", "/metrics", "Authorization: Bearer tk\r\n", "");
    assert_eq!(r.status, 429);
    let bearer = "Authorization: bearer tk\r\n";
    let r = srv.raw_from("127.0.0.2", "GET", "/metrics", bearer, "");
    assert_eq!(r.status, 200);
    let sample = |name: &str| {
        r.body
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .map(|v| v.trim().to_string())
    };
    assert_eq!(
        sample("corecache_admin_login_throttled_total").as_deref(),
        Some("2")
    );
    assert_eq!(
        sample("corecache_admin_login_failures_total").as_deref(),
        Some("10")
    );
}

#[test]
fn a_sighup_reload_changes_who_may_log_in() {
    let srv = Srv::start("reload", &[]);
    assert_eq!(srv.http("GET", "/stats", Some(WEB)).status, 200);
    assert_eq!(srv.put(WEB, "app:1", "v"), 200);
    assert_eq!(
        srv.http("GET", "/stats", Some(("carol", "carolpw"))).status,
        401
    );
    // web leaves; carol arrives with the admin right; ro may now write app:.
    std::fs::write(srv.path("passwd"), "ops:opspw\nro:ropw\ncarol:carolpw\n").unwrap();
    std::fs::write(
        srv.path("acl"),
        "ops admin read=* write=*\ncarol admin read=*\nro read=app: write=app:\n",
    )
    .unwrap();
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(srv.child.id() as i32, libc::SIGHUP) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while audited(&srv.path("audit"), "auth_reload").is_empty() {
        assert!(Instant::now() < deadline, "no reload audited");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(srv.http("GET", "/stats", Some(WEB)).status, 401);
    assert_eq!(
        srv.http("GET", "/stats", Some(("carol", "carolpw"))).status,
        200
    );
    assert_eq!(srv.put(RO, "app:1", "by ro"), 200);
    let r = srv.req(
        "POST",
        "/api/flush_prefix?prefix=app:",
        Some(("carol", "carolpw")),
        "",
    );
    assert_eq!(r.status, 200, "{}", r.body);
    // The data port follows the same table.
    let mut s = TcpStream::connect(("127.0.0.1", srv.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"set a 0 0 13\r\ncarol carolpw\r\n").unwrap();
    assert_eq!(read_until(&mut s, b"\r\n"), b"STORED\r\n");
}

#[test]
fn open_metrics_opens_metrics_alone() {
    let srv = Srv::start("open", &["--admin-open-metrics"]);
    let r = srv.http("GET", "/metrics", None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("corecache_admin_login_failures_total"));
    assert_eq!(srv.http("GET", "/stats", None).status, 401);
    assert_eq!(srv.http("GET", "/api/keys", None).status, 401);
    assert_eq!(srv.http("GET", "/", None).status, 401);
}

#[test]
fn an_admin_token_still_works_beside_the_users() {
    let srv = Srv::start("token", &["--admin-token", "t0ken"]);
    let bearer = "Authorization: Bearer t0ken\r\n";
    assert_eq!(srv.raw("GET", "/api/keys", bearer, "").status, 200);
    // With users, Basic is a user's login: the token is no password.
    assert_eq!(
        srv.http("GET", "/stats", Some(("ops", "t0ken"))).status,
        401
    );
    assert_eq!(
        srv.raw("GET", "/stats", "Authorization: Bearer nope\r\n", "")
            .status,
        401
    );
    assert_eq!(srv.http("GET", "/stats", Some(WEB)).status, 200);
}

#[test]
fn a_password_file_is_login_enough_for_a_remote_admin_port() {
    // No token: the users' logins guard the port.
    let srv = Srv::start("remote", &["--admin-allow-remote"]);
    assert_eq!(srv.http("GET", "/stats", None).status, 401);
    // A remote client names the host by its name: with logins, no Host
    // check (it guards only the open loopback port against rebinding).
    let b = base64::engine::general_purpose::STANDARD.encode("web:webpw");
    let r = srv.raw(
        "GET",
        "/stats",
        &format!("Host: cache1.example:11212\r\nAuthorization: Basic {b}\r\n"),
        "",
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(srv.http("GET", "/api/key/secret:1", Some(WEB)).status, 403);
}
