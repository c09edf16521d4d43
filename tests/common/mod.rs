//! What the server tests share: a real corecache on a free port, and
//! helpers to talk to it over real sockets.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Server {
    pub child: Child,
    pub port: u16,
}

/// As root, corecache (like memcached) needs `-u`; `-u root` keeps the
/// tests' privileges and is ignored when they do not run as root.
pub const AS_ROOT: [&str; 2] = ["-u", "root"];

/// The reply to `version`: memcached's release, then corecache's own.
pub fn version_line() -> String {
    format!("VERSION {}\r\n", corecache::version::VERSION)
}

#[path = "../support/ports.rs"]
mod ports;
pub use ports::free_port;

/// The first of `n` consecutive ports free now, picked at random in
/// 20000-31999: below the kernel's ephemeral range (32768 up by default),
/// so no outgoing connection of a busy machine takes one of them between
/// this check and the server's bind, as happens to the ports next to one
/// `free_port` gave (seen on a loaded run: worker 0's port in use).
pub fn fixed_ports(n: u16) -> u16 {
    use std::hash::{BuildHasher, Hasher};
    for _ in 0..1000 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        let base = 20_000 + (h.finish() % (12_000 - n as u64)) as u16;
        if (base..base + n).all(|p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok())
            && ports::claim(base..base + n)
        {
            return base;
        }
    }
    panic!("no {n} free ports under 32000");
}

impl Server {
    /// Starts the binary on a free port. A port picked free can be taken
    /// again before the server binds it (tests run in parallel): then the
    /// server exits 71 and another port is tried, and a server is only used
    /// once `stats` on that port reports its own pid.
    pub fn start(args: &[&str]) -> Server {
        Server::start_with_stderr(args, Stdio::null)
    }

    /// As `start`, with the server's stderr made by `stderr` (a pipe the
    /// test may leave unread, for instance).
    pub fn start_with_stderr(args: &[&str], stderr: fn() -> Stdio) -> Server {
        for _ in 0..5 {
            if let Some(srv) = Server::try_on(free_port(), args, stderr) {
                return srv;
            }
        }
        panic!("server did not start on any of 5 ports");
    }

    /// As `start`, with `-p` at the first of `1 + extra` consecutive ports
    /// free below the kernel's ephemeral range (see [`fixed_ports`]), for
    /// servers that also listen on the ports after `-p` (`-o worker_ports`).
    pub fn start_block(extra: u16, args: &[&str]) -> Server {
        for _ in 0..5 {
            if let Some(srv) = Server::try_on(fixed_ports(1 + extra), args, Stdio::null) {
                return srv;
            }
        }
        panic!("server did not start on any of 5 port blocks");
    }

    fn try_on(port: u16, args: &[&str], stderr: fn() -> Stdio) -> Option<Server> {
        let child = Command::new(env!("CARGO_BIN_EXE_corecache"))
            .args(["-p", &port.to_string()])
            .args(AS_ROOT)
            .args(args)
            .stdout(Stdio::null())
            .stderr(stderr())
            .spawn()
            .unwrap();
        let mut srv = Server { child, port };
        srv.answers_as_itself().then_some(srv)
    }

    pub fn answers_as_itself(&mut self) -> bool {
        let want = format!("STAT pid {}\r\n", self.child.id());
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(st) = self.child.try_wait().unwrap() {
                // Exit 71 is memcached's "failed to listen" (the port was
                // taken); anything else (a panic, a signal) is a failure.
                assert_eq!(st.code(), Some(71), "server died at start: {st}");
                return false;
            }
            // Whoever answers may be another test's server on its way out
            // (connections then fail or close mid-reply): ask again until
            // this child answers or exits.
            if let Some(stats) = try_exchange(self.port, b"stats\r\n", b"END\r\n") {
                if String::from_utf8_lossy(&stats).contains(&want) {
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    pub fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s
    }

    pub fn stop(mut self) -> i32 {
        // SAFETY: signalling our own child process.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st.code().unwrap_or(-1);
            }
            assert!(Instant::now() < deadline, "no exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP connection to `addr` from the local address `from` (all of
/// 127/8 is this host's): the admin port brakes guessing per address.
pub fn connect_from(from: &str, addr: &str) -> TcpStream {
    use socket2::{Domain, Socket, Type};
    let sock = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    let src: std::net::SocketAddr = format!("{from}:0").parse().unwrap();
    sock.bind(&src.into()).unwrap();
    let dst: std::net::SocketAddr = addr.parse().unwrap();
    sock.connect(&dst.into()).unwrap();
    sock.into()
}

pub fn read_until(s: &mut TcpStream, end: &[u8]) -> Vec<u8> {
    read_reply(s, end).unwrap_or_else(|(got, e)| {
        panic!(
            "closed early ({e:?}); got {:?}",
            String::from_utf8_lossy(&got)
        )
    })
}

/// Reads until the bytes end with `end`; on a close or an error, what
/// came so far and the error (None for a close). A read interrupted by a
/// signal (one meant for another test's child can land on this thread)
/// is retried.
fn read_reply(s: &mut TcpStream, end: &[u8]) -> Result<Vec<u8>, (Vec<u8>, Option<std::io::Error>)> {
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    while !out.ends_with(end) {
        match s.read(&mut buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err((out, Some(e))),
            Ok(0) => return Err((out, None)),
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    Ok(out)
}

/// One request and its reply, or `None` if the connection fails or closes
/// first (for probing a port that may not be this server's yet).
fn try_exchange(port: u16, req: &[u8], end: &[u8]) -> Option<Vec<u8>> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(req).ok()?;
    read_reply(&mut s, end).ok()
}

pub fn exchange(srv: &Server, req: &[u8], end: &[u8]) -> Vec<u8> {
    let mut s = srv.connect();
    s.write_all(req).unwrap();
    read_until(&mut s, end)
}

/// `req` on a connection of its own to `port`, read up to `END\r\n`;
/// None if the connection fails, is reset or closes first (a probe that
/// may meet another test's server, or none, on a port picked for its own).
pub fn try_ask(port: u16, req: &[u8]) -> Option<Vec<u8>> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(req).ok()?;
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    while !out.ends_with(b"END\r\n") {
        match s.read(&mut buf) {
            Ok(n) if n > 0 => out.extend_from_slice(&buf[..n]),
            _ => return None,
        }
    }
    Some(out)
}

/// Resident memory of a process, in KiB (`VmRSS`).
pub fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// CPU time a process has used, user and system, in seconds
/// (`/proc/PID/stat` utime + stime).
pub fn cpu_secs(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name, which is in parentheses.
    let rest = &s[s.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    // utime and stime are fields 14 and 15 of the whole line.
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks as f64 / hz
}

/// Debian's memcached, the oracle, on a free port.
pub struct Memcached {
    pub child: Child,
    pub port: u16,
}

impl Memcached {
    /// Starts `/usr/bin/memcached -u root` with `args` on a free port and
    /// waits until it answers.
    pub fn start(args: &[&str]) -> Memcached {
        Self::start_with(args, |_| {})
    }

    /// As `start`, with a hook to adjust the command (limits, user). As
    /// with [`Server::start`], a port picked free can be taken before
    /// memcached binds it (another test's server, or an outgoing connection
    /// of a test opening hundreds): memcached then exits 71 and another port
    /// is tried, and it is only used once `stats` there reports its own pid.
    /// (A CI run once measured another test's memcached on the same port,
    /// and met "connection refused" when that one stopped.)
    pub fn start_with(args: &[&str], adjust: impl Fn(&mut Command)) -> Memcached {
        for _ in 0..5 {
            let port = free_port();
            let mut cmd = Command::new("/usr/bin/memcached");
            cmd.args([
                "-u",
                "root",
                "-U",
                "0",
                "-l",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
            adjust(&mut cmd);
            let child = cmd.spawn().unwrap();
            let mut mc = Memcached { child, port };
            if mc.answers_as_itself() {
                return mc;
            }
        }
        panic!("memcached did not start on any of 5 ports");
    }

    /// Waits until this child answers `stats` with its own pid (true) or
    /// exits 71, memcached's "failed to listen" (false).
    fn answers_as_itself(&mut self) -> bool {
        let want = format!("STAT pid {}\r\n", self.child.id());
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(st) = self.child.try_wait().unwrap() {
                assert_eq!(st.code(), Some(71), "memcached died at start: {st}");
                return false;
            }
            if let Some(stats) = try_exchange(self.port, b"stats\r\n", b"END\r\n") {
                if String::from_utf8_lossy(&stats).contains(&want) {
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("memcached did not start");
    }

    pub fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s
    }
}

impl Drop for Memcached {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends `req`, shuts the write side, and reads until the server closes
/// (an error after some bytes, such as a reset, also ends it).
pub fn half_close_exchange(port: u16, req: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(req).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// The value of row `name` in a text `stats` reply.
pub fn stat(stats: &[u8], name: &str) -> Option<u64> {
    let want = format!("STAT {name} ");
    String::from_utf8_lossy(stats)
        .lines()
        .find_map(|l| l.strip_prefix(&want).and_then(|v| v.trim().parse().ok()))
}

/// A binary request.
pub fn bin(opcode: u8, key: &[u8], extras: &[u8], value: &[u8], opaque: u32) -> Vec<u8> {
    let body = extras.len() + key.len() + value.len();
    let mut v = vec![0x80, opcode];
    v.extend_from_slice(&(key.len() as u16).to_be_bytes());
    v.push(extras.len() as u8);
    v.extend_from_slice(&[0, 0, 0]);
    v.extend_from_slice(&(body as u32).to_be_bytes());
    v.extend_from_slice(&opaque.to_be_bytes());
    v.extend_from_slice(&0u64.to_be_bytes());
    v.extend_from_slice(extras);
    v.extend_from_slice(key);
    v.extend_from_slice(value);
    v
}

/// One binary response: (opcode, status, opaque, key, value).
pub fn read_bin(s: &mut TcpStream) -> (u8, u16, u32, Vec<u8>, Vec<u8>) {
    let mut h = [0u8; 24];
    s.read_exact(&mut h).expect("response header");
    assert_eq!(h[0], 0x81, "response magic");
    let klen = u16::from_be_bytes([h[2], h[3]]) as usize;
    let elen = h[4] as usize;
    let status = u16::from_be_bytes([h[6], h[7]]);
    let blen = u32::from_be_bytes(h[8..12].try_into().unwrap()) as usize;
    let opaque = u32::from_be_bytes(h[12..16].try_into().unwrap());
    let mut body = vec![0u8; blen];
    s.read_exact(&mut body).unwrap();
    let key = body[elen..elen + klen].to_vec();
    let value = body[elen + klen..].to_vec();
    (h[1], status, opaque, key, value)
}

/// Binary responses up to and including the NOOP's, each as its header
/// without the CAS (bytes 0..16: a CAS names a segment incarnation, which
/// differs with the worker count) and its whole body.
pub fn read_bin_until_noop(s: &mut TcpStream) -> Vec<([u8; 16], Vec<u8>)> {
    let mut out = Vec::new();
    loop {
        let mut h = [0u8; 24];
        s.read_exact(&mut h).expect("response header");
        let mut body = vec![0u8; u32::from_be_bytes(h[8..12].try_into().unwrap()) as usize];
        s.read_exact(&mut body).unwrap();
        let noop = h[1] == 0x0a;
        out.push((h[..16].try_into().unwrap(), body));
        if noop {
            return out;
        }
    }
}

/// An HTTP/1.1 GET of `path` on the admin port at `addr`, with an
/// `Accept` header if given, read until the server closes:
/// (status, head, body). A reply that never comes fails after `timeout`.
pub fn admin_request(
    addr: &str,
    path: &str,
    accept: Option<&str>,
    timeout: Duration,
) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(timeout)).unwrap();
    let accept = accept.map_or(String::new(), |a| format!("Accept: {a}\r\n"));
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{accept}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("http response");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head.to_string(), body.to_string())
}

/// The body of a GET of `path` on the admin port at `addr`, which must
/// answer 200.
pub fn admin_get(addr: &str, path: &str) -> String {
    let (status, head, body) = admin_request(addr, path, None, Duration::from_secs(10));
    assert_eq!(status, 200, "{head}\r\n\r\n{body}");
    body
}

/// The admin port's address, as `stats settings` reports it (`STAT admin`).
pub fn admin_addr(srv: &Server) -> String {
    let st = String::from_utf8(exchange(srv, b"stats settings\r\n", b"END\r\n")).unwrap();
    st.lines()
        .find_map(|l| l.strip_prefix("STAT admin "))
        .unwrap()
        .trim()
        .to_string()
}
