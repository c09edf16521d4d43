//! Flags as memcached's, on the real binary: each class of flag, repeated
//! flags and layered files, Debian's memcached.conf as shipped, `-u`,
//! `-d`, a UNIX socket, one server per port, the version clients parse,
//! and `stats settings` beside a live memcached (the oracle).

use corecache::version;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_corecache");

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn temp(name: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::env::temp_dir().join(format!("cc-flags-{}-{n}-{name}", std::process::id()))
}

/// A request and its reply up to `end` on any stream.
fn exchange<S: Read + Write>(s: &mut S, req: &[u8], end: &[u8]) -> String {
    s.write_all(req).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    while !out.ends_with(end) {
        let n = s.read(&mut buf).expect("reply");
        assert!(n > 0, "closed early: {:?}", String::from_utf8_lossy(&out));
        out.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn tcp(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

fn ask(port: u16, req: &str) -> String {
    exchange(&mut tcp(port), req.as_bytes(), b"END\r\n")
}

/// `STAT name value` lines as a map.
fn stats(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("STAT "))
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A line of /proc/PID/status, e.g. "Uid", without its name.
fn proc_status(pid: u32, field: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} for {pid}"))
        .trim()
        .to_string()
}

/// Waits for `child` to exit, at most `secs`; kills it if it does not.
fn exit_within(child: &mut Child, secs: u64) -> Option<i32> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if let Some(st) = child.try_wait().unwrap() {
            return st.code();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// Runs a command that must exit by itself; its output.
fn run(cmd: &mut Command) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let code = exit_within(&mut child, 20);
    assert!(code.is_some(), "{cmd:?} did not exit");
    child.wait_with_output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A corecache started by a test, killed if the test fails.
struct Server {
    child: Child,
    port: u16,
    /// Its stderr, read with `log()`.
    err: PathBuf,
}

impl Server {
    /// Starts corecache on a free TCP port (another port when that one
    /// was taken meanwhile: exit 71), adding `-u root` unless `args`
    /// names a user; returns once `stats` there reports its pid.
    fn start(args: &[&str]) -> Server {
        for _ in 0..5 {
            let port = free_port();
            let err = temp("stderr");
            let mut cmd = Command::new(BIN);
            cmd.args(["-p", &port.to_string()]).args(args);
            if !args.contains(&"-u") {
                cmd.args(["-u", "root"]);
            }
            let child = cmd
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&err).unwrap())
                .spawn()
                .unwrap();
            let mut srv = Server { child, port, err };
            match srv.wait_serving(|| TcpStream::connect(("127.0.0.1", port)).ok().map(tcp_box)) {
                Ok(()) => return srv,
                Err(71) => continue,
                Err(code) => panic!("server exited {code} at start: {}", srv.log()),
            }
        }
        panic!("no free port in 5 tries");
    }

    /// Polls until `connect` reaches a server whose `stats` shows this
    /// child's pid; the child's exit status if it exits first.
    fn wait_serving(
        &mut self,
        connect: impl Fn() -> Option<Box<dyn ReadWrite>>,
    ) -> Result<(), i32> {
        let want = format!("STAT pid {}\r\n", self.child.id());
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(st) = self.child.try_wait().unwrap() {
                return Err(st.code().unwrap_or(-1));
            }
            if let Some(mut s) = connect() {
                let got = exchange(&mut s, b"stats\r\n", b"END\r\n");
                assert!(got.contains(&want), "another server answers: {got}");
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("server did not answer: {}", self.log());
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    /// SIGTERM; the exit status.
    fn stop(&mut self) -> i32 {
        // SAFETY: signalling our own child process.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        exit_within(&mut self.child, 10).expect("no exit after SIGTERM")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.err);
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

fn tcp_box(s: TcpStream) -> Box<dyn ReadWrite> {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    Box::new(s)
}

/// Debian's memcached on `port`, for comparisons (killed on drop).
struct Memcached(Child);

impl Memcached {
    fn start(port: u16, args: &[&str]) -> Memcached {
        let child = Command::new("memcached")
            .args([
                "-p",
                &port.to_string(),
                "-U",
                "0",
                "-l",
                "127.0.0.1",
                "-u",
                "root",
            ])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("memcached (apt-get install memcached; scripts/test.sh does)");
        let m = Memcached(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "memcached did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        m
    }
}

impl Drop for Memcached {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_second_server_on_a_port_exits_71_and_the_first_keeps_every_client() {
    let mut first = Server::start(&["-t", "2"]);
    let p = first.port.to_string();
    let in_use = |what: String| format!("failed to listen on {what}: Address already in use\n");
    for (extra, want) in [
        (&[][..], in_use(format!("TCP port {p}"))),
        (&["-t", "1"], in_use(format!("TCP port {p}"))),
        (&["-t", "3"], in_use(format!("TCP port {p}"))),
        (
            &["-l", "127.0.0.1"],
            in_use("one of interface(s) 127.0.0.1".into()),
        ),
    ] {
        let out = run(Command::new(BIN).args(["-p", &p, "-u", "root"]).args(extra));
        assert_eq!(out.status.code(), Some(71), "{extra:?}: {}", stderr(&out));
        assert_eq!(stderr(&out), want, "{extra:?}");
    }
    // The oracle: memcached refuses the port in the same words.
    let out =
        run(Command::new("memcached").args(["-p", &p, "-U", "0", "-l", "127.0.0.1", "-u", "root"]));
    assert_eq!(out.status.code(), Some(71));
    assert_eq!(stderr(&out), in_use("one of interface(s) 127.0.0.1".into()));
    // Every connection, old and new, reaches the first server.
    let mut conns: Vec<TcpStream> = (0..64).map(|_| tcp(first.port)).collect();
    let want = format!("STAT pid {}\r\n", first.pid());
    for s in conns.iter_mut() {
        assert!(exchange(s, b"stats\r\n", b"END\r\n").contains(&want));
    }
    assert_eq!(first.stop(), 0);

    // And the other way round: a port memcached holds is refused too.
    let q = free_port();
    let _m = Memcached::start(q, &[]);
    let out = run(Command::new(BIN).args(["-p", &q.to_string(), "-u", "root"]));
    assert_eq!(out.status.code(), Some(71));
    assert_eq!(stderr(&out), in_use(format!("TCP port {q}")));
}

#[test]
fn root_needs_dash_u_and_the_user_must_exist_as_in_memcached() {
    let p = free_port().to_string();
    for (user, code, msg) in [
        (
            None,
            64,
            "can't run as root without the -u switch\n".to_string(),
        ),
        (
            Some("no-such-user-cc"),
            67,
            "can't find the user no-such-user-cc to switch to\n".to_string(),
        ),
    ] {
        let with_user = |c: &mut Command| {
            if let Some(u) = user {
                c.args(["-u", u]);
            }
        };
        let mut ours = Command::new(BIN);
        ours.args(["-p", &p]);
        with_user(&mut ours);
        let mut theirs = Command::new("memcached");
        theirs.args(["-p", &p, "-U", "0", "-l", "127.0.0.1"]);
        with_user(&mut theirs);
        if is_root() {
            let (o, t) = (run(&mut ours), run(&mut theirs));
            assert_eq!(o.status.code(), Some(code), "{}", stderr(&o));
            assert_eq!(stderr(&o), msg);
            assert_eq!((o.status.code(), stderr(&o)), (t.status.code(), stderr(&t)));
        } else {
            // Not root: both ignore -u, and corecache serves as this user.
            let mut s = match user {
                Some(u) => Server::start(&["-t", "1", "-u", u]),
                None => Server::start(&["-t", "1"]),
            };
            let me = nix::unistd::getuid().as_raw();
            assert!(proc_status(s.pid(), "Uid").starts_with(&format!("{me}\t")));
            assert_eq!(s.stop(), 0);
        }
    }
}

#[test]
fn dash_u_nobody_runs_every_thread_as_nobody() {
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    let (uid, gid) = if is_root() {
        (nobody.uid.as_raw(), nobody.gid.as_raw())
    } else {
        (
            nix::unistd::getuid().as_raw(),
            nix::unistd::getgid().as_raw(),
        )
    };
    let mut s = Server::start(&["-t", "2", "-u", "nobody"]);
    let tasks: Vec<_> = std::fs::read_dir(format!("/proc/{}/task", s.pid()))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(tasks.len() >= 3, "main and two workers: {tasks:?}");
    for t in &tasks {
        let tid: u32 = t.parse().unwrap();
        let status = |f: &str| {
            std::fs::read_to_string(format!("/proc/{}/task/{tid}/status", s.pid()))
                .unwrap()
                .lines()
                .find_map(|l| {
                    l.strip_prefix(&format!("{f}:"))
                        .map(|v| v.trim().to_string())
                })
                .unwrap()
        };
        assert_eq!(
            status("Uid"),
            format!("{uid}\t{uid}\t{uid}\t{uid}"),
            "task {tid}"
        );
        assert_eq!(
            status("Gid"),
            format!("{gid}\t{gid}\t{gid}\t{gid}"),
            "task {tid}"
        );
        if is_root() {
            // initgroups: nobody's groups, none of root's.
            let groups = status("Groups");
            assert!(!groups.split_whitespace().any(|g| g == "0"), "{groups}");
        }
    }
    let mut c = tcp(s.port);
    assert_eq!(
        exchange(&mut c, b"set k 1 0 2\r\nhi\r\nget k\r\n", b"END\r\n"),
        "STORED\r\nVALUE k 1 2\r\nhi\r\nEND\r\n"
    );
    assert_eq!(s.stop(), 0);
}

fn unix(path: &Path) -> UnixStream {
    let s = UnixStream::connect(path).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

#[test]
fn unix_socket_serves_every_worker_and_is_owned_by_one_server() {
    let path = temp("sock");
    // A socket file left by a server that is gone is replaced.
    drop(UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let spawn = || {
        Command::new(BIN)
            .args([
                "-s",
                path.to_str().unwrap(),
                "-a",
                "770",
                "-t",
                "2",
                "-u",
                "root",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut srv = Server {
        child: spawn(),
        port: 0,
        err: temp("unused"),
    };
    srv.wait_serving(|| {
        UnixStream::connect(&path).ok().map(|s| {
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            Box::new(s) as Box<dyn ReadWrite>
        })
    })
    .unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o770, "-a 770");

    // Many clients at once, keys on both shards, a value large enough to
    // leave by reference (sendmsg from segment memory).
    let big = "v".repeat(100_000);
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let path = path.clone();
            let big = big.clone();
            std::thread::spawn(move || {
                let mut s = unix(&path);
                for j in 0..50 {
                    let v = if j == 0 {
                        big.clone()
                    } else {
                        format!("value-{i}-{j}")
                    };
                    let req = format!("set k{i}-{j} {j} 0 {}\r\n{v}\r\nget k{i}-{j}\r\n", v.len());
                    let got = exchange(&mut s, req.as_bytes(), b"END\r\n");
                    assert_eq!(
                        got,
                        format!("STORED\r\nVALUE k{i}-{j} {j} {}\r\n{v}\r\nEND\r\n", v.len())
                    );
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let st = stats(&exchange(
        &mut unix(&path),
        b"stats settings\r\n",
        b"END\r\n",
    ));
    assert_eq!(st["domain_socket"], path.to_str().unwrap());
    assert_eq!(st["umask"], "770");
    assert_eq!(st["tcpport"], "0", "-s turns TCP off, as in memcached");
    let st = stats(&exchange(&mut unix(&path), b"stats\r\n", b"END\r\n"));
    assert!(st["curr_connections"].parse::<u32>().unwrap() >= 1);

    // A second server on the same path is refused; the first still serves.
    let out = run(Command::new(BIN).args(["-s", path.to_str().unwrap(), "-u", "root"]));
    assert_eq!(out.status.code(), Some(71));
    assert_eq!(
        stderr(&out),
        format!(
            "failed to listen on UNIX socket: {}: Address already in use\n",
            path.display()
        )
    );
    assert_eq!(
        exchange(&mut unix(&path), b"get k3-7\r\n", b"END\r\n"),
        "VALUE k3-7 7 9\r\nvalue-3-7\r\nEND\r\n"
    );
    assert_eq!(srv.stop(), 0);
    assert!(!path.exists(), "the socket file is removed at exit");
}

/// Waits until `pid` (not our child) has exited.
fn gone(pid: u32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => return true,
            // Exited, waiting for a reaper that is not us.
            Ok(s) if s.rsplit(')').next().unwrap().trim_start().starts_with('Z') => return true,
            Ok(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    false
}

#[test]
fn debian_memcached_conf_as_shipped_daemonizes_drops_to_memcache_and_logs() {
    let conf = "/etc/memcached.conf";
    assert!(
        Path::new(conf).exists(),
        "Debian's memcached package ships it (scripts/test.sh installs it)"
    );
    let (pidfile, log) = (temp("pid"), temp("log"));
    // The file as shipped; only where it would touch the system's own
    // memcached (port 11211, /run/memcached, /var/log) is overridden.
    let mut port = 0;
    for _ in 0..5 {
        port = free_port();
        let out = run(Command::new(BIN).args([
            "--conf",
            conf,
            "-p",
            &port.to_string(),
            "-P",
            pidfile.to_str().unwrap(),
            "--logfile",
            log.to_str().unwrap(),
        ]));
        match out.status.code() {
            Some(0) => break,
            Some(71) => continue,
            other => panic!("exit {other:?}: {}", stderr(&out)),
        }
    }
    // The parent exits 0 only once the daemon serves.
    let pid: u32 = std::fs::read_to_string(&pidfile)
        .expect("pidfile written")
        .trim()
        .parse()
        .unwrap();
    let st = stats(&ask(port, "stats\r\n"));
    assert_eq!(st["pid"], pid.to_string());
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(fields[3], pid.to_string(), "session leader (setsid)");
    assert_ne!(fields[1], std::process::id().to_string());
    if is_root() {
        let memcache = nix::unistd::User::from_name("memcache").unwrap().unwrap();
        let u = memcache.uid.as_raw();
        assert_eq!(
            proc_status(pid, "Uid"),
            format!("{u}\t{u}\t{u}\t{u}"),
            "-u memcache"
        );
    }
    for fd in [1, 2] {
        assert_eq!(
            std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).unwrap(),
            log,
            "logfile gets fd {fd}"
        );
    }
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/fd/0")).unwrap(),
        Path::new("/dev/null")
    );
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap(),
        Path::new("/")
    );
    let set = stats(&ask(port, "stats settings\r\n"));
    assert_eq!(set["maxbytes"], (64 << 20).to_string(), "-m 64");
    assert_eq!(set["inter"], "127.0.0.1", "-l 127.0.0.1");
    assert_eq!(
        set["tcpport"],
        port.to_string(),
        "the command line beats -p 11211"
    );
    // SAFETY: signalling the daemon this test started.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    assert!(gone(pid), "daemon did not stop");
    assert!(!pidfile.exists(), "pidfile removed at exit");
    let _ = std::fs::remove_file(&log);
}

#[test]
fn a_daemon_that_cannot_start_says_why_and_exits_with_its_status() {
    let sock = temp("dsock");
    let out = run(Command::new(BIN).args([
        "-d",
        "-s",
        sock.to_str().unwrap(),
        "-u",
        "root",
        "-P",
        "/nonexistent-dir/corecache.pid",
    ]));
    assert_eq!(out.status.code(), Some(71));
    assert_eq!(
        stderr(&out),
        "Could not open the pid file /nonexistent-dir/corecache.pid for writing: No such file or directory\n"
    );
    assert!(!sock.exists(), "the failed daemon removes its socket file");
}

#[test]
fn options_without_effect_warn_once_and_missing_safety_features_refuse() {
    let mut s = Server::start(&[
        "-t",
        "1",
        "-f",
        "1.25",
        "-n",
        "48",
        "-R",
        "20",
        "-D",
        ":",
        "-X",
        "-W",
        "-N",
        "1",
        "-U",
        "11211",
        "-B",
        "ascii",
        "-C",
        "-o",
        "lru_crawler,hashpower=16",
        "-o",
        "modern,maxconns_fast,slab_reassign",
    ]);
    assert!(ask(s.port, "stats settings\r\n").lines().count() > 10);
    assert_eq!(s.stop(), 0);
    let log = s.log();
    let warnings: Vec<&str> = log.lines().filter(|l| l.contains("warning")).collect();
    assert_eq!(warnings.len(), 1, "{log}");
    for part in [
        "-f 1.25",
        "-n 48",
        "-R 20",
        "-D :",
        "-X",
        "-W",
        "-N 1",
        "-U 11211",
        "-B ascii",
        "-C",
        "-o lru_crawler",
        "-o hashpower=16",
        "-o slab_reassign",
    ] {
        assert!(warnings[0].contains(part), "{part} in {}", warnings[0]);
    }
    assert!(!warnings[0].contains("modern") && !warnings[0].contains("maxconns_fast"));

    let f = temp("file");
    std::fs::write(&f, "u:p\n").unwrap();
    let f = f.to_str().unwrap();
    for args in [
        &["-S"][..],
        &["--enable-sasl"],
        &["-Y", f],
        &["-Z"],
        &["-e", f],
        &["-o", "ssl_chain_cert=/x.pem"],
    ] {
        let out = run(Command::new(BIN).args(args).args(["-u", "root"]));
        assert_eq!(out.status.code(), Some(64), "{args:?}");
        let e = stderr(&out);
        assert!(e.contains("not available yet"), "{args:?}: {e}");
        assert_eq!(e.lines().count(), 1, "{e}");
    }
    std::fs::remove_file(f).unwrap();
    for args in [&["-q"][..], &["-o", "bogus"], &["-B", "udp"], &["-a", "9"]] {
        let out = run(Command::new(BIN).args(args));
        assert_eq!(out.status.code(), Some(64), "{args:?}");
    }
    let print = |f: &str| {
        let out = run(Command::new(BIN).arg(f));
        assert_eq!(out.status.code(), Some(0), "{f}");
        String::from_utf8(out.stdout).unwrap()
    };
    assert!(print("-h").contains("--unix-socket"));
    assert_eq!(
        print("-V"),
        format!(
            "corecache {} (memcached {} protocol)\n",
            version::CORECACHE,
            version::MEMCACHED
        )
    );
    assert!(print("-i").contains("MIT"));
}

#[test]
fn flags_with_a_meaning_act() {
    // -k: item memory is locked as it is mapped (as root the memlock limit
    // is lifted before the switch to the -u user).
    let mb = if is_root() { 16 } else { 1 };
    let mut s = Server::start(&["-t", "1", "-m", &mb.to_string(), "-k"]);
    let locked: u64 = proc_status(s.pid(), "VmLck")
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    assert!(locked >= mb << 10, "VmLck {locked} kB for -m {mb}");
    assert_eq!(s.stop(), 0);

    // -r: the core limit as high as it goes.
    let mut s = Server::start(&["-t", "1", "-r"]);
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", s.pid())).unwrap();
    let core: Vec<&str> = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(core[4], core[5], "soft = hard: {core:?}");
    if is_root() {
        assert_eq!(core[4], "unlimited");
    }
    assert_eq!(s.stop(), 0);

    // -b, -C, -v, -M and -L land in the settings (and -L in the store).
    let mut s = Server::start(&["-t", "1", "-b", "77", "-C", "-vv", "-M"]);
    let set = stats(&ask(s.port, "stats settings\r\n"));
    assert_eq!(set["tcp_backlog"], "77");
    assert_eq!(set["cas_enabled"], "no");
    assert_eq!(set["verbosity"], "2");
    assert_eq!(set["evictions"], "off");
    assert_eq!(set["eviction_policy"], "none");
    assert_eq!(s.stop(), 0);
    let kind = |args: &[&str]| {
        let mut s = Server::start(args);
        let k = stats(&ask(s.port, "stats\r\n"))["page_kind"].clone();
        assert_eq!(s.stop(), 0);
        k
    };
    let plain = kind(&["-t", "1", "-o", "hugepages=off"]);
    assert_eq!(plain, "plain");
    assert_ne!(kind(&["-t", "1", "-o", "hugepages=off", "-L"]), plain);
}

#[test]
fn repeated_flags_take_the_last_value_and_the_command_line_beats_files() {
    // -p twice: only the last port is served.
    let (unused, port) = (free_port(), free_port());
    let mut srv = Server {
        child: Command::new(BIN)
            .args(["-p", &unused.to_string(), "-p", &port.to_string()])
            .args([
                "-m",
                "8",
                "--memory-limit=16",
                "-c",
                "100",
                "-c",
                "200",
                "-u",
                "root",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
        port,
        err: temp("unused"),
    };
    srv.wait_serving(|| TcpStream::connect(("127.0.0.1", port)).ok().map(tcp_box))
        .unwrap_or_else(|code| panic!("exit {code}"));
    let set = stats(&ask(port, "stats settings\r\n"));
    assert_eq!(set["maxbytes"], (16 << 20).to_string());
    assert_eq!(set["maxconns"], "200");
    assert!(TcpStream::connect(("127.0.0.1", unused)).is_err());
    assert_eq!(srv.stop(), 0);

    // Files: conf under TOML under the command line; -l replaced, not
    // added to (the conf's 10.9.8.7 is not an address here: binding it
    // would fail).
    let conf = temp("conf");
    std::fs::write(
        &conf,
        "# as Debian writes them\n-m 32\n-c 77\n-l 10.9.8.7\n-o idle_timeout=5\n-t 1 -v\n",
    )
    .unwrap();
    let toml = temp("toml");
    std::fs::write(&toml, "memory-limit = 40\nconn-limit = 88\n").unwrap();
    let c = format!("--conf={}", conf.display());
    let t = format!("--config={}", toml.display());
    let mut s = Server::start(&[&c, &t, "-m", "48", "-l", "127.0.0.1"]);
    let set = stats(&ask(s.port, "stats settings\r\n"));
    assert_eq!(set["maxbytes"], (48 << 20).to_string(), "command line");
    assert_eq!(set["maxconns"], "88", "TOML over conf");
    assert_eq!(set["inter"], "127.0.0.1");
    assert_eq!(set["idle_timeout"], "5", "conf where nothing overrides");
    assert_eq!(set["num_threads"], "1");
    assert_eq!(set["verbosity"], "1", "two flags on one conf line");
    assert_eq!(s.stop(), 0);
    let mut s = Server::start(&["--conf", conf.to_str().unwrap(), &t, "-l", "127.0.0.1"]);
    let set = stats(&ask(s.port, "stats settings\r\n"));
    assert_eq!(set["maxbytes"], (40 << 20).to_string());
    assert_eq!(s.stop(), 0);
    std::fs::remove_file(&conf).unwrap();
    std::fs::remove_file(&toml).unwrap();
}

#[test]
fn stats_settings_agree_with_memcached_for_the_same_flags() {
    let flags = [
        "-m",
        "32",
        "-c",
        "500",
        "-t",
        "2",
        "-b",
        "77",
        "-I",
        "512k",
        "-A",
        "-F",
        "-v",
        "-M",
        "-a",
        "750",
        "-o",
        "idle_timeout=9",
    ];
    let mut ours = Server::start(&[&flags[..], &["-l", "127.0.0.1"]].concat());
    let q = free_port();
    let _theirs = Memcached::start(q, &flags);
    let a = stats(&ask(ours.port, "stats settings\r\n"));
    let b = stats(&ask(q, "stats settings\r\n"));
    let same = [
        "maxbytes",
        "maxconns",
        "udpport",
        "inter",
        "verbosity",
        "evictions",
        "domain_socket",
        "umask",
        "shutdown_command",
        "num_threads",
        "cas_enabled",
        "tcp_backlog",
        "binding_protocol",
        "auth_enabled_sasl",
        "auth_enabled_ascii",
        "item_size_max",
        "maxconns_fast",
        "flush_enabled",
        "idle_timeout",
        "ssl_enabled",
    ];
    for f in same {
        assert_eq!(a.get(f), b.get(f), "{f}");
    }
    assert_eq!(a["tcpport"], ours.port.to_string());
    // Every other field is corecache's own, not a misspelt memcached one.
    let own = ["eviction_policy", "segment_size"];
    for k in a.keys() {
        assert!(
            b.contains_key(k) || own.contains(&k.as_str()),
            "{k} is neither memcached's nor listed as corecache's"
        );
    }
    assert_eq!(a.len(), same.len() + 1 + own.len());
    assert_eq!(ours.stop(), 0);
}

#[test]
fn the_version_is_one_libmemcached_accepts_with_corecaches_own_beside_it() {
    let mut s = Server::start(&["-t", "1"]);
    assert!(version::VERSION.starts_with("1.6."));
    let mut c = tcp(s.port);
    assert_eq!(
        exchange(&mut c, b"version\r\n", b"\r\n"),
        format!("VERSION {}\r\n", version::VERSION)
    );
    // Binary VERSION (a connection speaks one protocol): the same string.
    let mut c = tcp(s.port);
    let mut req = [0u8; 24];
    req[0] = 0x80;
    req[1] = 0x0b;
    c.write_all(&req).unwrap();
    let mut head = [0u8; 24];
    c.read_exact(&mut head).unwrap();
    let len = u32::from_be_bytes(head[8..12].try_into().unwrap()) as usize;
    let mut body = vec![0u8; len];
    c.read_exact(&mut body).unwrap();
    assert_eq!((head[0], head[6], head[7]), (0x81, 0, 0));
    assert_eq!(body, version::VERSION.as_bytes());
    let st = stats(&ask(s.port, "stats\r\n"));
    assert_eq!(st["version"], version::VERSION);
    assert_eq!(st["corecache_version"], version::CORECACHE);
    // libmemcached strtol()s major.minor.micro; major 0 was refused.
    let server = format!("--servers=127.0.0.1:{}", s.port);
    let ping = run(Command::new("memcping").arg(&server));
    assert_eq!(ping.status.code(), Some(0), "{}", stderr(&ping));
    let stat = run(Command::new("memcstat").arg(&server));
    assert_eq!(stat.status.code(), Some(0), "{}", stderr(&stat));
    assert!(
        String::from_utf8_lossy(&stat.stdout).contains(&format!("version: {}", version::VERSION))
    );
    assert_eq!(s.stop(), 0);
}
