//! systemd's notify protocol, spoken to a datagram socket the test owns
//! (as systemd would own it): `READY=1` only once the port serves and
//! every worker is in its loop (`/readyz` says 200 at that moment),
//! `STATUS=` lines, `WATCHDOG=1` pings when `WATCHDOG_USEC` is set,
//! `STOPPING=1` on SIGTERM, and `-d` not forking under systemd.

mod common;

use common::{free_port, read_until, AS_ROOT};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixDatagram;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The notify socket systemd would hold, in a fresh directory.
struct NotifySocket {
    sock: UnixDatagram,
    dir: std::path::PathBuf,
}

impl NotifySocket {
    fn new(name: &str) -> NotifySocket {
        let dir = std::env::temp_dir().join(format!("cc-notify-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let sock = UnixDatagram::bind(dir.join("notify")).unwrap();
        NotifySocket { sock, dir }
    }

    fn path(&self) -> std::path::PathBuf {
        self.dir.join("notify")
    }

    /// The next datagram's lines, or `None` after `wait`.
    fn next(&self, wait: Duration) -> Option<Vec<String>> {
        self.sock.set_read_timeout(Some(wait)).unwrap();
        let mut buf = [0u8; 4096];
        let n = self.sock.recv(&mut buf).ok()?;
        Some(
            String::from_utf8_lossy(&buf[..n])
                .lines()
                .map(str::to_string)
                .collect(),
        )
    }

    /// Reads datagrams until one holds `line`; returns every line read.
    fn until(&self, line: &str, within: Duration) -> Vec<String> {
        let deadline = Instant::now() + within;
        let mut seen = Vec::new();
        while Instant::now() < deadline {
            if let Some(lines) = self.next(deadline - Instant::now()) {
                let done = lines.iter().any(|l| l == line);
                seen.extend(lines);
                if done {
                    return seen;
                }
            }
        }
        panic!("no {line} within {within:?}; saw {seen:?}");
    }
}

impl Drop for NotifySocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

struct Started {
    child: Child,
    port: u16,
    admin: u16,
}

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts corecache under a pretend systemd (NOTIFY_SOCKET set, and
/// `WATCHDOG_USEC` when `watchdog` is given) and returns once it sent
/// `READY=1`, with every line sent until then. A port picked free can be
/// taken before the server binds it (exit 71): then other ports are tried.
fn start_ready(
    n: &NotifySocket,
    watchdog: Option<Duration>,
    extra: &[&str],
) -> (Started, Vec<String>) {
    for _ in 0..5 {
        let port = free_port();
        let admin = free_port();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_corecache"));
        cmd.args(["-p", &port.to_string(), "-t", "2", "-m", "8"])
            .args(["--admin", &format!("127.0.0.1:{admin}")])
            .args(AS_ROOT)
            .args(extra)
            .env("NOTIFY_SOCKET", n.path())
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(w) = watchdog {
            cmd.env("WATCHDOG_USEC", w.as_micros().to_string());
        }
        let mut srv = Started {
            child: cmd.spawn().unwrap(),
            port,
            admin,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut seen = Vec::new();
        while Instant::now() < deadline {
            if let Some(lines) = n.next(Duration::from_millis(100)) {
                let ready = lines.iter().any(|l| l == "READY=1");
                seen.extend(lines);
                if ready {
                    return (srv, seen);
                }
            }
            if let Some(st) = srv.child.try_wait().unwrap() {
                assert_eq!(st.code(), Some(71), "server died at start: {st}");
                assert!(!seen.iter().any(|l| l == "READY=1"), "{seen:?}");
                break;
            }
        }
    }
    panic!("no READY=1 on any of 5 ports");
}

/// GET on the admin port; the status line.
fn http_status(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.lines().next().unwrap_or("").to_string()
}

/// Sets and reads back keys enough to land on both workers' shards,
/// each exchange bounded by a short timeout: the port serves now.
fn serves_now(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    for i in 0..16 {
        let req = format!("set k{i} 5 0 2\r\nv{}\r\nget k{i}\r\n", i % 10);
        s.write_all(req.as_bytes()).unwrap();
        let got = read_until(&mut s, b"END\r\n");
        let want = format!("STORED\r\nVALUE k{i} 5 2\r\nv{}\r\nEND\r\n", i % 10);
        if got != want.as_bytes() {
            return false;
        }
    }
    true
}

fn sigterm(c: &Child) {
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
}

fn wait_exit(c: &mut Child) -> Option<i32> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Some(st) = c.try_wait().unwrap() {
            return st.code();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("no exit after SIGTERM");
}

#[test]
fn ready_after_the_port_serves_watchdog_pings_stopping_on_sigterm() {
    let n = NotifySocket::new("ready");
    // `-d` as in a copied memcached.conf: under systemd it must not fork
    // (the process systemd started is the one that serves and notifies).
    let (mut srv, before) = start_ready(&n, Some(Duration::from_millis(400)), &["-d"]);
    // At the moment READY=1 arrives, every worker is in its loop and the
    // port answers, with no further wait.
    assert_eq!(http_status(srv.admin, "/readyz"), "HTTP/1.1 200 OK");
    assert!(serves_now(srv.port), "READY=1 before the port served");
    assert!(
        before.iter().any(|l| l == "STATUS=starting 2 workers"),
        "{before:?}"
    );
    let status = before
        .iter()
        .find(|l| l.starts_with("STATUS=serving on 127.0.0.1 port "))
        .unwrap_or_else(|| panic!("no serving status with READY=1: {before:?}"));
    assert!(status.contains("with 2 workers"), "{status}");
    // The child spawned is the server: -d did not fork it away.
    assert!(
        srv.child.try_wait().unwrap().is_none(),
        "the process exited"
    );
    let mut s = TcpStream::connect(("127.0.0.1", srv.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"stats\r\n").unwrap();
    let stats = String::from_utf8_lossy(&read_until(&mut s, b"END\r\n")).into_owned();
    assert!(stats.contains(&format!("STAT pid {}\r\n", srv.child.id())));

    // WATCHDOG_USEC=400 ms: pings at least every 200 ms while healthy.
    let t = Instant::now();
    let mut pings = 0;
    while pings < 3 {
        let lines = n.next(Duration::from_secs(2)).expect("a watchdog ping");
        pings += lines.iter().filter(|l| *l == "WATCHDOG=1").count();
    }
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());

    sigterm(&srv.child);
    let after = n.until("STOPPING=1", Duration::from_secs(10));
    assert!(!after.iter().any(|l| l == "READY=1"), "{after:?}");
    assert_eq!(wait_exit(&mut srv.child), Some(0));
}

#[test]
fn no_watchdog_pings_unless_asked_and_shutdown_says_stopping() {
    let n = NotifySocket::new("nowd");
    let (mut srv, _) = start_ready(&n, None, &["-A"]);
    // The status refresh runs every second; a ping would be among these.
    let t = Instant::now();
    while t.elapsed() < Duration::from_millis(1500) {
        if let Some(lines) = n.next(Duration::from_millis(100)) {
            assert!(!lines.iter().any(|l| l == "WATCHDOG=1"), "{lines:?}");
        }
    }
    // The `shutdown` command ends the workers: STOPPING=1 as for SIGTERM.
    let mut s = TcpStream::connect(("127.0.0.1", srv.port)).unwrap();
    s.write_all(b"shutdown\r\n").unwrap();
    let after = n.until("STOPPING=1", Duration::from_secs(10));
    assert!(!after.iter().any(|l| l == "WATCHDOG=1"), "{after:?}");
    assert_eq!(wait_exit(&mut srv.child), Some(0));
}
