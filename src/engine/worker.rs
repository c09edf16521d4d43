//! One worker: a pinned thread with its own store shard and io_uring.
//!
//! Each loop turn: take messages from other workers (`hop_io.rs`), reap
//! completions (`reap.rs`: accepts, receives, sends), parse and execute
//! what arrived (`framing.rs`, `dispatch.rs`), then issue at most one send
//! per connection with everything that connection has ready (`send.rs`),
//! and block in the kernel until something happens (`wait`).
//!
//! The other files of this folder add `impl Worker` blocks, one concern
//! each: `accept.rs`, `recv.rs`, `framing.rs`, `send.rs`, `close.rs`,
//! `dispatch.rs`, `server_cmd.rs`, `hop_io.rs`, `reap.rs`.

use super::accept::AcceptPause;
use super::buf_ring::BufRing;
use super::conn::Conn;
use super::hop::Msg;
use super::lend::Held;
use super::multiget::GetBatch;
use super::prefetch::PREFETCH_MAX;
use super::route::route_hasher;
use super::user_data::{Kind, UserData};
use super::Shared;
use crate::exec::Shard;
use io_uring::{squeue, types, IoUring};
use std::collections::VecDeque;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Receive buffers per worker, and their size in bytes.
pub(super) const RECV_BUFS: u16 = 1024;
pub(super) const RECV_BUF_SIZE: usize = 8 * 1024;

/// How long a stopping worker waits for its connections' replies to go.
const STOP_GRACE: Duration = Duration::from_secs(3);
/// After that, how long it waits for connections it cut off to let go of
/// their operations, and for the other workers to stop.
const STOP_CUTOFF: Duration = Duration::from_secs(1);

/// One worker's state. Fields are shared with the sibling files that
/// implement its concerns.
pub struct Worker {
    pub(super) id: usize,
    pub(super) shared: Arc<Shared>,
    pub(super) ring: IoUring,
    /// Declared after `ring` so the ring is dropped before the buffers it uses.
    pub(super) bufs: Option<BufRing>,
    /// After `ring` too: sends in flight may read its segments. Lent to
    /// other workers while this one sleeps (lend.rs).
    pub(super) shard: Held<Shard>,
    /// Connections whose multishot recv ran out of buffers; re-armed next turn.
    pub(super) rearm: Vec<u32>,
    pub(super) listeners: Vec<RawFd>,
    /// `listeners` in an epoll set the ring polls (listen_set.rs).
    pub(super) listen_set: super::listen_set::ListenSet,
    /// Per listener: its connections speak TLS (`-Z`, not `notls:`).
    pub(super) tls_listeners: Vec<bool>,
    /// `-o steer_connections`: this worker's listeners name its CPU while
    /// it holds no more than its share of connections (steer.rs).
    pub(super) steer: Option<super::steer::Steer>,
    /// Listeners from this index on are this worker's own port's
    /// (`-o worker_ports`); the ones before it are shared.
    pub(super) pinned_from: usize,
    /// The connection table: slot `idx` of a `ConnId`.
    pub(super) conns: Vec<Option<Conn>>,
    /// Free slots of `conns`.
    pub(super) free: Vec<u32>,
    /// Each slot's current generation.
    pub(super) gens: Vec<u32>,
    /// Connections with output to send this turn.
    pub(super) to_send: Vec<u32>,
    /// The largest input buffer a finished large request left (keep_tail).
    pub(super) spare_in: Vec<u8>,
    /// Bytes this worker may hold for requests still arriving
    /// (incoming.rs); what it holds is `shard.c.incoming_bytes`.
    pub(super) incoming_limit: usize,
    /// Completions taken from the ring, reused every turn.
    pub(super) batch: Vec<(u64, i32, u32)>,
    /// Hashes of the keys prefetched for the batch being reaped.
    pub(super) hashes: Vec<super::prefetch::Key>,
    /// Messages a full queue refused, per destination, retried each turn.
    pub(super) backlog: Vec<VecDeque<Msg>>,
    pub(super) route: ahash::RandomState,
    /// Keys of the multi-get being run, per owning worker (multiget.rs).
    pub(super) batches: Vec<GetBatch>,
    /// Connections whose multi-get gave way to others; continued next turn.
    pub(super) yielded: Vec<u32>,
    /// Connections with a dump in progress, and their generation (dump.rs).
    pub(super) dumps: Vec<(u32, u32)>,
    /// Connections streaming `watch` lines (watch_conn.rs).
    pub(super) watching: Vec<u32>,
    /// Pins on other workers' segments this worker is done with, per owner.
    pub(super) unpins: Vec<Vec<u32>>,
    /// Records of other workers' stores read directly, to tell each owner
    /// (foreign_read.rs).
    pub(super) accessed: Vec<Vec<(u64, u32, u32)>>,
    /// Jobs this worker has sent each other worker (`Msg::Job`, backlog
    /// included): a worker may borrow an owner's shard only once the owner
    /// has taken them all (`Mesh::jobs_taken`, borrowed.rs).
    pub(super) jobs_sent: Vec<u64>,
    /// Bytes of large buffers freed since the allocator last gave memory
    /// back to the system (`maintain`).
    pub(super) freed: usize,
    /// Listeners whose accepting is paused for want of descriptors, with
    /// the process's descriptor-freed count when they paused (accept.rs).
    pub(super) accept_paused: Vec<Option<AcceptPause>>,
    pub(super) stopping: bool,
    /// The store clock's second at the last maintenance.
    pub(super) last_sec: u32,
    /// When the size-class census last took a step (`maintain`).
    pub(super) last_census: std::time::Instant,
    /// When the flush sweep last took a step (`maintain`).
    pub(super) last_sweep: std::time::Instant,
    /// This loop turn's clock reading, taken once when first needed.
    pub(super) turn_now: Option<Instant>,
}

impl Worker {
    /// Sets up worker `id`: its ring, receive buffers, and shard, with
    /// `listeners` to accept on; those from index `pinned_from` on are its
    /// own port's (`-o worker_ports`); `tls_listeners[i]` says whether
    /// listener `i` speaks TLS; `steer`, when given, steers connections
    /// arriving on its CPU to it (steer.rs).
    ///
    /// # Errors
    /// The ring or the buffer ring could not be created (old kernel,
    /// locked-memory limit).
    pub fn new(
        id: usize,
        shared: Arc<Shared>,
        shard: Shard,
        listeners: Vec<RawFd>,
        tls_listeners: Vec<bool>,
        pinned_from: usize,
        steer: Option<super::steer::Steer>,
    ) -> std::io::Result<Worker> {
        let ring = IoUring::builder()
            .setup_single_issuer()
            .setup_defer_taskrun()
            .setup_coop_taskrun()
            .build(4096)?;
        shared.mesh.ring_fds[id].store(ring.as_raw_fd() as usize, SeqCst);
        let bufs = BufRing::new(
            &ring,
            RECV_BUFS,
            RECV_BUF_SIZE,
            0,
            super::buf_ring::FIRST_OFFER,
        )?;
        let n = shared.mesh.n;
        let mut shard = shard;
        shard.id = id as u32;
        let lend = shared.settings.borrow_shards.then(|| &shared.lends[id]);
        let shard = Held::new(shard, lend);
        let s = &shared.settings;
        let incoming_limit = super::incoming::worker_limit(s.incoming_limit, n, s.item_max);
        let mut w = Worker {
            id,
            shared,
            shard,
            ring,
            bufs: Some(bufs),
            rearm: Vec::new(),
            listen_set: super::listen_set::ListenSet::new(&listeners)?,
            listeners,
            tls_listeners,
            steer,
            pinned_from,
            conns: Vec::new(),
            free: Vec::new(),
            gens: Vec::new(),
            to_send: Vec::new(),
            batch: Vec::with_capacity(256),
            hashes: Vec::with_capacity(PREFETCH_MAX),
            spare_in: Vec::new(),
            incoming_limit,
            backlog: (0..n).map(|_| VecDeque::new()).collect(),
            route: route_hasher(),
            batches: (0..n).map(|_| GetBatch::default()).collect(),
            yielded: Vec::new(),
            dumps: Vec::new(),
            watching: Vec::new(),
            unpins: vec![Vec::new(); n],
            accessed: vec![Vec::new(); n],
            jobs_sent: vec![0; n],
            freed: 0,
            accept_paused: Vec::new(),
            stopping: false,
            last_sec: 0,
            last_census: std::time::Instant::now(),
            last_sweep: std::time::Instant::now(),
            turn_now: None,
        };
        // Before the server reports ready: a `stats` served by another
        // worker sums this one's figures (limit_maxbytes among them).
        w.publish();
        Ok(w)
    }

    pub(super) fn push_sqe(&mut self, e: squeue::Entry) {
        // SAFETY: every buffer an entry points at (connection buffers) stays
        // alive and unmoved until its completion is reaped: connections are
        // only freed with no operation in flight.
        while unsafe { self.ring.submission().push(&e) }.is_err() {
            self.shard.c.uring_submits += 1;
            let _ = self.ring.submit();
        }
    }

    /// The loop, until the server stops and every worker's connections are
    /// closed (or `STOP_GRACE` and then `STOP_CUTOFF` have passed).
    ///
    /// # Errors
    /// None today; the signature leaves room for fatal ring errors.
    pub fn run(mut self) -> std::io::Result<()> {
        self.accept_paused = vec![None; self.listeners.len()];
        // Named only now that the worker serves: connections queued while
        // it restored a cache (-e) or waited for the others went by hash.
        // Not counted in `steering_changes`: a start, not a change.
        if let Some(s) = self.steer.as_mut() {
            s.balance(0, 0, 1);
        }
        self.arm_listen_poll();
        let mut grace: Option<Instant> = None;
        let mut cut_off = false;
        let mut done = false;
        loop {
            self.shard.c.loop_turns += 1;
            self.turn_now = None;
            self.drain_inbox();
            self.run_admin_jobs();
            self.reap();
            for idx in std::mem::take(&mut self.rearm) {
                self.arm_recv(idx);
            }
            for idx in std::mem::take(&mut self.yielded) {
                self.go_on(idx);
            }
            if !self.dumps.is_empty() {
                self.run_dumps();
            }
            self.watch_turn();
            self.flush_unpins();
            self.flush_accessed();
            self.flush_backlog();
            // Before the replies go: a client told STORED may ask `stats
            // items` on another connection, served by another worker.
            self.shared.classes.publish(self.id, &mut self.shard.store);
            self.issue_sends();
            self.maintain();
            if self.shared.stop.load(Relaxed) && !self.stopping {
                self.begin_stop();
                grace = Some(Instant::now() + STOP_GRACE);
            }
            if let Some(g) = grace {
                let open = self.conns.iter().filter(|c| c.is_some()).count();
                if open == 0 && !done {
                    done = true;
                    self.shared.mesh.stopped.fetch_add(1, SeqCst);
                }
                let now = Instant::now();
                if open > 0 && now > g && !cut_off {
                    // Past the grace period: cut the rest off, so no
                    // operation of theirs outlives the rings and stores.
                    cut_off = true;
                    for i in 0..self.conns.len() {
                        self.abandon(i as u32);
                    }
                }
                // Others may still need this worker's shard (their replies,
                // their sends by reference), until they are done too.
                let all = self.shared.mesh.stopped.load(SeqCst) == self.shared.mesh.n;
                if all || now > g + STOP_CUTOFF {
                    self.publish();
                    if let Some(at_stop) = &self.shared.at_stop {
                        at_stop(self.id, &self.shard.store);
                    }
                    return Ok(());
                }
            }
            self.wait();
        }
    }

    /// Submits this turn's operations and has completions posted without
    /// waiting for one: with DEFER_TASKRUN they are posted only by an
    /// enter that asks for events, which a plain submit does not.
    fn poll_events(&mut self) {
        let ts = types::Timespec::new();
        let args = types::SubmitArgs::new().timespec(&ts);
        self.shard.c.uring_submits += 1;
        let _ = self.ring.submitter().submit_with_args(1, &args);
    }

    /// Submits this turn's operations and, with nothing left to do, blocks
    /// until a completion arrives. Before blocking the worker says it
    /// sleeps, so another worker that queues a message for it wakes it
    /// (`hop_io::wake`); the inbox is checked once more after that, so a
    /// message queued in between is not left waiting for the timeout.
    fn wait(&mut self) {
        let mesh = &self.shared.mesh;
        let have_cqe = !self.ring.completion().is_empty();
        let backlog = self.backlog.iter().any(|b| !b.is_empty());
        // A multi-get that gave way to others (multiget.rs) goes on next
        // turn: blocking here held one of only misses, which sends
        // nothing meanwhile, 100 ms per TURN_KEYS keys after its second.
        let gave_way = !self.yielded.is_empty();
        if have_cqe || !self.to_send.is_empty() || gave_way || self.dump_ready() {
            if gave_way {
                // It gave way so that the others' completions are reaped
                // between its turns (a plain submit kept another client of
                // the worker waiting 94 ms through a get of 2 M missing
                // keys).
                self.poll_events();
            } else {
                self.shard.c.uring_submits += 1;
                let _ = self.ring.submit();
            }
            return;
        }
        let store = &mut self.shard.store;
        if store.sweep_pending() || store.expiry_pending() {
            // Idle: the time goes to reclaiming what a flush hid or what
            // expired, a step at a time, polling for completions between
            // steps (a plain submit left requests waiting 0.3 s, until a
            // 2 M item sweep was over).
            if store.sweep_pending() {
                store.sweep_step(SWEEP_STEP);
            } else {
                // Steps until IDLE_EXPIRY_SLICE has passed, then a poll:
                // one poll a step (a loop turn and an enter each) cost 25-30 %
                // more CPU than the whole pass under TTL churn (120 k
                // expiring a second, -t 1), 5x the loop turns.
                store.expiry_for(IDLE_EXPIRY_SLICE);
            }
            self.poll_events();
            return;
        }
        mesh.sleeping[self.id].store(true, SeqCst);
        if !mesh.inbox_empty(self.id) || self.shared.admin_jobs.pending(self.id) {
            mesh.sleeping[self.id].store(false, SeqCst);
            self.shard.c.uring_submits += 1;
            let _ = self.ring.submit();
            return;
        }
        // A backlog is retried soon; otherwise wake at least ten times a
        // second for expiry, idle timeouts and the stop flag.
        let ts = types::Timespec::new().nsec(if backlog { 1_000_000 } else { 100_000_000 });
        let args = types::SubmitArgs::new().timespec(&ts);
        self.shard.c.uring_submits += 1;
        // Asleep, the shard may be borrowed (lend.rs): a request for one
        // of its keys then runs on another worker instead of waking this
        // one for a hop.
        let lend = self
            .shared
            .settings
            .borrow_shards
            .then(|| &self.shared.lends[self.id]);
        let ring = &mut self.ring;
        let _ = self
            .shard
            .lend_while(lend, || ring.submitter().submit_with_args(1, &args));
        self.shard.c.wakeups += 1;
        mesh.sleeping[self.id].store(false, SeqCst);
    }

    /// Once a second: start an expiry pass, give back what huge pages
    /// brought of empty segments, close idle connections, retry
    /// paused accepts, give large freed buffers back to the system. Every
    /// turn: publish the counters, and resume accepting once a descriptor
    /// was freed.
    fn maintain(&mut self) {
        let now = self.shard.store.tick();
        let second = now != self.last_sec;
        if second {
            self.last_sec = now;
            self.shard.store.expiry_begin(16);
            self.shard.store.give_back_spill();
            self.close_idle(now);
            if let Some(b) = self.bufs.as_mut() {
                b.trim();
            }
            if self.freed >= TRIM_AFTER {
                self.freed = 0;
                trim_heap();
            }
        }
        if let Some(b) = self.bufs.as_mut() {
            b.turn_end();
        }
        self.retry_accepts(second);
        // The size-class census (stats items `age`): each of n workers
        // takes a bounded step every n x 10 ms, about 100 k records a
        // second in all. A shard holds 1/n of the items, so a pass takes
        // as long as with one worker (every worker stepping every 10 ms
        // was 1.3 % of the server's samples at `-t 2` against 0.7 % at
        // `-t 1`, perf, p16).
        if self.last_census.elapsed() >= CENSUS_EVERY * self.shared.mesh.n as u32 {
            self.last_census = std::time::Instant::now();
            self.shard.store.census_step(CENSUS_STEP);
        }
        // What expired is reclaimed in steps, for about BUSY_EXPIRY_SLICE a
        // turn, so no request waits behind a whole pass (store/expiry.rs).
        if self.shard.store.expiry_pending() {
            self.shard.store.expiry_for(BUSY_EXPIRY_SLICE);
        }
        // A full store merges ahead of the write that will need a segment,
        // in steps (store/merge_job.rs): a merge done by that write held it
        // 1.5 ms at p99.99.
        if self.shard.store.evict_ahead_pending() {
            self.shard.store.evict_ahead_for(BUSY_EXPIRY_SLICE);
        }
        // What flush_all or flush_prefix hid is reclaimed in paced slices.
        if self.shard.store.sweep_pending() && self.last_sweep.elapsed() >= SWEEP_EVERY {
            self.last_sweep = std::time::Instant::now();
            self.shard.store.sweep_step(SWEEP_STEP);
        }
        self.publish();
    }

    pub(super) fn publish(&mut self) {
        let mut c = self.shard.counters();
        c.connection_structures = self.conns.len() as u64;
        self.shared.published[self.id].publish(&c);
        self.shared.classes.publish(self.id, &mut self.shard.store);
    }

    /// Stops accepting and reading; every complete request already read
    /// is still answered (connections close once their input is done and
    /// their replies are out, as at end of input).
    fn begin_stop(&mut self) {
        self.stopping = true;
        for &fd in &self.listeners {
            // SAFETY: shutting down our own listening socket wakes the accept.
            unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
        }
        for i in 0..self.conns.len() {
            self.end_input(i as u32);
        }
    }

    /// Watches the listeners for connections (accept.rs takes them).
    pub(super) fn arm_listen_poll(&mut self) {
        let e = self.listen_set.poll(UserData::plain(Kind::Accept, 0).0);
        self.push_sqe(e);
    }
}

/// Records one census step reads at most (`Store::census_step`): a
/// header and a key length each, well under the scan's 512 records per
/// 100 µs.
const CENSUS_STEP: usize = 1024;
/// How often the census takes a step.
const CENSUS_EVERY: std::time::Duration = std::time::Duration::from_millis(10);

/// Records one flush sweep step reads at most (`Store::sweep_step`): each
/// hidden one is hashed and unlinked from the index, about 0.27 µs with
/// the buckets prefetched (4 M flushed 100-byte items on this 2-core host),
/// so a step holds the worker about 70 µs: what a request arriving during
/// a sweep may wait.
const SWEEP_STEP: usize = 256;
/// How often a busy worker takes a sweep step while a flush is pending
/// (under a tenth of its time); an idle one sweeps step after step.
const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_millis(1);

/// How long a worker with requests runs expiry steps in a loop turn (at
/// least one), and as long merge steps ahead of need: a step or two.
const BUSY_EXPIRY_SLICE: std::time::Duration = std::time::Duration::from_micros(10);

/// How long an idle worker runs expiry steps back to back before it polls
/// for completions: what a request arriving meanwhile may wait, about four
/// steps (`store::EXPIRY_STEP` records, 6-10 µs each).
const IDLE_EXPIRY_SLICE: std::time::Duration = std::time::Duration::from_micros(30);

/// Freed buffer bytes after which the heap is trimmed (once a second at
/// most): large buffers come from the allocator's arenas once its dynamic
/// mmap threshold has grown, and arenas return memory only when trimmed.
const TRIM_AFTER: usize = 1 << 20;

fn trim_heap() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only walks and releases the allocator's free memory.
    unsafe {
        libc::malloc_trim(0);
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        for c in self.conns.iter().flatten() {
            // SAFETY: closing sockets this worker owns, at exit.
            unsafe { libc::close(c.fd) };
        }
        for &fd in &self.listeners {
            // SAFETY: as above.
            unsafe { libc::close(fd) };
        }
    }
}
