//! Values still arriving are held within a budget, as memcached holds
//! them within `-m`: many clients each half-way through a large store
//! must not grow the server's memory with their number. memcached
//! allocates an item when a store's line arrives and refuses the stores
//! it has no memory for, dropping their data unread; corecache counts
//! what it holds for requests still arriving against `-o
//! incoming_mem_limit` (as `-m` by default) and refuses the same way
//! (engine/incoming.rs). The same bytes go to Debian's memcached and to
//! corecache (`-t 2`, so refused stores of the other worker's keys are
//! forwarded): the replies, what a refused `set` leaves of the old value,
//! and the next request on each connection must match.

mod common;
use common::*;
use std::collections::BTreeSet;
use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

/// Clients uploading at once: at `-m 16` both servers take some of their
/// values and refuse others.
const CLIENTS: usize = 120;

/// A store sent in two parts: its head and half its value, then the rest.
struct Upload {
    first: Vec<u8>,
    rest: Vec<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Text,
    TextNoreply,
    /// A text set with client flags that are not 0 (they size memcached's
    /// item: 4 bytes more).
    TextFlags,
    Meta,
    /// ms in quiet mode (`q`).
    MetaQuiet,
    /// ms with its key in base64 (`b`): memcached sizes the item by the
    /// decoded key.
    MetaBase64,
    Binary,
    /// A binary SET with client flags that are not 0.
    BinaryFlags,
}

/// The client flags each kind stores with.
fn flags(kind: Kind) -> u32 {
    match kind {
        Kind::TextFlags | Kind::BinaryFlags => 7,
        _ => 0,
    }
}

fn is_binary(kind: Kind) -> bool {
    matches!(kind, Kind::Binary | Kind::BinaryFlags)
}

fn key(i: usize) -> String {
    format!("incoming:{i}")
}

/// Each key's value: its own byte, so a value read back under the wrong
/// key, or cut, shows.
fn value(i: usize, size: usize) -> Vec<u8> {
    vec![b'a' + (i % 26) as u8; size]
}

fn upload(kind: Kind, i: usize, size: usize) -> Upload {
    let k = key(i);
    let v = value(i, size);
    let mut req = match kind {
        Kind::Text => format!("set {k} 0 0 {size}\r\n").into_bytes(),
        Kind::TextNoreply => format!("set {k} 0 0 {size} noreply\r\n").into_bytes(),
        Kind::TextFlags => format!("set {k} 7 0 {size}\r\n").into_bytes(),
        Kind::Meta => format!("ms {k} {size}\r\n").into_bytes(),
        Kind::MetaQuiet => format!("ms {k} {size} q\r\n").into_bytes(),
        Kind::MetaBase64 => {
            use base64::Engine;
            let b = base64::engine::general_purpose::STANDARD.encode(&k);
            format!("ms {b} {size} b\r\n").into_bytes()
        }
        Kind::Binary | Kind::BinaryFlags => {
            let mut extras = [0; 8];
            extras[..4].copy_from_slice(&flags(kind).to_be_bytes());
            bin(0x01, k.as_bytes(), &extras, &v, i as u32)
        }
    };
    let head = req.len() - if is_binary(kind) { size } else { 0 };
    if !is_binary(kind) {
        req.extend_from_slice(&v);
        req.extend_from_slice(b"\r\n");
    }
    // What follows the store on the same connection: it must be read as
    // a request of its own, whatever became of the store's data.
    match kind {
        Kind::Binary | Kind::BinaryFlags => {
            req.extend_from_slice(&bin(0x0a, b"", &[], &[], 0xfeed))
        }
        _ => req.extend_from_slice(b"mn\r\n"),
    }
    let cut = head + size / 2;
    Upload {
        first: req[..cut].to_vec(),
        rest: req[cut..].to_vec(),
    }
}

/// What one connection got back: the store's reply (None when it sent
/// none, as `noreply` asks), and whether the request after it was
/// answered as itself.
type Outcome = (Option<String>, bool);

fn read_outcome(kind: Kind, s: &mut TcpStream) -> Outcome {
    match kind {
        Kind::Binary | Kind::BinaryFlags => {
            let (op, status, opaque, _, body) = read_bin(s);
            if op == 0x0a {
                return (None, opaque == 0xfeed);
            }
            let reply = format!("{status:#x} {}", String::from_utf8_lossy(&body));
            let (op, _, opaque, _, _) = read_bin(s);
            (Some(reply), op == 0x0a && opaque == 0xfeed)
        }
        _ => {
            // Both replies may come in one read: take them together.
            let got = String::from_utf8(read_until(s, b"MN\r\n")).unwrap();
            let reply = got.strip_suffix("MN\r\n").unwrap();
            let one_line = reply.is_empty() || reply.find("\r\n") == Some(reply.len() - 2);
            ((!reply.is_empty()).then(|| reply.to_string()), one_line)
        }
    }
}

/// The stored reply, per kind.
fn stored(kind: Kind) -> Option<String> {
    match kind {
        Kind::Text | Kind::TextFlags => Some("STORED\r\n".into()),
        Kind::TextNoreply | Kind::MetaQuiet => None,
        Kind::Meta | Kind::MetaBase64 => Some("HD\r\n".into()),
        Kind::Binary | Kind::BinaryFlags => Some("0x0 ".into()),
    }
}

/// What a run saw: the refusals' replies, what a refused store left under
/// its key (the old value or nothing), and how many stores were refused.
#[derive(Debug, PartialEq)]
struct Seen {
    refusals: BTreeSet<String>,
    old_after_refusal: BTreeSet<bool>,
    refused: usize,
}

/// Stores "old" under every key, then runs the uploads at once: every
/// connection sends its first part before any sends the rest. Checks what
/// must hold on any server: the request after each store is answered, a
/// store reported stored (or silent, then found) reads back exact.
fn run(port: u16, kind: Kind, size: usize) -> Seen {
    let connect = || {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s
    };
    let mut c = connect();
    for i in 0..CLIENTS {
        c.write_all(format!("set {} 0 0 3\r\nold\r\n", key(i)).as_bytes())
            .unwrap();
        assert_eq!(read_until(&mut c, b"\r\n"), b"STORED\r\n");
    }
    let ups: Vec<Upload> = (0..CLIENTS).map(|i| upload(kind, i, size)).collect();
    let mut conns: Vec<TcpStream> = (0..CLIENTS).map(|_| connect()).collect();
    for (s, u) in conns.iter_mut().zip(&ups) {
        s.write_all(&u.first).unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    for (s, u) in conns.iter_mut().zip(&ups) {
        s.write_all(&u.rest).unwrap();
    }
    let mut seen = Seen {
        refusals: BTreeSet::new(),
        old_after_refusal: BTreeSet::new(),
        refused: 0,
    };
    for (i, s) in conns.iter_mut().enumerate() {
        let (reply, next_ok) = read_outcome(kind, s);
        assert!(
            next_ok,
            "{kind:?} {size}: the request after store {i} was not answered"
        );
        c.write_all(format!("get {}\r\n", key(i)).as_bytes())
            .unwrap();
        let got = read_until(&mut c, b"END\r\n");
        let held = &got[got.iter().position(|&b| b == b'\n').map_or(0, |p| p + 1)..];
        let head = format!("VALUE {} {} {size}\r\n", key(i), flags(kind));
        let is_new = got.starts_with(head.as_bytes())
            && held.starts_with(&value(i, size))
            && got.ends_with(b"\r\nEND\r\n");
        let is_old = got == format!("VALUE {} 0 3\r\nold\r\nEND\r\n", key(i)).as_bytes();
        let is_gone = got == b"END\r\n";
        let acked = reply.is_some() && reply == stored(kind);
        if acked || (reply.is_none() && is_new) {
            // A cache may evict what it stored, never return the old value.
            assert!(
                is_new || is_gone,
                "{kind:?} {size}: store {i} acknowledged, then {:?}",
                String::from_utf8_lossy(&got[..got.len().min(60)])
            );
            continue;
        }
        assert!(
            is_old || is_gone,
            "{kind:?} {size}: key {i} after a refusal holds another value"
        );
        seen.refused += 1;
        if let Some(r) = reply {
            seen.refusals.insert(r);
        }
        seen.old_after_refusal.insert(is_old);
    }
    seen
}

/// Waits up to 5 s for the gauge `name` to read 0 (the workers see the
/// closes at their next turn); fails with `why` if it does not.
fn settles_at_zero(srv: &Server, name: &str, why: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while stat(&exchange(srv, b"stats\r\n", b"END\r\n"), name) != Some(0) {
        assert!(std::time::Instant::now() < deadline, "{why}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `-m 16` for both (the least at which corecache's two shards keep a
/// 1 MiB `-I`); corecache with two workers, and a budget of 6 MB, so what
/// it stores fits its memory and nothing evicts the old values (memcached
/// keeps them in a slab class of their own).
fn both(kind: Kind, size: usize) -> (Seen, Seen, Server) {
    let mc = Memcached::start(&["-m", "16"]);
    let want = run(mc.port, kind, size);
    let srv = Server::start(&["-m", "16", "-t", "2", "-o", "incoming_mem_limit=6"]);
    let got = run(srv.port, kind, size);
    (want, got, srv)
}

fn check(kind: Kind, size: usize) {
    let (want, got, srv) = both(kind, size);
    assert!(
        want.refused > 0 && want.refused < CLIENTS,
        "memcached refused {} of {CLIENTS}: the load does not test what it should",
        want.refused
    );
    assert!(
        got.refused > 0 && got.refused < CLIENTS,
        "{kind:?} {size}: corecache refused {} of {CLIENTS}",
        got.refused
    );
    assert_eq!(
        got.refusals, want.refusals,
        "{kind:?} {size}: the refusal replies"
    );
    // Where a store's success is silent, a key found gone may be one
    // stored and evicted since (memcached at 1 MB, quiet): only where
    // stores answer is a gone key known to be a refusal's doing.
    if stored(kind).is_some() {
        assert_eq!(
            got.old_after_refusal, want.old_after_refusal,
            "{kind:?} {size}: the old value after a refusal (true: kept)"
        );
    }
    let stats = exchange(&srv, b"stats\r\n", b"END\r\n");
    assert_eq!(
        stat(&stats, "incoming_bytes"),
        Some(0),
        "every upload is done"
    );
    assert_eq!(stat(&stats, "incoming_refused"), Some(got.refused as u64));
}

#[test]
fn a_text_set_refused_for_memory_as_memcached_refuses_it() {
    // Under memcached's 512 KiB chunk size the item is allocated whole,
    // and a set's old value is dropped; over it a chunk fails during the
    // read, and the old value stays.
    check(Kind::Text, 200_000);
    check(Kind::Text, 1_000_000);
}

#[test]
fn a_noreply_set_refused_for_memory_is_silent() {
    check(Kind::TextNoreply, 200_000);
}

#[test]
fn an_ms_refused_for_memory_as_memcached_refuses_it() {
    check(Kind::Meta, 200_000);
    check(Kind::Meta, 1_000_000);
}

#[test]
fn a_quiet_ms_refused_during_the_read_is_silent() {
    // memcached answers a refused allocation through out_errstring, which
    // quiet mode does not silence, and a chunk refused during the read
    // through out_string, which it does.
    check(Kind::MetaQuiet, 200_000);
    check(Kind::MetaQuiet, 1_000_000);
}

/// A value at the edge of memcached's 512 KiB chunk size for these keys
/// (10 to 12 bytes): allocated whole with no flags, a 12-byte key and no
/// flags (48 + 8 + 13 + 524,219 = 524,288), chunked with flags (4 bytes
/// more) or a key counted as its 16 base64 characters.
const EDGE: usize = 524_217;

#[test]
fn the_chunk_size_edge_counts_flags_and_the_decoded_key() {
    check(Kind::Text, EDGE);
    check(Kind::MetaBase64, EDGE);
    check(Kind::TextFlags, EDGE);
    check(Kind::Binary, EDGE);
    check(Kind::BinaryFlags, EDGE);
}

#[test]
fn a_binary_set_refused_for_memory_as_memcached_refuses_it() {
    check(Kind::Binary, 200_000);
    check(Kind::Binary, 1_000_000);
}

/// Resident memory stays near `-m` however many clients are half-way
/// through a large value; before the budget it grew by each one's value
/// (1,045 MiB at `-m 64` with 1,000 clients of 1 MB), and connections
/// that go away mid-value give their share back.
#[test]
fn clients_half_way_through_large_values_do_not_grow_memory_with_their_number() {
    let srv = Server::start(&["-m", "16", "-t", "2"]);
    let pid = srv.child.id();
    let before = rss_kib(pid);
    let size = 1_000_000;
    let mut conns = Vec::new();
    for i in 0..200 {
        let mut s = srv.connect();
        let u = upload(Kind::Text, i, size);
        s.write_all(&u.first).unwrap();
        conns.push(s);
    }
    std::thread::sleep(Duration::from_millis(500));
    let grew = rss_kib(pid).saturating_sub(before);
    let stats = exchange(&srv, b"stats\r\n", b"END\r\n");
    let held = stat(&stats, "incoming_bytes").unwrap();
    // The budget is -m: 16 MiB, shared by the two workers.
    assert!(held > 0 && held <= 16 << 20, "incoming_bytes {held}");
    assert!(stat(&stats, "incoming_refused").unwrap() > 0);
    // 200 clients of half a megabyte each would be 100 MB.
    assert!(grew < 48 << 10, "RSS grew {grew} KiB");
    drop(conns);
    settles_at_zero(&srv, "incoming_bytes", "closed clients still hold budget");
}

/// Clients that ask for many replies and read none: once the paused ones
/// on a worker held its share of the limit when they paused, the next
/// ones pause at 16 KiB, not 256 KiB, so memory stops growing with their
/// number. (300 such clients held 96 MiB at `-m 64` before; memcached,
/// which holds references to items, held none.) Another client is still
/// served, every reply whole and in order.
#[test]
fn clients_that_read_nothing_do_not_grow_memory_with_their_number() {
    use std::io::Read;
    use std::os::fd::AsRawFd;
    let srv = Server::start(&["-m", "16", "-t", "2"]);
    let pid = srv.child.id();
    let mut c = srv.connect();
    // 4,000 replies of 2 KB: 8 MB a client, twice what the kernel may
    // buffer for one socket (tcp_wmem's 4 MiB), so they must back up
    // into the server whatever the kernel's autotuning does (with 1 KB
    // values a kernel 6.18 host once took them all).
    c.write_all(&[b"set nr 0 0 2000\r\n".as_slice(), &[b'v'; 2000], b"\r\n"].concat())
        .unwrap();
    assert_eq!(read_until(&mut c, b"\r\n"), b"STORED\r\n");
    let before = rss_kib(pid);
    let gets = 4000;
    let req = b"get nr\r\n".repeat(gets);
    // A small receive buffer, so the server's replies back up soon.
    let rcvbuf = |s: &TcpStream, bytes: libc::c_int| {
        // SAFETY: a valid socket and an int-sized option value.
        unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                (&bytes as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
    };
    let mut conns = Vec::new();
    for _ in 0..300 {
        let s = srv.connect();
        rcvbuf(&s, 4096);
        (&s).write_all(&req).unwrap();
        conns.push(s);
    }
    std::thread::sleep(Duration::from_millis(1500));
    // On a loaded host (this binary's other tests upload hundreds of
    // megabytes beside it) the replies may take longer to back up: wait
    // for the first client to stall, then for the stalls to settle.
    let stalled_now = || stat(&exchange(&srv, b"stats\r\n", b"END\r\n"), "stalled_bytes").unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while stalled_now() == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    let grew = rss_kib(pid).saturating_sub(before);
    let stats = exchange(&srv, b"stats\r\n", b"END\r\n");
    let stalled = stat(&stats, "stalled_bytes").unwrap();
    assert!(
        stalled > 0,
        "no client stalled in 20 s: the test tests nothing"
    );
    // The share (8 MiB a worker) and one connection's cap past it, each.
    assert!(
        stalled <= 2 * ((8 << 20) + (300 << 10)),
        "stalled_bytes {stalled}"
    );
    // At 256 KiB each, 300 clients held 94 MiB (measured); now the share
    // of each worker, 16 KiB of replies past it and the 32 KB of requests
    // each waits to parse: about 50 MiB.
    assert!(grew < 70 << 10, "RSS grew {grew} KiB");
    let one = b"VALUE nr 0 2000\r\n".len() + 2000 + 2;
    let want = [
        b"VALUE nr 0 2000\r\n".as_slice(),
        &[b'v'; 2000],
        b"\r\nEND\r\n",
    ]
    .concat();
    // Another client, whose window is not clamped, gets all its replies,
    // whole and in order, while they are stalled (a window clamped at
    // 4 KiB drains a few KB per delayed ACK, from memcached too).
    let mut s = srv.connect();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(&req).unwrap();
    let mut got = vec![0u8; gets * (one + 5)];
    s.read_exact(&mut got).unwrap();
    for (i, r) in got.chunks(one + 5).enumerate() {
        assert_eq!(r, want.as_slice(), "reply {i}");
    }
    drop(conns);
    settles_at_zero(
        &srv,
        "stalled_bytes",
        "closed clients still count as stalled",
    );
}

/// A binary request whose body does not fit its opcode (a GET, DELETE,
/// INCREMENT or NOOP declaring a megabyte) is refused on its header, as
/// memcached refuses it: "Invalid arguments", then the connection closes,
/// nothing of the body held. Buffered first, 300 of them held 300 MB at
/// `-m 64`, and their count refused other clients' stores.
#[test]
fn binary_requests_of_the_wrong_shape_are_refused_on_their_header() {
    use std::io::Read;
    let mc = Memcached::start(&[]);
    let srv = Server::start(&["-t", "2"]);
    for (op, extras) in [(0x00u8, 0u8), (0x04, 0), (0x05, 20), (0x0a, 0)] {
        let mut answers = Vec::new();
        for port in [mc.port, srv.port] {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut h = bin(op, b"k", &vec![0; extras as usize], &[], 7);
            h[8..12].copy_from_slice(&1_000_000u32.to_be_bytes());
            s.write_all(&h).unwrap();
            let (rop, status, opaque, _, body) = read_bin(&mut s);
            let mut rest = Vec::new();
            // Closed (a reset is a close too), not left waiting for a body.
            let closed = match s.read_to_end(&mut rest) {
                Ok(_) => true,
                Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
            };
            answers.push((rop, status, opaque, body, closed, rest.is_empty()));
        }
        assert_eq!(
            answers[1], answers[0],
            "opcode {op:#x}: corecache, memcached"
        );
        assert_eq!(answers[0].1, 0x04, "opcode {op:#x}: invalid arguments");
    }
    let stats = exchange(&srv, b"stats\r\n", b"END\r\n");
    assert_eq!(stat(&stats, "incoming_bytes"), Some(0));
}

/// A long multi-key get line still arriving is held, as memcached holds
/// it, and is not counted against the budget for values: other clients'
/// large stores go on being stored (a 17 MB line refused every large set
/// at `-m 16` when it was counted).
#[test]
fn a_long_get_line_does_not_refuse_other_clients_stores() {
    let srv = Server::start(&["-m", "16", "-t", "1"]);
    let mut line = srv.connect();
    let keys = "somekey ".repeat(2_200_000);
    line.write_all(format!("get {keys}").as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let mut s = srv.connect();
    for i in 0..4 {
        let mut req = format!("set x{i} 0 0 200000\r\n").into_bytes();
        req.extend(std::iter::repeat_n(b'x', 200_000));
        req.extend_from_slice(b"\r\n");
        s.write_all(&req).unwrap();
        assert_eq!(read_until(&mut s, b"\r\n"), b"STORED\r\n", "set {i}");
    }
    line.write_all(b"\r\n").unwrap();
    assert_eq!(read_until(&mut line, b"END\r\n"), b"END\r\n");
}
