//! The key browser under full load (issue 18): while client threads run
//! get/set as fast as they can on the memcached port, a browse pages
//! through every key over the admin HTTP API with its cursor. Every key
//! stored before the load and never deleted is found exactly once (no
//! duplicate, no miss across pages and shards), and every request of the
//! load gets its right reply. Speed is not asserted here (the host is
//! noisy): `scripts/bench-admin-scan.py --probe` measures what a browse
//! costs a client's latency.
//!
//! The store is large enough that nothing is evicted: merge eviction moves
//! records, and a walk by segment offset may then see an item twice or
//! miss it (best effort, as memcached's `lru_crawler metadump`; README).

mod common;

use common::{admin_addr, admin_request, read_until, Server};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

const PRE: usize = 40_000;
const LOADERS: usize = 4;

fn value_of(key: &str) -> String {
    format!("value-of-{key}")
}

/// `GET path` on the admin port: (status, body).
fn http_get(addr: &str, path: &str) -> (u16, String) {
    let (status, _, body) = admin_request(addr, path, None, Duration::from_secs(60));
    (status, body)
}

fn preload(srv: &Server) {
    let mut s = srv.connect();
    let mut buf = Vec::new();
    for i in 0..PRE {
        let k = format!("pre:{i}");
        let v = value_of(&k);
        buf.extend_from_slice(format!("set {k} 0 0 {} noreply\r\n{v}\r\n", v.len()).as_bytes());
        if i % 5000 == 4999 || i == PRE - 1 {
            buf.extend_from_slice(b"mn\r\n");
            s.write_all(&buf).unwrap();
            read_until(&mut s, b"MN\r\n");
            buf.clear();
        }
    }
}

/// A get of `key` on `c`: Some(value) or None (a miss); panics on any
/// other reply, and a reply that never comes fails the read timeout.
fn get(c: &mut BufReader<TcpStream>, key: &str) -> Option<String> {
    c.get_mut()
        .write_all(format!("get {key}\r\n").as_bytes())
        .unwrap();
    let mut line = String::new();
    c.read_line(&mut line).unwrap();
    if line == "END\r\n" {
        return None;
    }
    let head: Vec<&str> = line.split_whitespace().collect();
    assert!(
        head.len() == 4 && head[0] == "VALUE" && head[1] == key,
        "{line:?}"
    );
    let mut v = vec![0; head[3].parse::<usize>().unwrap() + 2];
    c.read_exact(&mut v).unwrap();
    line.clear();
    c.read_line(&mut line).unwrap();
    assert_eq!(line, "END\r\n");
    v.truncate(v.len() - 2);
    Some(String::from_utf8(v).unwrap())
}

/// One load client: 1 set (of its own new key), 1 delete of a `pre:` key
/// from its share of those ending in 7 (one in ten), and gets of `pre:`
/// keys and its own, checking every reply, until `stop`. Returns the `pre:`
/// keys it deleted.
fn load(srv: &Server, t: usize, stop: &AtomicBool, ops: &AtomicU64) -> Vec<String> {
    let s = srv.connect();
    // One write a request, sent at once: no Nagle pause per reply.
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut c = BufReader::new(s);
    let (mut rng, mut deleted, mut n) = (0x9e37_79b9_7f4a_7c15u64 ^ t as u64, Vec::new(), 0usize);
    let mut line = String::new();
    while !stop.load(Relaxed) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let k = format!("load:{t}:{n}");
        let v = value_of(&k);
        let req = format!("set {k} 0 0 {}\r\n{v}\r\n", v.len());
        c.get_mut().write_all(req.as_bytes()).unwrap();
        line.clear();
        c.read_line(&mut line).unwrap();
        assert_eq!(line, "STORED\r\n", "set {k}");
        // Deletes: pre:{10 j + 7} for j = t, t + LOADERS, ...
        let d = 10 * (t + LOADERS * deleted.len()) + 7;
        if n % 16 == 0 && d < PRE {
            let k = format!("pre:{d}");
            c.get_mut()
                .write_all(format!("delete {k}\r\n").as_bytes())
                .unwrap();
            line.clear();
            c.read_line(&mut line).unwrap();
            assert_eq!(line, "DELETED\r\n", "delete {k}");
            deleted.push(k);
        }
        for _ in 0..8 {
            let i = (rng % PRE as u64) as usize;
            rng = rng.rotate_left(11).wrapping_mul(0x2545_f491_4f6c_dd1d);
            let k = format!("pre:{i}");
            match get(&mut c, &k) {
                Some(got) => assert_eq!(got, value_of(&k)),
                // Only a key this or another loader deleted may miss.
                None => assert_eq!(i % 10, 7, "{k} missing"),
            }
        }
        assert_eq!(get(&mut c, &k), Some(v));
        n += 1;
        ops.fetch_add(11, Relaxed);
    }
    deleted
}

#[test]
fn a_paged_browse_under_full_load_finds_every_key_exactly_once() {
    // Nothing is evicted: the load's writes during the walk take a few MB.
    let srv = Arc::new(Server::start(&[
        "-t",
        "2",
        "-m",
        "512",
        "--admin",
        "127.0.0.1:0",
    ]));
    let addr = admin_addr(&srv);
    preload(&srv);
    let (stop, ops) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let loaders: Vec<_> = (0..LOADERS)
        .map(|t| {
            let (srv, stop, ops) = (srv.clone(), stop.clone(), ops.clone());
            std::thread::spawn(move || load(&srv, t, &stop, &ops))
        })
        .collect();
    while ops.load(Relaxed) == 0 {
        std::thread::sleep(Duration::from_millis(10));
    }
    let at_start = ops.load(Relaxed);
    let mut seen: HashMap<String, u32> = HashMap::new();
    let (mut cursor, mut pages) = (String::new(), 0);
    loop {
        let (st, body) = http_get(&addr, &format!("/api/keys?limit=1000&cursor={cursor}"));
        assert_eq!(st, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        for k in v["keys"].as_array().unwrap() {
            *seen
                .entry(k["key"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
        pages += 1;
        match v["cursor"].as_str() {
            Some(c) => cursor = c.to_string(),
            None => break,
        }
    }
    let during = ops.load(Relaxed) - at_start;
    stop.store(true, Relaxed);
    let deleted: Vec<String> = loaders
        .into_iter()
        .flat_map(|l| l.join().expect("a load client failed"))
        .collect();
    eprintln!(
        "browse: {pages} pages, {} keys; load: {during} requests during it, {} pre: keys deleted",
        seen.len(),
        deleted.len()
    );
    // The load ran all along the walk.
    assert!(during > 0);
    let dups: Vec<_> = seen.iter().filter(|(_, &n)| n > 1).collect();
    assert!(dups.is_empty(), "seen twice: {dups:?}");
    let missed: Vec<String> = (0..PRE)
        .map(|i| format!("pre:{i}"))
        .filter(|k| !seen.contains_key(k) && !deleted.contains(k))
        .collect();
    assert!(
        missed.is_empty(),
        "{} missed: {:?}",
        missed.len(),
        &missed[..missed.len().min(10)]
    );
    assert!(pages > PRE / 1000, "{pages} pages");
}
