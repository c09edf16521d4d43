//! The cross-shard hop: one single-producer single-consumer queue per
//! ordered pair of workers. A worker that finds a request for a key another
//! worker owns pushes it on its queue to that worker; the reply comes back
//! on the reverse queue. A sleeping owner is woken with an io_uring
//! MSG_RING message (see `worker`).

use crate::exec::value_ref::Refs;
use crossbeam_utils::CachePadded;
use std::cell::UnsafeCell;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// A bounded lock-free SPSC ring.
pub struct Spsc<T> {
    head: CachePadded<AtomicUsize>,
    tail: CachePadded<AtomicUsize>,
    slots: Box<[UnsafeCell<MaybeUninit<T>>]>,
    mask: usize,
}

// SAFETY: one producer and one consumer, each touching only the slots the
// head/tail protocol hands it; T moves between threads, so T: Send.
unsafe impl<T: Send> Sync for Spsc<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Send for Spsc<T> {}

impl<T> Spsc<T> {
    pub fn new(cap: usize) -> Spsc<T> {
        let cap = cap.next_power_of_two();
        Spsc {
            head: CachePadded::new(AtomicUsize::new(0)),
            tail: CachePadded::new(AtomicUsize::new(0)),
            slots: (0..cap)
                .map(|_| UnsafeCell::new(MaybeUninit::uninit()))
                .collect(),
            mask: cap - 1,
        }
    }

    /// Producer side. Gives the value back if the ring is full.
    pub fn push(&self, v: T) -> Result<(), T> {
        let tail = self.tail.load(Ordering::Relaxed);
        let head = self.head.load(Ordering::Acquire);
        if tail.wrapping_sub(head) > self.mask {
            return Err(v);
        }
        // SAFETY: slot `tail` is outside [head, tail), so the consumer does
        // not read it until the Release store below publishes it.
        unsafe { (*self.slots[tail & self.mask].get()).write(v) };
        self.tail.store(tail.wrapping_add(1), Ordering::Release);
        Ok(())
    }

    /// Consumer side.
    pub fn pop(&self) -> Option<T> {
        let head = self.head.load(Ordering::Relaxed);
        let tail = self.tail.load(Ordering::Acquire);
        if head == tail {
            return None;
        }
        // SAFETY: slot `head` was published by the producer's Release store
        // and is not written again until we advance head.
        let v = unsafe { (*self.slots[head & self.mask].get()).assume_init_read() };
        self.head.store(head.wrapping_add(1), Ordering::Release);
        Some(v)
    }

    pub fn is_empty(&self) -> bool {
        self.head.load(Ordering::Acquire) == self.tail.load(Ordering::Acquire)
    }
}

impl<T> Drop for Spsc<T> {
    fn drop(&mut self) {
        while self.pop().is_some() {}
    }
}

/// What crosses between workers.
pub enum Msg {
    /// Execute on the owner; reply to (`from`, `conn`, `seq`) unless `seq`
    /// is NO_REPLY (`GetKeys` carries a slot per key instead).
    Job {
        from: usize,
        conn: u64,
        seq: u64,
        /// The requesting connection's descriptor, for `watch` lines
        /// (-1: none, a broadcast).
        cfd: i32,
        job: Job,
    },
    /// The reply for slot `seq` of connection `conn` on the receiving
    /// worker; its large values are referenced in the sender's store.
    Reply {
        conn: u64,
        seq: u64,
        bytes: Vec<u8>,
        refs: Refs,
    },
    /// The replies to a `GetKeys`: key `i`'s are `bytes[ends[i - 1]..ends[i]]`
    /// (from 0 for the first), for slot `seqs[i]`.
    Replies {
        conn: u64,
        seqs: Vec<u64>,
        bytes: Vec<u8>,
        ends: Vec<u32>,
        refs: Refs,
    },
    /// A dump step's lines for slot `seq` of connection `conn`, and the
    /// cursor to go on from (dump.rs).
    DumpReply {
        conn: u64,
        seq: u64,
        bytes: Vec<u8>,
        next: crate::store::scan::ScanCursor,
    },
    /// Segments of the receiving worker's store that the sender's sends
    /// have finished reading (or will never read): unpin them.
    Unpin { segs: Vec<u32> },
    /// Records of the receiving worker's store the sender read directly
    /// (foreign reads), as (key hash, segment, offset): count the accesses.
    Accessed { hits: Vec<(u64, u32, u32)> },
}

pub const NO_REPLY: u64 = u64::MAX;

/// Work for another worker.
#[derive(Clone)]
pub enum Job {
    /// flush_all / binary FLUSH on every other shard; `delay` as an exptime.
    Flush { delay: i64 },
    /// flush_prefix on every other shard.
    FlushPrefix { prefix: Vec<u8> },
    /// cache_memlimit on every other shard, in MB for the whole server.
    MemLimit { mb: u32 },
    /// `stats reset`: zero this worker's counters.
    ResetStats,
    /// `stats conns`: this worker's lines (stats_conns.rs).
    Conns,
    /// One step of a metadump or cachedump on this shard (dump.rs).
    Dump {
        spec: super::dump::DumpSpec,
        cursor: crate::store::scan::ScanCursor,
        max_lines: u64,
    },
    /// One whole single-key request, as received (text, meta or binary);
    /// or, when `no_memory`, the head of a store the sender had no memory
    /// to receive the data block of (incoming.rs), to be refused.
    Raw {
        binary: bool,
        no_memory: bool,
        bytes: Vec<u8>,
    },
    /// Keys of a text multi-get this worker owns, space separated, each
    /// with the slot its reply fills.
    GetKeys {
        keys: Vec<u8>,
        seqs: Vec<u64>,
        cas: bool,
        touch: Option<i64>,
    },
}

/// All queues and wake-up state, shared by the workers.
pub struct Mesh {
    pub n: usize,
    /// queues[from * n + to]
    queues: Vec<Spsc<Msg>>,
    /// Set by a worker about to block; a producer that sees it wakes it.
    pub sleeping: Vec<CachePadded<AtomicBool>>,
    /// Jobs (`Msg::Job`) each owner has popped from each sender's queue,
    /// `[from * n + to]`, written by the owner alone (borrowed.rs).
    jobs_taken: Vec<CachePadded<AtomicU64>>,
    /// Each worker's io_uring fd, for MSG_RING.
    pub ring_fds: Vec<AtomicUsize>,
    /// Workers that, stopping, have closed all their connections. A
    /// worker keeps serving others' requests (and keeps its store mapped
    /// for their sends by reference) until every worker has.
    pub stopped: AtomicUsize,
}

impl Mesh {
    pub fn new(n: usize, cap: usize) -> Mesh {
        Mesh {
            n,
            queues: (0..n * n).map(|_| Spsc::new(cap)).collect(),
            jobs_taken: (0..n * n)
                .map(|_| CachePadded::new(AtomicU64::new(0)))
                .collect(),
            sleeping: (0..n)
                .map(|_| CachePadded::new(AtomicBool::new(false)))
                .collect(),
            ring_fds: (0..n).map(|_| AtomicUsize::new(usize::MAX)).collect(),
            stopped: AtomicUsize::new(0),
        }
    }

    pub fn queue(&self, from: usize, to: usize) -> &Spsc<Msg> {
        &self.queues[from * self.n + to]
    }

    /// How many jobs worker `to` has popped from `from`'s queue. The owner
    /// pops and runs them while it holds its shard's token (lend.rs), so
    /// a borrower holding the token reads here how many are applied.
    pub fn jobs_taken(&self, from: usize, to: usize) -> &AtomicU64 {
        &self.jobs_taken[from * self.n + to]
    }

    pub fn inbox_empty(&self, to: usize) -> bool {
        (0..self.n).all(|from| self.queue(from, to).is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn spsc_delivers_in_order_across_threads() {
        let q = Arc::new(Spsc::new(64));
        let p = q.clone();
        let t = std::thread::spawn(move || {
            for i in 0..100_000u64 {
                let mut v = i;
                while let Err(back) = p.push(v) {
                    v = back;
                    std::hint::spin_loop();
                }
            }
        });
        let mut want = 0;
        while want < 100_000u64 {
            if let Some(v) = q.pop() {
                assert_eq!(v, want);
                want += 1;
            }
        }
        t.join().unwrap();
        assert!(q.pop().is_none());
    }
}
