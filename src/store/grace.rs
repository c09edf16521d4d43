//! Grace periods for segment reuse: an owner never writes over a segment
//! another worker may still be copying from.
//!
//! A foreign read (`foreign.rs`) copies a record straight out of another
//! shard's segment. The record's bytes never change while it is linked
//! (records are append-only; the few header bytes changed in place are
//! atomics, `item.rs`), so the only write that could race the copy is the
//! segment being reused: renewed for new records, or its pages handed
//! back to the kernel. Rather than make every append an atomic copy (a
//! seqlock over item bytes), the owner waits out the readers before reuse,
//! as in quiescent-state reclamation, but at the grain of one read:
//!
//! - each worker has a counter, odd while it is inside a foreign read
//!   (`enter` .. drop of the `Section`). `enter` stores the odd value and
//!   then issues a `SeqCst` fence before it loads any slot;
//! - the owner, about to reuse a segment whose items it has already
//!   unlinked, issues a `SeqCst` fence and then waits, for each other
//!   worker whose counter is odd, until that counter moves.
//!
//! Why that suffices (the store-buffering pattern, both sides fenced): if
//! the owner's load missed a reader's odd store, the reader's fence comes
//! after the owner's in the single `SeqCst` order, so every slot the
//! reader then loads already shows the unlinks made before the owner's
//! fence: it cannot reach the segment. Otherwise the owner waits for that
//! read to end. A read is one lookup and a copy of at most `ZC_MIN` bytes
//! (sub-microsecond), so the wait is short and rare; a reader preempted
//! mid-read is waited for with `yield_now`.
//!
//! The protocol has a loom model (`loom/tests/loom_grace.rs`, `--cfg loom`).

#[cfg(loom)]
use loom::sync::atomic::{fence, AtomicU64, Ordering};
#[cfg(not(loom))]
use std::sync::atomic::{fence, AtomicU64, Ordering};

/// One counter per worker, each on its own cache line.
pub struct Readers {
    counters: Box<[Padded]>,
}

#[repr(align(64))]
struct Padded(AtomicU64);

/// An open foreign read of worker `me`; closes on drop.
pub struct Section<'a> {
    counter: &'a AtomicU64,
    value: u64,
}

impl Drop for Section<'_> {
    fn drop(&mut self) {
        // Release: the read's loads are done before the owner can see the
        // counter move and reuse what they read.
        self.counter.store(self.value + 1, Ordering::Release);
    }
}

impl Readers {
    /// Counters for `n` workers, all outside a read.
    pub fn new(n: usize) -> Readers {
        Readers {
            counters: (0..n).map(|_| Padded(AtomicU64::new(0))).collect(),
        }
    }

    /// Workers counted.
    pub fn len(&self) -> usize {
        self.counters.len()
    }

    /// Whether there are no workers.
    pub fn is_empty(&self) -> bool {
        self.counters.is_empty()
    }

    /// Opens worker `me`'s read section (only `me` calls this).
    #[inline]
    pub fn enter(&self, me: usize) -> Section<'_> {
        let counter = &self.counters[me].0;
        let value = counter.load(Ordering::Relaxed) + 1;
        debug_assert!(value & 1 == 1, "nested read section");
        // Release, like the store that closes a section: an owner waiting
        // on the previous section may see the counter move by this store
        // alone, and must then see that section's loads done.
        counter.store(value, Ordering::Release);
        fence(Ordering::SeqCst);
        Section { counter, value }
    }

    /// Waits until no other worker can still be reading what `me` (an
    /// owner) unlinked before this call. Returns how many reads it waited
    /// for.
    pub fn wait_readers(&self, me: usize) -> usize {
        fence(Ordering::SeqCst);
        let mut waited = 0;
        for (w, c) in self.counters.iter().enumerate() {
            if w == me {
                continue;
            }
            let v = c.0.load(Ordering::Acquire);
            if v & 1 == 0 {
                continue;
            }
            waited += 1;
            let mut spins = 0u32;
            while c.0.load(Ordering::Acquire) == v {
                spins += 1;
                if spins < 1 << 10 {
                    spin_loop();
                } else {
                    yield_now();
                }
            }
        }
        waited
    }
}

// Under loom a spinning thread must hand loom's scheduler to the others
// (loom's spin_loop yields), or loom explores the spin iteration by
// iteration and gives up ("Model exceeded maximum number of branches").
#[cfg(loom)]
fn spin_loop() {
    loom::hint::spin_loop();
}
#[cfg(not(loom))]
fn spin_loop() {
    std::hint::spin_loop();
}

#[cfg(loom)]
fn yield_now() {
    loom::thread::yield_now();
}
#[cfg(not(loom))]
fn yield_now() {
    std::thread::yield_now();
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    #[test]
    fn an_owner_waits_for_a_read_in_progress_and_not_for_a_finished_one() {
        let r = Arc::new(Readers::new(2));
        {
            let _s = r.enter(1);
        }
        assert_eq!(r.wait_readers(0), 0, "a closed section is not waited for");
        let done = Arc::new(AtomicBool::new(false));
        let s = r.enter(1);
        let (r2, d2) = (r.clone(), done.clone());
        let owner = std::thread::spawn(move || {
            let waited = r2.wait_readers(0);
            (waited, d2.load(std::sync::atomic::Ordering::SeqCst))
        });
        std::thread::sleep(std::time::Duration::from_millis(50));
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        drop(s);
        let (waited, saw_done) = owner.join().unwrap();
        assert_eq!(waited, 1);
        assert!(saw_done, "the owner returned before the read ended");
        // Its own section is never waited for.
        let _mine = r.enter(0);
        assert_eq!(r.wait_readers(0), 0);
    }
}
