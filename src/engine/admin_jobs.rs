//! Work the admin side asks of a worker (prefix invalidation, key browser
//! steps, one key's view or edit), and its reply.
//!
//! Each worker has an inbox: a mutex-guarded list behind a flag the worker
//! loads once per loop turn (one relaxed load when nothing is asked; the
//! mutex is only taken when the flag is set, and only the admin thread
//! contends for it). A sleeping worker is woken with MSG_RING from a small
//! ring of the admin side's own. Every job is bounded (a scan step reads a
//! bounded number of records), and a turn runs at most [`JOBS_PER_TURN`]
//! of them, so a worker is never held for long.

use super::user_data::{Kind, UserData};
use super::worker::Worker;
use crate::exec;
use crate::protocol::text;
use crate::protocol::Parse;
use crate::store::scan::{ScanCursor, ScanFilter, ScanStep};
use io_uring::{opcode, types, IoUring};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::Mutex;
use tokio::sync::oneshot;

/// One thing the admin side asks of a worker's shard.
#[derive(Debug)]
pub enum AdminJob {
    /// `flush_prefix` on this shard.
    FlushPrefix(Vec<u8>),
    /// One bounded step of a key browser scan (`Store::scan`).
    Scan {
        /// Where this shard's scan stands.
        cursor: ScanCursor,
        /// What to keep.
        filter: ScanFilter,
        /// Records to read at most.
        max_records: usize,
        /// Items to return at most.
        max_items: usize,
    },
    /// One key's whole item, read without counting an access.
    Get(Vec<u8>),
    /// One text-protocol request (set, delete, touch, ...), executed with
    /// memcached's semantics on this shard; the reply is its bytes.
    Text(Vec<u8>),
}

/// One item's full view for the key browser.
#[derive(Clone, Debug)]
pub struct ItemView {
    /// The value.
    pub value: Vec<u8>,
    /// The client's flags.
    pub flags: u32,
    /// Seconds left; -1 = never expires.
    pub ttl: i64,
    /// The item's CAS.
    pub cas: u64,
    /// Seconds since the last access.
    pub idle: u32,
    /// Approximate store time, Unix seconds (`Store::stored_unix`).
    pub stored_unix: i64,
}

/// A worker's answer to an [`AdminJob`].
#[derive(Debug)]
pub enum AdminReply {
    /// Done (`FlushPrefix`).
    Done,
    /// A scan step's findings.
    Scan(ScanStep),
    /// The item, if the key is live.
    Item(Option<ItemView>),
    /// A text request's reply bytes.
    Text(Vec<u8>),
}

type Queued = (AdminJob, oneshot::Sender<AdminReply>);

/// Admin jobs a worker runs per loop turn at most. Each is bounded (a scan
/// step reads `admin::browse::STEP_RECORDS` records, a text job is one
/// command, about a µs), so the admin side costs a turn a few µs however
/// much it asks at once: a bulk delete of 10,000 keys, run in one turn,
/// stalled every connection of the shard for milliseconds.
pub const JOBS_PER_TURN: usize = 4;

/// The admin side's inboxes, one per worker, and its waking ring.
pub struct AdminInboxes {
    pending: Vec<AtomicBool>,
    jobs: Vec<Mutex<Vec<Queued>>>,
    waker: Mutex<Option<IoUring>>,
}

impl AdminInboxes {
    /// Empty inboxes for `n` workers.
    pub fn new(n: usize) -> AdminInboxes {
        AdminInboxes {
            pending: (0..n).map(|_| AtomicBool::new(false)).collect(),
            jobs: (0..n).map(|_| Mutex::new(Vec::new())).collect(),
            waker: Mutex::new(None),
        }
    }

    /// Whether worker `id` has jobs waiting (its loop's one check).
    #[inline]
    pub fn pending(&self, id: usize) -> bool {
        self.pending[id].load(Relaxed)
    }

    /// The first `max` jobs waiting for worker `id`; the flag stays set
    /// while more wait.
    fn take(&self, id: usize, max: usize) -> Vec<Queued> {
        let mut q = self.jobs[id].lock().unwrap_or_else(|e| e.into_inner());
        let n = max.min(q.len());
        let first: Vec<Queued> = q.drain(..n).collect();
        // Under the lock: a job pushed after this sets the flag again.
        self.pending[id].store(!q.is_empty(), SeqCst);
        first
    }
}

impl super::Shared {
    /// Asks worker `to` to run `job`; the reply arrives on the returned
    /// receiver (dropped unanswered if the worker has stopped).
    pub fn ask_worker(&self, to: usize, job: AdminJob) -> oneshot::Receiver<AdminReply> {
        let (tx, rx) = oneshot::channel();
        let a = &self.admin_jobs;
        a.jobs[to]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((job, tx));
        a.pending[to].store(true, SeqCst);
        // The worker says it sleeps before its last look at the flag
        // (worker.rs `wait`), so either it sees the flag or we see it asleep.
        if self.mesh.sleeping[to].swap(false, SeqCst) {
            self.wake_from_admin(to);
        }
        rx
    }

    fn wake_from_admin(&self, to: usize) {
        let fd = self.mesh.ring_fds[to].load(SeqCst);
        if fd == usize::MAX {
            return;
        }
        let mut g = self
            .admin_jobs
            .waker
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if g.is_none() {
            *g = IoUring::new(4).ok();
        }
        let Some(ring) = g.as_mut() else {
            return; // The worker's 100 ms timeout still picks the job up.
        };
        let e = opcode::MsgRingData::new(
            types::Fd(fd as RawFd),
            0,
            UserData::plain(Kind::Wake, 0).0,
            None,
        )
        .build()
        .user_data(0);
        // SAFETY: the entry refers to no memory of ours.
        if unsafe { ring.submission().push(&e) }.is_ok() {
            let _ = ring.submit_and_wait(1);
            ring.completion().for_each(drop);
        }
    }
}

impl Worker {
    /// Runs what the admin side asked of this shard, if anything: at most
    /// [`JOBS_PER_TURN`] jobs, the rest on the next turns (the loop does
    /// not sleep while the flag is set).
    #[inline]
    pub(super) fn run_admin_jobs(&mut self) {
        if self.shared.admin_jobs.pending(self.id) {
            for (job, tx) in self.shared.admin_jobs.take(self.id, JOBS_PER_TURN) {
                // Rare (at most a job a millisecond while serving), so two
                // clock reads cost nothing on the request path.
                let start = std::time::Instant::now();
                let reply = self.admin_job(job);
                let us = start.elapsed().as_micros() as u64;
                let c = &mut self.shard.c;
                c.admin_jobs += 1;
                c.admin_job_us += us;
                c.admin_job_max_us = c.admin_job_max_us.max(us);
                let _ = tx.send(reply);
            }
        }
    }

    fn admin_job(&mut self, job: AdminJob) -> AdminReply {
        let sh = &mut self.shard;
        match job {
            AdminJob::FlushPrefix(p) => {
                sh.flush_prefix(&p);
                AdminReply::Done
            }
            AdminJob::Scan {
                cursor,
                filter,
                max_records,
                max_items,
            } => AdminReply::Scan(sh.store.scan(cursor, &filter, max_records, max_items)),
            AdminJob::Get(key) => {
                let now = sh.store.now();
                let view = sh.store.find(&key).map(|f| ItemView {
                    value: f.item.value().to_vec(),
                    flags: f.item.flags(),
                    ttl: sh.store.ttl_left(&f),
                    cas: sh.store.client_cas(&f),
                    idle: f.item.idle_secs(now),
                    stored_unix: sh.store.stored_unix(&f),
                });
                AdminReply::Item(view)
            }
            AdminJob::Text(raw) => {
                let mut out = Vec::new();
                let max = self.shared.settings.item_max;
                match text::parse(&raw, max) {
                    Parse::Done(req, _) | Parse::Skip(req, _, _) => {
                        exec::text::exec(sh, &req, &mut out);
                    }
                    _ => out.extend_from_slice(b"ERROR\r\n"),
                }
                AdminReply::Text(out)
            }
        }
    }
}
