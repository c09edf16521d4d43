//! Starting the real binary (and Debian's memcached, the oracle) for the
//! flag and start-up tests, and talking to them over real sockets.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_corecache");

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

pub use common::free_port;

pub fn temp(name: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::env::temp_dir().join(format!("cc-flags-{}-{n}-{name}", std::process::id()))
}

/// A request and its reply up to `end` on any stream.
pub fn exchange<S: Read + Write>(s: &mut S, req: &[u8], end: &[u8]) -> String {
    try_exchange(s, req, end).expect("reply")
}

/// `exchange`, with the stream's error (or an early end, as
/// `UnexpectedEof`, with what came before it) returned, not a panic.
pub fn try_exchange<S: Read + Write>(s: &mut S, req: &[u8], end: &[u8]) -> std::io::Result<String> {
    s.write_all(req)?;
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    while !out.ends_with(end) {
        let n = match s.read(&mut buf) {
            // A signal for another test's child can land on this thread.
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            r => r?,
        };
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("closed early: {:?}", String::from_utf8_lossy(&out)),
            ));
        }
        out.extend_from_slice(&buf[..n]);
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

pub fn tcp(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

pub fn ask(port: u16, req: &str) -> String {
    exchange(&mut tcp(port), req.as_bytes(), b"END\r\n")
}

/// `STAT name value` lines as a map.
pub fn stats(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("STAT "))
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A line of /proc/PID/status, e.g. "Uid", without its name.
pub fn proc_status(pid: u32, field: &str) -> String {
    status_field(&format!("/proc/{pid}/status"), pid, field)
}

/// The same line of one thread's /proc/PID/task/TID/status.
pub fn task_status(pid: u32, tid: u32, field: &str) -> String {
    status_field(&format!("/proc/{pid}/task/{tid}/status"), pid, field)
}

/// The process's threads: (name, tid). A thread that ends while they are
/// listed (io_uring's io-wq workers leave after an idle while) is left out.
pub fn tasks(pid: u32) -> Vec<(String, u32)> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|e| {
            let tid: u32 = e.ok()?.file_name().into_string().ok()?.parse().ok()?;
            let comm = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/comm")).ok()?;
            Some((comm.trim().to_string(), tid))
        })
        .collect()
}

/// Whether task `tid` is one of io_uring's kernel threads (io-wq workers,
/// `PF_IO_WORKER` in `/proc/.../stat`'s flags): until it renames itself
/// `iou-wrk-N`, such a thread carries the name (and CPUs) of the thread
/// whose request it serves. False if the task is gone.
pub fn is_io_worker(pid: u32, tid: u32) -> bool {
    const PF_IO_WORKER: u64 = 0x10;
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")) else {
        return false;
    };
    // Fields after the name, which may hold spaces and parentheses: state
    // is the 3rd field, flags the 9th.
    let rest = &stat[stat.rfind(')').map_or(0, |i| i + 1)..];
    let flags: u64 = rest
        .split_whitespace()
        .nth(6)
        .and_then(|f| f.parse().ok())
        .unwrap_or(0);
    flags & PF_IO_WORKER != 0
}

fn status_field(path: &str, pid: u32, field: &str) -> String {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} for {pid}"))
        .trim()
        .to_string()
}

/// Waits for `child` to exit, at most `secs`; kills it if it does not.
pub fn exit_within(child: &mut Child, secs: u64) -> Option<i32> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if let Some(st) = child.try_wait().unwrap() {
            return st.code();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// Runs a command that must exit by itself; its output.
pub fn run(cmd: &mut Command) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let code = exit_within(&mut child, 20);
    assert!(code.is_some(), "{cmd:?} did not exit");
    child.wait_with_output().unwrap()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A corecache started by a test, killed if the test fails.
pub struct Server {
    /// The server process.
    pub child: Child,
    /// Its TCP port (0 when it listens on a UNIX socket).
    pub port: u16,
    /// Its stderr, read with `log()`.
    pub err: PathBuf,
}

impl Server {
    /// Starts corecache on a free TCP port (another port when that one
    /// was taken meanwhile: exit 71), adding `-u root` unless `args`
    /// names a user; returns once `stats` there reports its pid.
    pub fn start(args: &[&str]) -> Server {
        for _ in 0..5 {
            let port = free_port();
            let err = temp("stderr");
            let mut cmd = Command::new(BIN);
            cmd.args(["-p", &port.to_string()]).args(args);
            if !args.contains(&"-u") {
                cmd.args(["-u", "root"]);
            }
            let child = cmd
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&err).unwrap())
                .spawn()
                .unwrap();
            let mut srv = Server { child, port, err };
            match srv.wait_serving(|| TcpStream::connect(("127.0.0.1", port)).ok().map(tcp_box)) {
                Ok(()) => return srv,
                Err(71) => continue,
                Err(code) => panic!("server exited {code} at start: {}", srv.log()),
            }
        }
        panic!("no free port in 5 tries");
    }

    /// Polls until `connect` reaches a server whose `stats` shows this
    /// child's pid; the child's exit status if it exits first.
    pub fn wait_serving(
        &mut self,
        connect: impl Fn() -> Option<Box<dyn ReadWrite>>,
    ) -> Result<(), i32> {
        let want = format!("STAT pid {}\r\n", self.child.id());
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(st) = self.child.try_wait().unwrap() {
                return Err(st.code().unwrap_or(-1));
            }
            if let Some(mut s) = connect() {
                let got = match try_exchange(&mut s, b"stats\r\n", b"END\r\n") {
                    Ok(got) => got,
                    Err(e) => {
                        // CI saw this first exchange reset when another
                        // test had been given the same port (see
                        // support/ports.rs, which now rules that out): say
                        // what the server did (exited? still serving?) and
                        // logged.
                        std::thread::sleep(Duration::from_millis(300));
                        let status = self.child.try_wait();
                        let again = connect()
                            .map(|mut s| try_exchange(&mut s, b"stats\r\n", b"END\r\n").is_ok());
                        panic!(
                            "first stats failed: {e}; server status {status:?}; \
                             a second connection answered: {again:?}; its stderr:\n{}",
                            self.log()
                        );
                    }
                };
                assert!(got.contains(&want), "another server answers: {got}");
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("server did not answer: {}", self.log());
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    /// SIGTERM; the exit status.
    pub fn stop(&mut self) -> i32 {
        // SAFETY: signalling our own child process.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        exit_within(&mut self.child, 10).expect("no exit after SIGTERM")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.err);
    }
}

pub trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

pub fn tcp_box(s: TcpStream) -> Box<dyn ReadWrite> {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    Box::new(s)
}

#[path = "../common/mod.rs"]
mod common;

/// Debian's memcached on a free port, for comparisons (killed on drop):
/// the server tests' own, which is used only once `stats` on its port
/// reports its pid and tries another port when it exits 71.
pub use common::Memcached;
