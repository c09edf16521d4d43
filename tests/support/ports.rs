//! Free ports for the servers a test starts, never the same one twice in
//! a test process.
//!
//! A port the kernel says is free (bound to port 0, then closed) is free
//! for every other thread too, and tests of one crate run in parallel:
//! two of them once got the same port. One started a server that binds
//! its port and then fails on purpose (`-u no-such-user`, exit 67); the
//! other's first connection landed in that server's listen backlog and
//! was reset when it exited, while its own server, having waited for the
//! port, went on to serve (traced: `tcp_send_reset` from the failing
//! server's main thread, `inet_csk_listen_stop` resetting the queued
//! connection). That was the "first stats reset, server up" CI failure.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::ops::Range;
use std::sync::Mutex;

static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// Records every port of `ports` as this process's, or none of them if
/// one was handed out before (then false).
pub fn claim(ports: Range<u16>) -> bool {
    let mut seen = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    if ports.clone().any(|p| seen.contains(&p)) {
        return false;
    }
    seen.extend(ports);
    true
}

/// A port free now on 127.0.0.1 that no other test of this process was
/// given.
pub fn free_port() -> u16 {
    loop {
        let p = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if claim(p..p + 1) {
            return p;
        }
    }
}
