//! Start-up as memcached does it, on the real binary: one server per
//! port, root needs `-u` and `-u` switches user, a UNIX socket, `-d`, and
//! Debian's /etc/memcached.conf as shipped. memcached is the oracle where
//! it has the behaviour.

mod started;

use started::*;
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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
    let m = Memcached::start(&[]);
    let q = m.port;
    let out = run(Command::new(BIN).args(["-p", &q.to_string(), "-u", "root"]));
    assert_eq!(out.status.code(), Some(71));
    assert_eq!(stderr(&out), in_use(format!("TCP port {q}")));
}

/// Two `-l` entries naming one address: memcached's second bind finds the
/// first and it exits 71 with "failed to listen"; so does corecache, for a
/// repeated address, a name that resolves to one given already, and a
/// wildcard beside a specific address.
#[test]
fn an_address_listed_twice_is_refused_as_memcached_refuses_it() {
    for list in [
        "127.0.0.1,127.0.0.1",
        "localhost,127.0.0.1",
        "127.0.0.1,0.0.0.0",
    ] {
        let p = free_port().to_string();
        let want =
            format!("failed to listen on one of interface(s) {list}: Address already in use\n");
        let mc =
            run(Command::new("memcached").args(["-p", &p, "-U", "0", "-l", list, "-u", "root"]));
        assert_eq!(mc.status.code(), Some(71), "memcached -l {list}");
        assert_eq!(stderr(&mc), want, "memcached -l {list}");
        let cc = run(Command::new(BIN).args(["-p", &p, "-u", "root", "-l", list]));
        assert_eq!(cc.status.code(), Some(71), "-l {list}: {}", stderr(&cc));
        assert_eq!(stderr(&cc), want, "-l {list}");
    }
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
    let tasks = tasks(s.pid());
    assert!(tasks.len() >= 3, "main and two workers: {tasks:?}");
    for &(_, tid) in &tasks {
        let status = |f: &str| task_status(s.pid(), tid, f);
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

/// Workers are placed by the kernel, as memcached's threads are, unless
/// `-o pin_workers` binds worker *i* to the *i*-th CPU the process may use
/// (main.rs says why the default is off).
#[test]
fn workers_run_anywhere_unless_pinned() {
    for (extra, pinned) in [(&[][..], false), (&["-o", "pin_workers"][..], true)] {
        let mut s = Server::start(&[&["-t", "2"][..], extra].concat());
        let all = proc_status(s.pid(), "Cpus_allowed_list");
        // (Not an io-wq thread a worker's request just started, which
        // bears its name for a moment, before its flags say what it is:
        // seen in CI as a third, twice. Sampled again until it is gone.)
        let sample = || -> Vec<String> {
            tasks(s.pid())
                .into_iter()
                .filter(|(name, tid)| name.starts_with("worker-") && !is_io_worker(s.pid(), *tid))
                .map(|(_, tid)| task_status(s.pid(), tid, "Cpus_allowed_list"))
                .collect()
        };
        let mut workers = sample();
        for _ in 0..40 {
            if workers.len() == 2 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
            workers = sample();
        }
        assert_eq!(workers.len(), 2, "{workers:?}");
        let settings = stats(&ask(s.port, "stats settings\r\n"));
        if pinned {
            assert_eq!(settings["pin_workers"], "yes");
            // One CPU each (a single number, no range or list), and two
            // different ones wherever the process may use two.
            for w in &workers {
                assert!(w.parse::<u32>().is_ok(), "pinned worker may run on {w}");
            }
            if all != workers[0] {
                assert_ne!(workers[0], workers[1]);
            }
        } else {
            assert_eq!(settings["pin_workers"], "no");
            assert_eq!(
                workers,
                [all.clone(), all],
                "placed workers keep the process's CPUs"
            );
        }
        assert_eq!(s.stop(), 0);
    }
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
    // --no-admin: a default admin port another server holds adds a line.
    let out =
        run(Command::new(BIN).args(["-s", path.to_str().unwrap(), "-u", "root", "--no-admin"]));
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

/// memcached's `save_pid`: a pidfile it cannot write is said (naming the
/// temporary file it writes first) and the server serves on without one;
/// corecache exited 71, so a pidfile directory on /run gone after a
/// reboot kept it from starting where memcached starts.
#[test]
fn a_pidfile_that_cannot_be_written_is_said_and_the_daemon_serves() {
    let sock = temp("dsock");
    let out = run(Command::new(BIN).args([
        "-d",
        "-A",
        "-s",
        sock.to_str().unwrap(),
        "-u",
        "root",
        "-P",
        "/nonexistent-dir/corecache.pid",
        "--no-admin",
    ]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        "Could not open the pid file /nonexistent-dir/corecache.pid.tmp for writing: No such file or directory\n"
    );
    let mut s = unix(&sock);
    assert!(exchange(&mut s, b"version\r\n", b"\r\n").starts_with("VERSION "));
    let _ = std::io::Write::write_all(&mut s, b"shutdown\r\n");
    let deadline = Instant::now() + Duration::from_secs(10);
    while sock.exists() {
        assert!(Instant::now() < deadline, "the daemon did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// SIGHUP reloads the password file under `-d` as in the foreground: the
/// daemon ignored SIGHUP, so a user removed from the file kept logging
/// in (found by a breaker).
#[test]
fn a_daemon_reloads_its_password_file_on_sighup() {
    if !is_root() {
        return;
    }
    let (pw, pidfile) = (temp("hup-pw"), temp("hup-pid"));
    std::fs::write(&pw, "old:oldpass\n").unwrap();
    let mut port = 0;
    for _ in 0..5 {
        port = free_port();
        let out = run(Command::new(BIN).args([
            "-d",
            "-u",
            "root",
            "-p",
            &port.to_string(),
            "-Y",
            pw.to_str().unwrap(),
            "-P",
            pidfile.to_str().unwrap(),
            "--no-admin",
        ]));
        match out.status.code() {
            Some(0) => break,
            Some(71) => continue,
            other => panic!("exit {other:?}: {}", stderr(&out)),
        }
    }
    let pid: u32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let login = |user: &str, pass: &str| {
        let cred = format!("{user} {pass}");
        let req = format!("set a 0 0 {}\r\n{cred}\r\n", cred.len());
        exchange(&mut tcp(port), req.as_bytes(), b"\r\n")
    };
    assert_eq!(login("old", "oldpass"), "STORED\r\n");
    std::fs::write(&pw, "new:newpass\n").unwrap();
    // SAFETY: signalling the daemon this test started.
    unsafe { libc::kill(pid as i32, libc::SIGHUP) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while login("new", "newpass") != "STORED\r\n" {
        assert!(Instant::now() < deadline, "SIGHUP did not reload");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        login("old", "oldpass"),
        "CLIENT_ERROR authentication failure\r\n"
    );
    // SAFETY: as above.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    assert!(gone(pid), "daemon did not stop");
    let _ = std::fs::remove_file(&pw);
}

#[test]
fn a_stop_signal_as_soon_as_the_port_answers_stops_cleanly() {
    // The handlers are in place before the first port is bound: SIGTERM
    // the moment the port takes a connection must not kill the process
    // (default action: exit by signal, port held, nothing saved). Seen as
    // "exited -15" in a test that stopped a node right after its start.
    let bin = env!("CARGO_BIN_EXE_corecache");
    for round in 0..20 {
        let port = free_port();
        let mut child = Command::new(bin)
            .args([
                "-u",
                "root",
                "--no-admin",
                "-t",
                "2",
                "-p",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(st) = child.try_wait().unwrap() {
                panic!("round {round}: exited {st} before serving (port taken?)");
            }
            assert!(Instant::now() < deadline, "round {round}: never answered");
            std::thread::sleep(Duration::from_micros(200));
        }
        // SAFETY: signalling the child this test started.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        assert_eq!(exit_within(&mut child, 10), Some(0), "round {round}");
    }
}
