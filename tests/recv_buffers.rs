//! The receive buffer ring (`engine/buf_ring.rs`): memory follows the
//! receives that complete together, not the pool's size, and a burst
//! larger than the ring's offer loses nothing.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

mod common;
use common::*;

/// Pushes `mib` MiB through one connection as values over the item size
/// limit: they are read and dropped as they arrive, so they pass through
/// receive buffers and touch no item memory.
fn stream_through(srv: &Server, mib: usize) {
    let mut s = srv.connect();
    let len = 2_000_000;
    let mut req = format!("set big 0 0 {len}\r\n").into_bytes();
    req.extend(std::iter::repeat_n(b'w', len));
    req.extend_from_slice(b"\r\n");
    for _ in 0..mib / 2 {
        s.write_all(&req).unwrap();
        assert_eq!(
            read_until(&mut s, b"\r\n"),
            b"SERVER_ERROR object too large for cache\r\n"
        );
    }
}

/// One client streaming 64 MiB uses a few receive buffers over and over:
/// the worker's pool (1024 buffers of 8 KiB) is not all made resident.
/// Before the ring offered buffers by need it was, 8 MiB a worker.
#[test]
fn one_client_leaves_most_receive_buffers_untouched() {
    let srv = Server::start(&["-t", "1", "-m", "64"]);
    let pid = srv.child.id();
    stream_through(&srv, 2);
    std::thread::sleep(Duration::from_millis(200));
    let base = rss_kib(pid);
    stream_through(&srv, 64);
    std::thread::sleep(Duration::from_millis(200));
    let grown = rss_kib(pid).saturating_sub(base);
    eprintln!("RSS grew {grown} KiB streaming 64 MiB");
    assert!(grown < 2 * 1024, "RSS grew {grown} KiB streaming 64 MiB");
}

/// 600 connections whose requests all arrive while the worker is stopped
/// complete together when it resumes, more than the 128 buffers a ring
/// offers at first: every request is answered, in order, exactly. (The
/// kernel runs deferred completions in batches of about 20, each returned
/// before the next, so this does not run the ring dry; `buf_ring`'s own
/// test does, against the kernel.)
#[test]
fn burst_beyond_the_offer_is_answered_in_full() {
    let srv = Server::start(&["-t", "1", "-m", "64", "-c", "4096"]);
    let pid = srv.child.id() as i32;
    let mut conns: Vec<TcpStream> = (0..600).map(|_| srv.connect()).collect();
    // Each connection is served before the stop, so its receive is armed.
    for (i, s) in conns.iter_mut().enumerate() {
        s.write_all(format!("set k{i} 0 0 1\r\n{}\r\n", i % 10).as_bytes())
            .unwrap();
        assert_eq!(read_until(s, b"\r\n"), b"STORED\r\n");
    }
    // SAFETY: plain signals to the child this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    for (i, s) in conns.iter_mut().enumerate() {
        s.write_all(format!("get k{i}\r\nincr k{i} 1\r\n").as_bytes())
            .unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGCONT) }, 0);
    for (i, s) in conns.iter_mut().enumerate() {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let want = format!("VALUE k{i} 0 1\r\n{}\r\nEND\r\n{}\r\n", i % 10, i % 10 + 1);
        let mut got = vec![0u8; want.len()];
        s.read_exact(&mut got).unwrap();
        assert_eq!(String::from_utf8_lossy(&got), want, "connection {i}");
    }
}
