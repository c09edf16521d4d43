//! A stderr nobody reads must not stall a worker: log lines leave the
//! workers through a bounded queue (admin/log_writer.rs), and when the
//! queue is full they are dropped and counted (`log_worker_dropped`), as
//! memcached's logger does, instead of blocking the shard.

mod common;
use common::*;
use std::io::{Read, Write};
use std::process::Stdio;

#[test]
fn an_unread_stderr_pipe_does_not_stall_the_workers() {
    // Every flush_all is an audit line, logged at the default level:
    // 40,000 of them overfill the 64 KiB pipe (about 400 lines) and then
    // the writer's queue (16 Ki lines).
    let audit = std::env::temp_dir().join(format!("cc-logq-audit-{}", std::process::id()));
    let _ = std::fs::remove_file(&audit);
    let srv = Server::start_with_stderr(
        &["-t", "2", "--audit-log", audit.to_str().unwrap()],
        Stdio::piped,
    );
    let mut s = srv.connect();
    s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    let batch = b"flush_all\r\n".repeat(1000);
    for round in 0..40 {
        s.write_all(&batch).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 65536];
        while got.len() < 4000 {
            let n = s
                .read(&mut buf)
                .unwrap_or_else(|e| panic!("round {round}: {e}"));
            assert!(n > 0, "closed in round {round}");
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, b"OK\r\n".repeat(1000), "round {round}");
    }
    // Writes still work on both shards, and so does stats.
    for k in ["a", "b", "c", "d"] {
        s.write_all(format!("set {k} 0 0 1\r\nv\r\n").as_bytes())
            .unwrap();
        assert_eq!(read_until(&mut s, b"\r\n"), b"STORED\r\n");
    }
    s.write_all(b"stats\r\n").unwrap();
    let stats = read_until(&mut s, b"END\r\n");
    let dropped = stat(&stats, "log_worker_dropped").expect("log_worker_dropped");
    let written = stat(&stats, "log_worker_written").expect("log_worker_written");
    assert!(dropped > 0, "dropped {dropped}, written {written}");
    // The audit file's 40,000 lines are written (never dropped); stderr's
    // copies of them mostly are.
    assert!(written >= 40_000, "dropped {dropped}, written {written}");
    // The child's stderr pipe is still held, unread, by `srv`.
    assert!(srv.child.stderr.is_some());
    // SIGTERM still stops it promptly (Server::stop allows 10 s): the
    // queue behind the blocked stderr is waited for 2 s at most.
    assert_eq!(srv.stop(), 0);
    // The audit file is a record, not a best effort: every line is there.
    let text = std::fs::read_to_string(&audit).unwrap();
    std::fs::remove_file(&audit).unwrap();
    assert_eq!(
        text.lines().filter(|l| l.contains("flush_all")).count(),
        40_000
    );
}

/// The server's stderr after a short session at verbosity `v`.
fn session_log(v: &str) -> String {
    let mut args = vec!["-t", "2"];
    if !v.is_empty() {
        args.push(v);
    }
    let mut srv = Server::start_with_stderr(&args, Stdio::piped);
    let mut s = srv.connect();
    let long = format!("get {}\r\n", "x".repeat(300));
    s.write_all(b"set k 0 0 6\r\nsecret\r\nget k\r\n").unwrap();
    s.write_all(long.as_bytes()).unwrap();
    s.write_all(b"bogus\r\n").unwrap();
    read_until(&mut s, b"\nERROR\r\n");
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    let mut err = srv.child.stderr.take().unwrap();
    assert_eq!(srv.stop(), 0);
    let mut text = String::new();
    err.read_to_string(&mut text).unwrap();
    text
}

#[test]
fn v_levels_log_connections_errors_and_commands_as_memcached_does() {
    // Default: none of it (the probe's connections included).
    let quiet = session_log("");
    for w in ["connection opened", "client error", "command"] {
        assert!(!quiet.contains(w), "{quiet}");
    }
    // -vv: connections opened and closed, and the client error, with the line.
    let vv = session_log("-vv");
    assert!(vv.contains("connection opened"), "{vv}");
    assert!(
        vv.contains("connection closed") && vv.contains("eof=true"),
        "{vv}"
    );
    assert!(
        vv.contains("client error") && vv.contains("line=bogus"),
        "{vv}"
    );
    assert!(!vv.contains("line=get k"), "{vv}");
    // A refusal at the dispatch point is a client error too.
    assert!(vv.contains("line=get xxxxxxxx"), "{vv}");
    // -vvv: every command line, never a data block.
    let vvv = session_log("-vvv");
    assert!(
        vvv.contains("line=get k") && vvv.contains("line=set k 0 0 6"),
        "{vvv}"
    );
    assert!(!vvv.contains("secret"), "{vvv}");
}

#[test]
fn the_verbosity_command_changes_the_level_as_memcached_caps_it() {
    let mut srv = Server::start_with_stderr(&["-t", "2"], Stdio::piped);
    let mut s = srv.connect();
    let level = |s: &mut std::net::TcpStream| {
        s.write_all(b"stats settings\r\n").unwrap();
        let st = read_until(s, b"END\r\n");
        stat(&st, "verbosity").unwrap()
    };
    assert_eq!(level(&mut s), 0);
    // memcached: levels above 2 are 2; noreply still sets it.
    s.write_all(b"verbosity 5\r\n").unwrap();
    assert_eq!(read_until(&mut s, b"\r\n"), b"OK\r\n");
    assert_eq!(level(&mut s), 2);
    // At 2, a new connection is logged.
    let mut t = srv.connect();
    t.write_all(b"version\r\n").unwrap();
    read_until(&mut t, b"\r\n");
    s.write_all(b"verbosity 1 noreply\r\n").unwrap();
    assert_eq!(level(&mut s), 1);
    // Binary VERBOSITY (0x1b, 4-byte level) sets it too (a connection
    // speaks one protocol, fixed by its first byte).
    let mut b = srv.connect();
    b.write_all(&bin(0x1b, b"", &0u32.to_be_bytes(), b"", 7))
        .unwrap();
    assert_eq!(read_bin(&mut b).1, 0);
    assert_eq!(level(&mut s), 0);
    let mut err = srv.child.stderr.take().unwrap();
    assert_eq!(srv.stop(), 0);
    let mut text = String::new();
    err.read_to_string(&mut text).unwrap();
    // Only the connection opened while the level was 2.
    assert_eq!(text.matches("connection opened").count(), 1, "{text}");
}
