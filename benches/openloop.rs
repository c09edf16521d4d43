//! An open-loop latency generator for memcached-protocol servers, for the
//! tail (issue 23): requests leave on a fixed schedule whatever the
//! replies do, and each latency is measured from the time the request was
//! *due*, not from when it was sent, so a stall counts against every
//! request it delays (no coordinated omission, which closed-loop tools
//! such as memtier's --rate-limiting have: a connection waiting for a
//! slow reply sends nothing meanwhile).
//!
//! ```text
//! cargo bench --bench openloop -- --port 11211 --rate 20000 --conns 20 \
//!     --op get --secs 10 [--warmup 2] [--value 100] [--keys 10000] [--fill]
//!     [--ttl 0]   (exptime of each set, seconds: expiry under load)
//! cargo bench --bench openloop -- --port 11211 --peak --op get   # closed loop
//! ```
//!
//! Keys are fixed-width (`key:%08d`), values fixed-size, and every key is
//! stored before the run (`--fill`), so every GET reply has the same
//! length and the reader only counts bytes. One thread sends (it sleeps
//! until the next request is due, then sends all that are due), one reads
//! every connection (epoll), so on a small host the generator needs two
//! threads' worth of CPU, not twenty-one. Output: one JSON line with
//! the offered and achieved rate and p50/p99/p99.9/p99.99/max in µs, from
//! an HDR histogram (hdrhistogram crate, 3 significant digits).

use hdrhistogram::Histogram;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::{Duration, Instant};

struct Opts {
    host: String,
    port: u16,
    rate: f64,
    conns: usize,
    secs: f64,
    warmup: f64,
    value: usize,
    keys: usize,
    get: bool,
    /// Exptime of each set, seconds (0 = none).
    ttl: u32,
    fill: bool,
    peak: bool,
}

fn opts() -> Opts {
    let mut o = Opts {
        host: "127.0.0.1".into(),
        port: 11211,
        rate: 10_000.0,
        conns: 20,
        secs: 10.0,
        warmup: 2.0,
        value: 100,
        keys: 10_000,
        get: true,
        ttl: 0,
        fill: false,
        peak: false,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let v = args.get(i + 1).cloned().unwrap_or_default();
        let mut took = true;
        match args[i].as_str() {
            "--host" => o.host = v,
            "--port" => o.port = v.parse().unwrap(),
            "--rate" => o.rate = v.parse().unwrap(),
            "--conns" => o.conns = v.parse().unwrap(),
            "--secs" => o.secs = v.parse().unwrap(),
            "--warmup" => o.warmup = v.parse().unwrap(),
            "--value" => o.value = v.parse().unwrap(),
            "--keys" => o.keys = v.parse().unwrap(),
            "--op" => o.get = v == "get",
            "--ttl" => o.ttl = v.parse().unwrap(),
            _ => {
                took = false;
                match args[i].as_str() {
                    "--fill" => o.fill = true,
                    "--peak" => o.peak = true,
                    _ => {} // cargo bench's own `--bench`
                }
            }
        }
        i += if took { 2 } else { 1 };
    }
    o
}

fn key(i: usize) -> String {
    format!("key:{i:08}")
}

fn request(o: &Opts, i: usize, value: &[u8]) -> Vec<u8> {
    if o.get {
        format!("get {}\r\n", key(i)).into_bytes()
    } else {
        let mut r = format!("set {} 0 {} {}\r\n", key(i), o.ttl, o.value).into_bytes();
        r.extend_from_slice(value);
        r.extend_from_slice(b"\r\n");
        r
    }
}

/// Bytes of one reply: every key is stored with the same value size.
fn reply_len(o: &Opts) -> usize {
    if o.get {
        format!("VALUE {} 0 {}\r\n", key(0), o.value).len() + o.value + 2 + 5
    } else {
        b"STORED\r\n".len()
    }
}

fn connect(o: &Opts) -> TcpStream {
    let s = TcpStream::connect((o.host.as_str(), o.port)).expect("connect");
    s.set_nodelay(true).unwrap();
    s
}

fn fill(o: &Opts, value: &[u8]) {
    let mut s = connect(o);
    for chunk in (0..o.keys).collect::<Vec<_>>().chunks(1000) {
        let mut b = Vec::new();
        for &i in chunk {
            b.extend_from_slice(format!("set {} 0 0 {} noreply\r\n", key(i), o.value).as_bytes());
            b.extend_from_slice(value);
            b.extend_from_slice(b"\r\n");
        }
        s.write_all(&b).unwrap();
    }
    s.write_all(b"version\r\n").unwrap();
    let mut buf = [0u8; 256];
    let n = s.read(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"VERSION"), "fill");
}

/// One thread reads every connection's replies (epoll; `recv` with
/// MSG_DONTWAIT, as the sender shares the sockets in blocking mode), pairs
/// each reply of `len` bytes with its due time from that connection's
/// channel, and records the latency from due time to the reply's last byte.
/// One thread, not one per connection: twenty reader threads woken for
/// every reply left the sender a twenty-first share of a shared CPU.
fn reader(
    socks: Vec<TcpStream>,
    len: usize,
    due: Vec<mpsc::Receiver<Instant>>,
    from: Instant,
) -> Histogram<u64> {
    use std::os::fd::AsRawFd;
    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    // SAFETY: no pointers; the result is checked.
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    assert!(ep >= 0, "epoll_create1");
    for (i, s) in socks.iter().enumerate() {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: i as u64,
        };
        // SAFETY: `ev` lives across the call; `ep` and the socket are open.
        let r = unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, s.as_raw_fd(), &mut ev) };
        assert_eq!(r, 0, "epoll_ctl");
    }
    let mut partial = vec![0usize; socks.len()];
    let mut open = socks.len();
    let mut buf = vec![0u8; 1 << 16];
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; socks.len()];
    while open > 0 {
        // SAFETY: `events` has room for `events.len()` entries.
        let n = unsafe { libc::epoll_wait(ep, events.as_mut_ptr(), events.len() as i32, 1000) };
        if n < 0 {
            continue; // EINTR
        }
        for ev in &events[..n as usize] {
            let c = ev.u64 as usize;
            let fd = socks[c].as_raw_fd();
            loop {
                // SAFETY: `buf` is writable for `buf.len()` bytes; `fd` is open.
                let got = unsafe {
                    libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT)
                };
                if got < 0
                    && std::io::Error::last_os_error().kind() == std::io::ErrorKind::WouldBlock
                {
                    break;
                }
                if got <= 0 {
                    // closed (or failed): stop watching it
                    // SAFETY: DEL takes no event pointer since Linux 2.6.9.
                    unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_DEL, fd, std::ptr::null_mut()) };
                    open -= 1;
                    break;
                }
                partial[c] += got as usize;
                let now = Instant::now();
                while partial[c] >= len {
                    partial[c] -= len;
                    let Ok(t) = due[c].recv() else { break };
                    if t >= from {
                        let us = now.saturating_duration_since(t).as_micros() as u64;
                        h.record(us.max(1)).unwrap();
                    }
                }
            }
        }
    }
    // SAFETY: `ep` is ours and used no more.
    unsafe { libc::close(ep) };
    h
}

fn main() {
    let o = opts();
    let value: Vec<u8> = (0..o.value).map(|i| b'a' + (i % 26) as u8).collect();
    if o.fill {
        fill(&o, &value);
    }
    let len = reply_len(&o);
    let start = Instant::now() + Duration::from_millis(100);
    let measure_from = start + Duration::from_secs_f64(o.warmup);
    let end = measure_from + Duration::from_secs_f64(o.secs);
    let mut writers = Vec::new();
    let (mut socks, mut dues) = (Vec::new(), Vec::new());
    for _ in 0..o.conns {
        let s = connect(&o);
        let (tx, rx) = mpsc::channel::<Instant>();
        socks.push(s.try_clone().unwrap());
        dues.push(rx);
        writers.push((s, tx));
    }
    let readers = if o.peak {
        None
    } else {
        Some(std::thread::spawn(move || {
            reader(socks, len, dues, measure_from)
        }))
    };
    let mut sent = 0u64;
    let mut i = 0usize;
    if o.peak {
        // Closed loop, one request in flight per connection: the peak.
        let (counts_tx, counts_rx) = mpsc::channel();
        let o = std::sync::Arc::new(o);
        for (mut s, _) in writers {
            let (o, value, counts_tx) = (o.clone(), value.clone(), counts_tx.clone());
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 1 << 16];
                let (mut n, mut i) = (0u64, 0usize);
                while Instant::now() < end {
                    s.write_all(&request(&o, i % o.keys, &value)).unwrap();
                    i = i.wrapping_add(7919);
                    let mut got = 0;
                    while got < len {
                        got += s.read(&mut buf).unwrap();
                    }
                    if Instant::now() >= measure_from {
                        n += 1;
                    }
                }
                counts_tx.send(n).unwrap();
            });
        }
        drop(counts_tx);
        let total: u64 = counts_rx.iter().sum();
        println!("{{\"peak_ops\": {:.0}}}", total as f64 / o.secs);
        std::process::exit(0);
    }
    // Open loop: request k is due at start + k / rate, on connection k % conns.
    // The sender sleeps until the next request is due and then sends every
    // request that is due by then; it does not spin, so on a small host the
    // reader sharing its CPU is not kept waiting behind it. Lateness is
    // taken just before each send, for the measured requests only.
    let gap = 1.0 / o.rate;
    let mut late_max = Duration::ZERO;
    // nanosleep's default 50 µs timer slack would make every wake-up late
    // SAFETY: PR_SET_TIMERSLACK takes integers only.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1u64, 0u64, 0u64, 0u64) };
    loop {
        let due = start + Duration::from_secs_f64(sent as f64 * gap);
        if due >= end {
            break;
        }
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        if due >= measure_from {
            late_max = late_max.max(Instant::now().saturating_duration_since(due));
        }
        let (s, tx) = &mut writers[sent as usize % o.conns];
        tx.send(due).unwrap();
        s.write_all(&request(&o, i % o.keys, &value)).unwrap();
        i = i.wrapping_add(7919);
        sent += 1;
    }
    std::thread::sleep(Duration::from_secs(2));
    for (s, tx) in writers {
        drop(tx);
        let _ = s.shutdown(std::net::Shutdown::Both);
    }
    let h = readers.unwrap().join().unwrap();
    let expected = (o.rate * o.secs) as u64;
    println!(
        "{{\"op\": \"{}\", \"offered\": {:.0}, \"measured\": {}, \"expected\": {expected}, \"p50_us\": {}, \"p99_us\": {}, \"p999_us\": {}, \"p9999_us\": {}, \"max_us\": {}, \"generator_late_max_us\": {}}}",
        if o.get { "get" } else { "set" },
        o.rate,
        h.len(),
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.value_at_quantile(0.9999),
        h.max(),
        late_max.as_micros()
    );
}
