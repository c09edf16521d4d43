//! A merge in steps while the store changes under it: its victims and its
//! compaction destination freed by the expiry pass between steps.
//!
//! The tests below count on where segment boundaries fall: their values
//! are 201 bytes, whose records (6-byte header) are as long as those of
//! the 200-byte values (7-byte header) they were laid out with.
use super::*;
use crate::store::item::DELETED;
use crate::store::{Clock, SetArgs, SetMode, SetOutcome, StoreConfig};

fn store() -> Store {
    let cfg = StoreConfig {
        memory: 24 * 65536,
        segment_size: 65536,
        item_size_max: 65536,
        huge_pages: false,
        ..StoreConfig::default()
    };
    Store::new(cfg, Clock::manual(1_700_000_000)).unwrap()
}

/// What must hold between any two operations: the free list holds each
/// segment once, only free ones, never the reserve; every record the index
/// links lies in a segment in use (counted by walking those segments), and
/// every record not marked deleted there is linked.
fn check(s: &Store) {
    let mut seen = std::collections::HashSet::new();
    for &id in s.segs.free_ids() {
        assert!(seen.insert(id), "segment {id} twice on the free list");
        assert_eq!(s.segs.header(id).seq, 0, "segment {id} free but in use");
        assert_ne!(id, s.reserve, "the reserve is on the free list");
    }
    let mut linked = 0;
    for id in 0..s.segs.count() as u32 {
        let h = s.segs.header(id);
        if h.seq == 0 {
            continue;
        }
        let mut off = 0;
        while off < h.write_off {
            let it = s.item_at(id, off);
            if it.iflags() & DELETED == 0 {
                let hash = s.hash(it.key());
                assert!(
                    s.slot_at(hash, id, off).is_some(),
                    "record at {id}:{off} unlinked"
                );
                linked += 1;
            }
            off += it.size() as u32;
        }
    }
    assert_eq!(
        linked, s.index.items,
        "the index links records outside segments in use"
    );
}

fn set(s: &mut Store, key: &str, v: &[u8], ttl: i64) {
    let got = s.set(&SetArgs::new(SetMode::Set, key.as_bytes(), v, 0, ttl));
    assert!(matches!(got, SetOutcome::Stored { .. }), "{key}");
}

/// Fills the store with items of a 5 s TTL, every other one deleted if
/// `overwrite` (so compaction has runs to take; else the hand passes), then
/// begins a merge and takes `steps` steps of `n` records.
fn half_done_merge(steps: usize, n: usize, overwrite: bool) -> Store {
    let mut s = store();
    let v = [b'x'; 201];
    let mut i = 0;
    while s.segs.free_count() > 0 || s.segs.in_use() < s.seg_limit {
        set(&mut s, &format!("k{i}"), &v, 5);
        // Dead records for compaction to take runs of (an overwrite would go
        // to the hot chain).
        if overwrite && i % 2 == 1 {
            s.delete(format!("k{i}").as_bytes(), 0);
        }
        i += 1;
    }
    assert!(s.merge_begin(), "a plan");
    for _ in 0..steps {
        s.merge_step(n);
    }
    assert!(s.merge_running(), "still half done");
    check(&s);
    s
}

#[test]
fn a_merge_whose_segments_expire_between_steps_frees_nothing_twice() {
    for overwrite in [true, false] {
        for (steps, n) in [(1, 1), (3, 7), (20, 5), (2, 300)] {
            let mut s = half_done_merge(steps, n, overwrite);
            // Everything expires: the pass frees every sealed segment, the
            // merge's victims and its destination among them.
            s.clock_mut().advance(10);
            s.expire(usize::MAX);
            check(&s);
            while s.merge_running() {
                s.merge_step(3);
                check(&s);
            }
            // The store still fills and serves, and stays whole.
            for i in 0..5000 {
                set(&mut s, &format!("after{i}"), format!("v{i}").as_bytes(), 0);
                if i % 7 == 0 && s.evict_ahead_pending() {
                    s.evict_ahead_step(5);
                }
            }
            check(&s);
            let got = s.get(b"after4999").map(|f| f.item.value().to_vec());
            assert_eq!(
                got,
                Some(b"v4999".to_vec()),
                "overwrite {overwrite} ({steps}, {n})"
            );
        }
    }
}

/// Items of a victim replaced or deleted between steps are dropped, not
/// copied back over their newer versions.
#[test]
fn records_replaced_between_steps_are_not_moved() {
    let mut s = half_done_merge(2, 4, true);
    let v2 = [b'n'; 150];
    for i in 0..3000 {
        if i % 3 == 0 {
            s.delete(format!("k{i}").as_bytes(), 0);
        } else {
            set(&mut s, &format!("k{i}"), &v2, 0);
        }
        if s.merge_running() {
            s.merge_step(2);
        }
    }
    while s.merge_running() {
        s.merge_step(2);
    }
    check(&s);
    for i in 0..3000 {
        let got = s
            .get(format!("k{i}").as_bytes())
            .map(|f| f.item.value().to_vec());
        if i % 3 == 0 {
            assert_eq!(got, None, "k{i} was deleted");
        } else if let Some(g) = got {
            assert_eq!(g, v2.to_vec(), "k{i}");
        }
    }
}

/// A compaction's destination whose copies all expire is freed by the
/// expiry pass between steps; the copies that follow go to a fresh one,
/// never into the freed segment.
#[test]
fn a_compaction_destination_freed_between_steps_is_not_written() {
    let mut s = store();
    let v = [b'x'; 201];
    // The oldest segment's items expire in 5 s, the rest in 6 s (the same
    // chain); every other key deleted, so compaction has runs to take (an
    // overwrite would go to the hot chain, leaving this one all dead).
    let mut i = 0;
    while s.segs.free_count() > 0 || s.segs.in_use() < s.seg_limit {
        // The reserve, then the chain's first three segments: 5 s.
        let ttl = if s.segs.in_use() <= 4 { 5 } else { 6 };
        set(&mut s, &format!("k{i}"), &v, ttl);
        if i % 2 == 1 {
            s.delete(format!("k{i}").as_bytes(), 0);
        }
        i += 1;
    }
    assert!(s.merge_begin());
    let first = match &s.merge_job.as_ref().unwrap().work {
        Work::Compact { run, .. } => run[0],
        w => panic!("{w:?}"),
    };
    // Drain the first victim only: its live items are in the destination.
    while s.same(first) {
        s.merge_step(1);
    }
    let dest = match &s.merge_job.as_ref().unwrap().work {
        Work::Compact { to, .. } => to.dest,
        w => panic!("{w:?}"),
    };
    assert_ne!(dest.0, NONE);
    s.clock_mut().advance(5);
    s.expire(usize::MAX);
    assert_ne!(
        s.segs.header(dest.0).seq,
        dest.1,
        "the destination was freed"
    );
    check(&s);
    while s.merge_running() {
        s.merge_step(4);
        check(&s);
    }
    let mut kept = 0;
    for k in 0..i {
        if let Some(f) = s.get(format!("k{k}").as_bytes()) {
            assert_eq!(f.item.value(), &v[..], "k{k}");
            kept += 1;
        }
    }
    assert!(kept > 1000, "{kept} kept");
}

/// A merge that a worker's slice finishes counts as one done ahead, in
/// whichever of the slice's steps it ends.
#[test]
fn a_merge_finished_in_a_slice_counts_as_ahead() {
    let mut s = store();
    let v = [b'x'; 201];
    let mut i = 0;
    while s.segs.free_count() > 0 || s.segs.in_use() < s.seg_limit {
        set(&mut s, &format!("k{i}"), &v, 0);
        if i % 2 == 1 {
            s.delete(format!("k{i}").as_bytes(), 0);
        }
        i += 1;
    }
    assert!(s.evict_ahead_pending());
    let merges = s.stats.merges;
    let read = s.evict_ahead_for(std::time::Duration::from_secs(5));
    assert!(read > MERGE_STEP, "more than one step ({read} records)");
    assert!(!s.merge_running());
    assert_eq!(s.stats.merges, merges + 1);
    assert_eq!(s.stats.merges_ahead, 1);
}

/// Sets keys `k{i}`, `k{i+1}`, ... of value `v` while `cond` holds.
fn write_while(s: &mut Store, i: &mut usize, v: &[u8], cond: impl Fn(&Store) -> bool) {
    while cond(s) {
        set(s, &format!("k{i}"), v, 0);
        *i += 1;
    }
}

/// A shard too small for the hand to evict ahead of need, filled with
/// 200-byte values `k0`.. up to its budget, its open segment fresh; the
/// next key's number.
fn full_small_shard() -> (Store, usize, [u8; 201]) {
    let mut s = store();
    assert!(s.seg_limit < AHEAD_HAND_SEGMENTS);
    let v = [b'x'; 201];
    let mut i = 0;
    write_while(&mut s, &mut i, &v, |s| {
        s.segs.free_count() > 0 || s.segs.in_use() < s.seg_limit || s.tail_low()
    });
    (s, i, v)
}

/// In a shard too small for the hand to evict ahead of need, a merge
/// ahead counts its victim once the open segment runs low, and then
/// waits: no item goes before the open segment is nearly full; from then
/// the writes that fill it run the pass (`merge_assist`), so the job is
/// done before a write needs the room.
#[test]
fn a_small_shard_counts_the_hands_victim_ahead_and_evicts_on_need() {
    let (mut s, mut i, v) = full_small_shard();
    let merges = s.stats.merges;
    // Not yet: the open segment has room for a while.
    assert_eq!(s.evict_ahead_for(std::time::Duration::from_secs(5)), 0);
    assert!(!s.merge_running());
    write_while(&mut s, &mut i, &v, |s| !s.tail_low());
    assert_eq!(s.stats.merges, merges, "no write needed a segment yet");
    assert!(s.evict_ahead_pending());
    let items = s.curr_items();
    let read = s.evict_ahead_for(std::time::Duration::from_secs(5));
    assert!(read > MERGE_STEP, "the victim counted ({read} records)");
    assert!(s.merge_waits_for_need(), "the hand waits for a write");
    assert_eq!(s.evict_ahead_for(std::time::Duration::from_secs(5)), 0);
    assert!(s.merge_waits_for_need(), "still waiting");
    assert!(!s.evict_ahead_pending(), "no more work ahead");
    assert_eq!((s.curr_items(), s.stats.evictions), (items, 0));
    check(&s);
    while s.stats.merges == merges {
        set(&mut s, &format!("k{i}"), &v, 0);
        i += 1;
    }
    assert!(!s.merge_running());
    assert!(s.stats.evictions > 0);
    assert_eq!(s.stats.merges_ahead, 1, "done by the writes' assists");
    check(&s);
}

/// A compaction begun ahead is paced by the writes that use up its room
/// (`merge_assist`): with no step given ahead, the writes finish it before
/// one needs a segment, none reading more than [`ASSIST_MAX`] records of
/// it, and every item is kept.
#[test]
fn writes_pace_a_compaction_begun_ahead() {
    let (mut s, mut i, v) = full_small_shard();
    // Dead records in the oldest segments, for a compaction to take.
    for k in (1..i / 2).step_by(2) {
        s.delete(format!("k{k}").as_bytes(), 0);
    }
    let (merges, ahead, items) = (s.stats.merges, s.stats.merges_ahead, s.curr_items());
    assert!(s.merge_begin());
    assert!(s.merge_assisted(), "a compaction");
    let mut writes = 0;
    while s.merge_running() {
        let moved = s.stats.moved_items;
        set(&mut s, &format!("k{i}"), &v, 0);
        i += 1;
        writes += 1;
        assert!(s.stats.moved_items - moved <= ASSIST_MAX as u64);
        check(&s);
    }
    assert_eq!(s.stats.merges, merges + 1);
    assert_eq!(s.stats.merges_ahead, ahead + 1, "no write needed the room");
    assert_eq!((s.stats.evictions, s.curr_items()), (0, items + writes));
    assert!(s.segment_ready(), "the compaction freed a segment");
    for k in [0, 2, i / 2, i - 1] {
        assert_eq!(s.get(format!("k{k}").as_bytes()).unwrap().item.value(), v);
    }
}

/// Without a merge in progress, or while the hand's pass waits for a
/// write's need, a write assists nothing; the hand's counting only once
/// the open segment is nearly full.
#[test]
fn a_write_assists_only_a_merge_that_may_run() {
    let (mut s, mut i, v) = full_small_shard();
    // The chain new keys without a TTL are written to.
    let bucket = s.layout.chain(0, false);
    assert_eq!(s.merge_assist(bucket, 1), 0, "no merge");
    write_while(&mut s, &mut i, &v, |s| !s.tail_low());
    // Counting begun ahead, a step of it taken.
    assert!(s.evict_ahead_step(1) > 0);
    assert!(matches!(
        s.merge_job.as_ref().unwrap().work,
        Work::Count { .. }
    ));
    assert_eq!(s.merge_assist(bucket, 1), 0, "counting, room left");
    write_while(&mut s, &mut i, &v, |s| !s.tail_nearly_full());
    assert!(
        s.merge_assist(bucket, 1) > 0,
        "counting, the room nearly gone"
    );
    let (mut s, mut i, v) = full_small_shard();
    write_while(&mut s, &mut i, &v, |s| !s.tail_low());
    s.evict_ahead_for(std::time::Duration::from_secs(5));
    assert!(s.merge_waits_for_need());
    assert_eq!(s.merge_assist(bucket, 1), 0, "the counted hand waits");
    assert_eq!(s.stats.evictions, 0);
}

/// The counted hand that waits runs ahead once a write leaves the open
/// segment nearly full (`HAND_LEAD_DIV`): it evicts then, not before, and
/// the write that needs the next segment finds the room made.
#[test]
fn a_small_shard_evicts_ahead_once_the_open_segment_is_nearly_full() {
    let (mut s, mut i, v) = full_small_shard();
    write_while(&mut s, &mut i, &v, |s| !s.tail_low());
    let merges = s.stats.merges;
    s.evict_ahead_for(std::time::Duration::from_secs(5));
    assert!(s.merge_waits_for_need(), "counted, waiting");
    // Writes between a quarter and a sixteenth of the room left: the hand
    // still waits, and nothing is evicted.
    while !s.tail_nearly_full() {
        assert_eq!(s.evict_ahead_for(std::time::Duration::from_secs(5)), 0);
        assert!(s.merge_waits_for_need());
        assert_eq!(s.stats.evictions, 0);
        set(&mut s, &format!("k{i}"), &v, 0);
        i += 1;
    }
    assert_eq!(s.stats.merges, merges, "no write needed a segment yet");
    assert!(!s.merge_waits_for_need(), "nearly full: the hand may go on");
    s.evict_ahead_for(std::time::Duration::from_secs(5));
    assert!(!s.merge_running(), "the hand's pass is done ahead");
    assert_eq!((s.stats.merges, s.stats.merges_ahead), (merges + 1, 1));
    assert!(s.stats.evictions > 0);
    check(&s);
    // The write that needs a segment takes the one made, merging nothing.
    let taken = s.stats.merges;
    while s.tail_nearly_full() {
        set(&mut s, &format!("k{i}"), &v, 0);
        i += 1;
    }
    assert_eq!(s.stats.merges, taken, "the room was there");
    check(&s);
}

/// When the hand keeps read items, its keeps may open a fresh segment
/// for their chain (the reserve put to use). That segment has its room:
/// eviction ahead must wait again, not start the next pass at once and
/// evict segment after segment before any write needs room (a
/// reviewer's case: 9-10 passes ahead in a row).
#[test]
fn a_pass_ahead_that_opens_a_fresh_segment_does_not_start_another() {
    let mut s = store();
    let v = [b'x'; 201];
    let mut i = 0;
    let mut spilled = 0;
    for round in 0..12 {
        // Fill to the next need's edge, reading every key three times so
        // the hand keeps them.
        while !s.tail_nearly_full() {
            let k = format!("k{i}");
            set(&mut s, &k, &v, 0);
            for _ in 0..3 {
                assert!(s.get(k.as_bytes()).is_some());
            }
            i += 1;
            assert!(i < 1_000_000, "the open segment never filled");
        }
        let ahead = s.stats.merges_ahead;
        for _ in 0..20 {
            s.evict_ahead_for(std::time::Duration::from_secs(5));
        }
        let passes = s.stats.merges_ahead - ahead;
        assert!(
            passes <= 1,
            "round {round}: {passes} passes ahead, no write"
        );
        if passes == 1 && !s.tail_nearly_full() {
            spilled += 1;
        }
        check(&s);
        // Writes until one takes a segment, to end the round.
        let taken = s.stats.merges;
        while s.tail_nearly_full() && s.stats.merges == taken {
            set(&mut s, &format!("k{i}"), &v, 0);
            i += 1;
        }
    }
    assert!(
        spilled > 0,
        "no pass ahead opened a fresh segment: not the case"
    );
    check(&s);
}
