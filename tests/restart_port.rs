//! A restart on the same port right after the last process died (a crash,
//! SIGKILL, systemd's restart) starts, as memcached's does: the kernel
//! keeps an io_uring process's listening sockets for a moment after it
//! exits, and the new process once exited 71 on them.

mod common;

use common::{Server, AS_ROOT};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn a_restart_right_after_a_kill_binds_the_same_port() {
    for threads in ["1", "2"] {
        let mut srv = Server::start(&["-t", threads]);
        let port = srv.port;
        for round in 0..4 {
            // Traffic in flight when the process dies.
            let mut c = srv.connect();
            std::io::Write::write_all(&mut c, b"set k 0 0 1\r\nv\r\n").unwrap();
            common::read_until(&mut c, b"STORED\r\n");
            srv.child.kill().unwrap();
            srv.child.wait().unwrap();
            let child = Command::new(env!("CARGO_BIN_EXE_corecache"))
                .args(["-p", &port.to_string(), "-t", threads])
                .args(AS_ROOT)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            srv = Server { child, port };
            let t = Instant::now();
            assert!(
                srv.answers_as_itself(),
                "-t {threads}, restart {round}: did not start on its port"
            );
            assert!(t.elapsed() < Duration::from_secs(10));
        }
    }
}
