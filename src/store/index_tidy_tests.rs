//! `Index::tidy` (pull and compact) against an invariant checker: hints,
//! chains, free lists, counts, pages given back and paid for. Written by
//! a reviewer to break it; each test once failed or guards what held.
use super::tests::{id_slot, slot_id};
use super::*;
use crate::store::test_rng::TestRng;
use std::collections::HashSet;

/// Checks every structural invariant of the index: `hashes[id]` is the
/// hash of item `id`, `live` the ids linked.
pub(super) fn check(ix: &Index, hashes: &[u64], live: &HashSet<usize>, what: &str) {
    let items = check_with(
        ix,
        |v| hashes[slot_id(v)],
        |v| live.contains(&slot_id(v)),
        what,
    );
    assert_eq!(items, live.len(), "{what}: items in index");
    for &id in live {
        assert!(
            ix.find(hashes[id], |s| slot_id(s) == id).is_some(),
            "{what}: item {id} lost"
        );
    }
}

/// Checks every structural invariant of the index (hints, chains and
/// their group bits, free and leaked buckets, counts of displaced and
/// overflowed items, every item found where it is); `hash_of` gives the
/// hash of the item a slot value points at, `is_live` whether it should
/// be linked. Returns the items found.
pub(crate) fn check_with(
    ix: &Index,
    hash_of: impl Fn(u64) -> u64,
    is_live: impl Fn(u64) -> bool,
    what: &str,
) -> usize {
    let base = ix.overflow_base;
    let cap = ix.shared.cap() as u32;
    assert_eq!(
        ix.hints.len(),
        ix.shared_overflow as usize,
        "{what}: hints len"
    );
    let mut free = HashSet::new();
    for &f in &ix.free_overflow {
        let ok = (f >= base && f < base + ix.shared_overflow)
            || (f >= cap && ((f - cap) as usize) < ix.spill.len());
        assert!(
            ok,
            "{what}: free bucket {f} out of range (base {base}, shared {})",
            ix.shared_overflow
        );
        assert!(free.insert(f), "{what}: free bucket {f} twice");
        for i in 1..SLOTS {
            assert_eq!(
                ix.bucket(f).slot(i),
                0,
                "{what}: free bucket {f} slot {i} not empty"
            );
        }
    }
    let found_at = |h: u64, v: u64, b: u32, i: usize| {
        let r = ix.find(h, |s| s == v).expect("linked item found");
        assert_eq!(
            (r.bucket, r.slot as usize),
            (b, i),
            "{what}: found elsewhere"
        );
    };
    let mut seen = HashSet::new();
    let mut overflowed = vec![0u64; ix.len as usize];
    let mut displaced = vec![0u64; ix.len as usize];
    let mut found_items = 0usize;
    for b in 0..ix.len {
        for i in 1..SLOTS {
            let v = ix.primary(b).slot(i);
            if v == 0 {
                continue;
            }
            let id = slot_id(v);
            assert!(is_live(v), "{what}: dead item {id} in primary {b}");
            let home = ix.home(hash_of(v));
            found_at(hash_of(v), v, b, i);
            assert!(
                b >= home && b <= home + NEIGHBOURS,
                "{what}: item {id} homed {home} in {b}"
            );
            if b != home {
                displaced[home as usize] += 1;
            }
            found_items += 1;
        }
    }
    for g in (0..ix.len).step_by(GROUP as usize) {
        let mut c = g;
        let mut hops = 0;
        while let Some(n) = ix.next(c) {
            hops += 1;
            assert!(hops < 1_000_000, "{what}: cycle in chain of {g}");
            assert!(n >= base, "{what}: chain of {g} links primary {n}");
            assert!(seen.insert(n), "{what}: bucket {n} on two chains / twice");
            assert!(
                !free.contains(&n),
                "{what}: free bucket {n} on chain of {g}"
            );
            let info = ix.bucket(n).slot(0);
            assert_eq!(
                (info >> CHAIN_GROUP_SHIFT) as u32,
                g,
                "{what}: bucket {n} group bits"
            );
            let hints = ix.hints_of(n);
            if n < cap {
                assert!(
                    n < base + ix.shared_overflow,
                    "{what}: chained {n} above high water"
                );
                assert!(hints.is_some(), "{what}: shared bucket {n} without hints");
            }
            for i in 1..SLOTS {
                let v = ix.bucket(n).slot(i);
                if v == 0 {
                    continue;
                }
                let id = slot_id(v);
                assert!(is_live(v), "{what}: dead item {id} in overflow {n}");
                let home = ix.home(hash_of(v));
                found_at(hash_of(v), v, n, i);
                assert_eq!(Index::group(home), g, "{what}: item {id} in wrong chain");
                if let Some(h) = hints {
                    let hint = (h >> ((i as u32 - 1) * HINT_BITS)) & HINT_MASK;
                    assert_eq!(
                        hint,
                        (home - g) as u64,
                        "{what}: hint of {n}/{i} (item {id})"
                    );
                }
                overflowed[home as usize] += 1;
                found_items += 1;
            }
            c = n;
        }
    }
    // No leaked overflow bucket: each is free or on a chain.
    for n in base..base + ix.shared_overflow {
        assert!(
            seen.contains(&n) || free.contains(&n),
            "{what}: bucket {n} leaked"
        );
    }
    for k in 0..ix.spill.len() as u32 {
        let n = cap + k;
        assert!(
            seen.contains(&n) || free.contains(&n),
            "{what}: spill {n} leaked"
        );
    }
    assert_eq!(found_items, ix.items, "{what}: items counted");
    for b in 0..ix.len {
        let o = ix.overflowed(b);
        if o != OVERFLOWED_MASK {
            assert_eq!(o, overflowed[b as usize], "{what}: overflowed of {b}");
        }
        let d = ix.displaced(b);
        if d != DISPLACED_MASK {
            assert_eq!(d, displaced[b as usize], "{what}: displaced of {b}");
        }
    }
    assert!(
        ix.resident_top >= base + ix.shared_overflow,
        "{what}: resident_top {} below high water {}",
        ix.resident_top,
        base + ix.shared_overflow
    );
    found_items
}

/// As `Store::link` does it: grow, tidy, then place.
fn insert(
    ix: &mut Index,
    hashes: &mut Vec<u64>,
    live: &mut HashSet<usize>,
    h: u64,
    grow: bool,
) -> usize {
    let id = hashes.len();
    hashes.push(h);
    if grow && ix.wants_growth() {
        let hs = &*hashes;
        ix.split_one(|v| hs[slot_id(v)]);
    }
    if ix.wants_tidy() {
        ix.tidy();
    }
    let r = ix.empty_slot(h);
    ix.set(r, id_slot(h, id));
    ix.items += 1;
    live.insert(id);
    id
}

fn remove(ix: &mut Index, hashes: &[u64], live: &mut HashSet<usize>, id: usize) {
    let h = hashes[id];
    let r = ix.find(h, |s| slot_id(s) == id).expect("linked");
    ix.clear(r, h);
    ix.items -= 1;
    live.remove(&id);
}

/// Random churn, growth, skewed homes: every invariant holds throughout.
#[test]
fn random_churn_keeps_every_invariant() {
    for (seed, skew, grow, start, max, n) in [
        (1u64, 0u32, true, 2_000usize, 200_000usize, 60_000usize),
        (2, 6, true, 2_000, 200_000, 60_000),
        (3, 3, false, 20_000, 20_000, 30_000),
        (4, 0, false, 20_000, 20_000, 24_000),
    ] {
        let mut ix = Index::new(start, max, false);
        let mut rng = TestRng(0x9e37_79b9_7f4a_7c15 ^ seed);
        let mut hashes = vec![];
        let mut live = HashSet::new();
        let mut order: Vec<usize> = vec![];
        let gen = |rng: &mut TestRng| {
            let x = rng.next();
            if skew > 0 {
                // Low 32 bits (the home) squeezed into 1/2^skew of the range.
                (x & !0xffff_ffff) | ((x & 0xffff_ffff) >> skew)
            } else {
                x
            }
        };
        for _ in 0..n {
            let h = gen(&mut rng);
            order.push(insert(&mut ix, &mut hashes, &mut live, h, grow));
        }
        check(&ix, &hashes, &live, "after fill");
        let mut compactions = 0;
        for round in 0..30 {
            // Evict the oldest batch, delete some at random, insert.
            let batch = n / 10;
            let oldest: Vec<usize> = order.drain(..batch).collect();
            for id in oldest {
                if live.contains(&id) {
                    remove(&mut ix, &hashes, &mut live, id);
                }
            }
            for _ in 0..batch / 4 {
                let i = (rng.next() % order.len() as u64) as usize;
                let id = order[i];
                if live.contains(&id) {
                    remove(&mut ix, &hashes, &mut live, id);
                }
            }
            check(
                &ix,
                &hashes,
                &live,
                &format!("seed {seed} round {round} after clears"),
            );
            for _ in 0..batch {
                let before = ix.shared_overflow;
                let h = gen(&mut rng);
                order.push(insert(&mut ix, &mut hashes, &mut live, h, grow));
                if ix.shared_overflow + 1 < before {
                    compactions += 1;
                }
                if rng.next().is_multiple_of(2000) {
                    check(
                        &ix,
                        &hashes,
                        &live,
                        &format!("seed {seed} round {round} mid insert"),
                    );
                }
            }
            check(
                &ix,
                &hashes,
                &live,
                &format!("seed {seed} round {round} after inserts"),
            );
        }
        eprintln!(
            "seed {seed}: compactions {compactions}, overflow {} high {} spill {} free {}",
            ix.overflow_buckets(),
            ix.shared_overflow,
            ix.spill.len(),
            ix.free_overflow.len()
        );
    }
}

fn chained(ix: &Index) -> u64 {
    (0..ix.len).map(|b| ix.overflowed(b)).sum()
}

/// How often `tidy`, run as `Store::link` runs it under eviction churn,
/// opens a write section (every foreign miss overlapping it retries) and
/// how often that section moved anything.
#[test]
fn tidy_sections_move_something() {
    let n = 100_000;
    let mut ix = Index::new(n / 8, 4 * n, false);
    let mut rng = TestRng(0x2545_f491_4f6c_dd1d);
    let mut hashes = vec![];
    let mut live = HashSet::new();
    let mut order = vec![];
    for _ in 0..n {
        let h = rng.next();
        order.push(insert(&mut ix, &mut hashes, &mut live, h, true));
    }
    let (mut inserts, mut sections, mut useful) = (0, 0, 0);
    let batch = 3_000;
    for _ in 0..40 {
        for id in order.drain(..batch).collect::<Vec<_>>() {
            remove(&mut ix, &hashes, &mut live, id);
        }
        for _ in 0..batch {
            let h = rng.next();
            inserts += 1;
            if ix.wants_tidy() {
                let (s0, c0, b0) = (ix.shared.read_begin().unwrap().0, chained(&ix), ix.bytes());
                ix.tidy();
                let s1 = ix.shared.read_begin().unwrap().0;
                sections += (s1 - s0) / 2;
                if chained(&ix) != c0 || ix.bytes() != b0 {
                    useful += 1;
                }
            }
            let id = hashes.len();
            hashes.push(h);
            let r = ix.empty_slot(h);
            ix.set(r, id_slot(h, id));
            ix.items += 1;
            live.insert(id);
            order.push(id);
        }
    }
    check(&ix, &hashes, &live, "end");
    eprintln!("{inserts} inserts: {sections} tidy write sections, {useful} moved something");
}

/// Past the shared room (spill), compaction never runs again, yet
/// `wants_tidy` stays true: every insert opens an empty write section.
#[test]
fn spilled_buckets_do_not_keep_tidy_wanted() {
    // A fixed index of 64 buckets: room for 80 shared overflow buckets.
    let mut ix = Index::with_capacity(0, false);
    let mut hashes = vec![];
    let mut live = HashSet::new();
    let mut rng = TestRng(7);
    // Everything in the first group: past 80 overflow buckets it spills.
    let gen = |rng: &mut TestRng| loop {
        let h = rng.next();
        if ix_home_in_group0(h) {
            return h;
        }
    };
    fn ix_home_in_group0(h: u64) -> bool {
        (h as u32) % 64 < GROUP
    }
    let mut ids = vec![];
    for _ in 0..(100 * ITEM_SLOTS) {
        let h = gen(&mut rng);
        ids.push(insert(&mut ix, &mut hashes, &mut live, h, false));
    }
    assert!(!ix.spill.is_empty(), "spilled");
    // Delete all but the items of the last bucket chained.
    for &id in &ids[..ids.len() - 5] {
        remove(&mut ix, &hashes, &mut live, id);
    }
    check(&ix, &hashes, &live, "after deletes");
    eprintln!(
        "in use {}, shared {}, spill {}, free {}",
        ix.overflow_buckets(),
        ix.shared_overflow,
        ix.spill.len(),
        ix.free_overflow.len()
    );
    let s0 = ix.shared.read_begin().unwrap().0;
    let b0 = ix.bytes();
    for _ in 0..1000 {
        ix.tidy();
    }
    let s1 = ix.shared.read_begin().unwrap().0;
    eprintln!(
        "1000 tidy calls: {} write sections, bytes {} -> {}",
        (s1 - s0) / 2,
        b0,
        ix.bytes()
    );
    assert!(
        !ix.wants_tidy() || ix.bytes() < b0,
        "tidy still wanted and nothing compacted: {} free, {} shared high water for {} in use",
        ix.free_overflow.len(),
        ix.shared_overflow,
        ix.overflow_buckets()
    );
}

/// What `bytes` counts of the overflow room against what stays resident
/// after a compaction.
#[test]
fn resident_overflow_pages_are_paid_for() {
    let n = 150_000;
    let mut ix = Index::new(n / 8, 4 * n, false);
    let mut rng = TestRng(0x2545_f491_4f6c_dd1d);
    let (mut hashes, mut live, mut order) = (vec![], HashSet::new(), vec![]);
    for _ in 0..n {
        let h = rng.next();
        order.push(insert(&mut ix, &mut hashes, &mut live, h, true));
    }
    let high = ix.shared_overflow;
    for &id in &order[..n * 9 / 10] {
        remove(&mut ix, &hashes, &mut live, id);
    }
    while ix.wants_tidy() {
        ix.tidy();
    }
    check(&ix, &hashes, &live, "after");
    let page_of = |b: u32| (ix.shared.bucket(b) as *const Bucket as usize) & !4095;
    let from = page_of(ix.overflow_base);
    let to = page_of(ix.shared.cap() as u32 - 1) + 4096;
    let resident = crate::store::arena::resident_pages(from as *const u8, to - from);
    // What the budget pays for of the overflow room.
    let paid = ix.bytes() - ix.len as usize * std::mem::size_of::<Bucket>();
    eprintln!(
        "high water {high} buckets, now {} ({} in use), resident_top {}: {} KiB resident in the overflow room, {} KiB of it paid",
        ix.shared_overflow,
        ix.overflow_buckets(),
        ix.resident_top - ix.overflow_base,
        resident * 4,
        paid / 1024
    );
    assert!(
        resident * 4096 <= paid + 4096,
        "resident overflow pages the budget does not pay for"
    );
}

/// Discards happen (resident_top comes down), and refilling over the
/// discarded pages and compacting again loses nothing.
#[test]
fn pages_given_back_then_refilled_lose_nothing() {
    let n = 400_000;
    let mut ix = Index::new(n / 8, 4 * n, false);
    let mut rng = TestRng(0x5151);
    let (mut hashes, mut live, mut order) =
        (vec![], HashSet::new(), std::collections::VecDeque::new());
    let mut discards = 0;
    for cycle in 0..6 {
        // Skewed fill: many overflow buckets.
        let skew = if cycle % 2 == 0 { 3 } else { 0 };
        for _ in 0..n / 2 {
            let x = rng.next();
            let h = (x & !0xffff_ffff) | ((x & 0xffff_ffff) >> skew);
            let rt = ix.resident_top;
            order.push_back(insert(&mut ix, &mut hashes, &mut live, h, true));
            if ix.resident_top < rt {
                discards += 1;
            }
        }
        check(&ix, &hashes, &live, &format!("cycle {cycle} filled"));
        let high = ix.shared_overflow;
        while order.len() > n / 20 {
            let id = order.pop_front().unwrap();
            remove(&mut ix, &hashes, &mut live, id);
        }
        for _ in 0..5_000 {
            let rt = ix.resident_top;
            let h = rng.next();
            order.push_back(insert(&mut ix, &mut hashes, &mut live, h, true));
            if ix.resident_top < rt {
                discards += 1;
            }
        }
        check(&ix, &hashes, &live, &format!("cycle {cycle} emptied"));
        eprintln!(
            "cycle {cycle}: high {high} -> {} in use {} (resident_top {}), discards so far {discards}, pulls queued {}",
            ix.shared_overflow,
            ix.overflow_buckets(),
            ix.resident_top - ix.overflow_base,
            ix.pulls.len()
        );
    }
    assert!(discards > 0);
    // What pulls dropped from the full queue left behind: a sweep over
    // every primary bucket brings them home.
    let before = ix.overflow_buckets();
    loop {
        let c0 = chained(&ix);
        for b in 0..ix.len {
            if ix.overflowed(b) > 0 {
                ix.pulls.push(b);
            }
        }
        while !ix.pulls.is_empty() {
            ix.tidy();
        }
        if chained(&ix) == c0 {
            break;
        }
    }
    while ix.wants_tidy() {
        ix.tidy();
    }
    check(&ix, &hashes, &live, "swept");
    eprintln!(
        "{} items: {before} overflow buckets in use, {} after a full sweep of pulls",
        live.len(),
        ix.overflow_buckets()
    );
}

/// Items in overflow chains whose home bucket has a free slot (what pulls
/// exist to bring home), and overflow buckets in use.
pub(crate) fn stranded(ix: &Index) -> (usize, usize) {
    let mut n = 0;
    for b in 0..ix.len {
        let free = (1..SLOTS).filter(|&i| ix.primary(b).slot(i) == 0).count();
        n += free.min(ix.overflowed(b) as usize);
    }
    (n, ix.overflow_buckets())
}
