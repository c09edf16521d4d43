//! `flush_prefix` on the real binary over real sockets: 100,000 keys
//! under a prefix vanish in one command on every shard while other keys
//! stay, keys stored afterwards are visible, and `-F` refuses it as it
//! refuses `flush_all`.

mod common;

use common::{exchange, read_until, Server};
use std::io::Write;
use std::net::TcpStream;
use std::time::Instant;

fn set_many(s: &mut TcpStream, prefix: &str, n: usize) {
    let mut buf = Vec::new();
    for i in 0..n {
        buf.extend_from_slice(
            format!("set {prefix}{i} 0 0 4 noreply\r\nv{:03}\r\n", i % 1000).as_bytes(),
        );
        // In batches, so a loaded host does not hit the read timeout.
        if i % 5000 == 4999 || i == n - 1 {
            buf.extend_from_slice(b"mn\r\n");
            s.write_all(&buf).unwrap();
            read_until(s, b"MN\r\n");
            buf.clear();
        }
    }
}

/// How many of `prefix`0..n a multi-get finds, in batches of 100 keys.
fn found(s: &mut TcpStream, prefix: &str, n: usize) -> usize {
    let mut hits = 0;
    for start in (0..n).step_by(100) {
        let mut req = String::from("get");
        for i in start..(start + 100).min(n) {
            req.push_str(&format!(" {prefix}{i}"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).unwrap();
        let r = read_until(s, b"END\r\n");
        hits += r.windows(6).filter(|w| w == b"VALUE ").count();
    }
    hits
}

#[test]
fn a_hundred_thousand_keys_vanish_in_one_command_others_stay() {
    let srv = Server::start(&["-t", "2", "-m", "256"]);
    let mut s = srv.connect();
    set_many(&mut s, "user:42:", 100_000);
    set_many(&mut s, "user:43:", 10_000);
    set_many(&mut s, "user:4", 1_000);
    assert_eq!(found(&mut s, "user:42:", 100_000), 100_000);
    let t = Instant::now();
    s.write_all(b"flush_prefix user:42:\r\n").unwrap();
    assert_eq!(read_until(&mut s, b"\r\n"), b"OK\r\n");
    // Round trip on loopback: an upper bound of the server's time.
    eprintln!("flush_prefix of 100000 keys: {:?} round trip", t.elapsed());
    assert_eq!(found(&mut s, "user:42:", 100_000), 0);
    assert_eq!(found(&mut s, "user:43:", 10_000), 10_000);
    assert_eq!(found(&mut s, "user:4", 1_000), 1_000);
    // Stored afterwards, through another connection (and so maybe another
    // worker): visible at once.
    let mut s2 = srv.connect();
    set_many(&mut s2, "user:42:", 50);
    assert_eq!(found(&mut s, "user:42:", 100), 50);
    // The sweep reclaims the space in the background: curr_items falls to
    // what is visible.
    let want = 10_000 + 1_000 + 50;
    let deadline = Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let st = exchange(&srv, b"stats\r\n", b"END\r\n");
        let items = common::stat(&st, "curr_items").unwrap();
        if items == want {
            break;
        }
        assert!(Instant::now() < deadline, "curr_items stays at {items}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let st = exchange(&srv, b"stats\r\n", b"END\r\n");
    assert_eq!(common::stat(&st, "cmd_flush_prefix"), Some(1));
}

#[test]
fn bad_forms_and_noreply() {
    let srv = Server::start(&["-t", "2"]);
    for bad in [
        &b"flush_prefix\r\n"[..],
        b"flush_prefix a b\r\n",
        b"flush_prefix a noreply x\r\n",
    ] {
        assert_eq!(
            exchange(&srv, bad, b"\r\n"),
            b"CLIENT_ERROR bad command line format\r\n",
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
    let long = format!("flush_prefix {}\r\n", "k".repeat(251));
    assert_eq!(
        exchange(&srv, long.as_bytes(), b"\r\n"),
        b"CLIENT_ERROR bad command line format\r\n"
    );
    let mut s = srv.connect();
    s.write_all(b"set a:1 0 0 1\r\nx\r\nflush_prefix a: noreply\r\nget a:1\r\n")
        .unwrap();
    assert_eq!(read_until(&mut s, b"END\r\n"), b"STORED\r\nEND\r\n");
}

#[test]
fn refused_under_dash_f_and_data_kept() {
    let srv = Server::start(&["-t", "2", "-F"]);
    let mut s = srv.connect();
    s.write_all(b"set a:1 0 0 1\r\nx\r\nflush_prefix a:\r\nflush_prefix a: noreply\r\nget a:1\r\n")
        .unwrap();
    assert_eq!(
        read_until(&mut s, b"END\r\n"),
        b"STORED\r\nCLIENT_ERROR flush_prefix not allowed\r\nVALUE a:1 0 1\r\nx\r\nEND\r\n"
    );
}
