//! The request line length rule, memcached's (1.6 `try_read_command_ascii`):
//! a line without its end after more than 2,048 bytes closes the
//! connection unless it is a `get`/`gets` (after at most 100 spaces);
//! a line of any command that arrives whole within one of memcached's
//! 16 KiB reads is served. Each case is sent the same way to Debian's
//! memcached and to corecache, whole and cut after 2,100 bytes with a
//! pause, and the answers (or the close) compared.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

mod common;
use common::*;

/// `bytes_read` of the server on `port`, asked on a connection of its own
/// (whose `stats\r\n`, 7 bytes, may or may not be counted yet).
fn bytes_read(port: u16) -> u64 {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"stats\r\n").unwrap();
    stat(&read_until(&mut s, b"END\r\n"), "bytes_read").unwrap()
}

/// What a server made of some bytes: its reply (CAS numbers and the
/// version masked) and whether it closed the connection.
///
/// Cut, the server must have read the first 2,100 bytes before the rest
/// arrives: a fixed pause (100 ms) held only while the machine was not
/// loaded, so its `bytes_read` is awaited. After the bytes comes `mn`: a
/// server still serving the connection answers `MN` once it has answered
/// all before, one that closed it never reads it. Timing out a quiet
/// connection (400 ms per read once) took a slow reply for none.
fn outcome(port: u16, data: &[u8], cut: bool) -> (String, bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    let before = bytes_read(port);
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    if cut && data.len() > 2100 {
        s.write_all(&data[..2100]).unwrap();
        // Each poll's own 7 bytes are counted by the next one at the
        // latest.
        let mut polls = 0;
        while bytes_read(port) < before + 2100 + 7 * polls {
            assert!(Instant::now() < deadline, "the first 2,100 bytes unread");
            polls += 1;
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = s.write_all(&data[2100..]);
    } else {
        s.write_all(data).unwrap();
    }
    let _ = s.write_all(b"mn\r\n");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    let closed = loop {
        if out.ends_with(b"MN\r\n") {
            break false;
        }
        assert!(Instant::now() < deadline, "neither MN nor a close");
        match s.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
            Err(e) => panic!("{e}"),
        }
    };
    let text = String::from_utf8_lossy(&out)
        .split("\r\n")
        .map(|l| {
            let t: Vec<&str> = l.split(' ').collect();
            match t[0] {
                "VALUE" if t.len() == 5 => format!("VALUE {} {} {} <cas>", t[1], t[2], t[3]),
                "VERSION" => "VERSION <v>".to_string(),
                _ => l.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join("\r\n");
    (text, closed)
}

#[test]
fn long_lines_are_served_or_closed_as_by_memcached() {
    let srv = Server::start(&["-t", "2"]);
    let mc = Memcached::start(&["-t", "2"]);
    let keys = |n: usize| {
        (0..n)
            .map(|i| format!("k{i}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    for port in [srv.port, mc.port] {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(b"set k1 0 0 1\r\na\r\nset k799 0 0 1\r\nb\r\n")
            .unwrap();
        read_until(&mut s, b"STORED\r\nSTORED\r\n");
    }
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("get 5 KB", format!("get {}\r\n", keys(800)).into_bytes()),
        ("gets 5 KB", format!("gets {}\r\n", keys(800)).into_bytes()),
        ("get 20 KB", format!("get {}\r\n", keys(3000)).into_bytes()),
        ("gat 5 KB", format!("gat 0 {}\r\n", keys(800)).into_bytes()),
        (
            "gats 5 KB",
            format!("gats 0 {}\r\n", keys(800)).into_bytes(),
        ),
        (
            "gat 12 KB",
            format!("gat 0 {}\r\n", keys(1800)).into_bytes(),
        ),
        (
            "gat 20 KB",
            format!("gat 0 {}\r\n", keys(3000)).into_bytes(),
        ),
        (
            "delete and 3,000 spaces",
            format!("delete k1{}\r\n", " ".repeat(3000)).into_bytes(),
        ),
        (
            "mg with a 3,000-byte key",
            format!("mg {} v\r\n", "k".repeat(3000)).into_bytes(),
        ),
        (
            "set with a long line",
            format!("set k2 0 0 1{}\r\na\r\n", " ".repeat(3000)).into_bytes(),
        ),
        (
            "version and 3,000 spaces",
            format!("version{}\r\n", " ".repeat(3000)).into_bytes(),
        ),
        (
            "3,000 bytes of junk",
            format!("{}\r\n", "x".repeat(3000)).into_bytes(),
        ),
        (
            "get after 100 spaces",
            format!("{}get {}\r\n", " ".repeat(100), keys(800)).into_bytes(),
        ),
        (
            "get after 101 spaces",
            format!("{}get {}\r\n", " ".repeat(101), keys(800)).into_bytes(),
        ),
    ];
    // Lines under 2,048 bytes are never a question.
    cases.push(("get 2 KB", format!("get {}\r\n", keys(300)).into_bytes()));
    let mut compared = 0;
    for (name, data) in &cases {
        for cut in [false, true] {
            let want = outcome(mc.port, data, cut);
            let got = outcome(srv.port, data, cut);
            assert_eq!(got, want, "{name}, cut: {cut}");
            compared += 1;
        }
    }
    assert_eq!(compared, 30);
    // The connection survives what is served: a request after a long gat.
    let mut s = srv.connect();
    s.write_all(format!("gat 0 {}\r\nversion\r\n", keys(800)).as_bytes())
        .unwrap();
    let r = read_until(&mut s, version_line().as_bytes());
    // (k1 went with the long delete above, k2 came with the long set.)
    let want = b"VALUE k2 0 1\r\na\r\nVALUE k799 0 1\r\nb\r\nEND\r\n";
    assert!(r.starts_with(want), "{}", String::from_utf8_lossy(&r));
    assert_eq!(srv.stop(), 0);
}

/// A line with no end of exactly one receive buffer (8 KiB): the read that
/// took it filled the buffer, which alone does not mean more was waiting.
/// memcached, whose reads are 16 KiB, saw all of it and closed; corecache
/// kept the connection open waiting for more that never came (a breaker
/// found it). Both must close, whatever the junk's first bytes.
#[test]
fn a_line_of_exactly_a_receive_buffer_without_its_end_closes() {
    let srv = Server::start(&["-t", "1"]);
    let mc = Memcached::start(&["-t", "1"]);
    for junk in [b'g', b'x', b' '] {
        for port in [mc.port, srv.port] {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.write_all(&[junk; 8192]).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut buf = [0u8; 64];
            let closed = match s.read(&mut buf) {
                Ok(0) => true,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => true,
                other => panic!("port {port}, junk {junk}: {other:?}"),
            };
            assert!(closed);
        }
    }
    assert_eq!(srv.stop(), 0);
}
