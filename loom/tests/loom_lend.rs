//! Loom model of the shard-lending token (`src/engine/lend.rs`): every
//! interleaving (up to loom's preemption bound) of an owner that works on
//! its shard, lets it go around its blocking wait and takes it back,
//! against workers that try to borrow it for one request. The shard is a
//! loom `UnsafeCell`, so loom fails the model if two holders ever touch it
//! without a happens-before between them; the count checks that every
//! borrow that succeeded really ran, and only while the owner was away.
//!
//! Only built with `--cfg loom`:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test --manifest-path loom/Cargo.toml \
//!     --release --target-dir target/loom --test loom_lend
//! ```
#![cfg(loom)]

#[allow(dead_code)]
#[path = "../../src/engine/lend.rs"]
mod lend;

use lend::{Held, Lend};
use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicU64, Ordering};
use loom::sync::Arc;
use loom::thread;

/// A shard: what the holder writes, and how many holders are inside.
struct Shard {
    count: UnsafeCell<u64>,
    inside: AtomicU64,
}

impl Shard {
    /// One request's worth of work: a plain read-modify-write, with a
    /// check that nobody else holds the shard meanwhile.
    fn work(&self) {
        assert_eq!(self.inside.fetch_add(1, Ordering::Relaxed), 0);
        self.count.with_mut(|p| unsafe { *p += 1 });
        assert_eq!(self.inside.fetch_sub(1, Ordering::Relaxed), 1);
    }
}

fn model(borrowers: usize, waits: usize) {
    loom::model(move || {
        let lend: Arc<Lend<Shard>> = Arc::new(Lend::default());
        let mut held = Held::new(
            Shard {
                count: UnsafeCell::new(0),
                inside: AtomicU64::new(0),
            },
            Some(&lend),
        );
        let threads: Vec<_> = (0..borrowers)
            .map(|_| {
                let l = lend.clone();
                thread::spawn(move || match l.try_borrow() {
                    Some(b) => {
                        b.work();
                        1
                    }
                    None => 0,
                })
            })
            .collect();
        held.work();
        for _ in 0..waits {
            held.lend_while(Some(&lend), || {});
            held.work();
        }
        let borrowed: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert!(lend.try_borrow().is_none(), "owned after the last wait");
        let total = held.count.with(|p| unsafe { *p });
        assert_eq!(total, 1 + waits as u64 + borrowed);
    });
}

#[test]
fn one_borrower_and_one_wait() {
    model(1, 1);
}

#[test]
fn one_borrower_and_two_waits() {
    model(1, 2);
}

#[test]
fn two_borrowers_race_for_one_wait() {
    model(2, 1);
}
