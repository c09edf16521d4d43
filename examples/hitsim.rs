//! Hit-ratio simulator for tuning the store: drives it in-process with the
//! load of `scripts/bench-memory.py` (zipf 0.99 keys, 1:4 set:get, values
//! 50-1000 B, the same TTL shapes) on a manual clock, optionally next to an
//! exact LRU with memcached 1.6's item sizes and slab classes (which tracks
//! real memcached within 0.002 on this load), in seconds instead of the
//! minutes the real servers take. The benchmark with real servers decides.
//!
//! Usage: cargo run --release --example hitsim -- MEM_MIB SHARDS SHAPE OPS [POLICY] [OPS_PER_SEC]
//! Environment: KEYS (key space, default 8000 per MiB), LRU=1 (run the LRU
//! too), LS (LRU capacity as a multiple of MEM), AHEAD=1 (merge steps
//! ahead of need between requests, as a busy worker runs them), SEED (the
//! operation stream's, default 7), VALUES=bimodal (each key its own size:
//! 1 key in 20 of 16-64 KiB, the rest 50-500 B, as `bench-memory.py
//! --values bimodal`; the default is 50-1000 B drawn for every set),
//! VALUES=large (each key 16-64 KiB), VALUES=scan (half the sets a new key
//! of 100 B that is never read, the rest and every get zipf keys of
//! 2-8 KiB each: what favouring small items must not lose to),
//! VALUES=shift (1500 keys per MiB of 50-100 B set and read about six
//! times each, then never again, before the measured load: zipf keys of
//! 1-4 KiB; run with KEYS=1600 per MiB, as the breaker's phase change),
//! VALUES=twospace (two key spaces, each zipf: KEYS keys of 50-200 B
//! that take TWOP of the requests, default 0.9, and KEYS / 16 keys of
//! 16-64 KiB that take the rest: the second breaker's size mix).

use corecache::store::*;
use std::collections::HashMap;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn f(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

fn log_uniform(r: &mut Rng, lo: f64, hi: f64) -> i64 {
    (lo.ln() + r.f() * (hi.ln() - lo.ln())).exp() as i64
}

fn ttl(shape: &str, r: &mut Rng, k: u64) -> i64 {
    match shape {
        "none" => 0,
        "fixed" => [60, 300, 3600][r.range(0, 2) as usize],
        "short" => r.range(5, 60) as i64,
        "long" => r.range(30, 3600) as i64,
        "perkey" => log_uniform(&mut Rng(k.wrapping_mul(0x9e37_79b1)), 1.0, 2592000.0),
        "wide" => log_uniform(r, 1.0, 2592000.0),
        "mix1s" => [0, 1][r.range(0, 1) as usize],
        _ => panic!("shape"),
    }
}

/// LRU by bytes, with memcached 1.6's item size (48-byte header, 8-byte
/// CAS, key + 1, value + 2) rounded up to its slab class (factor 1.25).
struct Lru {
    cap: usize,
    used: usize,
    map: HashMap<u64, (u64, usize, u32)>, // key -> (stamp, size, expire)
    order: std::collections::BTreeMap<u64, u64>,
    stamp: u64,
    classes: Vec<usize>,
}

impl Lru {
    fn new(cap: usize) -> Lru {
        let mut classes = vec![];
        let mut s = 96usize;
        while s < 1 << 20 {
            classes.push(s);
            s = ((s as f64 * 1.25) as usize + 7) & !7;
        }
        Lru {
            cap,
            used: 0,
            map: HashMap::new(),
            order: Default::default(),
            stamp: 0,
            classes,
        }
    }
    fn size(&self, klen: usize, vlen: usize) -> usize {
        let n = 48 + 8 + klen + 1 + vlen + 2;
        *self.classes.iter().find(|&&c| c >= n).unwrap()
    }
    fn get(&mut self, k: u64, now: u32) -> bool {
        if let Some(&(st, sz, exp)) = self.map.get(&k) {
            self.order.remove(&st);
            if exp != 0 && exp <= now {
                self.map.remove(&k);
                self.used -= sz;
                return false;
            }
            self.stamp += 1;
            self.order.insert(self.stamp, k);
            self.map.insert(k, (self.stamp, sz, exp));
            return true;
        }
        false
    }
    fn set(&mut self, k: u64, klen: usize, vlen: usize, exp: u32) {
        if let Some((st, sz, _)) = self.map.remove(&k) {
            self.order.remove(&st);
            self.used -= sz;
        }
        let sz = self.size(klen, vlen);
        while self.used + sz > self.cap {
            let (&st, &victim) = self.order.iter().next().unwrap();
            self.order.remove(&st);
            let (_, vs, _) = self.map.remove(&victim).unwrap();
            self.used -= vs;
        }
        self.stamp += 1;
        self.order.insert(self.stamp, k);
        self.map.insert(k, (self.stamp, sz, exp));
        self.used += sz;
    }
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let mem: usize = a[1].parse().unwrap();
    let shards: usize = a[2].parse().unwrap();
    let shape = a[3].as_str();
    let ops: u64 = a[4].parse().unwrap();
    let policy: Eviction = a
        .get(5)
        .map(|s| s.parse().unwrap())
        .unwrap_or(Eviction::Merge);
    let rate: u64 = a.get(6).map(|s| s.parse().unwrap()).unwrap_or(100_000);
    let with_lru = std::env::var("LRU").is_ok();
    let ahead = std::env::var("AHEAD").is_ok();
    let keyspace: usize = std::env::var("KEYS")
        .map(|s| s.parse().unwrap())
        .unwrap_or(mem * 8000);
    let mut cdf = Vec::with_capacity(keyspace);
    let mut tot = 0.0;
    for k in 1..=keyspace {
        tot += 1.0 / (k as f64).powf(0.99);
        cdf.push(tot);
    }
    let memory = mem << 20;
    let mut seg = 1usize << 20;
    while memory / shards / seg < 8 && seg > 64 << 10 {
        seg /= 2;
    }
    let mut stores: Vec<Store> = (0..shards)
        .map(|_| {
            Store::new(
                StoreConfig {
                    memory: memory / shards,
                    segment_size: seg,
                    item_size_max: seg,
                    eviction: policy,
                    huge_pages: false,
                    ..StoreConfig::default()
                },
                Clock::manual(1_700_000_000),
            )
            .unwrap()
        })
        .collect();
    let mut lru = Lru::new(
        (memory as f64
            * std::env::var("LS")
                .map(|s| s.parse::<f64>().unwrap())
                .unwrap_or(1.0)) as usize,
    );
    let route = ahash::RandomState::with_seeds(1, 2, 3, 4);
    let mut r = Rng(std::env::var("SEED")
        .map(|s| s.parse().unwrap())
        .unwrap_or(7));
    let values = std::env::var("VALUES").unwrap_or_default();
    let bimodal = values == "bimodal";
    let large = values == "large";
    let scan = values == "scan";
    let filler = vec![b'x'; 65536];
    let (mut gets, mut hits, mut lhits) = (0u64, 0u64, 0u64);
    let mut now_sec = 0u64;
    let shard_of = |key: &str| {
        if shards == 1 {
            0
        } else {
            (((route.hash_one(key.as_bytes()) >> 32) * shards as u64) >> 32) as usize
        }
    };
    let shift = values == "shift";
    let twospace = values == "twospace";
    let two_p: f64 = std::env::var("TWOP")
        .map(|s| s.parse().unwrap())
        .unwrap_or(0.9);
    let large_keys = (keyspace / 16).max(1);
    let large_tot = cdf[large_keys - 1];
    if shift {
        // Before the measured load: small keys set once and read six
        // times each on average, uniformly, that then go cold.
        let n = mem as u64 * 1500;
        for j in 0..n {
            let key = format!("old:{j}");
            let size = Rng(j.wrapping_mul(0x9e37_79b1)).range(50, 100) as usize;
            stores[shard_of(&key)].set(&SetArgs::new(
                SetMode::Set,
                key.as_bytes(),
                &filler[..size],
                0,
                0,
            ));
        }
        for _ in 0..n * 6 {
            let key = format!("old:{}", r.range(0, n - 1));
            stores[shard_of(&key)].get(key.as_bytes());
        }
    }
    for i in 0..ops {
        let sec = i / rate;
        if sec != now_sec {
            now_sec = sec;
            for s in stores.iter_mut() {
                s.clock_mut().advance(1);
                s.expire(16);
            }
        }
        let in_large = twospace && r.f() >= two_p;
        let u = r.f() * if in_large { large_tot } else { tot };
        // Keys of the large space are numbered after the small ones.
        let k = cdf.partition_point(|&c| c < u) as u64 + if in_large { keyspace as u64 } else { 0 };
        let key = format!("key:{k}");
        let s = &mut stores[shard_of(&key)];
        // A worker's loop turn: eviction steps ahead of need every 16
        // requests (`AHEAD=1`), as `engine/worker.rs` gives them 10 µs.
        if ahead && i % 16 == 0 && s.evict_ahead_pending() {
            s.evict_ahead_step(MERGE_STEP);
        }
        let measured = i >= ops / 2;
        let set = r.range(0, 4) == 0;
        if set && scan && r.range(0, 1) == 0 {
            // Half the sets: a key written once and never read.
            let once = format!("scan:{i}");
            s.set(&SetArgs::new(
                SetMode::Set,
                once.as_bytes(),
                &filler[..100],
                0,
                0,
            ));
        } else if set {
            let size = if twospace {
                let mut kr = Rng(k.wrapping_mul(0x9e37_79b1));
                if in_large {
                    kr.range(16384, 65536) as usize
                } else {
                    kr.range(50, 200) as usize
                }
            } else if shift {
                Rng(k.wrapping_mul(0x9e37_79b1)).range(1024, 4096) as usize
            } else if scan {
                Rng(k.wrapping_mul(0x9e37_79b1)).range(2000, 8000) as usize
            } else if bimodal {
                let mut kr = Rng(k.wrapping_mul(0x9e37_79b1) ^ 0x5bd1_e995);
                if kr.range(0, 19) == 0 {
                    kr.range(16384, 65536) as usize
                } else {
                    kr.range(50, 500) as usize
                }
            } else if large {
                Rng(k.wrapping_mul(0x9e37_79b1)).range(16384, 65536) as usize
            } else {
                r.range(50, 1000) as usize
            };
            let t = ttl(shape, &mut r, k);
            s.set(&SetArgs::new(
                SetMode::Set,
                key.as_bytes(),
                &filler[..size],
                0,
                t,
            ));
            if with_lru {
                let exp = if t == 0 { 0 } else { (sec as u32) + t as u32 };
                lru.set(k, key.len(), size, exp);
            }
        } else {
            let h = s.get(key.as_bytes()).is_some();
            let lh = with_lru && lru.get(k, sec as u32);
            if measured {
                gets += 1;
                hits += h as u64;
                lhits += lh as u64;
            }
        }
    }
    let items: usize = stores.iter().map(|s| s.curr_items()).sum();
    let bytes: usize = stores.iter().map(|s| s.bytes()).sum();
    let ev: u64 = stores.iter().map(|s| s.stats.evictions).sum();
    let exp: u64 = stores.iter().map(|s| s.stats.reclaimed).sum();
    let moved: u64 = stores.iter().map(|s| s.stats.moved_bytes).sum();
    eprintln!(
        "merges {} evicted_segments {}",
        stores.iter().map(|s| s.stats.merges).sum::<u64>(),
        stores.iter().map(|s| s.stats.evicted_segments).sum::<u64>()
    );
    let written: u64 = stores.iter().map(|s| s.stats.total_items).sum();
    println!(
        "{shape:7} m{mem} t{shards} {policy:?}: hit {:.4} lru {:.4} items {items} lru_items {} live {:.1}% ev {ev} reclaimed {exp} moved/set {:.2} secs {}",
        hits as f64 / gets as f64,
        lhits as f64 / gets as f64,
        lru.map.len(),
        bytes as f64 * 100.0 / memory as f64,
        moved as f64 / written as f64 / 550.0,
        ops / rate
    );
}
