//! The cross-shard hop as a worker does it (the queues are `hop.rs`):
//! forwarding a request to its owner while keeping its reply's place,
//! the backlog of messages a full queue refused, waking a sleeping owner
//! with MSG_RING, draining the inbox (running others' jobs, taking their
//! replies), and broadcasting to every worker.
use super::dispatch::Request;
use super::hop::{Job, Msg, NO_REPLY};
use super::incoming::{self, Reparse};
use super::user_data::{ConnId, Kind, UserData};
use super::worker::Worker;
use crate::exec;
use crate::exec::value_ref::{Refs, HOP_ZC_MIN};
use crate::protocol::{binary, text, Parse};
use io_uring::{opcode, types};
use std::os::fd::RawFd;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};

impl Worker {
    /// Sends a job to the owning worker, keeping the reply's place.
    pub(super) fn forward(&mut self, idx: u32, to: usize, job: Job) {
        self.forward_fenced(idx, to, job, None);
    }

    /// `forward`, and what later reads of this connection must not
    /// overtake: the key of hash `key` if Some, else every key (a plain
    /// multi-get batch fences nothing).
    fn forward_fenced(&mut self, idx: u32, to: usize, job: Job, key: Option<u64>) {
        if !self.accessed[to].is_empty() {
            // Ahead of the job, on the same queue: a read of the owner's
            // (`mg h`, `l`) then sees this worker's earlier foreign reads.
            let hits = std::mem::take(&mut self.accessed[to]);
            self.send_msg(to, Msg::Accessed { hits });
        }
        let c = self.conn(idx);
        let seq = c.wait_slot();
        match key {
            Some(h) => c.fence_key(h, seq),
            None if matches!(job, Job::GetKeys { touch: None, .. }) => {}
            None => c.write_fence = seq + 1,
        }
        let (conn, cfd) = (ConnId { idx, gen: c.gen }.token(), c.fd);
        self.shard.c.cross_shard_sent += 1;
        self.send_msg(
            to,
            Msg::Job {
                from: self.id,
                conn,
                seq,
                cfd,
                job,
            },
        );
    }

    /// Forwards one whole single-key request `req` for `key`, as received
    /// (`raw`), to its owner.
    pub(super) fn forward_raw(
        &mut self,
        idx: u32,
        to: usize,
        req: &Request,
        raw: &[u8],
        key: &[u8],
    ) {
        let job = Job::Raw {
            binary: matches!(req, Request::Binary(_)),
            no_memory: super::incoming::refused_for_memory(req),
            bytes: raw.to_vec(),
        };
        let h = self.shard.store.hash(key);
        self.forward_fenced(idx, to, job, Some(h));
    }

    pub(super) fn send_msg(&mut self, to: usize, m: Msg) {
        if matches!(m, Msg::Job { .. }) {
            self.jobs_sent[to] += 1;
        }
        if !self.backlog[to].is_empty() {
            self.backlog[to].push_back(m);
            return;
        }
        if let Err(m) = self.shared.mesh.queue(self.id, to).push(m) {
            self.backlog[to].push_back(m);
            return;
        }
        self.wake(to);
    }

    pub(super) fn flush_backlog(&mut self) {
        for to in 0..self.backlog.len() {
            let mut sent = false;
            while let Some(m) = self.backlog[to].pop_front() {
                match self.shared.mesh.queue(self.id, to).push(m) {
                    Ok(()) => sent = true,
                    Err(m) => {
                        self.backlog[to].push_front(m);
                        break;
                    }
                }
            }
            if sent {
                self.wake(to);
            }
        }
    }

    pub(super) fn wake(&mut self, to: usize) {
        let mesh = &self.shared.mesh;
        if mesh.sleeping[to].swap(false, SeqCst) {
            let fd = mesh.ring_fds[to].load(SeqCst) as RawFd;
            let e =
                opcode::MsgRingData::new(types::Fd(fd), 0, UserData::plain(Kind::Wake, 0).0, None)
                    .build()
                    .user_data(UserData::plain(Kind::Wake, 1).0);
            // Goes out with this turn's submit, which always follows.
            self.shard.c.wakes_sent += 1;
            self.push_sqe(e);
        }
    }

    pub(super) fn drain_inbox(&mut self) {
        let n = self.shared.mesh.n;
        let mut replies = Vec::new();
        for from in 0..n {
            if from == self.id {
                continue;
            }
            while let Some(m) = self.shared.mesh.queue(from, self.id).pop() {
                match m {
                    Msg::Job {
                        from,
                        conn,
                        seq,
                        cfd,
                        job,
                    } => {
                        // Owner-written only: a plain load and store.
                        let taken = self.shared.mesh.jobs_taken(from, self.id);
                        taken.store(taken.load(Relaxed) + 1, Relaxed);
                        self.shard.c.cross_shard_served += 1;
                        if let Some(r) = self.run_job(conn, seq, cfd, job) {
                            replies.push((from, r));
                        }
                    }
                    Msg::Reply {
                        conn,
                        seq,
                        bytes,
                        refs,
                    } => self.take_replies(conn, &[seq], &bytes, &[], refs),
                    Msg::Replies {
                        conn,
                        seqs,
                        bytes,
                        ends,
                        refs,
                    } => self.take_replies(conn, &seqs, &bytes, &ends, refs),
                    Msg::DumpReply {
                        conn,
                        seq,
                        bytes,
                        next,
                    } => self.take_dump(conn, seq, &bytes, next),
                    Msg::Unpin { segs } => {
                        for s in segs {
                            self.shard.store.unpin(s);
                        }
                    }
                    Msg::Accessed { hits } => {
                        for (hash, seg, off) in hits {
                            self.shard.store.accessed(hash, seg, off);
                        }
                    }
                }
            }
        }
        if !replies.is_empty() {
            // Publish first, so a `stats` that follows these replies sees them.
            self.publish();
            for (to, m) in replies {
                self.send_msg(to, m);
            }
        }
    }

    /// A dump step's lines from another worker: into their slot, then the
    /// dump goes on (dump.rs).
    fn take_dump(&mut self, conn: u64, seq: u64, bytes: &[u8], next: u64) {
        let ConnId { idx, gen } = ConnId::from_token(conn);
        let Some(c) = self.conn_mut(idx, gen) else {
            return;
        };
        if c.fill(seq, bytes, &[], 0) {
            self.dump_progress(idx, bytes, next, true);
        }
    }

    /// Fills connection `conn`'s slots `seqs` with replies from another
    /// worker (one, or a batch cut at `ends`), then lets it go on. Replies
    /// for a connection that has gone release their references.
    fn take_replies(
        &mut self,
        conn: u64,
        seqs: &[u64],
        bytes: &[u8],
        ends: &[u32],
        mut refs: Refs,
    ) {
        let ConnId { idx, gen } = ConnId::from_token(conn);
        let Some(c) = self.conn_mut(idx, gen) else {
            return self.release_refs(&mut refs);
        };
        let (mut start, mut r) = (0, 0);
        let mut orphans = Refs::default();
        for (i, &seq) in seqs.iter().enumerate() {
            let end = ends.get(i).map_or(bytes.len(), |&e| e as usize);
            let first = r;
            // A value can end its reply (a binary GET's does), so a
            // reference at `end` is this reply's; none is at a reply's
            // start, where every reply has its header.
            while r < refs.list.len() && refs.list[r].at <= end {
                r += 1;
            }
            let mine = &refs.list[first..r];
            if !c.fill(seq, &bytes[start..end], mine, start) {
                for &x in mine {
                    orphans.push(x);
                }
            }
            start = end;
        }
        self.release_refs(&mut orphans);
        self.maybe_resume(idx);
        self.after_process(idx);
    }

    /// Runs a job for connection `conn` (descriptor `cfd`) of another
    /// worker; returns the reply to send back, if any. Values of `HOP_ZC_MIN` bytes or more go
    /// by reference, pinned here until that worker says they are sent.
    pub(super) fn run_job(&mut self, conn: u64, seq: u64, cfd: i32, job: Job) -> Option<Msg> {
        let item_max = self.shared.settings.item_max;
        let mut bytes = Vec::new();
        let mut batch = None;
        self.shard.zc_min = HOP_ZC_MIN;
        match job {
            Job::Dump {
                spec,
                cursor,
                max_lines,
            } => {
                self.shard.zc_min = usize::MAX;
                let (bytes, next) = super::dump::step(&self.shard.store, spec, cursor, max_lines);
                return Some(Msg::DumpReply {
                    conn,
                    seq,
                    bytes,
                    next,
                });
            }
            Job::ResetStats => self.reset_stats(),
            Job::Conns => bytes = self.conns_lines(None),
            // The receiving worker counted the command once; the other
            // shards only apply it.
            Job::Flush { delay } => self.shard.store.flush(delay),
            Job::FlushPrefix { prefix } => self.shard.store.flush_prefix(&prefix),
            Job::MemLimit { mb } => {
                self.shard.set_memlimit(mb);
                self.publish();
            }
            Job::GetKeys {
                keys,
                seqs,
                cas,
                touch,
            } => {
                let mut ends = Vec::with_capacity(seqs.len());
                for k in text::tokens(&keys) {
                    exec::text::get_key(&mut self.shard, k, cas, touch, &mut bytes);
                    ends.push(bytes.len() as u32);
                }
                batch = Some((seqs, ends));
            }
            Job::Raw {
                binary: false,
                no_memory,
                bytes: raw,
            } => {
                let parsed = match no_memory {
                    false => text::parse(&raw, item_max),
                    true => refused(incoming::refuse_text(&raw, &mut 0, false)),
                };
                if let Parse::Done(req, _) | Parse::Skip(req, _, _) = parsed {
                    exec::text::exec(&mut self.shard, &req, &mut bytes);
                    super::conn_log::reply_error(None, self.id, &bytes);
                }
            }
            Job::Raw {
                binary: true,
                no_memory,
                bytes: raw,
            } => {
                let parsed = match no_memory {
                    false => binary::parse(&raw, item_max),
                    true => refused(incoming::refuse_binary(&raw)),
                };
                if let Parse::Done(Ok(r), _) | Parse::Skip(Ok(r), _, _) = parsed {
                    exec::binary::exec(&mut self.shard, &r, &mut bytes);
                    super::conn_log::reply_error(None, self.id, &bytes);
                }
            }
        }
        self.shard.zc_min = usize::MAX;
        // A flush applied here shuts other workers' direct reads of this
        // store before the reply leaves.
        self.shard.store.refresh_gate();
        self.emit_notes(cfd);
        let mut refs = std::mem::take(&mut self.shard.zc_refs);
        match batch {
            Some((seqs, ends)) => Some(Msg::Replies {
                conn,
                seqs,
                bytes,
                ends,
                refs,
            }),
            None if seq == NO_REPLY => {
                self.release_refs(&mut refs);
                None
            }
            None => Some(Msg::Reply {
                conn,
                seq,
                bytes,
                refs,
            }),
        }
    }

    /// Lets go of value references: this shard's pins at once, other
    /// shards' by a message to their owner (sent with this turn's others).
    pub(super) fn release_refs(&mut self, refs: &mut Refs) {
        for r in refs.list.drain(..) {
            if r.shard as usize == self.id {
                self.shard.store.unpin(r.seg);
            } else {
                self.unpins[r.shard as usize].push(r.seg);
            }
        }
        refs.bytes = 0;
    }

    /// Sends each owner the pins this worker's sends are done with.
    pub(super) fn flush_unpins(&mut self) {
        for to in 0..self.unpins.len() {
            if !self.unpins[to].is_empty() {
                let segs = std::mem::take(&mut self.unpins[to]);
                self.send_msg(to, Msg::Unpin { segs });
            }
        }
    }

    /// Sends a job for connection `idx` to every other worker to run there
    /// too (flush_all, flush_prefix, cache_memlimit). Each answers with an
    /// empty reply in the connection's order, so the request's own reply
    /// goes out once every shard has applied it, as memcached answers once
    /// the change is global, and a `stats` after it sees it on every shard
    /// (`Conn::stats_wait`; a `stats` right after an `OK` showed the other
    /// shards' old `limit_maxbytes`).
    pub(super) fn broadcast(&mut self, idx: u32, job: Job) {
        for to in 0..self.shared.mesh.n {
            if to != self.id {
                self.forward(idx, to, job.clone());
            }
        }
    }
}

/// The refusal a forwarding worker made of a store's head, made again
/// here (a head it refused always parses as one).
fn refused<T>(r: Reparse<T>) -> Parse<T> {
    match r {
        Reparse::Refused(p) => p,
        Reparse::Head(_) | Reparse::Other => Parse::Close,
    }
}
