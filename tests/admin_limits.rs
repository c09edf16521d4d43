//! The admin port's connection cap and timeouts on the real binary over
//! real sockets: connections past `--admin-max-conns` are refused and
//! counted, idle ones are closed after `--admin-timeout`, a request head
//! trickled in byte by byte is cut off, and the data port serves
//! throughout.

mod common;

use common::{exchange, Server};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const CAP: usize = 16;

fn start() -> (Server, String) {
    start_with_timeout(2)
}

/// As `start`, with `--admin-timeout secs`.
fn start_with_timeout(secs: u64) -> (Server, String) {
    let cap = CAP.to_string();
    let secs = secs.to_string();
    let srv = Server::start(&[
        "--admin",
        "127.0.0.1:0",
        "--admin-max-conns",
        &cap,
        "--admin-timeout",
        &secs,
    ]);
    let st = String::from_utf8(exchange(&srv, b"stats settings\r\n", b"END\r\n")).unwrap();
    let addr = st
        .lines()
        .find_map(|l| l.strip_prefix("STAT admin "))
        .unwrap()
        .trim()
        .to_string();
    (srv, addr)
}

/// One `GET` on its own connection: the whole response, or what came
/// before the server closed or reset it (a refused connection may be
/// closed before the request is written).
fn get(addr: &str, path: &str) -> String {
    get_on(TcpStream::connect(addr).unwrap(), addr, path)
}

/// `GET path` on connection `s` to `addr`, as `get`.
fn get_on(mut s: TcpStream, addr: &str, path: &str) -> String {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    );
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// The value of an unlabelled sample in a classic-format scrape.
fn sample(scrape: &str, name: &str) -> u64 {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{name} missing:\n{scrape}"))
        .parse()
        .unwrap()
}

/// The data port answers a set and a get of a fresh key.
fn data_port_serves(srv: &Server, n: usize) {
    let mut s = srv.connect();
    write!(s, "set live{n} 0 0 1\r\nx\r\nget live{n}\r\n").unwrap();
    let got = common::read_until(&mut s, b"END\r\n");
    assert_eq!(
        got,
        format!("STORED\r\nVALUE live{n} 0 1\r\nx\r\nEND\r\n").as_bytes()
    );
}

/// Reads what is there without waiting: Some(bytes) once the peer has
/// closed (what it sent first), None while the connection is open.
fn closed_with(s: &mut TcpStream) -> Option<Vec<u8>> {
    s.set_nonblocking(true).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Some(got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return None,
            Err(_) => return Some(got),
        }
    }
}

#[test]
fn idle_connections_past_the_cap_are_refused_and_the_rest_time_out() {
    // The checks at the cap below must all run before the first idle
    // connection times out (its close would look like a refusal without
    // its 503); 20 s leaves a loaded machine room for that (the admin
    // thread runs at nice 10, last to get a CPU: 2 s once was not).
    let (srv, addr) = start_with_timeout(20);
    let many = 200;
    let mut conns: Vec<TcpStream> = (0..many)
        .map(|_| TcpStream::connect(&addr).unwrap())
        .collect();
    data_port_serves(&srv, 0);
    // The refusals are immediate once the admin thread accepts; it gets
    // to all 200 when it gets a CPU, so they are polled for, not given a
    // fixed 500 ms. More than CAP served never reaches the count; fewer
    // passes it.
    // A connection is read until it is closed, once: what it said then
    // is kept (reading it again would find it empty).
    let started = Instant::now();
    let deadline = started + Duration::from_secs(15);
    let mut closed: Vec<Option<Vec<u8>>> = vec![None; many];
    let open = loop {
        for (s, c) in conns.iter_mut().zip(closed.iter_mut()) {
            if c.is_none() {
                *c = closed_with(s);
            }
        }
        let open: Vec<usize> = (0..many).filter(|&i| closed[i].is_none()).collect();
        let refused = many - open.len();
        assert!(refused <= many - CAP, "{refused} refused");
        if refused == many - CAP {
            break open;
        }
        assert!(Instant::now() < deadline, "{refused} refused");
        std::thread::sleep(Duration::from_millis(50));
    };
    // Each refusal is a 503, or a close alone: the server's write of the
    // 503 is best effort (listener.rs), and in two clean-clone CI runs
    // one refused connection of the 184 came back closed with nothing.
    // Most must carry the 503, so it is still tested.
    let mut with_503 = 0;
    for (i, b) in closed.iter().enumerate() {
        if let Some(b) = b {
            let text = String::from_utf8_lossy(b);
            let t = started.elapsed();
            assert!(
                text.is_empty() || text.starts_with("HTTP/1.1 503 "),
                "{i} after {t:?}: {text:?}"
            );
            with_503 += text.starts_with("HTTP/1.1 503 ") as usize;
        }
    }
    assert!(
        with_503 * 2 > many - CAP,
        "{with_503} of {} refusals carried the 503",
        many - CAP
    );
    assert_eq!(open.len(), CAP, "connections served at once");
    // At the cap a scrape is refused too (503, or closed before it was
    // read), and the data port still serves.
    let refused_scrape = get(&addr, "/metrics");
    assert!(
        refused_scrape.is_empty() || refused_scrape.starts_with("HTTP/1.1 503 "),
        "{refused_scrape}"
    );
    data_port_serves(&srv, 1);
    // The idle ones are closed by the server after --admin-timeout.
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut n = 2;
    while open.iter().any(|&i| closed_with(&mut conns[i]).is_none()) {
        assert!(Instant::now() < deadline, "idle connections left open");
        data_port_serves(&srv, n);
        n += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    for &i in &open {
        assert_eq!(closed_with(&mut conns[i]), Some(Vec::new()), "no reply");
    }
    let scrape = get(&addr, "/metrics");
    assert!(scrape.starts_with("HTTP/1.1 200 "), "{scrape}");
    assert_eq!(
        sample(&scrape, "corecache_admin_connections_rejected_total"),
        (many - CAP + 1) as u64
    );
    assert_eq!(
        sample(&scrape, "corecache_admin_connections_timed_out_total"),
        CAP as u64
    );
    assert_eq!(sample(&scrape, "corecache_admin_current_connections"), 1);
    data_port_serves(&srv, n);
}

#[test]
fn a_request_head_trickled_in_is_cut_off() {
    let (srv, addr) = start();
    let mut s = TcpStream::connect(&addr).unwrap();
    write!(s, "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nX-Slow: ").unwrap();
    let t = Instant::now();
    let mut cut = false;
    // One byte every 200 ms for up to 15 s: each moves the head along,
    // none may move the deadline.
    while t.elapsed() < Duration::from_secs(15) {
        if s.write_all(b"a").is_err() {
            cut = true;
            break;
        }
        if let Some(got) = closed_with(&mut s) {
            assert!(!String::from_utf8_lossy(&got).contains(" 200 "));
            cut = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(cut, "a head trickled in for 15 s was still being read");
    data_port_serves(&srv, 0);
    let scrape = get(&addr, "/metrics");
    assert_eq!(
        sample(&scrape, "corecache_admin_connections_timed_out_total"),
        1
    );
}

#[test]
fn keep_alive_requests_within_the_timeout_are_served() {
    let (_srv, addr) = start();
    let mut s = TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    for _ in 0..3 {
        write!(s, "GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
        let mut buf = [0u8; 4096];
        let mut got = Vec::new();
        while !got.ends_with(b"ok\n") {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "closed: {}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
        assert!(got.starts_with(b"HTTP/1.1 200 "));
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Clients that pipeline requests and read none of the replies hold their
/// slots only for `--admin-timeout` once their replies stop moving: with
/// every slot taken that way, `/healthz` answered `503` for as long as
/// they stayed connected (found by a breaker).
#[test]
fn clients_that_never_read_their_replies_give_their_slots_back() {
    let (srv, addr) = start_with_timeout(2);
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    let burst = std::sync::Arc::new(request.repeat(3000));
    let mut stuck: Vec<TcpStream> = Vec::new();
    for _ in 0..CAP {
        let s = TcpStream::connect(&addr).unwrap();
        // A small receive buffer, so the replies back up soon.
        let sock = socket2::SockRef::from(&s);
        sock.set_recv_buffer_size(4096).unwrap();
        let mut w = s.try_clone().unwrap();
        let burst = burst.clone();
        // Written from a thread: the server stops reading once its
        // replies back up, and this write then waits for ever.
        std::thread::spawn(move || {
            let _ = w.write_all(burst.as_bytes());
        });
        stuck.push(s);
    }
    // Every slot is held: a probe is refused while the replies back up.
    let t0 = Instant::now();
    let mut refused = false;
    while t0.elapsed() < Duration::from_secs(1) && !refused {
        refused = get(&addr, "/healthz").contains(" 503 ");
    }
    assert!(refused, "the stuck clients did not fill the cap");
    // Within the timeout and a margin for a loaded machine, the stuck
    // connections are closed and the probe is answered.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = get(&addr, "/healthz");
        if r.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(Instant::now() < deadline, "still refused: {r}");
        std::thread::sleep(Duration::from_millis(200));
    }
    data_port_serves(&srv, 1);
    drop(stuck);
}

/// `GET path` from source address `from`, on its own connection.
fn get_from(from: &str, addr: &str, path: &str) -> String {
    get_on(common::connect_from(from, addr), addr, path)
}

#[test]
fn one_address_holding_idle_connections_cannot_take_every_slot() {
    // CAP 16: one address may hold 8 (a quarter, at least 8). 127.0.0.2
    // stands for a remote client; 127.0.0.1 (a local proxy) is exempt.
    let (_srv, addr) = start_with_timeout(20);
    let mut idle: Vec<TcpStream> = (0..8)
        .map(|_| common::connect_from("127.0.0.2", &addr))
        .collect();
    // The ninth from the same address is refused with the 503 ...
    let ninth = get_from("127.0.0.2", &addr, "/healthz");
    assert!(ninth.contains(" 503 "), "{ninth}");
    // ... while other addresses are served.
    let other = get_from("127.0.0.3", &addr, "/healthz");
    assert!(other.starts_with("HTTP/1.1 200"), "{other}");
    let local = get(&addr, "/healthz");
    assert!(local.starts_with("HTTP/1.1 200"), "{local}");
    // The eight were held open, not refused.
    for s in &mut idle {
        assert_eq!(
            closed_with(s),
            None,
            "an idle connection within the cap closed"
        );
    }
    // Closing them gives the address its places back.
    drop(idle);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let again = get_from("127.0.0.2", &addr, "/healthz");
        if again.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(Instant::now() < deadline, "{again}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
