//! The dispatcher's policies hold for every protocol: `-F` refuses text
//! flush_all and binary FLUSH/FLUSHQ with memcached's replies and keeps the
//! data; an oversized store drops the old value where memcached does (text
//! `set`, binary SET/SETQ, `ms` in every mode) and keeps it where memcached
//! does (text add/append/cas, binary APPEND); binary STAT takes a group;
//! `stats reset` reaches every worker. With `-t 2`, so half the keys are
//! forwarded to the other worker and the policy must hold on that path too.

mod common;
use common::*;
use std::io::Write;
use std::net::TcpStream;

fn text(s: &mut TcpStream, req: &[u8], end: &[u8]) -> String {
    s.write_all(req).unwrap();
    String::from_utf8(read_until(s, end)).unwrap()
}

/// Keys spread over both workers (the route hash decides; 16 keys leave
/// both shards with some at any hash).
fn keys() -> Vec<String> {
    (0..16).map(|i| format!("policy:{i}")).collect()
}

fn store_all(s: &mut TcpStream) {
    for k in keys() {
        assert_eq!(
            text(s, format!("set {k} 0 0 2\r\nhi\r\n").as_bytes(), b"\r\n"),
            "STORED\r\n"
        );
    }
}

fn hits(s: &mut TcpStream) -> usize {
    let r = text(
        s,
        format!("get {}\r\n", keys().join(" ")).as_bytes(),
        b"END\r\n",
    );
    r.matches("VALUE ").count()
}

#[test]
fn dash_f_refuses_every_flush_and_keeps_the_data() {
    let srv = Server::start(&["-t", "2", "-F"]);
    let mut s = srv.connect();
    store_all(&mut s);
    assert_eq!(
        text(&mut s, b"flush_all\r\n", b"\r\n"),
        "CLIENT_ERROR flush_all not allowed\r\n"
    );
    assert_eq!(
        text(&mut s, b"flush_all 0\r\n", b"\r\n"),
        "CLIENT_ERROR flush_all not allowed\r\n"
    );
    // noreply silences the refusal too (memcached's out_string).
    assert_eq!(
        text(&mut s, b"flush_all noreply\r\nversion\r\n", b"\r\n")
            .split(' ')
            .next(),
        Some("VERSION")
    );
    // A connection speaks the protocol of its first byte.
    let mut s = srv.connect();
    for (op, opaque) in [(0x08u8, 7u32), (0x18, 8)] {
        s.write_all(&bin(op, b"", &[], &[], opaque)).unwrap();
        let (rop, status, ropaque, _, value) = read_bin(&mut s);
        assert_eq!((rop, status, ropaque), (op, 0x20, opaque), "opcode {op:#x}");
        assert_eq!(value, b"Auth failure.");
    }
    // With a delay in the extras, too.
    s.write_all(&bin(0x08, b"", &0u32.to_be_bytes(), &[], 9))
        .unwrap();
    assert_eq!(read_bin(&mut s).1, 0x20);
    let mut t = srv.connect();
    assert_eq!(hits(&mut t), keys().len(), "data survives refused flushes");
    // The text refusals were counted as memcached counts them; binary not.
    let st = text(&mut t, b"stats\r\n", b"END\r\n");
    assert!(st.contains("STAT cmd_flush 3\r\n"), "{st}");
}

#[test]
fn binary_flush_without_dash_f_empties_every_shard() {
    let srv = Server::start(&["-t", "2"]);
    let mut s = srv.connect();
    store_all(&mut s);
    assert_eq!(hits(&mut s), keys().len());
    let mut b = srv.connect();
    b.write_all(&bin(0x08, b"", &[], &[], 1)).unwrap();
    assert_eq!(read_bin(&mut b).1, 0);
    assert_eq!(hits(&mut s), 0);
    store_all(&mut s);
    // FLUSHQ answers nothing; a NOOP after it shows the order.
    b.write_all(&bin(0x18, b"", &[], &[], 2)).unwrap();
    b.write_all(&bin(0x0a, b"", &[], &[], 3)).unwrap();
    let (op, status, opaque, _, _) = read_bin(&mut b);
    assert_eq!((op, status, opaque), (0x0a, 0, 3));
    assert_eq!(hits(&mut s), 0);
}

/// Stores `old` under every key, then runs `oversized(key)` and reports
/// which keys kept their value.
fn kept_after(srv: &Server, mut oversized: impl FnMut(&mut TcpStream, &str)) -> usize {
    let mut s = srv.connect();
    store_all(&mut s);
    for k in keys() {
        oversized(&mut s, &k);
    }
    hits(&mut s)
}

const BIG: usize = 2_000_000;

#[test]
fn an_oversized_store_drops_the_old_value_where_memcached_does() {
    let srv = Server::start(&["-t", "2"]);
    let data = vec![b'x'; BIG];
    let with_data = |head: String| {
        let mut v = head.into_bytes();
        v.extend_from_slice(&data);
        v.extend_from_slice(b"\r\n");
        v
    };
    let too_large = "SERVER_ERROR object too large for cache\r\n";
    // text set: dropped
    let kept = kept_after(&srv, |s, k| {
        let r = text(s, &with_data(format!("set {k} 0 0 {BIG}\r\n")), b"\r\n");
        assert_eq!(r, too_large);
    });
    assert_eq!(kept, 0, "text set");
    // text add, append, cas: kept (memcached drops only for set)
    for cmd in ["add", "append"] {
        let kept = kept_after(&srv, |s, k| {
            let r = text(s, &with_data(format!("{cmd} {k} 0 0 {BIG}\r\n")), b"\r\n");
            assert_eq!(r, too_large);
        });
        assert_eq!(kept, keys().len(), "text {cmd}");
    }
    let kept = kept_after(&srv, |s, k| {
        let r = text(s, &with_data(format!("cas {k} 0 0 {BIG} 1\r\n")), b"\r\n");
        assert_eq!(r, too_large);
    });
    assert_eq!(kept, keys().len(), "text cas");
    // meta ms: dropped in every mode (process_mset_command), quiet or not
    for flags in ["", " MA", " ME q", " T0"] {
        let kept = kept_after(&srv, |s, k| {
            let r = text(s, &with_data(format!("ms {k} {BIG}{flags}\r\n")), b"\r\n");
            assert_eq!(r, too_large, "ms{flags}");
        });
        assert_eq!(kept, 0, "ms{flags}");
    }
    // meta with a base64 key drops the decoded key's value
    let kept = kept_after(&srv, |s, k| {
        let b64 = b64(k.as_bytes());
        let r = text(s, &with_data(format!("ms {b64} {BIG} b\r\n")), b"\r\n");
        assert_eq!(r, too_large);
    });
    assert_eq!(kept, 0, "ms b");
    // binary SET and SETQ: dropped; APPEND: kept; each answered E2BIG
    for (op, drops) in [(0x01u8, true), (0x11, true), (0x0e, false), (0x02, false)] {
        // A connection speaks the protocol of its first byte.
        let mut b = srv.connect();
        let kept = kept_after(&srv, |_, k| {
            let extras: &[u8] = if op == 0x0e { &[] } else { &[0; 8] };
            b.write_all(&bin(op, k.as_bytes(), extras, &data, 5))
                .unwrap();
            let (rop, status, opaque, _, value) = read_bin(&mut b);
            assert_eq!((rop, status, opaque), (op, 3, 5), "opcode {op:#x}");
            assert_eq!(value, b"Too large.");
        });
        let want = if drops { 0 } else { keys().len() };
        assert_eq!(kept, want, "binary opcode {op:#x}");
    }
    // Every text and meta refusal was counted; binary ones are not, as in
    // memcached's proto_bin (tests/py/test_oracle_server.py compares).
    let st = exchange(&srv, b"stats\r\n", b"END\r\n");
    let n = keys().len() * (4 + 4 + 1);
    assert!(
        String::from_utf8_lossy(&st).contains(&format!("STAT store_too_large {n}\r\n")),
        "{}",
        String::from_utf8_lossy(&st)
    );
}

fn b64(k: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in k.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn binary_stat_groups_answer_and_keep_the_connection() {
    let srv = Server::start(&["-t", "2"]);
    let mut s = srv.connect();
    for (group, opaque) in [
        (&b"settings"[..], 1u32),
        (b"items", 2),
        (b"slabs", 3),
        (b"sizes", 4),
    ] {
        s.write_all(&bin(0x10, group, &[], &[], opaque)).unwrap();
        let mut rows = 0;
        loop {
            let (op, status, o, key, _) = read_bin(&mut s);
            assert_eq!(
                (op, status, o),
                (0x10, 0, opaque),
                "{}",
                String::from_utf8_lossy(group)
            );
            if key.is_empty() {
                break;
            }
            rows += 1;
        }
        if group == b"settings" {
            assert!(rows > 5, "settings rows: {rows}");
        }
    }
    s.write_all(&bin(0x10, b"no-such-group", &[], &[], 9))
        .unwrap();
    let (_, status, opaque, _, value) = read_bin(&mut s);
    assert_eq!(
        (status, opaque, value.as_slice()),
        (1, 9, &b"Not found"[..])
    );
    // Still open and serving.
    s.write_all(&bin(0x0b, b"", &[], &[], 10)).unwrap();
    assert_eq!(read_bin(&mut s).1, 0);
}

#[test]
fn stats_reset_reaches_every_worker_in_both_protocols() {
    let srv = Server::start(&["-t", "2"]);
    let mut s = srv.connect();
    store_all(&mut s);
    hits(&mut s);
    let st = text(&mut s, b"stats\r\n", b"END\r\n");
    assert!(
        st.contains(&format!("STAT get_hits {}\r\n", keys().len())),
        "{st}"
    );
    assert_eq!(text(&mut s, b"stats reset\r\n", b"\r\n"), "RESET\r\n");
    let st = text(&mut s, b"stats\r\n", b"END\r\n");
    for field in ["get_hits", "cmd_get", "cmd_set", "cross_shard_sent"] {
        assert!(st.contains(&format!("STAT {field} 0\r\n")), "{field}: {st}");
    }
    hits(&mut s);
    let mut b = srv.connect();
    b.write_all(&bin(0x10, b"reset", &[], &[], 4)).unwrap();
    let (_, status, opaque, key, _) = read_bin(&mut b);
    assert_eq!((status, opaque, key.len()), (0, 4, 0));
    let st = text(&mut s, b"stats\r\n", b"END\r\n");
    assert!(st.contains("STAT get_hits 0\r\n"), "{st}");
}
