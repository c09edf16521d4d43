//! Loom model of the segment-reuse grace protocol (`src/store/grace.rs`):
//! every interleaving (up to loom's preemption bound) of an owner that
//! replaces or deletes an item, waits out the readers and then reuses the
//! old item's segment, against workers copying the item out of a foreign
//! shard. The segments' bytes sit in loom's `UnsafeCell`, so loom fails the
//! model if the reuse write is not ordered after every copy that could have
//! reached the segment.
//!
//! Only built with `--cfg loom`:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test --manifest-path loom/Cargo.toml \
//!     --release --target-dir target/loom --test loom_grace
//! ```
#![cfg(loom)]

#[allow(dead_code)]
#[path = "../../src/store/grace.rs"]
mod grace;

use grace::Readers;
use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicU64, Ordering};
use loom::sync::Arc;
use loom::thread;

/// The owner's worker id; readers are 1.. .
const OWNER: usize = 0;

/// One item's slot in the owner's index and the two segments it can point
/// into. The slot holds the item's version (0: no item); version `v` lives
/// in segment `v % 2` and its bytes there read `v`. Version 1 is in segment
/// A (1) when the model starts, version 2 goes into segment B (0), and
/// version 3 into A again once A is reused.
struct Shard {
    readers: Readers,
    slot: AtomicU64,
    segments: [UnsafeCell<u64>; 2],
}

const A: usize = 1;
const B: usize = 0;

fn segment_of(version: u64) -> usize {
    (version % 2) as usize
}

impl Shard {
    fn new(workers: usize) -> Shard {
        Shard {
            readers: Readers::new(workers),
            slot: AtomicU64::new(1),
            segments: [UnsafeCell::new(0), UnsafeCell::new(1)],
        }
    }

    /// A foreign read by worker `me`: one lookup and a copy of the item.
    /// Returns the version it found (0: a miss).
    fn read(&self, me: usize) -> u64 {
        let _section = self.readers.enter(me);
        let v = self.slot.load(Ordering::Acquire);
        if v == 0 {
            return 0;
        }
        let seg = segment_of(v);
        // SAFETY: the bytes of a linked item are not written while it is
        // linked, and its segment is not reused until this section ends;
        // loom checks exactly that.
        let got = self.segments[seg].with(|p| unsafe { *p });
        assert_eq!(
            got, v,
            "worker {me} followed slot version {v} into segment {seg} and copied {got}"
        );
        v
    }
}

/// How the owner unlinks the item in segment A before reusing A.
#[derive(Clone, Copy)]
enum Unlink {
    /// A `set`: the new version goes into B and the slot moves to it.
    Replace,
    /// A `delete`: the slot is cleared.
    Delete,
}

/// The owner: unlink the item in A, wait out the readers (unless
/// `wait` is false, the broken variant), then reuse A for version 3 and
/// link it.
fn owner(shard: &Shard, unlink: Unlink, wait: bool) {
    match unlink {
        Unlink::Replace => {
            // SAFETY: B is fresh: nothing links to it yet.
            shard.segments[B].with_mut(|p| unsafe { *p = 2 });
            shard.slot.store(2, Ordering::Release);
        }
        Unlink::Delete => shard.slot.store(0, Ordering::Release),
    }
    if wait {
        shard.readers.wait_readers(OWNER);
    }
    // SAFETY: nothing links into A any more, and (with `wait`) every read
    // that could have followed the old link has ended.
    shard.segments[A].with_mut(|p| unsafe { *p = 3 });
    shard.slot.store(3, Ordering::Release);
}

/// Runs the owner against `readers` reader threads, each doing `reads`
/// foreign reads, in every interleaving loom finds with at most `bound`
/// preemptions (`None`: all of them).
fn model(readers: usize, reads: usize, unlink: Unlink, wait: bool, bound: Option<usize>) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = bound;
    builder.check(move || {
        let shard = Arc::new(Shard::new(1 + readers));
        let threads: Vec<_> = (1..=readers)
            .map(|me| {
                let shard = shard.clone();
                thread::spawn(move || {
                    let mut last = 0;
                    for _ in 0..reads {
                        let v = shard.read(me);
                        // The slot only moves forward (1, 2 or 0, 3).
                        assert!(v == 0 || v >= last, "worker {me} saw {v} after {last}");
                        if v != 0 {
                            last = v;
                        }
                    }
                })
            })
            .collect();
        owner(&shard, unlink, wait);
        for t in threads {
            t.join().unwrap();
        }
    });
}

// One reader reading twice, every interleaving. The second read's `enter`
// can be the store the owner sees move the counter, so this is the case
// that needs `enter`'s store to be Release.

#[test]
fn replace_then_reuse_one_reader_two_reads() {
    model(1, 2, Unlink::Replace, true, None);
}

#[test]
fn delete_then_reuse_one_reader_two_reads() {
    model(1, 2, Unlink::Delete, true, None);
}

// Two readers reading twice each; all of them would take minutes, so at
// most three preemptions.

#[test]
fn replace_then_reuse_two_readers_two_reads() {
    model(2, 2, Unlink::Replace, true, Some(3));
}

#[test]
fn delete_then_reuse_two_readers_two_reads() {
    model(2, 2, Unlink::Delete, true, Some(3));
}

/// The model has teeth: an owner that reuses A without waiting out the
/// readers writes A while a reader that loaded the old slot copies from it.
#[test]
#[should_panic(expected = "Causality violation: Concurrent read and write accesses")]
fn reuse_without_waiting_is_a_race() {
    model(1, 1, Unlink::Replace, false, Some(3));
}
