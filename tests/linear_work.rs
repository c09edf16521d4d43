//! Work linear in the request: a 16 MB get line arriving in pieces, and
//! gets of 150,000 keys spread over two workers, each cost under 0.5 s of
//! server CPU, while the server keeps answering other clients.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;
use common::*;

/// A client that asks `version` over and over on its own connection until
/// told to stop; returns how many answers came and the slowest one. It
/// has been answered once when this returns: started unsynchronised, a
/// thread a loaded machine schedules late could miss a short request
/// entirely and count no answers.
fn bystander(port: u16, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<(usize, Duration)> {
    let (ready, is_ready) = std::sync::mpsc::channel();
    let h = std::thread::spawn(move || {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"version\r\n").unwrap();
        assert_eq!(read_until(&mut s, b"\r\n"), version_line().as_bytes());
        ready.send(()).unwrap();
        let (mut n, mut worst) = (1, Duration::ZERO);
        while !stop.load(Ordering::Relaxed) {
            let t = Instant::now();
            s.write_all(b"version\r\n").unwrap();
            assert_eq!(read_until(&mut s, b"\r\n"), version_line().as_bytes());
            worst = worst.max(t.elapsed());
            n += 1;
            std::thread::sleep(Duration::from_millis(5));
        }
        (n, worst)
    });
    is_ready.recv().unwrap();
    h
}

/// Reads a multi-get reply to its END; returns the VALUE keys in order.
fn read_values(s: &mut TcpStream) -> Vec<String> {
    let mut all = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    while !all.ends_with(b"END\r\n") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed before END");
        all.extend_from_slice(&buf[..n]);
    }
    String::from_utf8(all)
        .unwrap()
        .lines()
        .filter_map(|l| {
            l.strip_prefix("VALUE ")
                .map(|r| r.split(' ').next().unwrap().to_string())
        })
        .collect()
}

#[test]
fn a_16_mb_get_line_in_pieces_costs_one_pass() {
    let srv = Server::start(&["-t", "2"]);
    let pid = srv.child.id();
    let mut s = srv.connect();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    // Every 1,000th key exists; keys are 64 bytes.
    let key = |i: usize| format!("{:0>64}", i);
    for i in (0..300_000).step_by(1000) {
        s.write_all(format!("set {} 0 0 1\r\nv\r\n", key(i)).as_bytes())
            .unwrap();
        read_until(&mut s, b"STORED\r\n");
    }
    for cmd in ["get", "gets"] {
        let mut line = cmd.as_bytes().to_vec();
        let mut n = 0;
        while line.len() < 16 << 20 {
            line.push(b' ');
            line.extend_from_slice(key(n).as_bytes());
            n += 1;
        }
        line.extend_from_slice(b"\r\n");
        let stop = Arc::new(AtomicBool::new(false));
        let other = bystander(srv.port, stop.clone());
        let cpu0 = cpu_secs(pid);
        let mut w = s.try_clone().unwrap();
        let writer = std::thread::spawn(move || {
            // Pieces of 4 KiB with pauses now and then, so the server sees
            // the line grow a little at a time.
            for (i, piece) in line.chunks(4096).enumerate() {
                w.write_all(piece).unwrap();
                if i % 256 == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        });
        let got = read_values(&mut s);
        writer.join().unwrap();
        let cpu = cpu_secs(pid) - cpu0;
        stop.store(true, Ordering::Relaxed);
        let (answered, worst) = other.join().unwrap();
        let want: Vec<String> = (0..n).filter(|i| i % 1000 == 0).map(key).collect();
        assert_eq!(got, want, "{cmd}: hits in request order");
        assert!(
            cpu < 0.5,
            "{cmd} of {n} keys in 16 MB cost {cpu:.2} s of CPU"
        );
        assert!(
            answered > 0 && worst < Duration::from_secs(1),
            "{cmd}: others served: {answered}, worst {worst:?}"
        );
        eprintln!("{cmd}: {n} keys, 16 MB line: {cpu:.3} s CPU; bystander {answered} answers, worst {worst:?}");
    }
    assert_eq!(srv.stop(), 0);
}

#[test]
fn a_get_of_150000_keys_over_two_workers_costs_o_keys() {
    let srv = Server::start(&["-t", "2"]);
    let pid = srv.child.id();
    let mut s = srv.connect();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    // Every 10th key exists, with a 100-byte value.
    let mut sets = Vec::new();
    for i in (0..150_000).step_by(10) {
        sets.extend_from_slice(
            format!("set key{i} 0 0 100 noreply\r\n{}\r\n", "x".repeat(100)).as_bytes(),
        );
    }
    s.write_all(&sets).unwrap();
    s.write_all(b"mn\r\n").unwrap();
    read_until(&mut s, b"MN\r\n");
    let keys: Vec<String> = (0..150_000).map(|i| format!("key{i}")).collect();
    let want: Vec<String> = keys.iter().step_by(10).cloned().collect();
    for cmd in ["get", "gets"] {
        let line = format!("{cmd} {}\r\n", keys.join(" "));
        let stop = Arc::new(AtomicBool::new(false));
        let other = bystander(srv.port, stop.clone());
        let cpu0 = cpu_secs(pid);
        s.write_all(line.as_bytes()).unwrap();
        let got = read_values(&mut s);
        let cpu = cpu_secs(pid) - cpu0;
        stop.store(true, Ordering::Relaxed);
        let (answered, worst) = other.join().unwrap();
        assert_eq!(got, want, "{cmd}: 15,000 hits in request order");
        assert!(cpu < 0.5, "{cmd} of 150,000 keys cost {cpu:.2} s of CPU");
        assert!(
            answered > 0 && worst < Duration::from_secs(1),
            "{cmd}: others served: {answered}, worst {worst:?}"
        );
        eprintln!(
            "{cmd}: 150,000 keys: {cpu:.3} s CPU; bystander {answered} answers, worst {worst:?}"
        );
    }
    // The same keys as 150,000 pipelined binary GETKQ and a NOOP: one
    // request each, half of them forwarded.
    let mut bin = Vec::new();
    for k in &keys {
        let mut h = vec![0x80u8, 0x0d, 0, k.len() as u8, 0, 0, 0, 0];
        h.extend_from_slice(&(k.len() as u32).to_be_bytes());
        h.extend_from_slice(&[0; 12]);
        bin.extend_from_slice(&h);
        bin.extend_from_slice(k.as_bytes());
    }
    bin.extend_from_slice(&[0x80, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    bin.extend_from_slice(&[0; 8]);
    let mut b = srv.connect();
    b.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let cpu0 = cpu_secs(pid);
    let mut w = b.try_clone().unwrap();
    let writer = std::thread::spawn(move || w.write_all(&bin).unwrap());
    let per_hit = 24 + 4 + 9 + 100; // header, flags, a 4- or 5-digit key, value
    let mut got = 0usize;
    let mut hits = 0usize;
    let mut buf = vec![0u8; 1 << 20];
    let mut pending: Vec<u8> = Vec::new();
    'read: loop {
        let n = b.read(&mut buf).unwrap();
        assert!(n > 0);
        got += n;
        pending.extend_from_slice(&buf[..n]);
        while pending.len() >= 24 {
            let body =
                u32::from_be_bytes([pending[8], pending[9], pending[10], pending[11]]) as usize;
            if pending.len() < 24 + body {
                break;
            }
            if pending[1] == 0x0a {
                break 'read;
            }
            hits += 1;
            pending.drain(..24 + body);
        }
    }
    writer.join().unwrap();
    let cpu = cpu_secs(pid) - cpu0;
    assert_eq!(hits, 15_000);
    assert!(got >= 15_000 * (per_hit - 1));
    assert!(cpu < 0.5, "150,000 binary GETKQ cost {cpu:.2} s of CPU");
    eprintln!("binary GETKQ x150,000: {cpu:.3} s CPU");
    assert_eq!(srv.stop(), 0);
}

/// A get of only misses gives way to others every `TURN_KEYS` keys and
/// sends nothing meanwhile; it must go on at the next loop turn, not when
/// the worker's 100 ms tick wakes it. (A breaker found a get of 20,000
/// missing keys taking 0.31 s against memcached's 0.017 s, and 200,000
/// keys 4.7 s.) The bound is a stall detector, not a speed target: 200,000
/// missing keys stalled 4.8 s and now answer in about 20 ms.
#[test]
fn a_get_of_only_misses_goes_on_without_waiting_for_the_tick() {
    for threads in ["1", "2"] {
        let srv = Server::start(&["-t", threads]);
        let mut s = srv.connect();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let keys: Vec<String> = (0..200_000).map(|i| format!("missing{i}")).collect();
        let line = format!("get {}\r\n", keys.join(" "));
        let t = Instant::now();
        s.write_all(line.as_bytes()).unwrap();
        assert_eq!(read_until(&mut s, b"END\r\n"), b"END\r\n");
        let took = t.elapsed();
        assert!(
            took < Duration::from_secs(2),
            "-t {threads}: a get of 200,000 missing keys took {took:?}"
        );
        eprintln!("-t {threads}: 200,000 missing keys answered in {took:?}");
    }
}
