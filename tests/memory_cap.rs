//! One memory cap per connection: clients that ask for much and read
//! nothing cost the server little (values go by reference, execution
//! stops at the cap), and what they cost is returned when they close.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

mod common;
use common::*;

/// Waits until the server's RSS has not grown for `quiet`; returns it.
fn settled_rss(pid: u32, quiet: Duration) -> u64 {
    let mut last = rss_kib(pid);
    let mut since = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(20);
    while since.elapsed() < quiet && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        let now = rss_kib(pid);
        if now > last + 512 {
            since = Instant::now();
        }
        last = last.max(now);
    }
    last
}

/// Waits until the server's RSS is under `limit` KiB, at most 20 s;
/// returns the last reading. The workers process the closes and trim the
/// heap when they next run, which on a loaded machine is no fixed time
/// (2.5 s was assumed); memory that is never given back stays over.
fn rss_back_under(pid: u32, limit: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = rss_kib(pid);
        if now < limit || Instant::now() > deadline {
            return now;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Sends 32 MB through the server on 8 connections, so every receive
/// buffer of every worker a load like the test's uses (offered by need,
/// at most 8 MiB a worker) has been touched
/// before a baseline is taken. The values are over the item size, so they
/// are dropped as they arrive and touch no item memory.
fn warm_receive_buffers(srv: &Server) {
    for _ in 0..8 {
        let mut s = srv.connect();
        for _ in 0..2 {
            let mut req = b"set warm 0 0 2000000\r\n".to_vec();
            req.extend(std::iter::repeat_n(b'w', 2_000_000));
            req.extend_from_slice(b"\r\n");
            s.write_all(&req).unwrap();
            assert_eq!(
                read_until(&mut s, b"\r\n"),
                b"SERVER_ERROR object too large for cache\r\n"
            );
        }
    }
}

fn store(s: &mut TcpStream, key: &str, len: usize) {
    let mut req = format!("set {key} 0 0 {len}\r\n").into_bytes();
    req.extend(std::iter::repeat_n(b'v', len));
    req.extend_from_slice(b"\r\n");
    s.write_all(&req).unwrap();
    assert_eq!(read_until(s, b"\r\n"), b"STORED\r\n");
}

#[test]
fn two_hundred_clients_not_reading_20_values_of_1_mb_stay_bounded() {
    let srv = Server::start(&["-t", "2", "-m", "256"]);
    let pid = srv.child.id();
    let mut s = srv.connect();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let keys: Vec<String> = (0..20).map(|i| format!("big{i}")).collect();
    for k in &keys {
        store(&mut s, k, 1_000_000);
    }
    // Read every value once, from this connection (some by reference from
    // the other worker), so the baseline has seen the whole path.
    s.write_all(format!("get {}\r\n", keys.join(" ")).as_bytes())
        .unwrap();
    let mut seen = 0;
    let mut buf = vec![0u8; 1 << 20];
    while seen < 20 * (1_000_000 + 2) {
        seen += s.read(&mut buf).unwrap();
    }
    drop(s);
    std::thread::sleep(Duration::from_millis(1500));
    let base = rss_kib(pid);

    // 200 clients, none reading: half ask with one 20-key get, half with
    // 20 pipelined single-key gets.
    let mut clients = Vec::new();
    for c in 0..200 {
        let mut s = srv.connect();
        let req = if c % 2 == 0 {
            format!("get {}\r\n", keys.join(" "))
        } else {
            keys.iter().map(|k| format!("get {k}\r\n")).collect()
        };
        s.write_all(req.as_bytes()).unwrap();
        clients.push(s);
    }
    let peak = settled_rss(pid, Duration::from_millis(1500));
    let grown = peak.saturating_sub(base);
    // Others are still served.
    assert_eq!(
        exchange(&srv, b"version\r\n", b"\r\n"),
        version_line().as_bytes()
    );
    eprintln!("200 non-reading clients x 20 x 1 MB: RSS {base} KiB -> {peak} KiB (+{grown} KiB)");
    assert!(grown < 64 * 1024, "grew {grown} KiB");

    // One of them reads now: it gets all 20 values, whole and in order.
    let mut s = clients.pop().unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut got = Vec::new();
    let want_len = keys
        .iter()
        .map(|k| format!("VALUE {k} 0 1000000\r\n").len() + 1_000_007)
        .sum::<usize>();
    while got.len() < want_len {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got.len(), want_len);
    let mut at = 0;
    for k in &keys {
        let head = format!("VALUE {k} 0 1000000\r\n");
        assert_eq!(&got[at..at + head.len()], head.as_bytes());
        at += head.len();
        assert!(got[at..at + 1_000_000].iter().all(|&b| b == b'v'));
        at += 1_000_002;
        assert_eq!(&got[at..at + 5], b"END\r\n");
        at += 5;
    }

    drop(clients);
    drop(s);
    let after = rss_back_under(pid, (base + 6 * 1024 + grown / 10).min(base + base / 10));
    eprintln!("after they close: {after} KiB (baseline {base} KiB)");
    // glibc keeps some freed heap (its mmap threshold grows as big chunks
    // are freed): measured 2.2-3.2 MiB of the ~50 MiB grown stays resident
    // here, and 2.7 MiB of 7.4 MiB on CI's machine, where the peak was
    // sampled lower; so the allowance is absolute (6 MiB), plus a tenth
    // of what grew. One client's cap left behind would be 25 MiB.
    let kept = after.saturating_sub(base);
    assert!(
        kept < 6 * 1024 + grown / 10,
        "RSS {after} KiB after close, baseline {base} KiB, grown {grown} KiB"
    );
    // The issue's own bar for this case: back within 10 % of the baseline
    // (measured 1.5-2.2 % here: 650-950 KiB of a 43 MiB baseline).
    assert!(
        after <= base + base / 10,
        "RSS {after} KiB after close is over 110 % of the baseline {base} KiB"
    );
    // The RSS can be back before the last close is processed: the pins
    // are awaited too (published each loop turn).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let stats = exchange(&srv, b"stats\r\n", b"END\r\n");
        let pinned = stat(&stats, "pinned_segments");
        if pinned == Some(0) {
            break;
        }
        assert!(Instant::now() < deadline, "pins left: {pinned:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(srv.stop(), 0);
}

#[test]
fn one_request_cannot_amplify_past_the_cap() {
    // memcached's own case: `get a a a ...`, 10,000 times a 32 KB value
    // (20 KB of request, 320 MB of replies), from a client that does not
    // read; and the same with small values (copied, not referenced) and
    // with values owned by the other worker.
    let srv = Server::start(&["-t", "2", "-m", "256"]);
    let pid = srv.child.id();
    let mut s = srv.connect();
    store(&mut s, "a", 32 * 1024);
    store(&mut s, "b", 1000);
    store(&mut s, "c", 5000);
    store(&mut s, "d", 32 * 1024);
    drop(s);
    warm_receive_buffers(&srv);
    std::thread::sleep(Duration::from_millis(1500));
    let base = rss_kib(pid);
    let mut clients = Vec::new();
    for (key, n) in [("a", 10_000), ("b", 300_000), ("c", 60_000), ("d", 10_000)] {
        for _ in 0..4 {
            let mut s = srv.connect();
            let line = format!("get{}\r\n", format!(" {key}").repeat(n));
            s.write_all(line.as_bytes()).unwrap();
            clients.push((s, key, n));
        }
    }
    let peak = settled_rss(pid, Duration::from_millis(1500));
    let grown = peak.saturating_sub(base);
    eprintln!("16 non-reading amplifying gets: {base} KiB +{grown} KiB");
    assert!(grown < 48 * 1024, "grew {grown} KiB");
    // A reader gets every value of its request.
    let (mut s, key, n) = clients.pop().unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let one = format!("VALUE {key} 0 32768\r\n").len() + 32768 + 2;
    let mut got = 0usize;
    let mut buf = vec![0u8; 1 << 20];
    while got < n * one + 5 {
        let r = s.read(&mut buf).unwrap();
        assert!(r > 0);
        got += r;
    }
    assert_eq!(got, n * one + 5);
    drop(clients);
    drop(s);
    let after = rss_back_under(pid, base + 6 * 1024 + grown / 10);
    eprintln!("after they close: {after} KiB");
    // glibc keeps some freed heap (its mmap threshold grows as big chunks
    // are freed): measured 2.2-3.2 MiB of the ~50 MiB grown stays resident
    // here, and 2.7 MiB of 7.4 MiB on CI's machine, where the peak was
    // sampled lower; so the allowance is absolute (6 MiB), plus a tenth
    // of what grew. One client's cap left behind would be 25 MiB.
    let kept = after.saturating_sub(base);
    assert!(
        kept < 6 * 1024 + grown / 10,
        "RSS {after} KiB after close, baseline {base} KiB, grown {grown} KiB"
    );
    assert_eq!(srv.stop(), 0);
}

#[test]
fn small_values_are_copied_within_the_cap_and_returned_at_close() {
    // 100 clients each ask for 5,000 values of 1,000 bytes (copied, not
    // referenced: small) over both workers and read nothing. Each holds
    // its cap (256 KiB) and what is due from the other worker (64 replies
    // of under 4 KiB), not 5 MB; all of it comes back when they close.
    let srv = Server::start(&["-t", "2", "-m", "64"]);
    let pid = srv.child.id();
    let mut s = srv.connect();
    let keys: Vec<String> = (0..50).map(|i| format!("s{i}")).collect();
    for k in &keys {
        store(&mut s, k, 1000);
    }
    drop(s);
    warm_receive_buffers(&srv);
    std::thread::sleep(Duration::from_millis(1500));
    let base = rss_kib(pid);
    let line = format!("get {}\r\n", vec![keys.join(" "); 100].join(" "));
    let mut clients = Vec::new();
    for _ in 0..100 {
        let mut s = srv.connect();
        s.write_all(line.as_bytes()).unwrap();
        clients.push(s);
    }
    let peak = settled_rss(pid, Duration::from_millis(1500));
    let grown = peak.saturating_sub(base);
    eprintln!("100 non-reading clients x 5,000 x 1 KB: {base} KiB +{grown} KiB");
    assert!(grown < 100 * 1024, "grew {grown} KiB: over 1 MiB a client");
    drop(clients);
    let after = rss_back_under(pid, base + 6 * 1024 + grown / 10);
    eprintln!("after they close: {after} KiB");
    // glibc keeps some freed heap (its mmap threshold grows as big chunks
    // are freed): measured 2.2-3.2 MiB of the ~50 MiB grown stays resident
    // here, and 2.7 MiB of 7.4 MiB on CI's machine, where the peak was
    // sampled lower; so the allowance is absolute (6 MiB), plus a tenth
    // of what grew. One client's cap left behind would be 25 MiB.
    let kept = after.saturating_sub(base);
    assert!(
        kept < 6 * 1024 + grown / 10,
        "RSS {after} KiB after close, baseline {base} KiB, grown {grown} KiB"
    );
    assert_eq!(srv.stop(), 0);
}
