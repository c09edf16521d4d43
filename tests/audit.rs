//! The audit trail (`--audit-log`) of the real binary: every
//! administrative command through text and binary, done or refused, is one
//! line with its action, peer and argument; data commands are not.

mod common;
use common::*;
use std::io::Write;

fn audit_file(tag: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("cc-audit-{}-{tag}", std::process::id()))
}

/// The audit lines, as (action, arg) with the peer checked on each.
fn lines(path: &std::path::Path, peer: &str) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .map(|l| {
            let field = |name: &str| {
                let at = l
                    .find(&format!("{name}=\""))
                    .unwrap_or_else(|| panic!("{l}"));
                let rest = &l[at + name.len() + 2..];
                rest[..rest.find('"').unwrap()].to_string()
            };
            assert_eq!(field("peer"), peer, "{l}");
            (field("action"), field("arg"))
        })
        .collect()
}

#[test]
fn every_admin_command_is_audited_in_both_protocols() {
    let path = audit_file("done");
    let _ = std::fs::remove_file(&path);
    let srv = Server::start(&["-t", "2", "-A", "--audit-log", path.to_str().unwrap()]);
    let mut s = srv.connect();
    let peer = s.local_addr().unwrap().to_string();
    for (req, end) in [
        (&b"set k 0 0 1\r\nv\r\n"[..], &b"STORED\r\n"[..]),
        (b"get k\r\n", b"END\r\n"),
        (b"flush_all 30\r\n", b"OK\r\n"),
        (b"flush_prefix user:1:\r\n", b"OK\r\n"),
        (b"cache_memlimit 64\r\n", b"OK\r\n"),
        (b"verbosity 1\r\n", b"OK\r\n"),
        (b"stats reset\r\n", b"RESET\r\n"),
        (b"stats\r\n", b"END\r\n"),
        (b"lru_crawler metadump all\r\n", b"END\r\n"),
        (b"slabs automove 1\r\n", b"\r\n"),
    ] {
        s.write_all(req).unwrap();
        read_until(&mut s, end);
    }
    let mut b = srv.connect();
    let bpeer = b.local_addr().unwrap().to_string();
    // Binary FLUSH with a delay of 7, and VERBOSITY 2.
    b.write_all(&bin(0x08, b"", &7u32.to_be_bytes(), b"", 1))
        .unwrap();
    assert_eq!(read_bin(&mut b).1, 0);
    b.write_all(&bin(0x1b, b"", &2u32.to_be_bytes(), b"", 2))
        .unwrap();
    assert_eq!(read_bin(&mut b).1, 0);
    assert_eq!(srv.stop(), 0);
    let text = std::fs::read_to_string(&path).unwrap();
    let (t, bl): (Vec<&str>, Vec<&str>) = text.lines().partition(|l| l.contains(&peer));
    assert_eq!(t.len() + bl.len(), 9, "{text}");
    let tmp = audit_file("t");
    std::fs::write(&tmp, t.join("\n")).unwrap();
    assert_eq!(
        lines(&tmp, &peer),
        [
            ("flush_all", "30"),
            ("flush_prefix", "user:1:"),
            ("cache_memlimit", "64"),
            ("verbosity", "1"),
            ("stats", "reset"),
            ("lru_crawler", "metadump all"),
            ("slabs", "automove 1"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    std::fs::write(&tmp, bl.join("\n")).unwrap();
    assert_eq!(
        lines(&tmp, &bpeer),
        [("flush_all", "7"), ("verbosity", "2")].map(|(a, b)| (a.to_string(), b.to_string()))
    );
    let _ = std::fs::remove_file(&tmp);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn refused_admin_commands_are_audited_as_refused() {
    let path = audit_file("refused");
    let _ = std::fs::remove_file(&path);
    let srv = Server::start(&["-F", "--audit-log", path.to_str().unwrap()]);
    let mut s = srv.connect();
    let peer = s.local_addr().unwrap().to_string();
    s.write_all(b"flush_all\r\n").unwrap();
    read_until(&mut s, b"\r\n");
    s.write_all(b"shutdown\r\n").unwrap();
    read_until(&mut s, b"\r\n");
    let mut b = srv.connect();
    b.write_all(&bin(0x18, b"", &[], b"", 3)).unwrap(); // FLUSHQ
    b.write_all(&bin(0x0a, b"", &[], b"", 4)).unwrap(); // NOOP
    let (op, status, ..) = read_bin(&mut b);
    assert_eq!((op, status), (0x18, 0x20), "refused FLUSHQ answers");
    assert_eq!(srv.stop(), 0);
    let got: Vec<(String, String)> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .filter(|l| l.contains(&peer))
        .map(|l| (l.to_string(), String::new()))
        .collect();
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(
        got[0].0.contains(r#"action="flush_all refused (-F)""#),
        "{got:?}"
    );
    assert!(
        got[1].0.contains(r#"action="shutdown refused (no -A)""#),
        "{got:?}"
    );
    let all = std::fs::read_to_string(&path).unwrap();
    assert_eq!(all.matches("flush_all refused (-F)").count(), 2, "{all}");
    let _ = std::fs::remove_file(&path);
}

#[test]
fn shutdown_graceful_is_audited_with_its_argument() {
    let path = audit_file("graceful");
    let _ = std::fs::remove_file(&path);
    let srv = Server::start(&["-A", "--audit-log", path.to_str().unwrap()]);
    let mut s = srv.connect();
    let peer = s.local_addr().unwrap().to_string();
    s.write_all(b"shutdown graceful\r\n").unwrap();
    // No reply; the server stops.
    let mut srv = srv;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while srv.child.try_wait().unwrap().is_none() {
        assert!(std::time::Instant::now() < deadline, "still running");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(
        lines(&path, &peer),
        [("shutdown".to_string(), "graceful".to_string())]
    );
    let _ = std::fs::remove_file(&path);
}
