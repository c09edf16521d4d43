//! Lending a sleeping worker's shard (`-o borrow_shards`, on by default
//! with more than one worker): a request for a key another worker owns,
//! that a foreign read cannot answer (a write, or a read that changes
//! state), runs on the owner's shard *here* when the owner is asleep,
//! instead of taking the hop.
//!
//! Why: a hop to a sleeping owner costs two cross-CPU wake-ups (the owner
//! woken for the job, this worker for the reply) and holds every later
//! reply of the connection for that round trip. With one write in ten and
//! two workers, a pipelined connection waited on a hop in 56 % of its
//! batches of 16, and the workers slept at the end of 87 % of their loop
//! turns (memtier `--pipeline=16 -c 4`, `-t 2`): the owner was asleep for
//! most writes that hopped to it.
//!
//! Each shard still has exactly one writer at a time (issue 13's
//! "exclusive write"); what moves is which thread it is. A token per
//! worker says who may touch its shard:
//!
//! ```text
//!            release (about to block)            try_borrow (CAS)
//!   OWNED ───────────────────────────► FREE ─────────────────────► BORROWED
//!     ▲                                  │ ▲                            │
//!     └──────────────────────────────────┘ └────────────────────────────┘
//!            reclaim (CAS, woken)                drop of the Borrow
//! ```
//!
//! - The owner holds the token (`OWNED`) whenever it runs, and lets it go
//!   (`FREE`) only around the one blocking `io_uring_enter` of its loop
//!   (`Held::lend_while`, which borrows the owner's handle for that time,
//!   so the owner's own code cannot touch the shard then: the compiler
//!   checks it). Woken, it takes the token back before anything else,
//!   waiting out a borrower (a borrow is one request, about a microsecond;
//!   a borrower preempted inside one is waited for with `yield_now`).
//! - Another worker takes a `FREE` token with a compare-and-swap to
//!   `BORROWED`, runs one request, and sets it `FREE` again.
//! - Ordering: every hand-over is a Release store or Release CAS matched
//!   by an Acquire CAS, so each holder's accesses happen before the next
//!   holder's, as with a lock. The model (`loom/tests/loom_lend.rs`)
//!   checks that no two holders ever touch the shard at once.
//! - Requests of one connection stay in order: a worker borrows only when
//!   the owner has popped every job it sent, so nothing it sent earlier is
//!   still unapplied (the owner pops only while it holds the token, and
//!   runs what it pops in the same turn; borrowed.rs).
//!
//! The rest of the borrowed request's duties are the owner's path's:
//! its replies, counters (published at once, so a `stats` after the reply
//! sees them), `watch` notes and the foreign-read gate (dispatch.rs
//! `exec_borrowed`).

use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

#[cfg(loom)]
use loom::sync::atomic::{AtomicPtr, AtomicU8, Ordering};
#[cfg(not(loom))]
use std::sync::atomic::{AtomicPtr, AtomicU8, Ordering};

/// The owner runs; nobody else may touch the shard.
const OWNED: u8 = 0;
/// The owner is blocked in the kernel; another worker may borrow.
const FREE: u8 = 1;
/// Another worker is running a request on the shard.
const BORROWED: u8 = 2;

/// Spins on a borrowed token before yielding the CPU to the borrower.
const SPINS: u32 = 64;

/// One worker's token and where its shard lives. Shared by all workers.
pub struct Lend<T> {
    state: AtomicU8,
    shard: AtomicPtr<T>,
}

impl<T> Default for Lend<T> {
    fn default() -> Self {
        Lend {
            state: AtomicU8::new(OWNED),
            shard: AtomicPtr::new(std::ptr::null_mut()),
        }
    }
}

impl<T: Send> Lend<T> {
    /// The shard for one request, if its owner is asleep and nobody else
    /// has it; it goes back when the `Borrow` is dropped.
    pub fn try_borrow(&self) -> Option<Borrow<'_, T>> {
        // Relaxed first: an owned token (the common case under load) costs
        // a load, not a locked instruction.
        if self.state.load(Ordering::Relaxed) != FREE {
            return None;
        }
        self.state
            .compare_exchange(FREE, BORROWED, Ordering::Acquire, Ordering::Relaxed)
            .ok()?;
        // Never null once FREE (`Held::new` registers before the owner can
        // let go), but a token must not be left BORROWED by a None.
        let Some(p) = NonNull::new(self.shard.load(Ordering::Relaxed)) else {
            self.state.store(FREE, Ordering::Release);
            return None;
        };
        Some(Borrow { lend: self, p })
    }
}

/// One request's hold on another worker's shard.
pub struct Borrow<'a, T> {
    lend: &'a Lend<T>,
    p: NonNull<T>,
}

impl<T> Deref for Borrow<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: this Borrow holds the token (BORROWED), which nobody else
        // can take until its drop, and the Acquire CAS that took it ordered
        // the last holder's accesses before ours. The shard outlives every
        // Borrow: its owner frees it only holding the token for good
        // (`Held`'s drop).
        unsafe { self.p.as_ref() }
    }
}

impl<T> DerefMut for Borrow<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` keeps the reference unique.
        unsafe { self.p.as_mut() }
    }
}

impl<T> Drop for Borrow<'_, T> {
    fn drop(&mut self) {
        // Release: the request's accesses happen before the owner's (or
        // the next borrower's) Acquire CAS sees FREE.
        self.lend.state.store(FREE, Ordering::Release);
    }
}

/// The owner's handle on its shard: the shard itself, boxed so that its
/// address can be lent, and dereferenced only while the owner holds the
/// token (always, except inside `lend_while`).
pub struct Held<T> {
    p: NonNull<T>,
}

// SAFETY: Held owns its T as a Box would.
unsafe impl<T: Send> Send for Held<T> {}

impl<T> Held<T> {
    /// Takes ownership of `shard`; registers it with `lend` if given (the
    /// token starts OWNED, so nobody borrows it until `lend_while`).
    pub fn new(shard: T, lend: Option<&Lend<T>>) -> Held<T> {
        let p = NonNull::from(Box::leak(Box::new(shard)));
        if let Some(l) = lend {
            l.shard.store(p.as_ptr(), Ordering::Relaxed);
        }
        Held { p }
    }

    /// Runs `f` (the owner's blocking wait) with the token let go, so
    /// another worker may borrow the shard meanwhile; takes it back before
    /// returning, waiting out a borrower. `&mut self` is held for the call,
    /// so `f` cannot reach the shard through this handle. Without `lend`
    /// (lending off, or one worker), just runs `f`.
    pub fn lend_while<R>(&mut self, lend: Option<&Lend<T>>, f: impl FnOnce() -> R) -> R {
        let Some(l) = lend else {
            return f();
        };
        debug_assert_eq!(l.state.load(Ordering::Relaxed), OWNED);
        // Release: the owner's accesses happen before a borrower's Acquire.
        l.state.store(FREE, Ordering::Release);
        let r = f();
        let mut spins = 0;
        while l
            .state
            .compare_exchange_weak(FREE, OWNED, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            spins += 1;
            if spins < SPINS {
                spin_loop();
            } else {
                yield_now();
            }
        }
        r
    }
}

impl<T> Deref for Held<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the owner holds the token whenever it can call this:
        // `lend_while`, the only place it lets the token go, holds `&mut
        // self` until it has the token back.
        unsafe { self.p.as_ref() }
    }
}

impl<T> DerefMut for Held<T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`.
        unsafe { self.p.as_mut() }
    }
}

impl<T> Drop for Held<T> {
    fn drop(&mut self) {
        // SAFETY: `p` came from Box::leak in `new` and is freed only here.
        // The owner holds the token (it is never let go outside
        // `lend_while`), so no Borrow exists now or can be taken later:
        // `try_borrow` succeeds only on FREE.
        drop(unsafe { Box::from_raw(self.p.as_ptr()) });
    }
}

// Under loom a spinning thread must hand loom's scheduler to the others.
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
    use std::sync::Arc;

    #[test]
    fn an_owned_token_is_not_lent_and_a_free_one_once() {
        let lend = Lend::default();
        let mut held = Held::new(7u64, Some(&lend));
        assert!(lend.try_borrow().is_none(), "owned");
        held.lend_while(Some(&lend), || {
            let mut b = lend.try_borrow().expect("free while the owner waits");
            assert!(lend.try_borrow().is_none(), "one borrower at a time");
            *b += 1;
        });
        assert_eq!(*held, 8);
        assert!(lend.try_borrow().is_none(), "owned again");
    }

    #[test]
    fn without_lending_nothing_is_registered_or_let_go() {
        let lend: Lend<u32> = Lend::default();
        let mut held = Held::new(1u32, None);
        held.lend_while(None, || assert!(lend.try_borrow().is_none()));
        *held += 1;
        assert_eq!(*held, 2);
    }

    /// Two threads count on one shard, the owner only while it holds the
    /// token and a borrower only through a Borrow: no increment is lost.
    #[test]
    fn owner_and_borrower_never_overlap() {
        struct Counter(u64, u64);
        let lend = Arc::new(Lend::default());
        let mut held = Held::new(Counter(0, 0), Some(&lend));
        let l2 = lend.clone();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s2 = stop.clone();
        let t = std::thread::spawn(move || {
            let mut n = 0u64;
            while !s2.load(Ordering::Relaxed) {
                if let Some(mut b) = l2.try_borrow() {
                    // A non-atomic read-modify-write: a race loses counts.
                    let v = b.0;
                    std::hint::spin_loop();
                    b.0 = v + 1;
                    n += 1;
                }
            }
            n
        });
        let mut mine = 0;
        for _ in 0..200_000 {
            let v = held.0;
            held.0 = v + 1;
            held.1 += 1;
            mine += 1;
            held.lend_while(Some(&lend), std::hint::spin_loop);
        }
        stop.store(true, Ordering::Relaxed);
        let borrowed = t.join().unwrap();
        assert_eq!(held.1, mine);
        assert_eq!(held.0, mine + borrowed, "{borrowed} borrowed");
    }
}
