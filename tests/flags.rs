//! Flags as memcached's, on the real binary: each class of flag, repeated
//! flags and layered files, the version clients parse, and `stats
//! settings` beside a live memcached (the oracle). Start-up itself (one
//! server per port, `-u`, `-d`, Debian's conf, UNIX sockets) is in
//! tests/startup.rs.

mod started;

use corecache::version;
use started::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

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
        "-N 1",
        "-U 11211",
        "-B ascii",
        "-o lru_crawler",
        "-o hashpower=16",
        "-o slab_reassign",
    ] {
        assert!(warnings[0].contains(part), "{part} in {}", warnings[0]);
    }
    assert!(!warnings[0].contains("modern") && !warnings[0].contains("maxconns_fast"));
    // -D, -X, -W and -C act (stats detail, dumps, watch, CAS off): no
    // warning.
    for acts in ["-D", "-X", "-W", "-C"] {
        assert!(!warnings[0].contains(acts), "{acts} in {}", warnings[0]);
    }

    let f = temp("file");
    std::fs::write(&f, "u:p\n").unwrap();
    let f = f.to_str().unwrap();
    // -Z needs a certificate, and TCP (memcached's 64 for both).
    for args in [&["-Z"][..], &["-Z", "-s", f, "-o", "ssl_chain_cert=/x.pem"]] {
        let out = run(Command::new(BIN).args(args).args(["-u", "root"]));
        assert_eq!(out.status.code(), Some(64), "{args:?}");
        assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    }
    // A certificate file that cannot be read stops the start.
    let out = run(Command::new(BIN).args([
        "-Z",
        "-o",
        "ssl_chain_cert=/nonexistent.pem",
        "-u",
        "root",
        "-p",
        "1",
    ]));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("/nonexistent.pem"),
        "{}",
        stderr(&out)
    );
    std::fs::remove_file(f).unwrap();
    // -S needs a password file (-Y, or memcached's MEMCACHED_SASL_PWDB).
    for args in [&["-S"][..], &["--enable-sasl"]] {
        let out = run(Command::new(BIN)
            .args(args)
            .args(["-u", "root"])
            .env_remove("MEMCACHED_SASL_PWDB"));
        assert_eq!(out.status.code(), Some(64), "{args:?}");
        assert!(stderr(&out).contains("-Y FILE"), "{}", stderr(&out));
    }
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
    // -k: item memory is locked (as root the memlock limit is lifted
    // before the switch to the -u user), page by page as it is touched
    // (MCL_ONFAULT), as memcached's is as it mallocs: not faulted in whole
    // at start (an empty -m 64 -t 2 held 125 MB before; memcached 67), and
    // as root there is room to raise cache_memlimit, as memcached allows.
    let mb = if is_root() { 256 } else { 1 };
    let mut s = Server::start(&["-t", "1", "-m", &mb.to_string(), "-k"]);
    let kb = |s: &Server, field: &str| -> u64 {
        proc_status(s.pid(), field)
            .trim_end_matches("kB")
            .trim()
            .parse()
            .unwrap()
    };
    let locked = kb(&s, "VmLck");
    assert!(locked >= mb << 10, "VmLck {locked} kB for -m {mb}");
    if is_root() {
        let rss = kb(&s, "VmRSS");
        assert!(rss < (mb << 10) / 2, "VmRSS {rss} kB at start, -m {mb} -k");
        assert_eq!(
            exchange(&mut tcp(s.port), b"cache_memlimit 512\r\n", b"\r\n"),
            "OK\r\n"
        );
        assert_eq!(
            stats(&ask(s.port, "stats\r\n"))["limit_maxbytes"],
            (512u64 << 20).to_string()
        );
    }
    assert_eq!(s.stop(), 0);

    // -k as another user: locked if the limit could be lifted before the
    // switch, else a warning and unlocked; served either way (a finite
    // limit used to abort the server on its first allocation past it).
    if is_root() {
        let mut s = Server::start(&["-t", "2", "-m", "8", "-k", "-u", "nobody"]);
        assert_eq!(
            exchange(
                &mut tcp(s.port),
                b"set a 0 0 1\r\nx\r\nget a\r\n",
                b"END\r\n"
            ),
            "STORED\r\nVALUE a 0 1\r\nx\r\nEND\r\n"
        );
        let locked = kb(&s, "VmLck");
        let log = s.log();
        assert!(
            locked > 0 || log.contains("-k invalid"),
            "neither locked nor warned: {log}"
        );
        assert_eq!(s.stop(), 0);
    }

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
fn item_and_segment_sizes_the_store_cannot_take_are_met_at_start() {
    // -I past the largest segment (8 MiB): memcached takes up to 1 GiB.
    // From -m 128 up this exited 1 naming a segment size nobody gave; it
    // now starts with -I at 8 MiB, says so, and stores that much.
    let mut s = Server::start(&["-t", "1", "-m", "128", "-I", "16m"]);
    let set = stats(&ask(s.port, "stats settings\r\n"));
    assert_eq!(set["item_size_max"], (8u64 << 20).to_string());
    let n = (8 << 20) - 100;
    let mut req = format!("set k 0 0 {n}\r\n").into_bytes();
    req.extend(std::iter::repeat_n(b'v', n));
    req.extend(b"\r\nmg k s\r\n");
    assert_eq!(
        exchange(&mut tcp(s.port), &req, b"HD s8388508\r\n"),
        "STORED\r\nHD s8388508\r\n"
    );
    assert_eq!(s.stop(), 0);
    assert!(
        s.log().contains("-I lowered to 8388608 bytes"),
        "{}",
        s.log()
    );
    // A segment size out of range is refused, as any bad -o value is
    // (0 divided by zero at start: a panic).
    for v in ["segment_size=0", "segment_size=1001", "segment_size=16m"] {
        let out =
            run(Command::new(BIN).args(["-u", "root", "-p", "0", "-s", "/nonexistent/x", "-o", v]));
        assert_eq!(out.status.code(), Some(64), "{v}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("a segment is a multiple of 8 bytes"),
            "{v}: {}",
            stderr(&out)
        );
    }
}

/// memcached allocates as it goes and starts with an -m past RAM and swap;
/// corecache panicked mapping its index (`-m 200000` on a 24 GiB host),
/// refused 16 TiB as "too little memory", and aborted allocating segment
/// headers for `-m 99999999999` (found by a breaker). Now the mappings
/// take no swap reservation and grow as used, a shard past the index's
/// segment count gets larger segments, and past the address space it is
/// refused with a reason.
#[test]
fn memory_limits_past_ram_start_and_past_the_address_space_say_why() {
    for m in ["200000", "16777216"] {
        let mut s = Server::start(&["-t", "2", "-m", m]);
        assert_eq!(
            exchange(
                &mut tcp(s.port),
                b"set k 0 0 1\r\nv\r\nget k\r\n",
                b"END\r\n"
            ),
            "STORED\r\nVALUE k 0 1\r\nv\r\nEND\r\n",
            "-m {m}"
        );
        let set = stats(&ask(s.port, "stats settings\r\n"));
        let mb: u64 = m.parse().unwrap();
        assert_eq!(set["maxbytes"], (mb << 20).to_string());
        assert_eq!(s.stop(), 0, "-m {m}");
    }
    for m in ["67108865", "4294967296", "99999999999"] {
        let out =
            run(Command::new(BIN).args(["-u", "root", "-p", "0", "-s", "/nonexistent/x", "-m", m]));
        assert_eq!(out.status.code(), Some(64), "-m {m}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("more than corecache can map"),
            "-m {m}: {}",
            stderr(&out)
        );
    }
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
    let theirs = Memcached::start(&flags);
    let q = theirs.port;
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
        "ssl_verify_mode",
        "ssl_min_version",
        "growth_factor",
        "chunk_size",
        "num_threads_per_udp",
        "stat_key_prefix",
        "detail_enabled",
        "dump_enabled",
        "lru_crawler",
        "track_sizes",
        "ssl_chain_cert",
        "ssl_key",
        "ssl_ca_cert",
        "memory_file",
    ];
    for f in same {
        assert_eq!(a.get(f), b.get(f), "{f}");
    }
    assert_eq!(a["tcpport"], ours.port.to_string());
    // Every other field is corecache's own, not a misspelt memcached one.
    let own = [
        "eviction_policy",
        "segment_size",
        "worker_ports",
        "foreign_reads",
        "borrow_shards",
        "pin_workers",
        "steer_connections",
        "incoming_mem_limit",
        "admin",
    ];
    for k in a.keys() {
        assert!(
            b.contains_key(k) || own.contains(&k.as_str()),
            "{k} is neither memcached's nor listed as corecache's"
        );
    }
    // And every memcached field is there (issue 15).
    for k in b.keys() {
        assert!(a.contains_key(k), "{k} missing");
    }
    assert_eq!(a.len(), b.len() + own.len());
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
    // As memcached 1.6 (which libmemcached's memcapable then expects):
    // words after `version` are ignored, `quit` with words still quits.
    let m = Memcached::start(&[]);
    let q = m.port;
    for port in [s.port, q] {
        let mut c = tcp(port);
        c.write_all(b"version noreply\r\nversion a b\r\nquit x\r\n")
            .unwrap();
        let mut got = String::new();
        c.read_to_string(&mut got).unwrap();
        let lines: Vec<&str> = got.split_terminator("\r\n").collect();
        assert_eq!(lines.len(), 2, "{port}: {got:?}");
        assert!(
            lines.iter().all(|l| l.starts_with("VERSION 1.6.")),
            "{got:?}"
        );
    }
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
