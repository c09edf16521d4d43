//! The log files of the real binary: SIGHUP reopens `--logfile` and
//! `--audit-log` (logrotate renames them, then signals), and `-vv` logs a
//! client error found when a request runs (`incr` on a value that is not
//! a number), as memcached's `-vv` does, whichever shard ran it.

mod common;

use common::{read_until, Server};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn temp(tag: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("cc-logs-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

/// Waits until `p` holds `n` lines with `what` (the log writer thread
/// writes --logfile lines a moment later).
fn wait_for(p: &Path, what: &str, n: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = read(p);
        if text.matches(what).count() >= n {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{n} x {what} not in {p:?}:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `incr` on `n` keys holding text (spread over the shards): each answers
/// memcached's CLIENT_ERROR.
fn bad_incrs(srv: &Server, tag: &str, n: usize) {
    let mut s = srv.connect();
    for i in 0..n {
        write!(s, "set {tag}{i} 0 0 3\r\nabc\r\nincr {tag}{i} 1\r\n").unwrap();
        read_until(
            &mut s,
            b"STORED\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\n",
        );
    }
}

const INCR_LINE: &str = "client error";

#[test]
fn client_errors_found_when_running_are_logged_at_vv() {
    let log = temp("vv");
    let srv = Server::start(&["-t", "4", "-vv", "--logfile", log.to_str().unwrap()]);
    bad_incrs(&srv, "n", 12);
    let text = wait_for(&log, "cannot increment or decrement non-numeric value", 12);
    assert_eq!(text.matches(INCR_LINE).count(), 12, "{text}");
    let _ = std::fs::remove_file(&log);
}

#[test]
fn sighup_reopens_the_log_and_the_audit_trail() {
    let (log, audit) = (temp("log"), temp("audit"));
    let srv = Server::start(&[
        "-vv",
        "--logfile",
        log.to_str().unwrap(),
        "--audit-log",
        audit.to_str().unwrap(),
    ]);
    let mut s = srv.connect();
    s.write_all(b"flush_all\r\n").unwrap();
    read_until(&mut s, b"OK\r\n");
    bad_incrs(&srv, "a", 1);
    wait_for(&log, INCR_LINE, 1);
    wait_for(&audit, "flush_all", 1);
    // What logrotate does: rename, then signal.
    let (log1, audit1) = (log.with_extension("1"), audit.with_extension("1"));
    std::fs::rename(&log, &log1).unwrap();
    std::fs::rename(&audit, &audit1).unwrap();
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(srv.child.id() as i32, libc::SIGHUP) };
    // The reopen is audited, in the new trail.
    let fresh = wait_for(&audit, "log_reopen", 1);
    assert!(fresh.contains(log.to_str().unwrap()), "{fresh}");
    s.write_all(b"verbosity 2\r\n").unwrap();
    read_until(&mut s, b"OK\r\n");
    bad_incrs(&srv, "b", 1);
    wait_for(&audit, "verbosity", 1);
    wait_for(&log, INCR_LINE, 1);
    // The old files kept their lines and got no new ones.
    let (old_log, old_audit) = (read(&log1), read(&audit1));
    assert_eq!(old_log.matches(INCR_LINE).count(), 1, "{old_log}");
    assert!(old_audit.contains("flush_all") && !old_audit.contains("verbosity"));
    assert!(!old_audit.contains("log_reopen"), "{old_audit}");
    assert!(!read(&audit).contains("flush_all"));
    assert_eq!(srv.stop(), 0);
    for p in [log, log1, audit, audit1] {
        let _ = std::fs::remove_file(p);
    }
}
