//! What the client's integration tests share: real servers (the corecache
//! binary of this workspace, Debian's memcached) on free ports.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use corecache_client::{Client, ClientBuilder, Node};

/// Which server a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Corecache,
    Memcached,
}

/// The request and connect timeout of the tests' clients. The client's
/// default (1 s, counted from when a call is queued on its pipelined
/// connection) is a latency target, not a correctness bound: hundreds of
/// callers on two connections of a loaded 2-core machine can queue past
/// it, and a timeout also counts towards the node's failure limit. No test
/// here is about timeouts on a live server; a server that does not answer
/// at all still fails them.
pub const PATIENT: Duration = Duration::from_secs(10);

pub struct Server {
    pub kind: Kind,
    pub port: u16,
    child: Child,
    /// The plaintext port `stats` and `raw` use: `port`, or a `notls:`
    /// listener beside a TLS one.
    probe: u16,
    /// Sent before anything on the probe port: an ASCII login for `-Y`.
    login: Vec<u8>,
}

/// How a test server is reached beyond its port.
#[derive(Debug, Clone, Default)]
pub struct Probe {
    /// An ASCII login (`set auth 0 0 <n>\r\n<user> <password>\r\n`)
    /// the harness sends before its own requests, for `-Y` servers.
    pub login: Vec<u8>,
    /// The server's `port` speaks TLS (`-Z`): the harness adds a
    /// plaintext `notls:` listener (memcached's syntax, which corecache
    /// shares) and probes there.
    pub tls: bool,
}

/// The login block for `user` and `password`, as the harness sends it.
pub fn login(user: &str, password: &str) -> Vec<u8> {
    let data = format!("{user} {password}");
    format!("set auth 0 0 {}\r\n{data}\r\n", data.len()).into_bytes()
}

/// A file of `text` in a fresh temporary directory of this test process.
pub fn temp_file(name: &str, text: &[u8]) -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "corecache-client-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[path = "../../../tests/support/ports.rs"]
mod ports;
pub use ports::free_port;

/// The corecache binary next to this test's build: `CORECACHE_BIN`, else
/// `target/<profile>/corecache`, else the release one. `cargo test` at the
/// workspace root builds it (the server's own tests need it).
pub fn corecache_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("CORECACHE_BIN") {
        return p.into();
    }
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let candidates = [
        profile_dir.join("corecache"),
        profile_dir.parent().unwrap().join("release/corecache"),
    ];
    for c in &candidates {
        if c.exists() {
            return c.clone();
        }
    }
    panic!(
        "no corecache binary at {candidates:?}: run `cargo build --release` (or `cargo test --release` at the workspace root), or set CORECACHE_BIN"
    );
}

impl Server {
    pub fn start(kind: Kind) -> Server {
        Server::start_with(kind, &[])
    }

    pub fn start_with(kind: Kind, args: &[&str]) -> Server {
        Server::start_probed(kind, args, Probe::default())
    }

    /// Starts with `args`, probed as `probe` says (a login, TLS).
    pub fn start_probed(kind: Kind, args: &[&str], probe: Probe) -> Server {
        for _ in 0..5 {
            if let Some(s) = Server::try_start_probed(kind, free_port(), args, &probe) {
                return s;
            }
        }
        panic!("{kind:?} did not start on any of 5 ports");
    }

    /// Starts on `port`; None if it did not come up as itself there.
    pub fn try_start(kind: Kind, port: u16, args: &[&str]) -> Option<Server> {
        Server::try_start_probed(kind, port, args, &Probe::default())
    }

    fn try_start_probed(kind: Kind, port: u16, args: &[&str], probe: &Probe) -> Option<Server> {
        let p = port.to_string();
        let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let probe_port = if probe.tls {
            let plain = free_port();
            args.extend(["-l".into(), format!("notls:127.0.0.1:{plain}")]);
            plain
        } else {
            port
        };
        let mut cmd = match kind {
            Kind::Corecache => {
                let mut c = Command::new(corecache_bin());
                c.args(["-u", "root", "-p", &p, "-t", "1", "-l", "127.0.0.1"]);
                c
            }
            Kind::Memcached => {
                let mut c = Command::new("/usr/bin/memcached");
                c.args([
                    "-u",
                    "root",
                    "-p",
                    &p,
                    "-U",
                    "0",
                    "-l",
                    "127.0.0.1",
                    "-t",
                    "1",
                ]);
                c
            }
        };
        let child = cmd
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {kind:?}: {e}"));
        let mut s = Server {
            kind,
            port,
            child,
            probe: probe_port,
            login: probe.login.clone(),
        };
        s.answers_as_itself().then_some(s)
    }

    /// A listener on a free port may be taken by another test's server
    /// between the check and the bind: the server is used only once `stats`
    /// on the port names its own pid.
    fn answers_as_itself(&mut self) -> bool {
        let want = format!("STAT pid {}\r\n", self.child.id());
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.child.try_wait().unwrap().is_some() {
                return false;
            }
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.probe)) {
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                s.write_all(&[&self.login[..], b"stats\r\n"].concat())
                    .unwrap();
                let mut out = Vec::new();
                let mut buf = [0u8; 8192];
                while !out.ends_with(b"END\r\n") {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => out.extend_from_slice(&buf[..n]),
                    }
                }
                return String::from_utf8_lossy(&out).contains(&want);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn node(&self) -> Node {
        Node::new("127.0.0.1", self.port)
    }

    /// A client builder for this server, with `PATIENT` timeouts.
    pub fn builder(&self) -> ClientBuilder {
        Client::builder()
            .node(self.node())
            .timeout(PATIENT)
            .connect_timeout(PATIENT)
    }

    pub fn client(&self) -> Client {
        self.builder().build()
    }

    /// Kills the server (SIGKILL: a node lost, not a clean stop).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the same kind again on the same port (a node coming back,
    /// empty).
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(s) = Server::try_start(self.kind, self.port, &[]) {
                *self = s;
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{:?} did not come back on {}",
                self.kind,
                self.port
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Sends raw bytes (after the login, if any, whose reply is kept) on
    /// the plaintext port and reads until `end`.
    pub fn raw(&self, req: &[u8], end: &[u8]) -> Vec<u8> {
        let mut s = TcpStream::connect(("127.0.0.1", self.probe)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(&[&self.login[..], req].concat()).unwrap();
        let mut out = Vec::new();
        let mut buf = [0u8; 65536];
        while !out.ends_with(end) {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "closed early: {:?}", String::from_utf8_lossy(&out));
            out.extend_from_slice(&buf[..n]);
        }
        out
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `count` servers of `kind` whose ports are consecutive (per-worker port
/// layout), found by trying.
pub fn consecutive(kind: Kind, count: u16) -> Vec<Server> {
    'outer: for _ in 0..50 {
        let base = free_port();
        if base.checked_add(count).is_none() {
            continue;
        }
        let mut servers = Vec::new();
        for i in 0..count {
            match Server::try_start(kind, base + i, &[]) {
                Some(s) => servers.push(s),
                None => continue 'outer,
            }
        }
        return servers;
    }
    panic!("no {count} consecutive free ports");
}

/// Generates one `#[tokio::test]` per server kind running `$body(server)`.
#[macro_export]
macro_rules! both {
    ($name:ident, $body:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn corecache() {
                super::$body(super::common::Server::start(super::common::Kind::Corecache)).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memcached() {
                super::$body(super::common::Server::start(super::common::Kind::Memcached)).await
            }
        }
    };
}

/// A numeric `STAT <name> <n>` line of a `stats` reply; panics if absent.
pub fn stat(stats: &str, name: &str) -> u64 {
    let prefix = format!("STAT {name} ");
    stats
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {name} in {stats}"))
        .parse()
        .unwrap()
}
