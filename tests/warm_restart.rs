//! `-e PATH`: the cache across a restart (process/warm.rs,
//! store/snapshot.rs), through the real binary: every item back with its
//! value, flags, TTL and CAS after a graceful stop; nothing back after a
//! crash, with other settings, or past its expiry.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

fn mem_file(name: &str) -> PathBuf {
    let dir = PathBuf::from("/dev/shm").join(format!("cc-warm-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("mem")
}

/// What `mg k v f t c` returns: (value, flags, TTL, CAS); None: a miss.
type Got = Option<(Vec<u8>, u32, i64, u64)>;

fn value_of(i: usize) -> Vec<u8> {
    let len = 50 + i % 150;
    (0..len).map(|j| b'a' + ((i * 7 + j) % 26) as u8).collect()
}

/// Stores keys `0..n` pipelined: `k<i>` with flags i % 65536 and a TTL of
/// 1000 s for odd i (none for even).
fn fill(s: &mut TcpStream, n: usize) {
    let mut sent = 0;
    while sent < n {
        let mut batch = Vec::new();
        let end = (sent + 2000).min(n);
        for i in sent..end {
            let v = value_of(i);
            let ttl = if i % 2 == 1 { 1000 } else { 0 };
            batch.extend_from_slice(
                format!("set k{i} {} {ttl} {} noreply\r\n", i % 65536, v.len()).as_bytes(),
            );
            batch.extend_from_slice(&v);
            batch.extend_from_slice(b"\r\n");
        }
        s.write_all(&batch).unwrap();
        sent = end;
    }
    s.write_all(b"mn\r\n").unwrap();
    read_until(s, b"MN\r\n");
}

/// `mg` of keys `from..to`, answers in order: (value, flags, ttl, cas),
/// None for a miss.
fn meta_get(s: &mut TcpStream, from: usize, to: usize) -> Vec<Got> {
    let mut req = Vec::new();
    for i in from..to {
        req.extend_from_slice(format!("mg k{i} v f t c\r\n").as_bytes());
    }
    req.extend_from_slice(b"mn\r\n");
    s.write_all(&req).unwrap();
    let raw = read_until(s, b"MN\r\n");
    let mut out = Vec::new();
    let mut at = 0;
    while at < raw.len() {
        let eol = at + raw[at..].windows(2).position(|w| w == b"\r\n").unwrap();
        let line = std::str::from_utf8(&raw[at..eol]).unwrap();
        at = eol + 2;
        if line == "EN" {
            out.push(None);
            continue;
        }
        if line == "MN" {
            break;
        }
        let mut parts = line.split(' ');
        assert_eq!(parts.next(), Some("VA"), "{line}");
        let len: usize = parts.next().unwrap().parse().unwrap();
        let (mut f, mut t, mut c) = (0, 0, 0);
        for p in parts {
            let (k, v) = p.split_at(1);
            match k {
                "f" => f = v.parse().unwrap(),
                "t" => t = v.parse().unwrap(),
                "c" => c = v.parse().unwrap(),
                _ => {}
            }
        }
        out.push(Some((raw[at..at + len].to_vec(), f, t, c)));
        at += len + 2;
    }
    assert_eq!(out.len(), to - from);
    out
}

fn all_items(srv: &Server, n: usize) -> Vec<Got> {
    let mut s = srv.connect();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut out = Vec::with_capacity(n);
    for from in (0..n).step_by(5000) {
        out.extend(meta_get(&mut s, from, (from + 5000).min(n)));
    }
    out
}

fn stats_of(srv: &Server) -> Vec<u8> {
    exchange(srv, b"stats\r\n", b"END\r\n")
}

fn stderr_of(mut srv: Server) -> String {
    let mut err = srv.child.stderr.take().unwrap();
    assert_eq!(srv.stop(), 0);
    let mut s = String::new();
    err.read_to_string(&mut s).unwrap();
    s
}

#[test]
fn every_item_is_back_after_a_graceful_restart() {
    let path = mem_file("all");
    let p = path.to_str().unwrap();
    let args = ["-t", "2", "-m", "512", "-e", p];
    let n = 1_000_000;
    let srv = Server::start(&args);
    fill(&mut srv.connect(), n);
    let read_at = std::time::Instant::now();
    let before = all_items(&srv, n);
    assert!(before.iter().all(Option::is_some), "-m 512 holds them all");
    let st = stats_of(&srv);
    assert_eq!(stat(&st, "warm_restart"), Some(0));
    let bytes = stat(&st, "bytes").unwrap();
    assert_eq!(srv.stop(), 0);
    assert!(
        PathBuf::from(format!("{p}.meta")).exists(),
        "clean-stop marker"
    );

    let srv = Server::start(&args);
    assert!(!PathBuf::from(format!("{p}.meta")).exists(), "marker taken");
    let st = stats_of(&srv);
    assert_eq!(stat(&st, "warm_restart"), Some(1));
    assert_eq!(stat(&st, "warm_restored_items"), Some(n as u64));
    assert_eq!(stat(&st, "curr_items"), Some(n as u64));
    assert_eq!(stat(&st, "bytes"), Some(bytes));
    eprintln!(
        "restored {n} items ({} MB) in {} us",
        bytes >> 20,
        stat(&st, "warm_restore_usec").unwrap()
    );
    let after = all_items(&srv, n);
    // Whole seconds a TTL may lose from the first read before to the last
    // read after: those that passed, one more for the whole-second reads
    // (a tick can fall just after the first), and one more because the
    // restored clock continues from Unix time (whole seconds of time()
    // since the old epoch) while the old one counted whole seconds from
    // its start, which can lag that by up to a second.
    let passed = read_at.elapsed().as_secs() as i64 + 2;
    for (i, (b, a)) in before.iter().zip(&after).enumerate() {
        let (b, a) = (
            b.as_ref().unwrap(),
            a.as_ref().unwrap_or_else(|| panic!("k{i} lost")),
        );
        assert_eq!(a.0, value_of(i), "k{i} value");
        assert_eq!((a.1, a.3), (b.1, b.3), "k{i} flags and CAS");
        if i % 2 == 1 {
            // The seconds that passed (the restart among them) count
            // against the TTL, and no more.
            assert!(
                a.2 <= b.2 && a.2 >= b.2 - passed,
                "k{i} TTL {} then {} ({passed} s)",
                b.2,
                a.2
            );
        } else {
            assert_eq!(a.2, -1, "k{i} has no TTL");
        }
    }
    // A CAS read before the restart matches once after it; new items get
    // CAS values no restored item has.
    let mut s = srv.connect();
    let cas = before[12345].as_ref().unwrap().3;
    s.write_all(format!("cas k12345 0 0 1 {cas}\r\nx\r\n").as_bytes())
        .unwrap();
    assert_eq!(read_until(&mut s, b"\r\n"), b"STORED\r\n");
    s.write_all(format!("cas k12345 0 0 1 {cas}\r\ny\r\n").as_bytes())
        .unwrap();
    assert_eq!(read_until(&mut s, b"\r\n"), b"EXISTS\r\n");
    // (A CAS is unique within the shard that owns the key, as CAS is only
    // ever compared for one key; shards count apart.)
    let route = corecache::engine::route::route_hasher();
    let shard = |k: &str| corecache::engine::route::owner(&route, 2, k.as_bytes());
    let mut old = [
        std::collections::HashSet::new(),
        std::collections::HashSet::new(),
    ];
    for (i, b) in before.iter().enumerate() {
        old[shard(&format!("k{i}"))].insert(b.as_ref().unwrap().3);
    }
    for i in 0..2000 {
        s.write_all(format!("ms new{i} 1 c\r\nz\r\n").as_bytes())
            .unwrap();
        let line = read_until(&mut s, b"\r\n");
        let c: u64 = String::from_utf8_lossy(&line[4..line.len() - 2])
            .parse()
            .unwrap();
        let k = format!("new{i}");
        assert!(
            !old[shard(&k)].contains(&c),
            "new item {k} got a restored item's CAS {c}"
        );
    }
    // Once restored, the files are gone: a crash now must start cold.
    assert!(!PathBuf::from(format!("{p}.0")).exists());
    assert_eq!(srv.stop(), 0);
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

#[test]
fn a_crash_or_other_settings_start_cold_and_say_why() {
    let path = mem_file("cold");
    let p = path.to_str().unwrap();
    let srv = Server::start(&["-e", p]);
    fill(&mut srv.connect(), 1000);
    assert_eq!(srv.stop(), 0);
    // Another -m: refused, with one line naming it, and the files removed.
    let srv = Server::start_with_stderr(&["-e", p, "-m", "128"], Stdio::piped);
    assert_eq!(stat(&stats_of(&srv), "curr_items"), Some(0));
    assert_eq!(stat(&stats_of(&srv), "warm_restart"), Some(0));
    fill(&mut srv.connect(), 1000);
    let err = stderr_of(srv);
    assert!(
        err.contains("not restoring") && err.contains("memory"),
        "{err}"
    );
    // That stop saved; a SIGKILL now leaves the data of a run that was
    // restored from (none) and no marker of its own.
    let mut srv = Server::start(&["-e", p, "-m", "128"]);
    assert_eq!(stat(&stats_of(&srv), "curr_items"), Some(1000));
    exchange(&srv, b"set crashed 0 0 1\r\nz\r\n", b"\r\n");
    srv.child.kill().unwrap();
    srv.child.wait().unwrap();
    let srv = Server::start_with_stderr(&["-e", p, "-m", "128"], Stdio::piped);
    assert_eq!(stat(&stats_of(&srv), "curr_items"), Some(0));
    assert_eq!(
        exchange(&srv, b"get k1 crashed\r\n", b"END\r\n"),
        b"END\r\n"
    );
    let err = stderr_of(srv);
    assert!(
        err.contains("did not stop gracefully"),
        "the crash is named: {err}"
    );
    // A directory that does not exist is refused at start, as memcached
    // refuses an -e file it cannot open, not found out at the stop.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_corecache"))
        .args(["-u", "root", "--no-admin", "-e", "/nonexistent/dir/mem"])
        .args(["-p", &free_port().to_string()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(71));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/dir/mem"));
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

#[test]
fn worker_port_keys_come_back_whichever_shard_held_them() {
    // With -o worker_ports each port is a cache of its own: a key set on
    // worker 1's port lives in shard 1 whoever owns it by hash.
    let path = mem_file("ports");
    let p = path.to_str().unwrap();
    let base = fixed_ports(2);
    let wp = format!("worker_ports={base}");
    let args = ["-t", "2", "-o", &wp, "-e", p];
    let srv = Server::start(&args);
    let mut s = std::net::TcpStream::connect(("127.0.0.1", base + 1)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    for i in 0..200 {
        s.write_all(format!("set a{i} 0 0 1\r\nx\r\n").as_bytes())
            .unwrap();
        assert_eq!(read_until(&mut s, b"\r\n"), b"STORED\r\n");
    }
    drop(s);
    assert_eq!(srv.stop(), 0);
    // The worker ports are fixed: the exited process's io_uring lets go
    // of them a moment later (about 5 ms measured, more when loaded).
    wait_free(&[base, base + 1]);
    let srv = Server::start(&args);
    let mut s = std::net::TcpStream::connect(("127.0.0.1", base + 1)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    for i in 0..200 {
        s.write_all(format!("get a{i}\r\n").as_bytes()).unwrap();
        let got = read_until(&mut s, b"END\r\n");
        assert_eq!(
            got,
            format!("VALUE a{i} 0 1\r\nx\r\nEND\r\n").as_bytes(),
            "a{i}"
        );
    }
    assert_eq!(stat(&stats_of(&srv), "warm_dropped_items"), Some(0));
    assert_eq!(srv.stop(), 0);
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

#[test]
fn sigusr1_and_shutdown_save_and_expired_items_stay_gone() {
    let path = mem_file("ways");
    let p = path.to_str().unwrap();
    let srv = Server::start(&["-e", p, "-A"]);
    exchange(&srv, b"set short 1 2 1\r\na\r\n", b"\r\n");
    exchange(&srv, b"set long 2 100 1\r\nb\r\n", b"\r\n");
    exchange(&srv, b"set never 3 0 1\r\nc\r\n", b"\r\n");
    let mut s = srv.connect();
    s.write_all(b"shutdown\r\n").unwrap();
    let mut srv = srv;
    let st = srv.child.wait().unwrap();
    assert_eq!(st.code(), Some(0));
    std::thread::sleep(Duration::from_millis(2500));
    let srv = Server::start(&["-e", p, "-A"]);
    let got = exchange(&srv, b"get short long never\r\n", b"END\r\n");
    assert_eq!(
        got,
        b"VALUE long 2 1\r\nb\r\nVALUE never 3 1\r\nc\r\nEND\r\n",
        "{}",
        String::from_utf8_lossy(&got)
    );
    assert_eq!(stat(&stats_of(&srv), "warm_expired_items"), Some(1));
    let mut srv = srv;
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(srv.child.id() as i32, libc::SIGUSR1) };
    assert_eq!(srv.child.wait().unwrap().code(), Some(0));
    let srv = Server::start(&["-e", p]);
    assert_eq!(
        exchange(&srv, b"get never\r\n", b"END\r\n"),
        b"VALUE never 3 1\r\nc\r\nEND\r\n"
    );
    assert_eq!(srv.stop(), 0);
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

/// Waits until each of `ports` on 127.0.0.1 can be bound again: a stopped
/// server's sockets close when its io_uring is torn down, which happens
/// just after the process exits, after however long a loaded machine
/// takes to run that. Never bound by then is a leak, and fails.
fn wait_free(ports: &[u16]) {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    for &p in ports {
        while std::net::TcpListener::bind(("127.0.0.1", p)).is_err() {
            assert!(std::time::Instant::now() < deadline, "port {p} still held");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn metrics(admin: u16) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", admin)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(
        format!("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:{admin}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn the_admin_port_says_whether_the_start_was_warm() {
    let path = mem_file("metrics");
    let p = path.to_str().unwrap();
    let admin = fixed_ports(1);
    let a = format!("127.0.0.1:{admin}");
    let args = ["-e", p, "--admin", &a];
    let srv = Server::start(&args);
    let cold = metrics(admin);
    assert!(cold.contains("\ncorecache_warm_restart 0"), "{cold}");
    for k in ["a", "b", "c"] {
        exchange(&srv, format!("set {k} 0 0 1\r\nx\r\n").as_bytes(), b"\r\n");
    }
    assert_eq!(srv.stop(), 0);
    // The admin port is fixed: as the worker ports above.
    wait_free(&[admin]);
    let srv = Server::start(&args);
    let warm = metrics(admin);
    assert!(warm.contains("\ncorecache_warm_restart 1"), "{warm}");
    assert!(warm.contains("\ncorecache_warm_restored_items 3"), "{warm}");
    assert!(warm.contains("\ncorecache_warm_restore_seconds "), "{warm}");
    assert_eq!(srv.stop(), 0);
    // Without -e there are no such series.
    let srv = Server::start(&["--admin", &a]);
    assert!(!metrics(admin).contains("corecache_warm_"));
    assert_eq!(srv.stop(), 0);
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}
