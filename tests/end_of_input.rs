//! End of input, the server's and the peer's: a client that shuts down its
//! write side gets every reply to what it sent (including replies due from
//! other workers and replies held back by backpressure), as from
//! memcached; SIGTERM, SIGINT and SIGUSR1 stop accepting and reading,
//! answer every complete request already read, and exit 0 in bounded
//! time; SIGHUP is ignored; the pidfile goes on every exit path.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::*;

/// Replies with their CAS numbers masked, to compare two servers.
fn mask_cas(r: &[u8]) -> String {
    String::from_utf8_lossy(r)
        .split("\r\n")
        .map(|l| {
            let t: Vec<&str> = l.split(' ').collect();
            if t[0] == "VALUE" && t.len() == 5 {
                format!("{} {} {} {} <cas>", t[0], t[1], t[2], t[3])
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\r\n")
}

#[test]
fn stats_then_end_of_input_is_answered_every_time() {
    let srv = Server::start(&["-t", "2"]);
    let mut full = 0;
    for _ in 0..500 {
        let r = half_close_exchange(srv.port, b"stats\r\n");
        if r.starts_with(b"STAT pid ") && r.ends_with(b"END\r\n") {
            full += 1;
        }
    }
    assert_eq!(full, 500, "complete stats replies after SHUT_WR");
    assert_eq!(srv.stop(), 0);
}

#[test]
fn pipelined_requests_then_end_of_input_are_all_answered_as_by_memcached() {
    let srv = Server::start(&["-t", "2"]);
    let mc = Memcached::start(&["-t", "2"]);
    // Members of the class: 40 sets over both shards; a multi-get whose
    // keys live on both workers; gets, meta and binary requests; a
    // trailing incomplete request (dropped by both, the rest answered).
    let mut sets = Vec::new();
    for i in 0..40 {
        sets.extend_from_slice(format!("set k{i} {i} 0 2\r\nv{}\r\n", i % 10).as_bytes());
    }
    let keys: Vec<String> = (0..40).map(|i| format!("k{i}")).collect();
    let multiget = format!("get {}\r\n", keys.join(" ")).into_bytes();
    let mut mixed =
        b"set a 1 0 3\r\nabc\r\nmg a v f\r\ngets a k7 k8\r\nincr n 1\r\nmn\r\n".to_vec();
    mixed.extend_from_slice(b"set part 0 0 10\r\nabc");
    // binary: GETK k3, then NOOP.
    let mut bin = vec![0x80u8, 0x0c, 0, 2, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 7];
    bin.extend_from_slice(&[0; 8]);
    bin.extend_from_slice(b"k3");
    bin.extend_from_slice(&[0x80, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9]);
    bin.extend_from_slice(&[0; 8]);
    let cases: [(&str, &[u8]); 4] = [
        ("sets", &sets),
        ("multiget", &multiget),
        ("mixed", &mixed),
        ("binary", &bin),
    ];
    for (name, req) in cases {
        let want = half_close_exchange(mc.port, req);
        assert!(!want.is_empty(), "{name}: memcached answered");
        for run in 0..50 {
            let got = half_close_exchange(srv.port, req);
            if name == "binary" {
                // CAS numbers differ: compare lengths and statuses.
                assert_eq!(got.len(), want.len(), "{name} run {run}");
                assert_eq!(got[6..8], want[6..8], "{name} run {run}");
            } else {
                assert_eq!(mask_cas(&got), mask_cas(&want), "{name} run {run}");
            }
        }
    }
    let got = half_close_exchange(srv.port, b"get part\r\n");
    assert_eq!(got, b"END\r\n", "the incomplete set stored nothing");
    assert_eq!(srv.stop(), 0);
}

#[test]
fn end_of_input_behind_backpressure_is_answered_in_full() {
    // 100 gets of a 200 KB value (20 MB of replies, over the connection's
    // cap): the server stops reading, then the client ends its input and
    // reads slowly. Every reply still comes, then the close.
    let srv = Server::start(&["-t", "2"]);
    let value = vec![b'q'; 200_000];
    let mut s = srv.connect();
    let mut req = format!("set big 0 0 {}\r\n", value.len()).into_bytes();
    req.extend_from_slice(&value);
    req.extend_from_slice(b"\r\n");
    s.write_all(&req).unwrap();
    read_until(&mut s, b"STORED\r\n");
    s.write_all(&b"get big\r\n".repeat(100)).unwrap();
    s.write_all(b"get big big\r\n").unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let mut got = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = s.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        got += n;
        if got < 2_000_000 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let one = b"VALUE big 0 200000\r\n".len() + 200_002;
    assert_eq!(got, 100 * (one + 5) + 2 * one + 5);
    assert_eq!(srv.stop(), 0);
}

/// Writes `n` pipelined sets, waits until the server has read them all
/// (its bytes_read, asked on another connection), and returns the stream.
fn pipeline_read_by_server(srv: &Server, n: usize) -> TcpStream {
    let before = stat(&exchange(srv, b"stats\r\n", b"END\r\n"), "bytes_read").unwrap();
    let mut s = srv.connect();
    let mut req = Vec::new();
    for i in 0..n {
        req.extend_from_slice(format!("set p{i} 0 0 1\r\nv\r\n").as_bytes());
    }
    s.write_all(&req).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let read = stat(&exchange(srv, b"stats\r\n", b"END\r\n"), "bytes_read").unwrap();
        // The stats requests themselves add 7 bytes each.
        if read >= before + req.len() as u64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "server did not read the pipeline"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    s
}

/// The longest a stop may take: the workers' grace for replies to go
/// (3 s, `STOP_GRACE`) and their cutoff after it (1 s), plus as much again
/// for a loaded machine to schedule the threads' exit (2 s was once all
/// it had). A stop that waits on a client that never reads exceeds it.
const STOP_BOUND: Duration = Duration::from_secs(8);

fn read_to_end_lenient(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
}

#[test]
fn stop_signals_answer_every_request_read_and_exit_zero() {
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGUSR1] {
        let srv = Server::start(&["-t", "2"]);
        let mut s = pipeline_read_by_server(&srv, 20_000);
        let started = Instant::now();
        // SAFETY: signalling our own child.
        unsafe { libc::kill(srv.child.id() as i32, sig) };
        let got = read_to_end_lenient(&mut s);
        let stored = got.windows(8).filter(|w| w == b"STORED\r\n").count();
        assert_eq!(stored, 20_000, "signal {sig}");
        assert_eq!(got.len(), 20_000 * 8, "signal {sig}: nothing else");
        let mut srv = srv;
        let st = srv.child.wait().unwrap();
        assert_eq!(st.code(), Some(0), "signal {sig}");
        assert!(started.elapsed() < STOP_BOUND, "{:?}", started.elapsed());
    }
}

#[test]
fn sigterm_answers_requests_held_back_by_backpressure() {
    // The client does not read while it sends: the server stops at the
    // connection's cap with the rest of the gets read but not run. After
    // SIGTERM it still runs and answers them all, then exits 0.
    let srv = Server::start(&["-t", "2"]);
    let value = vec![b'z'; 300_000];
    let mut s = srv.connect();
    let mut req = format!("set big 0 0 {}\r\n", value.len()).into_bytes();
    req.extend_from_slice(&value);
    req.extend_from_slice(b"\r\n");
    s.write_all(&req).unwrap();
    read_until(&mut s, b"STORED\r\n");
    let before = stat(&exchange(&srv, b"stats\r\n", b"END\r\n"), "bytes_read").unwrap();
    let gets = b"get big\r\n".repeat(60);
    s.write_all(&gets).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while stat(&exchange(&srv, b"stats\r\n", b"END\r\n"), "bytes_read").unwrap()
        < before + gets.len() as u64
    {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: signalling our own child.
    unsafe { libc::kill(srv.child.id() as i32, libc::SIGTERM) };
    let got = read_to_end_lenient(&mut s);
    let one = b"VALUE big 0 300000\r\n".len() + 300_002 + 5;
    assert_eq!(
        got.len(),
        60 * one,
        "every get read before SIGTERM answered"
    );
    let mut srv = srv;
    assert_eq!(srv.child.wait().unwrap().code(), Some(0));
}

#[test]
fn stop_is_bounded_when_a_client_never_reads() {
    let srv = Server::start(&["-t", "2"]);
    let value = vec![b'z'; 300_000];
    let mut s = srv.connect();
    let mut req = format!("set big 0 0 {}\r\n", value.len()).into_bytes();
    req.extend_from_slice(&value);
    req.extend_from_slice(b"\r\n");
    s.write_all(&req).unwrap();
    read_until(&mut s, b"STORED\r\n");
    s.write_all(&b"get big\r\n".repeat(200)).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    let code = srv.stop();
    assert_eq!(code, 0);
    assert!(t.elapsed() < STOP_BOUND, "{:?}", t.elapsed());
    drop(s);
}

#[test]
fn sighup_is_ignored_and_the_pidfile_goes_on_every_exit() {
    let dir = std::env::temp_dir().join(format!("cc-pid-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pidfile = dir.join("cc.pid");
    let p = pidfile.to_str().unwrap();
    let srv = Server::start(&["-t", "2", "-P", p]);
    assert!(pidfile.exists());
    // SAFETY: signalling our own child.
    unsafe { libc::kill(srv.child.id() as i32, libc::SIGHUP) };
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        exchange(&srv, b"version\r\n", b"\r\n"),
        version_line().as_bytes(),
        "still answering after SIGHUP"
    );
    assert_eq!(srv.stop(), 0);
    assert!(!pidfile.exists(), "pidfile removed at a signalled stop");

    // A start that fails after writing it: listening on an address this
    // host does not have.
    let st = Command::new(env!("CARGO_BIN_EXE_corecache"))
        .args(["-p", &free_port().to_string(), "-l", "192.0.2.1", "-P", p])
        .args(AS_ROOT)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert_ne!(st.code(), Some(0));
    assert!(!pidfile.exists(), "pidfile removed after a failed start");
    let _ = std::fs::remove_dir_all(&dir);
}
