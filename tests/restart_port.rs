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

/// What connecting to `port` comes to for `window` after its server was
/// killed and reaped: how many attempts were refused, and the first that
/// was not (connected, then whatever the first read gave).
fn after_the_kill(
    port: u16,
    unix: Option<&std::path::Path>,
    window: Duration,
) -> (u32, Option<String>) {
    use std::io::{Read, Write};
    let t = Instant::now();
    let mut refused = 0;
    while t.elapsed() < window {
        let attempt = match unix {
            None => std::net::TcpStream::connect(("127.0.0.1", port))
                .map(|s| Box::new(s) as Box<dyn ReadWrite>),
            Some(p) => std::os::unix::net::UnixStream::connect(p)
                .map(|s| Box::new(s) as Box<dyn ReadWrite>),
        };
        match attempt {
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ECONNREFUSED) | Some(libc::ENOENT)
                ) =>
            {
                refused += 1
            }
            Err(e) => return (refused, Some(format!("connect: {e}"))),
            Ok(mut s) => {
                let _ = s.write_all(b"version\r\n");
                let mut b = [0u8; 64];
                let got = match s.read(&mut b) {
                    Ok(n) => format!("connected, then read {n} bytes"),
                    Err(e) => format!("connected, then {e}"),
                };
                return (refused, Some(got));
            }
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    (refused, None)
}

trait ReadWrite: std::io::Read + std::io::Write {}
impl<T: std::io::Read + std::io::Write> ReadWrite for T {}

/// Once a killed server's process is reaped, its port refuses connections,
/// as memcached's does: clients that fail over (libmemcached replicas,
/// twemproxy) send a refused request to the next server, but count a
/// connection that is accepted and then reset as an error. With the
/// listeners held by io_uring multishot accepts, the dead process's port
/// accepted for 5-11 ms more and reset every such connection. Members of
/// the class tried: one worker, a SO_REUSEPORT group of two, a worker's own
/// port (`-o worker_ports`), and a UNIX socket (`-s`).
#[test]
fn a_killed_server_s_port_refuses_at_once_as_memcached_s_does() {
    let window = Duration::from_millis(100);
    let mut mc = common::Memcached::start(&["-t", "2"]);
    let mut c = mc.connect();
    std::io::Write::write_all(&mut c, b"set k 0 0 1\r\nv\r\n").unwrap();
    common::read_until(&mut c, b"STORED\r\n");
    mc.child.kill().unwrap();
    mc.child.wait().unwrap();
    let (refused, other) = after_the_kill(mc.port, None, window);
    assert!(
        other.is_none() && refused > 0,
        "memcached: {refused} refused, then {other:?}"
    );

    let cases: [(&str, &[&str]); 3] = [
        ("-t 1", &["-t", "1"]),
        ("-t 2", &["-t", "2"]),
        ("-t 2 -o worker_ports", &["-t", "2", "-o", "worker_ports"]),
    ];
    for (name, args) in cases {
        for round in 0..3 {
            let worker_ports = args.contains(&"worker_ports");
            let mut srv = if worker_ports {
                Server::start_block(2, args)
            } else {
                Server::start(args)
            };
            // A client connected, as in production, on each port tried.
            let ports: Vec<u16> = if worker_ports {
                vec![srv.port, srv.port + 1, srv.port + 2]
            } else {
                vec![srv.port]
            };
            let _clients: Vec<_> = ports
                .iter()
                .map(|&p| std::net::TcpStream::connect(("127.0.0.1", p)).unwrap())
                .collect();
            srv.child.kill().unwrap();
            srv.child.wait().unwrap();
            for &p in &ports {
                let (refused, other) = after_the_kill(p, None, window / ports.len() as u32);
                assert!(
                    other.is_none() && refused > 0,
                    "{name}, round {round}, port +{}: {refused} refused, then {other:?}",
                    p - srv.port
                );
            }
        }
    }

    // -s: memcached's UNIX socket only (no TCP port).
    let dir = std::env::temp_dir().join(format!("cc-killed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("s.sock");
    for round in 0..3 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_corecache"))
            .args(["-t", "2", "-s", sock.to_str().unwrap()])
            .args(AS_ROOT)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let _client = loop {
            assert!(Instant::now() < deadline, "-s: did not start");
            if let Ok(mut s) = std::os::unix::net::UnixStream::connect(&sock) {
                std::io::Write::write_all(&mut s, b"version\r\n").unwrap();
                let mut b = [0u8; 64];
                if std::io::Read::read(&mut s, &mut b).unwrap_or(0) > 0 {
                    break s;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        child.kill().unwrap();
        child.wait().unwrap();
        let (refused, other) = after_the_kill(0, Some(&sock), window);
        assert!(
            other.is_none() && refused > 0,
            "-s, round {round}: {refused} refused, then {other:?}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
