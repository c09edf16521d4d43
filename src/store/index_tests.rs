//! The index: packing, chaining, neighbours and linear-hashing growth.
use super::*;
use crate::store::test_rng::TestRng;

#[test]
fn slot_packing_roundtrips() {
    let s = pack(0xabc, 17, 0x1f_3456, 0x7f_edcb);
    assert_eq!(slot_tag(s), 0xabc);
    assert_eq!(slot_freq(s), 17);
    assert_eq!(slot_seg(s), 0x1f_3456);
    assert_eq!(slot_off(s), 0x7f_edcb);
    let s2 = with_location(with_freq(s, 3), 5, 6);
    assert_eq!(
        (slot_tag(s2), slot_freq(s2), slot_seg(s2), slot_off(s2)),
        (0xabc, 3, 5, 6)
    );
    assert_eq!(std::mem::size_of::<Bucket>(), 128);
}

#[test]
fn chains_when_a_bucket_is_full_and_unlinks_when_empty() {
    let mut ix = Index::with_capacity(0, false);
    let hash = 0x5000_0000_0000_0001u64; // every insert has one home
    let mut refs = vec![];
    // A bucketful at home, two in the neighbours, the rest (more than a
    // bucketful) in overflow buckets.
    for i in 0..(4 * ITEM_SLOTS + 5) as u32 {
        let r = ix.empty_slot(hash);
        ix.set(r, pack(tag_of(hash), 0, i, i));
        refs.push(r);
    }
    assert!(ix.overflow_buckets() >= 2);
    assert_eq!(ix.displaced(ix.home(hash)), 2 * ITEM_SLOTS as u64);
    assert_eq!(ix.overflowed(ix.home(hash)), ITEM_SLOTS as u64 + 5);
    // Another home of the group, its key of the same tag, has nothing in
    // the chain: its lookups do not walk it (and so do not take the
    // chain's items of that tag for candidates).
    let other = (1..u64::MAX)
        .map(|i| hash.wrapping_add(i))
        .map(|h| h.wrapping_sub(2 * GROUP as u64))
        .find(|&h| {
            let (a, b) = (ix.home(hash), ix.home(h));
            Index::group(a) == Index::group(b) && !(a..=a + NEIGHBOURS).contains(&b)
        })
        .unwrap();
    assert_eq!(ix.overflowed(ix.home(other)), 0);
    assert!(ix.find(other, |_| true).is_none());
    for (i, _) in refs.iter().enumerate() {
        let found = ix.find(hash, |s| slot_seg(s) == i as u32).unwrap();
        assert_eq!(found, refs[i]);
    }
    for r in refs.iter().rev() {
        ix.clear(*r, hash);
    }
    assert_eq!(ix.overflow_buckets(), 0);
    assert_eq!(ix.displaced(ix.home(hash)), 0);
    assert_eq!(ix.overflowed(ix.home(hash)), 0);
    assert!(ix.find(hash, |_| true).is_none());
}

/// Hashes as the store's slots would give them back: the test keeps
/// each item's hash under its "segment" number.
fn grow(ix: &mut Index, hashes: &[u64]) {
    while ix.wants_growth() {
        ix.split_one(|v| hashes[slot_seg(v) as usize]);
    }
}

#[test]
fn grows_one_bucket_at_a_time_and_finds_everything() {
    let n = 200_000;
    let mut ix = Index::new(1000, 4 * n, false);
    let start = ix.primary_buckets();
    let mut rng = TestRng(0x9abc_def1_2345_6789);
    let mut hashes = vec![];
    for i in 0..n as u32 {
        let x = rng.next();
        hashes.push(x);
        grow(&mut ix, &hashes);
        let r = ix.empty_slot(x);
        ix.set(r, pack(tag_of(x), 0, i, 0));
        ix.items += 1;
        if i % 9973 == 0 {
            for (j, &h) in hashes.iter().enumerate() {
                assert!(
                    ix.find(h, |s| slot_seg(s) == j as u32).is_some(),
                    "{j} after {i}"
                );
            }
        }
    }
    assert!(ix.primary_buckets() > 20 * start);
    let used = (ix.primary_buckets() + ix.overflow_buckets()) * std::mem::size_of::<Bucket>();
    assert!(
        used as f64 / (n as f64) < 11.0,
        "{} bytes per item",
        used as f64 / n as f64
    );
    for (j, &h) in hashes.iter().enumerate() {
        let r = ix.find(h, |s| slot_seg(s) == j as u32).expect("linked");
        ix.clear(r, h);
    }
    assert_eq!(ix.overflow_buckets(), 0);
    assert!((0..ix.primary_buckets() as u32).all(|b| ix.displaced(b) == 0));
}

#[test]
fn sized_load_needs_few_overflow_buckets_and_finds_everything() {
    let n = 200_000;
    let mut ix = Index::with_capacity(n, false);
    let mut rng = TestRng(0x1234_5678_9abc_def1);
    let mut hashes = vec![];
    for i in 0..n as u32 {
        let x = rng.next();
        let r = ix.empty_slot(x);
        ix.set(r, pack(tag_of(x), 0, i, 0));
        hashes.push(x);
    }
    // Churn: replace items at random, as eviction and writes do.
    for round in 0..2 * n {
        let x = rng.next();
        let i = (x >> 20) as usize % n;
        let old = hashes[i];
        let r = ix.find(old, |s| slot_seg(s) == i as u32).expect("linked");
        ix.clear(r, old);
        let h = x.rotate_left(round as u32 % 64) ^ round as u64;
        let r = ix.empty_slot(h);
        ix.set(r, pack(tag_of(h), 0, i as u32, 0));
        hashes[i] = h;
    }
    // Neighbours and shared overflow buckets absorb what full homes
    // cannot hold.
    assert!(
        ix.overflow_buckets() * 100 < ix.primary_buckets() * 18,
        "{} overflow buckets for {} primary",
        ix.overflow_buckets(),
        ix.primary_buckets()
    );
    let per_item = ix.bytes() as f64 / n as f64;
    assert!(per_item < 10.4, "{per_item} index bytes per item in use");
    for (i, &h) in hashes.iter().enumerate() {
        let r = ix.find(h, |s| slot_seg(s) == i as u32).expect("linked");
        if i % 2 == 0 {
            ix.clear(r, h);
        }
    }
    for (i, &h) in hashes.iter().enumerate() {
        let found = ix.find(h, |s| slot_seg(s) == i as u32).is_some();
        assert_eq!(found, i % 2 == 1);
    }
}

/// Linear hashing leaves the buckets not yet split in a round with up
/// to twice the load of the split ones, so a fill puts many items in
/// neighbours and overflow buckets. When their home splits they come
/// home: left where they were, they kept the overflow buckets the fill
/// had needed (13.1 bytes of index an item after filling to 2 M items
/// from a 262,144-item start; 11.6 with them coming home, where 64-byte
/// buckets at the 90 % load growth kept make 10.2). With 128-byte
/// buckets: 10.45 at worst here at a 95 % load, under 10.8 at 100 %.
#[test]
fn a_fill_leaves_few_overflow_buckets_behind() {
    let n = 300_000u32;
    let mut ix = Index::new(40_000, 1 << 22, false);
    let mut rng = TestRng(0x2545_f491_4f6c_dd1d);
    let mut hashes = vec![];
    let mut worst: f64 = 0.0;
    for i in 0..n {
        let x = rng.next();
        hashes.push(x);
        let r = ix.empty_slot(x);
        ix.set(r, pack(tag_of(x), 0, i, 0));
        ix.items += 1;
        grow(&mut ix, &hashes);
        if i > 50_000 && i % 10_000 == 0 {
            worst = worst.max(ix.bytes() as f64 / ix.items as f64);
        }
    }
    for (i, &h) in hashes.iter().enumerate() {
        assert!(
            ix.find(h, |s| slot_seg(s) == i as u32).is_some(),
            "item {i}"
        );
    }
    assert!(worst < 10.8, "{worst:.2} index bytes an item");
}
