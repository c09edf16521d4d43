//! The store against a plain model: random operation sequences must agree
//! on every result, expiry, CAS and incr/decr edge cases included; and a
//! fill far past the memory budget must only ever return what was stored.

use corecache::store::*;
use proptest::prelude::*;
use std::collections::HashMap;

fn store(memory: usize, seg: usize, policy: Eviction) -> Store {
    let cfg = StoreConfig {
        memory,
        segment_size: seg,
        item_size_max: seg,
        eviction: policy,
        huge_pages: false,
        ..StoreConfig::default()
    };
    Store::new(cfg, Clock::manual(1_700_000_000)).unwrap()
}

#[derive(Clone, Debug)]
struct MItem {
    value: Vec<u8>,
    flags: u32,
    expire: u32,
    version: u64,
}

#[derive(Clone, Debug)]
enum Op {
    Set(SetMode, u8, Vec<u8>, u32, i64),
    Cas(u8, Vec<u8>, bool),
    Get(u8),
    Delete(u8),
    Incr(u8, u64),
    Decr(u8, u64),
    Touch(u8, i64),
    Advance(u32),
    /// One bounded step of the expiry pass (starting one if none is on),
    /// reading at most this many records plus one.
    ExpiryStep(u8),
    Flush(i64),
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        "[0-9]{1,20}".prop_map(|s| s.into_bytes()),
        "[a-z ]{0,40}".prop_map(|s| s.into_bytes()),
        Just(b"18446744073709551615".to_vec()),
        prop::collection::vec(any::<u8>(), 0..300),
    ]
}

/// TTL mixes as applications use them: none, short, jittered over a long
/// range, up to memcached's 30-day limit of relative times.
fn exptime() -> impl Strategy<Value = i64> {
    prop_oneof![
        3 => Just(0i64),
        3 => 1i64..20,
        1 => Just(-1i64),
        2 => 20i64..4000,
        1 => 4000i64..2_592_000,
        1 => Just(2_592_000i64),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let mode = prop_oneof![
        Just(SetMode::Set),
        Just(SetMode::Add),
        Just(SetMode::Replace),
        Just(SetMode::Append),
        Just(SetMode::Prepend)
    ];
    prop_oneof![
        4 => (mode, 0u8..12, value(), any::<u32>(), exptime()).prop_map(|(m, k, v, f, e)| Op::Set(m, k, v, f, e)),
        2 => (0u8..12, value(), any::<bool>()).prop_map(|(k, v, good)| Op::Cas(k, v, good)),
        4 => (0u8..12).prop_map(Op::Get),
        1 => (0u8..12).prop_map(Op::Delete),
        1 => (0u8..12, prop_oneof![0u64..10, Just(u64::MAX)]).prop_map(|(k, d)| Op::Incr(k, d)),
        1 => (0u8..12, prop_oneof![0u64..10, Just(u64::MAX)]).prop_map(|(k, d)| Op::Decr(k, d)),
        1 => (0u8..12, exptime()).prop_map(|(k, e)| Op::Touch(k, e)),
        1 => (0u32..8).prop_map(Op::Advance),
        2 => (0u8..6).prop_map(Op::ExpiryStep),
        1 => prop_oneof![Just(0i64), 1i64..5].prop_map(Op::Flush),
    ]
}

fn key(k: u8) -> Vec<u8> {
    format!("key:{k}").into_bytes()
}

/// An independent reading of memcached's rule: optional white space, an
/// optional sign, digits, then the end or white space; anything negative or
/// over 64 bits is not a number.
fn model_numeric(v: &[u8]) -> Option<u64> {
    let s = String::from_utf8_lossy(v).to_string();
    let t = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (neg, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let digits: String = t.chars().take_while(|c| c.is_ascii_digit()).collect();
    if digits.is_empty() {
        return None;
    }
    if let Some(c) = t[digits.len()..].chars().next() {
        if !matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c') {
            return None;
        }
    }
    let n: u128 = digits.parse().ok()?;
    if n > u64::MAX as u128 {
        return None;
    }
    if !neg || n == 0 {
        return Some(n as u64);
    }
    let r = (1u128 << 64) - n;
    (r < 1u128 << 63).then_some(r as u64)
}

struct Model {
    items: HashMap<Vec<u8>, MItem>,
    now: u32,
    next_version: u64,
    flush_at: u32,
    /// The second a delayed flush acted in, while it runs: memcached hides
    /// what is written then too (its time is not after oldest_live), and
    /// it is gone once that second is over. 0: none.
    hide_second: u32,
    /// Last CAS the store returned for a key, with the model version then.
    seen_cas: HashMap<Vec<u8>, (u64, u64)>,
}

impl Model {
    fn expire_at(&self, e: i64) -> u32 {
        if e == 0 {
            0
        } else if e < 0 {
            1
        } else {
            self.now + e as u32
        }
    }
    fn apply_flush(&mut self) {
        if self.hide_second != 0 && self.now > self.hide_second {
            self.items.clear();
            self.hide_second = 0;
        }
        if self.flush_at != 0 && self.now >= self.flush_at {
            self.items.clear();
            if self.now == self.flush_at {
                self.hide_second = self.now;
            }
            self.flush_at = 0;
        }
    }
    fn live(&mut self, k: &[u8]) -> Option<&mut MItem> {
        self.apply_flush();
        let now = self.now;
        if self.hide_second == now {
            self.items.remove(k);
            return None;
        }
        if let Some(it) = self.items.get(k) {
            if it.expire != 0 && it.expire <= now {
                self.items.remove(k);
            }
        }
        self.items.get_mut(k)
    }
    fn put(&mut self, k: Vec<u8>, value: Vec<u8>, flags: u32, expire: u32) {
        self.next_version += 1;
        if expire == 1 {
            self.items.remove(&k);
            return;
        }
        let version = self.next_version;
        self.items.insert(
            k,
            MItem {
                value,
                flags,
                expire,
                version,
            },
        );
    }
}

fn run(ops: Vec<Op>) {
    let mut s = store(64 << 20, 1 << 20, Eviction::Merge);
    let mut m = Model {
        items: HashMap::new(),
        now: s.now(),
        next_version: 0,
        flush_at: 0,
        hide_second: 0,
        seen_cas: HashMap::new(),
    };
    for op in ops {
        match op {
            Op::Set(mode, k, v, flags, e) => {
                let k = key(k);
                let got = s.set(&SetArgs::new(mode, &k, &v, flags, e));
                let exists = m.live(&k).is_some();
                let expire = m.expire_at(e);
                let want_stored = match mode {
                    SetMode::Set => true,
                    SetMode::Add => !exists,
                    _ => exists,
                };
                assert_eq!(
                    matches!(got, SetOutcome::Stored { .. }),
                    want_stored,
                    "{mode:?} {got:?}"
                );
                if want_stored {
                    match mode {
                        SetMode::Append | SetMode::Prepend => {
                            let old = m.live(&k).unwrap().clone();
                            let nv = if mode == SetMode::Append {
                                [old.value.clone(), v].concat()
                            } else {
                                [v, old.value.clone()].concat()
                            };
                            m.put(k.clone(), nv, old.flags, old.expire);
                        }
                        _ => m.put(k.clone(), v, flags, expire),
                    }
                } else {
                    assert_eq!(got, SetOutcome::NotStored);
                }
            }
            Op::Cas(k, v, good) => {
                let k = key(k);
                let (cas, ver) = m.seen_cas.get(&k).copied().unwrap_or((12345, u64::MAX));
                let cas = if good { cas } else { cas ^ 0x5555 };
                let mut a = SetArgs::new(SetMode::Set, &k, &v, 7, 0);
                a.cas = cas;
                let got = s.set(&a);
                match m.live(&k).map(|i| i.version) {
                    None => assert_eq!(got, SetOutcome::NotFound),
                    Some(cur) if good && cur == ver => {
                        assert!(matches!(got, SetOutcome::Stored { .. }), "{got:?}");
                        m.put(k.clone(), v, 7, 0);
                    }
                    Some(_) => assert_eq!(
                        got,
                        SetOutcome::Exists,
                        "cas must not succeed on a changed item"
                    ),
                }
            }
            Op::Get(k) => {
                let k = key(k);
                let got = s
                    .get(&k)
                    .map(|f| (f.item.value().to_vec(), f.item.flags(), s.cas_of(&f)));
                let want = m.live(&k).cloned();
                match (got, want) {
                    (None, None) => {}
                    (Some((v, f, cas)), Some(w)) => {
                        assert_eq!(v, w.value);
                        assert_eq!(f, w.flags);
                        if let Some((c, ver)) = m.seen_cas.get(&k) {
                            assert_eq!(
                                *c == cas,
                                *ver == w.version,
                                "cas changes exactly when the item does"
                            );
                        }
                        m.seen_cas.insert(k, (cas, w.version));
                    }
                    (g, w) => panic!(
                        "get {:?}: store {g:?} model {w:?}",
                        String::from_utf8_lossy(&k)
                    ),
                }
            }
            Op::Delete(k) => {
                let k = key(k);
                let got = s.delete(&k, 0);
                let had = m.live(&k).is_some();
                m.items.remove(&k);
                assert_eq!(got == DeleteOutcome::Deleted, had);
            }
            Op::Incr(k, d) | Op::Decr(k, d) => {
                let incr = matches!(op, Op::Incr(..));
                let k = key(k);
                let got = s.delta(&k, incr, d, 0);
                match m.live(&k).cloned() {
                    None => assert_eq!(got, DeltaOutcome::NotFound),
                    Some(it) => match model_numeric(&it.value) {
                        None => assert_eq!(got, DeltaOutcome::NonNumeric, "{:?}", it.value),
                        Some(cur) => {
                            let nv = if incr {
                                cur.wrapping_add(d)
                            } else {
                                cur.saturating_sub(d)
                            };
                            assert!(
                                matches!(got, DeltaOutcome::Value { value, .. } if value == nv),
                                "{got:?} want {nv}"
                            );
                            let mut bytes = nv.to_string().into_bytes();
                            if bytes.len() < it.value.len() {
                                bytes.resize(it.value.len(), b' ');
                            }
                            m.put(k, bytes, it.flags, it.expire);
                        }
                    },
                }
            }
            Op::Touch(k, e) => {
                let k = key(k);
                let got = s.touch(&k, e).is_some();
                let expire = m.expire_at(e);
                match m.live(&k) {
                    None => assert!(!got),
                    Some(it) => {
                        if expire == 1 {
                            m.items.remove(&k);
                        } else {
                            it.expire = expire;
                            assert!(got);
                        }
                    }
                }
            }
            Op::Advance(n) => {
                s.clock_mut().advance(n);
                m.now += n;
                m.apply_flush();
                // Odd: a pass is started and left to the steps (ExpiryStep)
                // amid the other operations, as the worker runs it.
                if n % 2 == 0 {
                    s.expire(usize::MAX);
                } else {
                    s.expiry_begin(16);
                }
            }
            Op::ExpiryStep(n) => {
                if !s.expiry_pending() {
                    s.expiry_begin(16);
                }
                let read = s.expiry_step(n as usize + 1);
                assert!(read <= n as usize + 1, "a step read {read} records");
            }
            Op::Flush(d) => {
                s.flush(d);
                // memcached's time: N - 1 seconds on, so 1 at once; a
                // delayed flush then hides the rest of its second too.
                // Any new flush replaces the pending one and that window.
                m.hide_second = 0;
                if d <= 0 {
                    m.items.clear();
                    m.flush_at = 0;
                } else if d == 1 {
                    m.items.clear();
                    m.flush_at = 0;
                    m.hide_second = m.now;
                } else {
                    m.flush_at = m.now + d as u32 - 1;
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]
    #[test]
    fn store_agrees_with_model(ops in prop::collection::vec(op(), 1..200)) {
        run(ops);
    }
}

const ALL_POLICIES: [Eviction; 7] = [
    Eviction::Merge,
    Eviction::Fifo,
    Eviction::Random,
    Eviction::Cte,
    Eviction::Util,
    Eviction::Volatile,
    Eviction::None,
];

/// Writes far more than fits, under each policy, and checks that every hit
/// is exactly the latest value written under that key.
#[test]
fn fill_past_budget_never_returns_wrong_data() {
    for policy in ALL_POLICIES {
        let mut s = store(8 * 65536, 65536, policy);
        let mut latest: HashMap<u32, Vec<u8>> = HashMap::new();
        let mut rng = 0x1234_5678_9abc_def1u64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let (mut hits, mut stored, mut refused) = (0, 0, 0);
        for i in 0..200_000u32 {
            let r = next();
            let k = ((r >> 8) % 5000) as u32;
            let key = format!("fill:{k}");
            if r % 4 == 0 {
                let v = format!("{key}|v{i}|{}", "x".repeat((r >> 20) as usize % 200));
                let ttl = if policy == Eviction::Volatile && r % 8 != 0 {
                    0
                } else {
                    [0i64, 100, 500][(r >> 40) as usize % 3]
                };
                match s.set(&SetArgs::new(
                    SetMode::Set,
                    key.as_bytes(),
                    v.as_bytes(),
                    k,
                    ttl,
                )) {
                    SetOutcome::Stored { .. } => {
                        stored += 1;
                        latest.insert(k, v.into_bytes());
                    }
                    SetOutcome::NoMemory => {
                        refused += 1;
                        latest.remove(&k);
                    }
                    o => panic!("{o:?}"),
                }
            } else if let Some(f) = s.get(key.as_bytes()) {
                hits += 1;
                assert_eq!(
                    Some(&f.item.value().to_vec()),
                    latest.get(&k),
                    "{policy:?} key {k}"
                );
                assert_eq!(f.item.flags(), k);
            }
            if i % 1000 == 0 {
                s.clock_mut().advance(1);
            }
            // Merges ahead of need, a few records a step between the
            // operations (store/merge_job.rs): what a step leaves half
            // done, the operations change under it.
            if s.evict_ahead_pending() {
                s.evict_ahead_step(1 + (r >> 50) as usize % 8);
            }
        }
        assert!(s.bytes() <= s.memory_bytes());
        assert!(hits > 1000, "{policy:?}: {hits} hits");
        if policy == Eviction::None {
            assert!(refused > 0);
        } else {
            assert!(
                stored > 40_000 && s.stats.evictions > 0 || policy == Eviction::Volatile,
                "{policy:?}"
            );
        }
    }
}

#[test]
fn merge_keeps_hot_items_and_their_cas() {
    let mut s = store(6 * 65536, 65536, Eviction::Merge);
    let hot = b"hot-key";
    s.set(&SetArgs::new(SetMode::Set, hot, b"hot-value", 3, 0));
    let cas0 = {
        let f = s.get(hot).unwrap();
        s.cas_of(&f)
    };
    for i in 0..20_000u32 {
        let k = format!("cold:{i}");
        s.set(&SetArgs::new(
            SetMode::Set,
            k.as_bytes(),
            &[b'c'; 100],
            0,
            0,
        ));
        if i % 50 == 0 {
            assert!(s.get(hot).is_some(), "hot item lost at {i}");
        }
    }
    assert!(s.stats.merges > 0);
    let f = s.get(hot).unwrap();
    assert_eq!(f.item.value(), b"hot-value");
    assert_eq!(
        s.cas_of(&f),
        cas0,
        "an unchanged item keeps its CAS across merges"
    );
}

#[test]
fn expired_segments_are_freed_whole() {
    let mut s = store(16 * 65536, 65536, Eviction::Merge);
    for i in 0..5000 {
        let k = format!("t:{i}");
        s.set(&SetArgs::new(
            SetMode::Set,
            k.as_bytes(),
            &[b'v'; 100],
            0,
            5,
        ));
    }
    let used = s.segments_in_use();
    assert!(used > 5);
    s.clock_mut().advance(20);
    assert!(s.expire(2) <= 2, "bounded work per call");
    s.expire(usize::MAX);
    assert_eq!(s.segments_in_use(), 1, "only the merge reserve remains");
    assert_eq!(s.curr_items(), 0);
}

/// The worker runs an expiry pass in steps between requests (issue 23: a
/// whole pass held it 53 ms): each step reads a bounded number of records,
/// the pass frees what a whole pass would, and what is written between
/// steps, into the very chain being freed, is kept.
#[test]
fn an_expiry_pass_in_steps_is_bounded_and_keeps_what_is_written_meanwhile() {
    let mut s = store(32 * 65536, 65536, Eviction::Merge);
    let put = |s: &mut Store, k: &str, ttl: i64| {
        let v = format!("{k}|{}", "v".repeat(90));
        let o = s.set(&SetArgs::new(
            SetMode::Set,
            k.as_bytes(),
            v.as_bytes(),
            0,
            ttl,
        ));
        assert!(matches!(o, SetOutcome::Stored { .. }), "{k}: {o:?}");
    };
    for i in 0..6000 {
        put(&mut s, &format!("t:{i}"), 5);
    }
    for i in 0..300 {
        put(&mut s, &format!("stay:{i}"), 0);
    }
    let used = s.segments_in_use();
    assert!(used > 8, "{used}");
    s.clock_mut().advance(20);
    s.tick();
    s.expiry_begin(usize::MAX);
    let (mut steps, mut written) = (0, 0);
    while s.expiry_pending() {
        let read = s.expiry_step(EXPIRY_STEP);
        assert!(read <= EXPIRY_STEP, "a step read {read} records");
        steps += 1;
        // Same TTL: the same chain, whose tail may be a segment this pass
        // is freeing.
        put(&mut s, &format!("new:{written}"), 5);
        written += 1;
        assert!(steps < 100_000, "the pass never ends");
    }
    assert!(
        steps >= 6000 / EXPIRY_STEP,
        "{steps} steps for 6000 records"
    );
    assert!(
        s.stats.expired_segments >= (used as u64 - 3),
        "{:?}",
        s.stats
    );
    for i in 0..6000 {
        assert!(
            s.get(format!("t:{i}").as_bytes()).is_none(),
            "t:{i} expired"
        );
    }
    for (k, n) in [("stay", 300), ("new", written)] {
        for i in 0..n {
            let key = format!("{k}:{i}");
            let f = s
                .get(key.as_bytes())
                .unwrap_or_else(|| panic!("{key} lost"));
            assert_eq!(
                f.item.value(),
                format!("{key}|{}", "v".repeat(90)).as_bytes()
            );
        }
    }
    assert_eq!(s.curr_items(), 300 + written);
}

#[test]
fn huge_values_and_limits() {
    let mut s = store(8 << 20, 1 << 20, Eviction::Merge);
    let big = vec![b'z'; (1 << 20) - 100];
    assert!(matches!(
        s.set(&SetArgs::new(SetMode::Set, b"big", &big, 0, 0)),
        SetOutcome::Stored { .. }
    ));
    let too = vec![b'z'; 1 << 20];
    assert_eq!(
        s.set(&SetArgs::new(SetMode::Set, b"big", &too, 0, 0)),
        SetOutcome::TooLarge
    );
    assert!(
        s.get(b"big").is_none(),
        "a refused set drops the old value, as memcached does"
    );
}

#[test]
fn memory_limit_shrinks_restores_and_grows_past_start_up() {
    let mut s = store(16 * 65536, 65536, Eviction::Merge);
    for i in 0..20_000u32 {
        let k = format!("m:{i}");
        s.set(&SetArgs::new(
            SetMode::Set,
            k.as_bytes(),
            &[b'v'; 100],
            0,
            0,
        ));
    }
    assert!(
        s.segments_free() <= 3,
        "full but for what the last merge freed"
    );
    assert!(s.set_memory_limit(6 * 65536));
    assert_eq!(s.memory_limit(), 6 * 65536);
    assert!(s.segments_in_use() <= 6, "shrinking evicts now");
    for i in 0..20_000u32 {
        let k = format!("n:{i}");
        s.set(&SetArgs::new(
            SetMode::Set,
            k.as_bytes(),
            &[b'v'; 100],
            0,
            0,
        ));
        assert!(s.segments_in_use() <= 6);
    }
    assert!(
        !s.set_memory_limit(usize::MAX / 2),
        "cannot grow past the arena's room (the host's memory)"
    );
    // Below three segments (or what the index leaves): the floor of
    // three, as memcached takes any limit and keeps what it has.
    assert!(s.set_memory_limit(2 * 65536), "the floor of three segments");
    assert_eq!(s.memory_limit(), 2 * 65536);
    assert!(s.segments_in_use() <= 3, "{}", s.segments_in_use());
    for i in 0..2_000u32 {
        let k = format!("f:{i}");
        let o = s.set(&SetArgs::new(
            SetMode::Set,
            k.as_bytes(),
            &[b'v'; 100],
            0,
            0,
        ));
        assert!(matches!(o, SetOutcome::Stored { .. }), "{o:?}");
        assert!(s.segments_in_use() <= 3);
    }
    assert!(s.get(b"f:1999").is_some(), "the last write is kept");
    assert!(s.set_memory_limit(16 * 65536));
    for i in 0..20_000u32 {
        let k = format!("o:{i}");
        s.set(&SetArgs::new(
            SetMode::Set,
            k.as_bytes(),
            &[b'v'; 100],
            0,
            0,
        ));
    }
    assert!(s.segments_in_use() > 12, "the restored limit is used again");
    // Past the start-up memory, as memcached's cache_memlimit: new
    // segments are carved from the arena's untouched room.
    assert!(s.set_memory_limit(40 * 65536));
    assert_eq!(s.memory_limit(), 40 * 65536);
    for i in 0..40_000u32 {
        let k = format!("p:{i}");
        s.set(&SetArgs::new(
            SetMode::Set,
            k.as_bytes(),
            &[b'v'; 100],
            0,
            0,
        ));
    }
    assert!(s.segments_in_use() > 30, "the grown limit is used");
    assert!(s.set_memory_limit(8 * 65536), "and shrinks again");
    assert!(s.segments_in_use() <= 8);
}

#[test]
fn pinned_values_keep_their_bytes_through_churn_under_every_policy() {
    // What the engine relies on for zero-copy sends: bytes of a pinned
    // value never change, whatever happens to the key, and memory pinned
    // this way comes back once unpinned.
    for policy in ALL_POLICIES {
        let mut s = store(16 * 65536, 65536, policy);
        let mut pinned = Vec::new();
        for round in 0..40u32 {
            let key = format!("pin{round}");
            let v = vec![b'a' + (round % 26) as u8; 20_000];
            s.set(&SetArgs::new(SetMode::Set, key.as_bytes(), &v, 0, 0));
            if s.may_pin() {
                if let Some(f) = s.get(key.as_bytes()) {
                    let val = f.item.value();
                    let seg = s.pin(val);
                    pinned.push((seg, val.as_ptr(), v));
                }
            }
            // Churn: overwrite, delete, flush now and then, fill past -m.
            for i in 0..60u32 {
                let k = format!("churn{i}");
                let filler = vec![b'0' + (i % 10) as u8; 9_000];
                s.set(&SetArgs::new(SetMode::Set, k.as_bytes(), &filler, 0, 0));
                if i % 3 == 0 && s.evict_ahead_pending() {
                    s.evict_ahead_step(1 + i as usize % 4);
                }
            }
            s.set(&SetArgs::new(
                SetMode::Set,
                key.as_bytes(),
                &[b'Z'; 20_000],
                0,
                0,
            ));
            s.delete(key.as_bytes(), 0);
            if round % 7 == 3 {
                s.flush(0);
            }
            check_pins_and_release_oldest(&mut s, &mut pinned, &format!("{policy:?}"));
        }
        for (seg, _, _) in pinned.drain(..) {
            s.unpin(seg);
        }
        // Everything unpinned: the store still fills and serves.
        for i in 0..500u32 {
            let k = format!("after{i}");
            s.set(&SetArgs::new(SetMode::Set, k.as_bytes(), b"v", 0, 0));
        }
        assert!(s.bytes() <= s.memory_bytes(), "{policy:?}");
        if policy != Eviction::None {
            let o = s.set(&SetArgs::new(SetMode::Set, b"last", b"v", 0, 0));
            assert_eq!(
                s.get(b"after499").map(|f| f.item.value().to_vec()),
                Some(b"v".to_vec()),
                "{policy:?} {o:?} {} in use, {} free",
                s.segments_in_use(),
                s.segments_free()
            );
        }
    }
}

/// Sets `key` (flags `k`) with a TTL of `ttl` seconds and records what a
/// hit must return in `latest` (value, absolute expiry, 0 = never), or
/// forgets it if the store refused (policy `none`); whether it stored.
fn set_and_record(
    s: &mut Store,
    latest: &mut HashMap<u32, (Vec<u8>, u32)>,
    k: u32,
    key: &str,
    v: String,
    ttl: i64,
) -> bool {
    let now = s.now();
    match s.set(&SetArgs::new(
        SetMode::Set,
        key.as_bytes(),
        v.as_bytes(),
        k,
        ttl,
    )) {
        SetOutcome::Stored { .. } => {
            let exp = if ttl == 0 { 0 } else { now + ttl as u32 };
            latest.insert(k, (v.into_bytes(), exp));
            true
        }
        SetOutcome::NoMemory => {
            latest.remove(&k);
            false
        }
        o => panic!("{o:?}"),
    }
}

/// Reads `key` (flags `k`) as a hit counts; asserts a hit is exactly the
/// latest value written under it and not expired, and pins it for a
/// zero-copy send while fewer than `pins` are held; whether it hit.
fn get_checked(
    s: &mut Store,
    latest: &HashMap<u32, (Vec<u8>, u32)>,
    k: u32,
    key: &str,
    what: &str,
    pinned: &mut Pinned,
    pins: usize,
) -> bool {
    let Some(f) = s.get(key.as_bytes()) else {
        return false;
    };
    let Some((want, exp)) = latest.get(&k) else {
        panic!("{what}: key {k} hit, never written or deleted");
    };
    assert!(f.item.value() == &want[..], "{what}: key {k}");
    assert!(*exp == 0 || *exp > s.now(), "{what}: key {k} expired");
    if pinned.len() < pins && s.may_pin() {
        let val = f.item.value();
        let seg = s.pin(val);
        pinned.push((seg, val.as_ptr(), val.to_vec()));
    }
    true
}

/// Values pinned for a zero-copy send: (segment, first byte, the bytes
/// they must keep).
type Pinned = Vec<(u32, *const u8, Vec<u8>)>;

/// Asserts that no pinned value's bytes changed, then releases the oldest
/// pin while more than two are held (at most a quarter of the segments
/// stay pinned).
fn check_pins_and_release_oldest(s: &mut Store, pinned: &mut Pinned, what: &str) {
    for (_, ptr, want) in pinned.iter() {
        // SAFETY: the segment is pinned, so its memory is neither unmapped
        // nor reused while we look.
        let now = unsafe { std::slice::from_raw_parts(*ptr, want.len()) };
        assert!(now == &want[..], "{what}: pinned bytes changed");
    }
    if pinned.len() > 2 {
        let (seg, _, _) = pinned.remove(0);
        s.unpin(seg);
    }
}

/// TTL shapes a cache must not be broken by: jittered over a short or a
/// long range, every item its own TTL from 1 s to 30 days (log-uniform),
/// and half without a TTL, half with 1 s.
#[derive(Clone, Copy, Debug)]
enum TtlShape {
    Short,
    Long,
    Wide,
    NoneOr1s,
}

const TTL_SHAPES: [TtlShape; 4] = [
    TtlShape::Short,
    TtlShape::Long,
    TtlShape::Wide,
    TtlShape::NoneOr1s,
];

impl TtlShape {
    fn ttl(self, r: u64) -> i64 {
        match self {
            TtlShape::Short => 5 + (r % 56) as i64,
            TtlShape::Long => 30 + (r % 3571) as i64,
            TtlShape::Wide => {
                let u = (r >> 11) as f64 / (1u64 << 53) as f64;
                (u * (2_592_000f64).ln()).exp().max(1.0) as i64
            }
            TtlShape::NoneOr1s => (r % 2) as i64,
        }
    }
}

/// Writes far past the budget under each TTL shape and each policy; every
/// hit is exactly the latest value written under its key, and not expired.
#[test]
fn fill_past_budget_under_ttl_mixes_never_returns_wrong_or_expired_data() {
    for shape in TTL_SHAPES {
        for policy in ALL_POLICIES {
            let mut s = store(16 * 65536, 65536, policy);
            // key -> (value, absolute expiry in store time, 0 = never)
            let mut latest: HashMap<u32, (Vec<u8>, u32)> = HashMap::new();
            let mut rng = 0x0bad_5eed_1234_5678u64;
            let mut next = || {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                rng
            };
            let (mut hits, mut stored) = (0, 0);
            for i in 0..100_000u32 {
                let r = next();
                let k = ((r >> 8) % 4000) as u32;
                let key = format!("ttl:{k}");
                if r % 4 == 0 {
                    let v = format!("{key}|v{i}|{}", "x".repeat((r >> 20) as usize % 300));
                    let ttl = shape.ttl(next());
                    stored += set_and_record(&mut s, &mut latest, k, &key, v, ttl) as usize;
                } else if let Some(f) = s.get(key.as_bytes()) {
                    hits += 1;
                    let (want, exp) = latest.get(&k).expect("a hit was written");
                    assert_eq!(f.item.value(), &want[..], "{shape:?} {policy:?} key {k}");
                    assert!(
                        *exp == 0 || *exp > s.now(),
                        "{shape:?} {policy:?}: expired hit"
                    );
                    assert_eq!(f.item.flags(), k);
                }
                if i % 500 == 0 {
                    s.clock_mut().advance(1);
                    // Odd seconds: a whole pass at once; even ones: the
                    // pass in steps between the operations, as the worker
                    // runs it.
                    if s.now() % 2 == 1 {
                        s.expire(16);
                    } else {
                        s.expiry_begin(16);
                    }
                }
                if s.expiry_pending() {
                    assert!(s.expiry_step(EXPIRY_STEP) <= EXPIRY_STEP);
                }
                // Merges ahead of need in steps, beside the expiry pass's:
                // either may free what the other holds half done.
                if s.evict_ahead_pending() {
                    s.evict_ahead_step(1 + (r >> 50) as usize % 8);
                }
            }
            assert!(s.bytes() <= s.memory_bytes());
            assert!(hits > 100, "{shape:?} {policy:?}: {hits} hits");
            // `none` refuses when full; `volatile` too once items without a
            // TTL fill it.
            assert!(
                stored > 10_000 || matches!(policy, Eviction::None | Eviction::Volatile),
                "{shape:?} {policy:?}"
            );
        }
    }
}

/// memcached 1.6's chunk for an item: 48-byte header, 8-byte CAS, key and
/// its terminator, value and its CRLF, rounded up to a slab class (96
/// bytes, growing by 1.25, 8-byte aligned).
fn memcached_chunk(klen: usize, vlen: usize) -> usize {
    let need = 48 + 8 + klen + 1 + vlen + 2;
    let mut size = 96usize;
    while size < need {
        size = ((size as f64 * 1.25) as usize + 7) & !7;
    }
    size
}

/// A hostile or unlucky TTL distribution must not make the store keep fewer
/// live (unexpired) items than memcached could at the same memory: here,
/// than fit in it at memcached's chunk size, its hash table not counted.
#[test]
fn hostile_ttls_keep_at_least_as_many_live_items_as_memcached_could() {
    let memory = 64 << 20;
    let value = [b'v'; 200];
    let bound = memory / memcached_chunk(8, value.len());
    for shape in TTL_SHAPES {
        let mut s = store(memory, 1 << 20, Eviction::Merge);
        let mut rng = 0x1234_5678_9abc_def1u64;
        let n = 800_000u32;
        for i in 0..n {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let key = format!("h{i:07}");
            let ttl = shape.ttl(rng);
            s.set(&SetArgs::new(SetMode::Set, key.as_bytes(), &value, 0, ttl));
            // About 50 k writes a second.
            if i % 50_000 == 0 {
                s.clock_mut().advance(1);
                s.expire(16);
            }
        }
        let live = (0..n)
            .filter(|i| s.find(format!("h{i:07}").as_bytes()).is_some())
            .count();
        assert!(
            live >= bound,
            "{shape:?}: {live} live items, memcached could keep {bound}"
        );
    }
}

/// Merge eviction in steps ahead of need (store/merge_job.rs), with the
/// hand too (a shard of at least `AHEAD_HAND_SEGMENTS` segments) or, in a
/// smaller shard, its victim counted ahead and then waiting, a few
/// records a step between operations that change what a half-done merge
/// holds: overwrites and deletes of its records, expiry passes in steps and
/// whole that free its victims and destinations, flushes, pinned values.
/// Every hit is exactly the latest value written under its key and not
/// expired, and pinned bytes never change.
#[test]
fn merges_in_steps_ahead_of_need_never_return_wrong_data() {
    for (shape, segs) in TTL_SHAPES
        .iter()
        .flat_map(|&sh| [(sh, 48), (sh, AHEAD_HAND_SEGMENTS + 32)])
    {
        let mut s = store(segs * 65536, 65536, Eviction::Merge);
        let mut latest: HashMap<u32, (Vec<u8>, u32)> = HashMap::new();
        let mut pinned: Pinned = Vec::new();
        let mut rng = 0x5eed_0fa1_15ee_d001u64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut hits = 0;
        for i in 0..300_000u32 {
            let r = next();
            let k = ((r >> 8) % 150_000) as u32;
            let key = format!("ahead:{k}");
            match r % 16 {
                0..=5 => {
                    let v = format!("{key}|v{i}|{}", "y".repeat((r >> 20) as usize % 400));
                    // Half the writes without a TTL, so the store fills.
                    let ttl = if r & (1 << 40) == 0 {
                        0
                    } else {
                        shape.ttl(next())
                    };
                    assert!(set_and_record(&mut s, &mut latest, k, &key, v, ttl));
                }
                6 => {
                    s.delete(key.as_bytes(), 0);
                    latest.remove(&k);
                }
                _ => {
                    let what = format!("{shape:?} op {i}");
                    let pins = if r % 997 == 0 { 4 } else { 0 };
                    if get_checked(&mut s, &latest, k, &key, &what, &mut pinned, pins) {
                        hits += 1;
                    }
                }
            }
            if s.evict_ahead_pending() {
                s.evict_ahead_step(1 + (r >> 50) as usize % 8);
            }
            if i % 2000 == 0 {
                s.clock_mut().advance(1);
                if s.now() % 2 == 1 {
                    s.expire(16);
                } else {
                    s.expiry_begin(16);
                }
                check_pins_and_release_oldest(&mut s, &mut pinned, &format!("{shape:?}"));
            }
            if i == 100_000 {
                s.flush(0);
                latest.clear();
            }
            if s.expiry_pending() {
                s.expiry_step(1 + (r >> 44) as usize % 40);
            }
        }
        for (seg, _, _) in pinned.drain(..) {
            s.unpin(seg);
        }
        assert!(hits > 10_000, "{shape:?}: {hits} hits");
        assert!(
            s.stats.evictions > 1000,
            "{shape:?}: {} evictions, {} items, {} merges, {} ahead, {} segs, {:?} hits",
            s.stats.evictions,
            s.curr_items(),
            s.stats.merges,
            s.stats.merges_ahead,
            s.segments_limit(),
            hits
        );
        // (A small shard's hand evicts only on need: most of its merges
        // end there.)
        if segs >= AHEAD_HAND_SEGMENTS {
            assert!(
                s.stats.merges_ahead * 2 > s.stats.merges,
                "{shape:?}: {} of {} merges ahead",
                s.stats.merges_ahead,
                s.stats.merges
            );
        }
    }
}

/// The class of the corruption fixed in 51f8357 (a short merge reserve put
/// to use for a record past its end): `cache_memlimit` moving while values
/// from a byte to most of a segment are set, appended, deleted, read,
/// pinned, expired and merged ahead, under every eviction policy. Every
/// hit is exactly the latest value written under its key, never expired;
/// pinned bytes never change; the store stays within its limit.
#[test]
fn every_policy_stays_exact_while_cache_memlimit_moves() {
    const SEG: usize = 65536;
    for (policy, seed) in ALL_POLICIES
        .iter()
        .flat_map(|&p| (0..4u64).map(move |n| (p, n)))
    {
        let mut s = store(24 * SEG, SEG, policy);
        let mut latest: HashMap<u32, (Vec<u8>, u32)> = HashMap::new();
        let mut pinned: Pinned = Vec::new();
        let mut rng = 0x0ddb_a11c_afe5_eed5u64 ^ (policy as u64) << 8 ^ seed << 16;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let (mut hits, mut moves) = (0u32, 0u32);
        for i in 0..60_000u32 {
            let r = next();
            if i % 1500 == 0 {
                // Down to the floor of three, back, and past start-up.
                let segs = [3usize, 5, 8, 24, 12, 40, 6][(r >> 4) as usize % 7];
                // Not whole segments: the remainder makes a short segment,
                // and a short merge reserve (51f8357).
                if s.set_memory_limit(segs * SEG + (r >> 20) as usize % SEG) {
                    moves += 1;
                }
                // (`volatile` evicts only items with a TTL and `none`
                // nothing: as memcached under -M, they keep what they hold.)
                let evicts_all = !matches!(policy, Eviction::Volatile | Eviction::None);
                assert!(
                    !evicts_all || s.segments_in_use() <= s.segments_limit().max(3) + pinned.len(),
                    "{policy:?} op {i}: {} segments in use, limit {}",
                    s.segments_in_use(),
                    s.segments_limit()
                );
            }
            if i % 500 == 0 {
                all_exact(&mut s, &latest, &format!("{policy:?} op {i}"));
            }
            let k = ((r >> 8) % 2000) as u32;
            let key = format!("lim:{k}");
            // Half small, a few near the segment's size.
            let len = match (r >> 24) % 20 {
                0..10 => (r >> 32) as usize % 200,
                10..17 => (r >> 32) as usize % 6000,
                _ => 20_000 + (r >> 32) as usize % (SEG - 20_100),
            };
            match r % 16 {
                0..=4 => {
                    let v = format!("{key}|v{i}|{}", "z".repeat(len));
                    let ttl = if r & (1 << 40) == 0 {
                        0
                    } else {
                        1 + (r >> 41) as i64 % 30
                    };
                    if v.len() < SEG - 200 {
                        set_and_record(&mut s, &mut latest, k, &key, v, ttl);
                    }
                }
                5 => {
                    let tail = format!("+{i}{}", "a".repeat(len % 3000));
                    let now = s.now();
                    match s.set(&SetArgs::new(
                        SetMode::Append,
                        key.as_bytes(),
                        tail.as_bytes(),
                        0,
                        0,
                    )) {
                        SetOutcome::Stored { .. } => {
                            let (v, exp) =
                                latest.get_mut(&k).expect("appended to a key never stored");
                            assert!(
                                *exp == 0 || *exp > now,
                                "{policy:?}: appended to an expired item"
                            );
                            v.extend_from_slice(tail.as_bytes());
                        }
                        // Not found, or (as memcached's do_store_item) no
                        // memory for the longer value, when the item is left
                        // as it was: the limit can be a few segments with
                        // most of them pinned.
                        SetOutcome::NotStored => {
                            if s.find_read(key.as_bytes()).is_none() {
                                latest.remove(&k);
                            }
                        }
                        o => panic!("{policy:?} op {i}: append {o:?}"),
                    }
                }
                6 => {
                    s.delete(key.as_bytes(), 0);
                    latest.remove(&k);
                }
                _ => {
                    let what = format!("{policy:?} op {i}");
                    let pins = if r % 499 == 0 { 3 } else { 0 };
                    if get_checked(&mut s, &latest, k, &key, &what, &mut pinned, pins) {
                        hits += 1;
                    } else {
                        latest.remove(&k);
                    }
                }
            }
            if s.evict_ahead_pending() {
                s.evict_ahead_step(1 + (r >> 50) as usize % 8);
            }
            assert_eq!(s.segment_overrun(), None, "{policy:?} op {i}");
            if i % 700 == 0 {
                s.clock_mut().advance(1);
                s.expiry_begin(16);
                check_pins_and_release_oldest(&mut s, &mut pinned, &format!("{policy:?}"));
            }
            if s.expiry_pending() {
                s.expiry_step(1 + (r >> 44) as usize % 40);
            }
        }
        for (seg, _, _) in pinned.drain(..) {
            s.unpin(seg);
        }
        all_exact(&mut s, &latest, &format!("{policy:?} at the end"));
        assert!(moves > 30, "{policy:?}: {moves} limit moves");
        assert!(hits > 400, "{policy:?} seed {seed}: {hits} hits");
    }
}

/// Asserts that every key of `latest` the store still holds (`lim:{k}`)
/// has exactly its latest value, unexpired: a write past a segment's end
/// shows here as another key's bytes, whether or not that key is read.
fn all_exact(s: &mut Store, latest: &HashMap<u32, (Vec<u8>, u32)>, what: &str) {
    for (k, (want, exp)) in latest {
        if let Some(f) = s.find_read(format!("lim:{k}").as_bytes()) {
            assert!(f.item.value() == &want[..], "{what}: key {k}");
            assert!(*exp == 0 || *exp > s.now(), "{what}: key {k} expired");
        }
    }
}
