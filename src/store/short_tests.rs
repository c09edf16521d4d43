//! The short segment (`budget.rs`): what the budget leaves below a whole
//! segment, held by one segment at a time. These began as a reviewer's
//! probes of its first version (each failed there): a page larger than the
//! segment, `cache_memlimit` on an arena without room for it, records
//! larger than it under every eviction policy, segment sizes that are not
//! a page multiple, a warm restart of a full store, and the budget checked
//! after every write.
use super::budget::{short_within, SEGMENT_OVERHEAD};
use super::clock::Clock;
use super::test_rng::TestRng;
use super::{Eviction, SetArgs, SetMode, SetOutcome, Store, StoreConfig};

pub(super) fn store(cfg: StoreConfig) -> Store {
    Store::new(cfg, Clock::manual(1_700_000_000)).unwrap()
}

/// A 16 MiB store (the test host's huge pages aside) under `eviction`.
pub(super) fn store_16m(eviction: Eviction) -> Store {
    store(StoreConfig {
        memory: 16 << 20,
        huge_pages: false,
        eviction,
        ..StoreConfig::default()
    })
}

pub(super) fn set(s: &mut Store, key: &str, value: &[u8]) -> bool {
    let got = s.set(&SetArgs::new(SetMode::Set, key.as_bytes(), value, 0, 0));
    matches!(got, SetOutcome::Stored { .. })
}

pub(super) fn value(i: u32) -> Vec<u8> {
    vec![b'a' + (i % 26) as u8; 60 + (i % 90) as usize]
}

/// Every value still there is the one written under its key.
pub(super) fn check_values(s: &mut Store, keys: std::ops::Range<u32>) -> usize {
    let mut found = 0;
    for i in keys {
        if let Some(got) = s.get(format!("key:{i}").as_bytes()) {
            assert_eq!(got.item.value(), &value(i)[..], "key:{i}");
            found += 1;
        }
    }
    found
}

/// The budget after a write: at most one short segment, no more bytes
/// than left for it unless it is paid for whole, no more segments in use
/// than paid for, and the segment bytes within the limit. Returns whether
/// a whole segment holds the short one's slot: after the short segment is
/// freed by a merge whose kept items went into the reserve, until the next
/// segment a write takes (the same one-merge excess the reserve has while
/// a merge copies into it); the callers bound how often.
fn check_budget(s: &Store, what: &str) -> bool {
    let seg = s.segs.seg_size;
    let shorts = (0..s.segs.count() as u32)
        .filter(|&id| {
            let h = s.segs.header(id);
            h.seq != 0 && (h.end as usize) < seg
        })
        .count();
    assert!(shorts <= 1, "{what}: {shorts} short segments");
    // Above the limit only while the index's growth has lowered it and no
    // segment has been needed since.
    let pending = s.segs.in_use().saturating_sub(s.seg_limit);
    assert!(pending <= 1, "{what}: {pending} segments over the limit");
    let whole_in_short_slot = match s.live_short() {
        // The reserve is the short one, its pages given back: a whole
        // segment holds its place in the chains (see `renew_reserve`).
        Some(id) if id == s.reserve && s.reserve_unpaid => true,
        Some(id) => {
            let end = s.segs.header(id).end as usize;
            assert!(
                s.partial == 0 || end <= s.partial,
                "{what}: {end} bytes, {} left",
                s.partial
            );
            false
        }
        None => s.partial > 0 && s.segs.in_use() >= s.seg_limit,
    };
    if s.seg_limit > 3 && !s.merge_running() && pending == 0 && !whole_in_short_slot {
        let used = s.segment_bytes_in_use()
            + s.index_bytes()
            + (s.segs.in_use() - usize::from(s.reserve_unpaid)) * SEGMENT_OVERHEAD;
        assert!(
            used <= s.limit + SEGMENT_OVERHEAD,
            "{what}: {used} bytes used, limit {}",
            s.limit
        );
    }
    whole_in_short_slot
}

/// 2 MiB hugetlb pages under 1 MiB segments leave nothing to give back.
#[test]
fn no_short_segment_with_a_page_as_large_as_the_segment() {
    assert_eq!(short_within(16 << 20, 1 << 20, 15, 2 << 20), 0);
    assert_eq!(short_within(16 << 20, 1 << 20, 15, 1 << 20), 0);
    assert!(short_within(16 << 20, 1 << 20, 15, 4096) > 0);
}

/// `cache_memlimit` to the limit a store already has is accepted when the
/// arena has room for the whole segments but not for the short one.
#[test]
fn the_same_limit_again_is_accepted_without_room_for_the_short_segment() {
    let memory = (21 << 20) + (600 << 10);
    let cfg = StoreConfig {
        memory,
        huge_pages: false,
        max_memory: 0,
        ..StoreConfig::default()
    };
    let mut s = store(cfg);
    assert!(s.set_memory_limit(memory), "the same limit refused");
    assert!(
        s.set_memory_limit(memory - (1 << 20)),
        "a lower limit refused"
    );
    assert!(s.set_memory_limit(memory), "the first limit refused");
}

/// Records larger than the short segment's bytes are stored under every
/// policy that evicts: they take only whole slots, and no write loops on
/// an empty short segment eviction keeps freeing.
#[test]
fn records_larger_than_the_short_segment_are_stored_under_every_policy() {
    for eviction in [
        Eviction::Merge,
        Eviction::Fifo,
        Eviction::Random,
        Eviction::Util,
        Eviction::Cte,
    ] {
        let mut s = store_16m(eviction);
        assert!(s.partial > 0, "no short segment in this budget");
        let vlen = (s.partial + 4096).min(900 << 10);
        let mut rng = TestRng(7);
        let mut whole = 0;
        for i in 0..300u32 {
            // Small ones between, so that the short slot is taken too.
            for j in 0..200 {
                let k = 100_000 + i * 200 + j;
                assert!(set(&mut s, &format!("key:{k}"), &value(k)));
            }
            let v = vec![b'a' + (i % 26) as u8; vlen - (rng.next() % 4096) as usize];
            assert!(
                set(&mut s, &format!("big:{i}"), &v),
                "{eviction:?}: big:{i}"
            );
            whole += usize::from(check_budget(&s, &format!("{eviction:?} big:{i}")));
        }
        assert!(check_values(&mut s, 100_000..160_000) > 0);
        eprintln!("WHOLE {eviction:?} {whole} of 300");
        assert!(
            whole < 30,
            "{eviction:?}: a whole segment in the short one's slot after {whole} of 300 writes"
        );
    }
}

/// With a segment size that is not a page multiple (allowed: a multiple
/// of 8, at least 4 KiB), shortening a segment gives back only its own
/// pages: the next segment's bytes are as written.
#[test]
fn shortening_leaves_the_next_segment_alone() {
    let seg = 64 * 1024 + 2048;
    let cfg = StoreConfig {
        memory: 4 << 20,
        segment_size: seg,
        item_size_max: seg,
        huge_pages: false,
        ..StoreConfig::default()
    };
    let mut s = store(cfg);
    let taken: Vec<u32> = (0..3).map(|_| s.segs.take(0, 1).unwrap()).collect();
    let (short, next) = (taken[1], taken[2]);
    assert_eq!(next, short + 1);
    let mark: Vec<u8> = (0..4096u32).map(|b| (b % 251) as u8 + 1).collect();
    // SAFETY: test only: the first 4 KiB of a taken segment, which no
    // index slot refers to.
    unsafe { std::ptr::copy_nonoverlapping(mark.as_ptr(), s.segs.ptr(next, 0), 4096) };
    s.segs.shorten(short, 8 * 4096);
    // SAFETY: as above.
    let after = unsafe { std::slice::from_raw_parts(s.segs.ptr(next, 0), 4096) };
    assert_eq!(after, &mark[..], "the next segment's bytes changed");
}

/// The store with such segments, under merge and fifo, the reserve paid
/// and not: every value read back exact, the budget kept after every set.
#[test]
fn values_survive_short_segments_of_a_non_page_multiple_size() {
    let seg = 64 * 1024 + 2048;
    // max_memory 0: the store cannot grow, so the reserve is paid for.
    for (eviction, max_memory) in [(Eviction::Fifo, 0), (Eviction::Merge, 1 << 30)] {
        let cfg = StoreConfig {
            memory: 4 << 20,
            segment_size: seg,
            item_size_max: seg,
            huge_pages: false,
            max_memory,
            eviction,
            ..StoreConfig::default()
        };
        let mut s = store(cfg);
        let mut shorts = std::collections::BTreeSet::new();
        let mut whole = 0;
        for i in 0..150_000u32 {
            assert!(set(&mut s, &format!("key:{i}"), &value(i)), "set {i}");
            whole += usize::from(check_budget(&s, &format!("{eviction:?} set {i}")));
            if let Some(id) = s.live_short() {
                shorts.insert((id, s.segs.header(id).seq));
            }
            if i % 5000 == 4999 {
                check_values(&mut s, i.saturating_sub(20_000)..i + 1);
            }
        }
        // One a turn of the log (about 60 segments here).
        assert!(
            shorts.len() > 2,
            "{eviction:?}: {} short segments",
            shorts.len()
        );
        eprintln!("WHOLE {eviction:?} {whole} of 150000");
        assert!(
            whole < 7_500,
            "{eviction:?}: a whole segment in the short one's slot after {whole} writes"
        );
    }
}

/// A store whose index grows until only the floor of three segments is
/// left still stores small and segment-sized records.
#[test]
fn a_tiny_store_keeps_its_floor() {
    let seg = 64 << 10;
    for eviction in [Eviction::Merge, Eviction::Fifo] {
        let cfg = StoreConfig {
            memory: 3 * seg + 30_000,
            segment_size: seg,
            item_size_max: seg,
            huge_pages: false,
            eviction,
            ..StoreConfig::default()
        };
        let mut s = store(cfg);
        for i in 0..50_000u32 {
            assert!(
                set(&mut s, &format!("k{i}"), &[b'x'; 20]),
                "{eviction:?} k{i}"
            );
        }
        for i in 0..200u32 {
            assert!(
                set(&mut s, &format!("big{i}"), &[b'y'; 60_000]),
                "{eviction:?} big{i}"
            );
        }
    }
}

/// A warm restart of a full store into the same configuration restores
/// every segment, the short one into a short one.
#[test]
fn a_restart_of_a_full_store_keeps_its_items() {
    let mut a = super::test_store(16 << 20, 1_700_000_000);
    for i in 0..300_000u32 {
        assert!(set(&mut a, &format!("key:{i}"), &value(i)));
    }
    assert!(a.live_short().is_some(), "no short segment to restore");
    let mut file = Vec::new();
    a.save(&mut file).unwrap();
    let mut b = super::test_store(16 << 20, 1_700_000_000);
    let got = b
        .restore(&mut file.as_slice(), 1_700_000_000, |_| true)
        .unwrap();
    assert_eq!(got.dropped, 0);
    assert_eq!(b.curr_items(), a.curr_items());
    assert!(b.live_short().is_some(), "restored without a short segment");
    assert!(!check_budget(&b, "restored"));
    assert_eq!(check_values(&mut b, 0..300_000), a.curr_items());
    // And it goes on as before.
    let mut whole = 0;
    for i in 300_000..400_000u32 {
        assert!(set(&mut b, &format!("key:{i}"), &value(i)));
        let w = check_budget(&b, &format!("after restart, set {i}"));
        whole += usize::from(w);
    }
    eprintln!("WHOLE restart {whole} of 100000");
    assert!(
        whole < 5_000,
        "a whole segment in the short one's slot after {whole} writes"
    );
}

/// The budget after every write, with mixed sizes, deletes and replaces,
/// under the index's growth and tidy: at most one short segment, paid
/// right, the bytes in use within the limit.
#[test]
fn the_budget_holds_after_every_write() {
    for (mem, vmin, vspan) in [
        (16usize << 20, 60usize, 90usize),
        (16 << 20, 50, 3000),
        (24 << 20, 30, 60),
    ] {
        let mut s = super::test_store(mem, 1_700_000_000);
        let mut rng = TestRng(mem as u64 + vspan as u64);
        let (mut seen, mut whole) = (0, 0);
        for i in 0..400_000u32 {
            let k = rng.next() % 300_000;
            let key = format!("key:{k}");
            if rng.next().is_multiple_of(8) {
                s.delete(key.as_bytes(), 0);
            } else {
                let v = vec![b'a'; vmin + (rng.next() as usize) % vspan];
                assert!(set(&mut s, &key, &v));
            }
            whole += usize::from(check_budget(&s, &format!("{mem} {vmin}+{vspan}: op {i}")));
            seen += usize::from(s.live_short().is_some() && s.partial > 0);
        }
        eprintln!("WHOLE {mem} {vmin}+{vspan}: {whole}, short seen {seen} of 400000");
        assert!(seen > 1000, "a short segment in use after {seen} writes");
        assert!(
            whole < 20_000,
            "a whole segment in the short one's slot after {whole} writes"
        );
    }
}

/// With transparent huge pages (the server's default), the pages past the
/// short segment's end stay given back while writes fill it.
///
/// khugepaged may collapse a range of the arena behind the store's back
/// (with `max_ptes_none` at 511, its default, one resident page is enough),
/// which is no fault of the store's; a run during which its collapse count
/// moved is run again, at most three times.
#[test]
fn the_short_segments_tail_stays_given_back_under_huge_pages() {
    let collapsed = || {
        std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/khugepaged/pages_collapsed")
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
    };
    for attempt in 1..=3 {
        let before = collapsed();
        let (checked, resident) = short_tail_resident_pages();
        assert!(checked > 100, "{checked} checked");
        if resident == 0 {
            return;
        }
        let disturbed = before.is_some() && collapsed() != before;
        assert!(
            disturbed && attempt < 3,
            "{resident} pages past a short segment's end resident (attempt {attempt}, khugepaged collapsed pages meanwhile: {disturbed})"
        );
    }
}

/// Fills a 16 MiB store and, every 64 writes, counts the resident pages
/// past the short segment's end: (checks made, pages found resident).
fn short_tail_resident_pages() -> (usize, usize) {
    let cfg = StoreConfig {
        memory: 16 << 20,
        ..StoreConfig::default()
    };
    let mut s = store(cfg);
    let seg = s.segs.seg_size;
    let (mut checked, mut resident) = (0, 0);
    for i in 0..400_000u32 {
        assert!(set(&mut s, &format!("key:{i}"), &value(i)));
        if i % 64 != 0 {
            continue;
        }
        if let Some(id) = s.live_short() {
            let h = *s.segs.header(id);
            if h.write_off > 0 && id != s.reserve {
                checked += 1;
                let tail = s.segs.ptr(id, h.end as usize);
                resident += super::arena::resident_pages(tail, seg - h.end as usize);
            }
        }
    }
    (checked, resident)
}
