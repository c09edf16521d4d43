//! A `stats` pipelined behind requests that ran on other shards counts
//! them, as memcached's (one thread per connection) does: after `stats
//! reset`, after forwarded sets and gets, after a broadcast
//! (`cache_memlimit`). The same bytes go to Debian's memcached, the
//! oracle, and the counters must agree.

mod common;

use common::{stat, Memcached, Server};
use std::io::{Read, Write};
use std::net::TcpStream;

/// Sends `req` in one write and reads through the `n`th `END\r\n`.
fn pipeline(mut s: TcpStream, req: &[u8], n: usize) -> Vec<u8> {
    s.write_all(req).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    while String::from_utf8_lossy(&out).matches("END\r\n").count() < n {
        let got = s.read(&mut buf).expect("reply");
        assert!(got > 0, "closed: {}", String::from_utf8_lossy(&out));
        out.extend_from_slice(&buf[..got]);
    }
    out
}

/// The rows of the last `stats` reply in `out`.
fn last_stats(out: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(out);
    let at = text.rfind("STAT pid ").expect("a stats reply");
    text[at..].as_bytes().to_vec()
}

const ROWS: [&str; 8] = [
    "cmd_get",
    "cmd_set",
    "get_hits",
    "get_misses",
    "total_items",
    "curr_items",
    "delete_hits",
    "limit_maxbytes",
];

fn figures(out: &[u8]) -> Vec<(&'static str, Option<u64>)> {
    let st = last_stats(out);
    ROWS.iter().map(|r| (*r, stat(&st, r))).collect()
}

/// Requests on keys spread over every shard, then a `stats`; the number
/// of `END`s the reply holds.
fn workload(keys: usize, reset: bool) -> (Vec<u8>, usize) {
    let mut req = Vec::new();
    for i in 0..keys {
        req.extend_from_slice(format!("set k{i} 0 0 1\r\nv\r\n").as_bytes());
    }
    let mut ends = 0;
    for i in 0..keys {
        req.extend_from_slice(format!("get k{i}\r\n").as_bytes());
        ends += 1;
    }
    if reset {
        req.extend_from_slice(b"stats reset\r\n");
    }
    for i in 0..keys / 2 {
        req.extend_from_slice(format!("get k{i} nokey{i}\r\ndelete k{i}\r\n").as_bytes());
        ends += 1;
    }
    // A broadcast: every shard's share of the limit changes.
    req.extend_from_slice(b"cache_memlimit 96\r\nstats\r\n");
    (req, ends + 1)
}

fn compare(reset: bool) {
    let srv = Server::start(&["-t", "4"]);
    let mc = Memcached::start(&[]);
    let (req, ends) = workload(40, reset);
    let ours = figures(&pipeline(srv.connect(), &req, ends));
    let theirs = figures(&pipeline(mc.connect(), &req, ends));
    assert_eq!(ours, theirs);
    // The comparison could pass on figures that never moved.
    // Each multi-get of two keys counts two.
    let want_get = if reset { 40 } else { 80 };
    assert_eq!(ours[0], ("cmd_get", Some(want_get)), "{ours:?}");
}

#[test]
fn stats_after_stats_reset_in_one_pipeline_is_reset() {
    compare(true);
}

#[test]
fn stats_after_forwarded_requests_in_one_pipeline_counts_them() {
    compare(false);
}
