//! The real binary over real sockets: pipelining split at every byte,
//! multigets across shards, ordering, limits, bad input, shutdown.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::*;

#[test]
fn pipelined_requests_split_at_every_byte_boundary() {
    let srv = Server::start(&["-t", "2"]);
    let script: &[u8] = b"set a 1 0 3\r\nabc\r\nset b 2 0 2\r\nxy\r\nget a b zz\r\nincr n 1\r\nappend a 0 0 1\r\nd\r\ngets a\r\nmn\r\n";
    let mut expected: Option<Vec<u8>> = None;
    for split in 1..script.len() {
        let mut s = srv.connect();
        s.write_all(&script[..split]).unwrap();
        s.flush().unwrap();
        std::thread::sleep(Duration::from_millis(2));
        s.write_all(&script[split..]).unwrap();
        let got = read_until(&mut s, b"MN\r\n");
        // CAS values differ per run; compare the reply with the cas masked.
        let text = String::from_utf8(got).unwrap();
        let masked: Vec<u8> = text
            .lines()
            .map(|l| {
                if l.starts_with("VALUE a 1 4 ") {
                    "VALUE a 1 4 <cas>".to_string()
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
            .into_bytes();
        match &expected {
            None => {
                assert!(text.starts_with("STORED\r\nSTORED\r\nVALUE a 1 3\r\nabc\r\nVALUE b 2 2\r\nxy\r\nEND\r\nNOT_FOUND\r\nSTORED\r\nVALUE a 1 4 "), "{text}");
                expected = Some(masked);
            }
            Some(e) => assert_eq!(&masked, e, "split at {split}"),
        }
    }
    assert_eq!(srv.stop(), 0);
}

#[test]
fn multiget_across_shards_keeps_request_order() {
    let srv = Server::start(&["-t", "2"]);
    let mut s = srv.connect();
    let mut req = Vec::new();
    for i in 0..200 {
        req.extend_from_slice(
            format!("set key{i} {i} 0 {}\r\nval{i}\r\n", format!("val{i}").len()).as_bytes(),
        );
    }
    s.write_all(&req).unwrap();
    let stored = read_until(&mut s, &b"STORED\r\n".repeat(200));
    assert_eq!(stored, b"STORED\r\n".repeat(200));
    let keys: Vec<String> = (0..200).map(|i| format!("key{i}")).collect();
    s.write_all(format!("get {}\r\n", keys.join(" ")).as_bytes())
        .unwrap();
    let got = read_until(&mut s, b"END\r\n");
    let mut want = Vec::new();
    for i in 0..200 {
        want.extend_from_slice(
            format!("VALUE key{i} {i} {}\r\nval{i}\r\n", format!("val{i}").len()).as_bytes(),
        );
    }
    want.extend_from_slice(b"END\r\n");
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(&want)
    );
    // Some keys must have crossed shards for this test to mean anything.
    s.write_all(b"stats\r\n").unwrap();
    let st = String::from_utf8(read_until(&mut s, b"END\r\n")).unwrap();
    // (The other worker's sets hopped, or ran on its shard here while it
    // slept: engine/lend.rs.)
    let stat = |name: &str| -> u64 {
        st.lines()
            .find_map(|l| l.strip_prefix(&format!("STAT {name} ")))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let sent = stat("cross_shard_sent") + stat("cross_shard_borrowed");
    assert!(sent > 50, "{sent}");
    assert_eq!(srv.stop(), 0);
}

#[test]
fn many_connections_interleave_without_mixing_replies() {
    let srv = Server::start(&["-t", "2"]);
    let handles: Vec<_> = (0..16)
        .map(|c| {
            let port = srv.port;
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                for round in 0..50 {
                    let mut req = Vec::new();
                    for k in 0..10 {
                        let v = format!("c{c}r{round}k{k}");
                        req.extend_from_slice(
                            format!("set c{c}k{k} 0 0 {}\r\n{v}\r\n", v.len()).as_bytes(),
                        );
                    }
                    for k in 0..10 {
                        req.extend_from_slice(format!("get c{c}k{k}\r\n").as_bytes());
                    }
                    s.write_all(&req).unwrap();
                    let got = read_until(&mut s, format!("c{c}r{round}k9\r\nEND\r\n").as_bytes());
                    let text = String::from_utf8(got).unwrap();
                    for k in 0..10 {
                        let v = format!("c{c}r{round}k{k}");
                        assert!(
                            text.contains(&format!("VALUE c{c}k{k} 0 {}\r\n{v}\r\nEND", v.len())),
                            "{text}"
                        );
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(srv.stop(), 0);
}

#[test]
fn bad_input_gets_memcached_errors_and_server_survives() {
    let srv = Server::start(&["-t", "2", "-I", "64k"]);
    let cases: &[(&[u8], &[u8])] = &[
        (b"bogus\r\n", b"ERROR\r\n"),
        (
            b"set k 0 0 -1\r\n",
            b"CLIENT_ERROR bad command line format\r\n",
        ),
        (
            b"set k 0 0 abc\r\n",
            b"CLIENT_ERROR bad command line format\r\n",
        ),
        (
            b"set k 0 0 3\r\nabcde\r\n",
            b"CLIENT_ERROR bad data chunk\r\nERROR\r\n",
        ),
        (
            b"incr k abc\r\n",
            b"CLIENT_ERROR invalid numeric delta argument\r\n",
        ),
        (
            b"touch k abc\r\n",
            b"CLIENT_ERROR invalid exptime argument\r\n",
        ),
    ];
    for (req, want) in cases {
        let got = exchange(&srv, req, b"\r\n");
        assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(want));
    }
    let long_key = "k".repeat(251);
    let got = exchange(&srv, format!("get {long_key}\r\n").as_bytes(), b"\r\n");
    assert!(got.starts_with(b"CLIENT_ERROR bad command line format\r\n"));
    // Too large: the data block is swallowed and the connection stays in sync.
    let mut req = format!("set big 0 0 {}\r\n", 100_000).into_bytes();
    req.extend(std::iter::repeat_n(b'x', 100_000));
    req.extend_from_slice(b"\r\nversion\r\n");
    let got = exchange(&srv, &req, format!("\r\n{}", version_line()).as_bytes());
    assert!(got.starts_with(b"SERVER_ERROR object too large for cache\r\n"));
    // A line over 2048 bytes without a newline closes the connection.
    let mut s = srv.connect();
    s.write_all(&vec![b'a'; 5000]).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(s.read(&mut buf).unwrap_or(0), 0);
    // HTTP probes close silently.
    let mut s = srv.connect();
    s.write_all(b"GET / HTTP/1.1\r\n").unwrap();
    assert_eq!(s.read(&mut buf).unwrap_or(0), 0);
    // A binary header whose key length exceeds its body: memcached's
    // "Unknown command" (checked before the opcode), then closed.
    let mut s = srv.connect();
    let mut h = [0u8; 24];
    h[0] = 0x80;
    h[3] = 10; // key length 10, body length 0
    s.write_all(&h).unwrap();
    let mut resp = [0u8; 64];
    let n = s.read(&mut resp).unwrap();
    assert!(
        n >= 24 && resp[0] == 0x81 && resp[6..8] == [0x00, 0x81],
        "{:?}",
        &resp[..n]
    );
    // Everyone else is still served.
    assert_eq!(
        exchange(&srv, b"version\r\n", b"\r\n"),
        version_line().as_bytes()
    );
    assert_eq!(srv.stop(), 0);
}

#[test]
fn connection_limit_is_enforced() {
    let srv = Server::start(&["-t", "1", "-c", "5"]);
    // The start-up probe's close must be processed before the five are
    // held; when is up to the scheduler (a fixed 300 ms once), so the
    // first of them waits until it is the only connection counted.
    let mut first = srv.connect();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        first.write_all(b"stats\r\n").unwrap();
        let st = read_until(&mut first, b"END\r\n");
        if stat(&st, "curr_connections") == Some(1) {
            break;
        }
        assert!(Instant::now() < deadline, "the probe's close never counted");
        std::thread::sleep(Duration::from_millis(20));
    }
    let held: Vec<TcpStream> = std::iter::once(first)
        .chain((1..5).map(|_| srv.connect()))
        .collect();
    for mut s in held.iter() {
        s.write_all(b"version\r\n").unwrap();
    }
    for s in held.iter() {
        let mut s = s.try_clone().unwrap();
        assert_eq!(read_until(&mut s, b"\r\n"), version_line().as_bytes());
    }
    let mut extra = srv.connect();
    let mut buf = Vec::new();
    let _ = extra.read_to_end(&mut buf);
    assert_eq!(buf, b"ERROR Too many open connections\r\n");
    drop(held);
    // Served again once the server has seen the closes, which takes what
    // the scheduler gives (200 ms once): asked until then; a server that
    // never frees the slots still fails.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let got = exchange(&srv, b"version\r\n", b"\r\n");
        if got == version_line().as_bytes() {
            break;
        }
        assert_eq!(got, b"ERROR Too many open connections\r\n");
        assert!(Instant::now() < deadline, "slots never freed");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(srv.stop(), 0);
}

#[test]
fn client_that_disconnects_mid_request_does_no_harm() {
    let srv = Server::start(&["-t", "2"]);
    for _ in 0..50 {
        let mut s = srv.connect();
        s.write_all(b"set half 0 0 100\r\nonly-part").unwrap();
    }
    let got = exchange(&srv, b"get half\r\n", b"END\r\n");
    assert_eq!(got, b"END\r\n");
    assert_eq!(srv.stop(), 0);
}

#[test]
fn sigterm_finishes_in_flight_work_and_exits_zero() {
    let srv = Server::start(&["-t", "2"]);
    let mut s = srv.connect();
    s.write_all(b"set k 0 0 1\r\nv\r\n").unwrap();
    read_until(&mut s, b"STORED\r\n");
    assert_eq!(srv.stop(), 0);
}

#[test]
fn client_that_does_not_read_is_paused_not_buffered() {
    let srv = Server::start(&["-t", "2", "-m", "64"]);
    let value = vec![b'z'; 500_000];
    let mut s = srv.connect();
    let mut req = format!("set big 0 0 {}\r\n", value.len()).into_bytes();
    req.extend_from_slice(&value);
    req.extend_from_slice(b"\r\n");
    s.write_all(&req).unwrap();
    read_until(&mut s, b"STORED\r\n");
    let before = rss_kib(srv.child.id());
    // 400 gets = 200 MB of replies, sent without reading any.
    let gets = b"get big\r\n".repeat(400);
    let writer = {
        let mut w = s.try_clone().unwrap();
        std::thread::spawn(move || {
            let _ = w.write_all(&gets);
        })
    };
    std::thread::sleep(Duration::from_millis(1500));
    let grown = rss_kib(srv.child.id()).saturating_sub(before);
    assert!(
        grown < 64 * 1024,
        "server grew {grown} KiB for a client that does not read"
    );
    // Others are still served meanwhile.
    assert_eq!(
        exchange(&srv, b"version\r\n", b"\r\n"),
        version_line().as_bytes()
    );
    // Reading now delivers every reply, complete and in order.
    let mut got = 0usize;
    let mut buf = vec![0u8; 1 << 20];
    let want = 400 * (b"VALUE big 0 500000\r\n".len() + 500_002 + 5);
    while got < want {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0);
        got += n;
    }
    assert_eq!(got, want);
    writer.join().unwrap();
    assert_eq!(srv.stop(), 0);
}

#[test]
fn hostile_clients_leave_the_server_bounded_and_serving() {
    let srv = Server::start(&["-t", "2", "-m", "64"]);
    let pid = srv.child.id();
    std::thread::sleep(Duration::from_millis(200));
    let base = rss_kib(pid);

    // A 1 MB line with no newline: closed, not buffered.
    let mut s = srv.connect();
    let _ = s.write_all(&vec![b'x'; 1 << 20]);
    let mut buf = [0u8; 64];
    assert_eq!(s.read(&mut buf).unwrap_or(0), 0);

    // 10,000 keys in one get is legal and answered in full.
    let keys: Vec<String> = (0..10_000).map(|i| format!("many{i}")).collect();
    let mut s = srv.connect();
    s.write_all(b"set many7 0 0 2\r\nhi\r\n").unwrap();
    read_until(&mut s, b"STORED\r\n");
    s.write_all(format!("get {}\r\n", keys.join(" ")).as_bytes())
        .unwrap();
    assert_eq!(
        read_until(&mut s, b"END\r\n"),
        b"VALUE many7 0 2\r\nhi\r\nEND\r\n"
    );

    // Lying and hostile lengths.
    assert_eq!(
        exchange(&srv, b"set k 0 0 99999999999999999999\r\n", b"\r\n"),
        b"CLIENT_ERROR bad command line format\r\n"
    );
    // memcached's safe_strtol keeps a length's low 32 bits: 4294967296 is
    // a 0-byte value, and 2147483648 (negative) is refused.
    assert_eq!(
        exchange(&srv, b"set k 0 0 4294967296\r\n\r\n", b"\r\n"),
        b"STORED\r\n"
    );
    assert_eq!(
        exchange(&srv, b"set k 0 0 2147483648\r\n", b"\r\n"),
        b"CLIENT_ERROR bad command line format\r\n"
    );
    // Binary: a body length that lies (far more than sent) just waits; a huge
    // one on a non-storage opcode is refused and closed.
    let mut s = srv.connect();
    let mut h = vec![0x80u8, 0x00, 0, 1, 0, 0, 0, 0];
    h.extend_from_slice(&u32::MAX.to_be_bytes());
    h.extend_from_slice(&[0; 12]);
    s.write_all(&h).unwrap();
    let mut resp = [0u8; 64];
    let n = s.read(&mut resp).unwrap();
    assert!(n >= 24 && resp[0] == 0x81 && u16::from_be_bytes([resp[6], resp[7]]) == 0x04);
    assert_eq!(s.read(&mut resp).unwrap_or(0), 0);
    // Truncated binary header, then the client goes away.
    let mut s = srv.connect();
    s.write_all(&[0x80, 0x01, 0x00]).unwrap();
    drop(s);
    // Binary garbage after a valid magic byte, and random bytes as text.
    let mut junk = vec![0x80u8];
    let mut x = 0x1234_5678u32;
    for _ in 0..4096 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        junk.push(x as u8);
    }
    let mut s = srv.connect();
    let _ = s.write_all(&junk);
    let _ = s.read(&mut resp);
    let mut s = srv.connect();
    let _ = s.write_all(&junk[1..]);
    let _ = s.read(&mut resp);

    // A client sending one byte at a time does not hold up others.
    let slow_port = srv.port;
    let slow = std::thread::spawn(move || {
        let mut s = TcpStream::connect(("127.0.0.1", slow_port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        for b in b"set slow 0 0 1\r\nz\r\n" {
            s.write_all(&[*b]).unwrap();
            std::thread::sleep(Duration::from_millis(40));
        }
        read_until(&mut s, b"STORED\r\n");
    });
    for _ in 0..20 {
        assert_eq!(
            exchange(&srv, b"version\r\n", b"\r\n"),
            version_line().as_bytes()
        );
    }
    slow.join().unwrap();

    // A thousand connections opened and dropped.
    for _ in 0..1000 {
        let s = TcpStream::connect(("127.0.0.1", srv.port)).unwrap();
        drop(s);
    }
    std::thread::sleep(Duration::from_millis(500));
    let mut s = srv.connect();
    s.write_all(b"get slow\r\n").unwrap();
    assert_eq!(
        read_until(&mut s, b"END\r\n"),
        b"VALUE slow 0 1\r\nz\r\nEND\r\n"
    );
    let grown = rss_kib(pid).saturating_sub(base);
    assert!(grown < 48 * 1024, "RSS grew {grown} KiB");
    assert_eq!(srv.stop(), 0);
}

#[test]
fn toml_config_and_idle_timeout() {
    let port = free_port();
    let path = std::env::temp_dir().join(format!("corecache-test-{port}.toml"));
    std::fs::write(
        &path,
        format!("port = {port}\nthreads = 1\nmemory-limit = 16\nextended = [\"idle_timeout=1\"]\n"),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_corecache"))
        .args(["--config", path.to_str().unwrap()])
        .args(AS_ROOT)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The guard kills the child even if the server never comes up.
    let srv = Server { child, port };
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "server did not start on the configured port"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut s = srv.connect();
    s.write_all(b"stats settings\r\n").unwrap();
    let st = String::from_utf8(read_until(&mut s, b"END\r\n")).unwrap();
    assert!(st.contains("STAT maxbytes 16777216\r\n"), "{st}");
    assert!(st.contains("STAT num_threads 1\r\n"));
    // Silent for over a second: the server hangs up.
    let mut buf = [0u8; 8];
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let t0 = Instant::now();
    assert_eq!(s.read(&mut buf).unwrap(), 0);
    assert!(t0.elapsed() < Duration::from_secs(4));
    std::fs::remove_file(&path).unwrap();
    assert_eq!(srv.stop(), 0);
}

#[test]
fn bad_flags_exit_64_with_a_message() {
    for args in [
        &["-m", "abc"][..],
        &["-o", "eviction=lru"],
        &["--no-such-flag"],
        &["-I", "2m", "-o", "segment_size=1m"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_corecache"))
            .args(args)
            .output()
            .unwrap();
        // sysexits' EX_USAGE, memcached's status for a bad setting.
        assert_eq!(out.status.code(), Some(64), "{args:?}");
        assert!(!out.stderr.is_empty(), "{args:?}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_corecache"))
        .arg("--help")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("--memory-limit"));
}

#[test]
fn shutdown_command_needs_dash_a() {
    let srv = Server::start(&["-t", "2"]);
    assert_eq!(
        exchange(&srv, b"shutdown\r\n", b"\r\n"),
        b"ERROR: shutdown not enabled\r\n"
    );
    assert_eq!(srv.stop(), 0);
    let mut srv = Server::start(&["-t", "2", "-A"]);
    let mut s = srv.connect();
    s.write_all(b"shutdown\r\n").unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(s.read(&mut buf).unwrap_or(0), 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(st) = srv.child.try_wait().unwrap() {
            assert_eq!(st.code(), Some(0));
            break;
        }
        assert!(Instant::now() < deadline, "no exit after shutdown");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn cache_memlimit_adjusts_every_shard_past_m() {
    let srv = Server::start(&["-t", "2", "-m", "64"]);
    let stat = |srv: &Server| -> u64 {
        let st = String::from_utf8(exchange(srv, b"stats\r\n", b"END\r\n")).unwrap();
        st.lines()
            .find_map(|l| l.strip_prefix("STAT limit_maxbytes "))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    // The other shard applies a limit when its worker next runs, after the
    // OK: how soon is the scheduler's (200 ms once), so each is awaited.
    let becomes = |srv: &Server, want: u64| {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let got = stat(srv);
            if got == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "limit_maxbytes {got}, want {want}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    assert_eq!(stat(&srv), 64 << 20);
    assert_eq!(exchange(&srv, b"cache_memlimit 32\r\n", b"\r\n"), b"OK\r\n");
    becomes(&srv, 32 << 20);
    // Past -m, as memcached: the store grows into its reserved room.
    assert_eq!(
        exchange(&srv, b"cache_memlimit 128\r\n", b"\r\n"),
        b"OK\r\n"
    );
    becomes(&srv, 128 << 20);
    // Past the host's memory (the room's end): refused.
    assert_eq!(
        exchange(&srv, b"cache_memlimit 999999999\r\n", b"\r\n"),
        b"MEMLIMIT_ADJUST_FAILED out of bounds or unable to adjust\r\n"
    );
    assert_eq!(
        exchange(&srv, b"cache_memlimit 4\r\n", b"\r\n"),
        b"MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m\r\n"
    );
    assert_eq!(
        exchange(&srv, b"cache_memlimit 64 noreply\r\nversion\r\n", b"\r\n"),
        version_line().as_bytes()
    );
    becomes(&srv, 64 << 20);
    assert_eq!(srv.stop(), 0);
}

#[test]
fn large_values_survive_odd_splits_and_buffer_reuse() {
    // Large sets arrive over many receive buffers and reuse one spare
    // input buffer per worker; each value must come back byte for byte,
    // on both workers, whatever the write sizes.
    let srv = Server::start(&["-t", "2", "-m", "64"]);
    let mut s = srv.connect();
    let sizes = [70_000usize, 300_000, 131_072, 900_000, 65_537, 500_000];
    let value = |i: usize, n: usize| -> Vec<u8> {
        (0..n)
            .map(|j| b'a' + ((i * 7 + j * 13) % 26) as u8)
            .collect()
    };
    let mut req = Vec::new();
    for (i, &n) in sizes.iter().enumerate() {
        req.extend_from_slice(format!("set big{i} 0 0 {n}\r\n").as_bytes());
        req.extend_from_slice(&value(i, n));
        req.extend_from_slice(b"\r\n");
    }
    // Odd write sizes, so headers and values straddle reads.
    let mut pos = 0;
    let mut step = 1;
    while pos < req.len() {
        let end = (pos + step).min(req.len());
        s.write_all(&req[pos..end]).unwrap();
        pos = end;
        step = step * 3 % 65_521 + 1;
    }
    let stored = read_until(&mut s, &b"STORED\r\n".repeat(sizes.len()));
    assert_eq!(stored, b"STORED\r\n".repeat(sizes.len()));
    for (i, &n) in sizes.iter().enumerate() {
        s.write_all(format!("get big{i}\r\n").as_bytes()).unwrap();
        let got = read_until(&mut s, b"END\r\n");
        let mut want = format!("VALUE big{i} 0 {n}\r\n").into_bytes();
        want.extend_from_slice(&value(i, n));
        want.extend_from_slice(b"\r\nEND\r\n");
        assert!(got == want, "value {i} ({n} bytes) came back different");
    }
    assert_eq!(srv.stop(), 0);
}

/// A client socket whose receive buffer is set small before it connects,
/// so the server cannot hand it much: most of a large reply stays queued
/// on the server side until the client reads.
fn connect_with_small_rcvbuf(port: u16) -> TcpStream {
    use std::os::fd::FromRawFd;
    let small: libc::c_int = 4096;
    // SAFETY: a fresh socket we own; option and address structs are fully
    // initialised; the fd is handed to TcpStream only once connected.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0);
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            &small as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        let mut sa: libc::sockaddr_in = std::mem::zeroed();
        sa.sin_family = libc::AF_INET as u16;
        sa.sin_port = port.to_be();
        sa.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
        let r = libc::connect(
            fd,
            &sa as *const _ as *const libc::sockaddr,
            std::mem::size_of_val(&sa) as u32,
        );
        assert_eq!(r, 0, "connect");
        let s = TcpStream::from_raw_fd(fd);
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s
    }
}

#[test]
fn large_value_in_flight_survives_overwrite_flush_and_eviction() {
    // A large value is sent from segment memory (zero-copy). While a slow
    // client has not read it, the key is overwritten, deleted, flushed and
    // the whole cache is churned past -m: the slow client must still get
    // exactly the bytes it asked for, and the server must keep serving.
    let srv = Server::start(&["-t", "1", "-m", "8"]);
    let n = 900_000;
    let old: Vec<u8> = (0..n).map(|j| b'a' + (j % 23) as u8).collect();
    let mut w = srv.connect();
    w.write_all(format!("set big 0 0 {n}\r\n").as_bytes())
        .unwrap();
    w.write_all(&old).unwrap();
    w.write_all(b"\r\n").unwrap();
    assert_eq!(read_until(&mut w, b"\r\n"), b"STORED\r\n");

    let mut slow = connect_with_small_rcvbuf(srv.port);
    // Four reads, two text gets and two meta gets: 3.6 MB, far more than
    // the socket buffers take while the client reads nothing, and under
    // the 4 MiB output cap, so all four run now (more would wait, paused,
    // and rightly miss after the delete).
    slow.write_all(b"get big\r\nmg big v\r\nget big\r\nmg big v\r\n")
        .unwrap();
    let pinned = |srv: &Server| -> u64 {
        let st = String::from_utf8(exchange(srv, b"stats\r\n", b"END\r\n")).unwrap();
        st.lines()
            .find_map(|l| l.strip_prefix("STAT pinned_segments "))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    // The replies really are in flight by reference (the kernel's socket
    // buffers take part of the 3.6 MB; the rest waits, pinned). The gets
    // run when the worker gets to them, which a loaded machine can put
    // off past any fixed pause (200 ms once); the pins stay until the
    // client reads, which it does not yet.
    let pinned_within = |srv: &Server, what: &str| {
        let deadline = Instant::now() + Duration::from_secs(15);
        while pinned(srv) == 0 {
            assert!(Instant::now() < deadline, "{what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    pinned_within(&srv, "large values were not sent by reference");

    let new: Vec<u8> = vec![b'Z'; n];
    for round in 0..3 {
        w.write_all(format!("set big 0 0 {n}\r\n").as_bytes())
            .unwrap();
        w.write_all(&new).unwrap();
        w.write_all(b"\r\n").unwrap();
        assert_eq!(read_until(&mut w, b"\r\n"), b"STORED\r\n");
        w.write_all(b"delete big\r\nflush_all\r\n").unwrap();
        assert_eq!(read_until(&mut w, b"OK\r\n"), b"DELETED\r\nOK\r\n");
        // Churn: three times the memory limit in fresh 100 KB values.
        let filler = vec![b'0' + round as u8; 100_000];
        let mut req = Vec::new();
        for i in 0..240 {
            req.extend_from_slice(format!("set fill{i} 0 0 100000 noreply\r\n").as_bytes());
            req.extend_from_slice(&filler);
            req.extend_from_slice(b"\r\n");
        }
        req.extend_from_slice(b"mn\r\n");
        w.write_all(&req).unwrap();
        assert_eq!(read_until(&mut w, b"MN\r\n"), b"MN\r\n");
    }

    let mut want = Vec::new();
    for _ in 0..2 {
        want.extend_from_slice(format!("VALUE big 0 {n}\r\n").as_bytes());
        want.extend_from_slice(&old);
        want.extend_from_slice(b"\r\nEND\r\n");
        want.extend_from_slice(format!("VA {n}\r\n").as_bytes());
        want.extend_from_slice(&old);
        want.extend_from_slice(b"\r\n");
    }
    let mut got = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    while got.len() < want.len() {
        let k = slow
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("reply after {} of {} bytes: {e}", got.len(), want.len()));
        assert!(k > 0, "closed early");
        got.extend_from_slice(&buf[..k]);
    }
    assert!(got == want, "a value in flight changed under the reader");
    // Every pin is let go once the bytes are out (stats are published
    // each loop turn, which a loaded machine can delay by seconds).
    let deadline = Instant::now() + Duration::from_secs(15);
    while pinned(&srv) != 0 {
        assert!(
            Instant::now() < deadline,
            "pins leaked after the sends completed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // A reader that hangs up mid-reply must not leave its pins behind.
    w.write_all(format!("set big2 0 0 {n}\r\n").as_bytes())
        .unwrap();
    w.write_all(&old).unwrap();
    w.write_all(b"\r\n").unwrap();
    assert_eq!(read_until(&mut w, b"\r\n"), b"STORED\r\n");
    let mut gone = connect_with_small_rcvbuf(srv.port);
    // As above: 3.6 MB, more than the kernel takes for a reader this slow.
    gone.write_all(&b"get big2\r\n".repeat(4)).unwrap();
    pinned_within(&srv, "big2 was not sent by reference");
    drop(gone);
    let deadline = Instant::now() + Duration::from_secs(15);
    while pinned(&srv) != 0 {
        assert!(
            Instant::now() < deadline,
            "pins leaked after the reader hung up"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    w.write_all(b"get big\r\n").unwrap();
    assert_eq!(read_until(&mut w, b"END\r\n"), b"END\r\n");
    assert_eq!(srv.stop(), 0);
}

#[test]
fn prefault_touches_all_item_memory_at_start() {
    // The listener takes connections before the worker runs: the first
    // reply shows the worker (and its prefault) is done.
    let srv = Server::start(&["-t", "1", "-m", "32", "-o", "prefault"]);
    let r = exchange(&srv, b"set k 0 0 1\r\nv\r\nget k\r\n", b"END\r\n");
    assert_eq!(r, b"STORED\r\nVALUE k 0 1\r\nv\r\nEND\r\n");
    let rss = rss_kib(srv.child.id());
    assert!(rss >= 32 * 1024, "RSS {rss} KiB after prefaulting -m 32");
    let lazy = Server::start(&["-t", "1", "-m", "32"]);
    exchange(&lazy, b"version\r\n", b"\r\n");
    let rss_lazy = rss_kib(lazy.child.id());
    assert!(
        rss_lazy < rss,
        "without prefault RSS {rss_lazy} KiB should stay below {rss}"
    );
    assert_eq!(srv.stop(), 0);
}

/// Names of the server's threads (/proc/PID/task/*/comm).
fn thread_names(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|n| n.trim().to_string())
        .collect()
}

#[test]
fn fault_ahead_runs_by_default_and_every_value_written_over_fresh_segments_reads_back() {
    let srv = Server::start(&["-t", "1", "-m", "64"]);
    exchange(&srv, b"version\r\n", b"\r\n");
    assert!(
        thread_names(srv.child.id())
            .iter()
            .any(|n| n == "fault-ahead"),
        "threads: {:?}",
        thread_names(srv.child.id())
    );
    // 24 MiB of distinct values: every segment they land in was faulted in
    // by the helper while the worker wrote the ones before it.
    let mut c = srv.connect();
    let n = 6000;
    let val =
        |i: usize| -> Vec<u8> { (0..4000).map(|j| b'a' + ((i * 7 + j) % 26) as u8).collect() };
    for i in 0..n {
        // One write a request: three would meet Nagle and delayed ACKs.
        let mut req = format!("set fa:{i} 0 0 4000\r\n").into_bytes();
        req.extend_from_slice(&val(i));
        req.extend_from_slice(b"\r\n");
        c.write_all(&req).unwrap();

        assert_eq!(read_until(&mut c, b"\r\n"), b"STORED\r\n");
    }
    for i in 0..n {
        c.write_all(format!("get fa:{i}\r\n").as_bytes()).unwrap();
        let r = read_until(&mut c, b"END\r\n");
        let mut want = format!("VALUE fa:{i} 0 4000\r\n").into_bytes();
        want.extend_from_slice(&val(i));
        want.extend_from_slice(b"\r\nEND\r\n");
        assert!(r == want, "fa:{i} read back wrong");
    }
    assert_eq!(srv.stop(), 0);
    let off = Server::start(&["-t", "1", "-m", "64", "-o", "fault_ahead=off"]);
    exchange(&off, b"version\r\n", b"\r\n");
    assert!(!thread_names(off.child.id())
        .iter()
        .any(|n| n == "fault-ahead"));
    assert_eq!(off.stop(), 0);
}

#[test]
fn binary_get_of_a_large_value_is_exact() {
    // The binary protocol's get also sends large values by reference.
    let srv = Server::start(&["-t", "1", "-m", "64"]);
    let n = 300_000;
    let v: Vec<u8> = (0..n).map(|j| (j % 251) as u8).collect();
    let mut t = srv.connect();
    t.write_all(format!("set bk 7 0 {n}\r\n").as_bytes())
        .unwrap();
    t.write_all(&v).unwrap();
    t.write_all(b"\r\n").unwrap();
    assert_eq!(read_until(&mut t, b"\r\n"), b"STORED\r\n");
    let mut b = srv.connect();
    let mut req = vec![
        0x80, 0x00, 0, 2, 0, 0, 0, 0, 0, 0, 0, 2, 0xaa, 0xbb, 0xcc, 0xdd,
    ];
    req.extend_from_slice(&[0; 8]);
    req.extend_from_slice(b"bk");
    b.write_all(&req).unwrap();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    while got.len() < 24 + 4 + n {
        let k = b.read(&mut buf).expect("reply");
        assert!(k > 0, "closed early");
        got.extend_from_slice(&buf[..k]);
    }
    assert_eq!(got.len(), 24 + 4 + n);
    assert_eq!(&got[..2], &[0x81, 0x00]);
    assert_eq!(&got[6..8], &[0, 0], "status");
    assert_eq!(
        u32::from_be_bytes(got[8..12].try_into().unwrap()) as usize,
        4 + n
    );
    assert_eq!(&got[12..16], &[0xaa, 0xbb, 0xcc, 0xdd], "opaque");
    assert_eq!(&got[24..28], &7u32.to_be_bytes(), "flags");
    assert!(got[28..] == v[..], "value bytes differ");
    assert_eq!(srv.stop(), 0);
}
