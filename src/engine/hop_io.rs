//! The cross-shard hop as a worker does it (the queues are `hop.rs`):
//! forwarding a request to its owner while keeping its reply's place,
//! the backlog of messages a full queue refused, waking a sleeping owner
//! with MSG_RING, draining the inbox (running others' jobs, taking their
//! replies), and broadcasting to every worker.
use super::hop::{Job, Msg, NO_REPLY};
use super::user_data::{ConnId, Kind, UserData};
use super::worker::Worker;
use crate::exec;
use crate::protocol::{binary, text, Parse};
use io_uring::{opcode, types};
use std::os::fd::RawFd;
use std::sync::atomic::Ordering::SeqCst;

impl Worker {
    /// Sends a job to the owning worker, keeping the reply's place.
    pub(super) fn forward(&mut self, idx: u32, to: usize, job: Job) {
        let c = self.conn(idx);
        let seq = c.wait_slot();
        let conn = ConnId { idx, gen: c.gen }.token();
        self.shard.c.cross_shard_sent += 1;
        self.send_msg(
            to,
            Msg::Job {
                from: self.id,
                conn,
                seq,
                job,
            },
        );
    }

    /// Forwards one whole single-key request, as received, to its owner.
    pub(super) fn forward_raw(&mut self, idx: u32, to: usize, binary: bool, raw: &[u8]) {
        let bytes = raw.to_vec();
        self.forward(idx, to, Job::Raw { binary, bytes });
    }

    pub(super) fn send_msg(&mut self, to: usize, m: Msg) {
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
                        job,
                    } => {
                        self.shard.c.cross_shard_served += 1;
                        let mut out = Vec::new();
                        self.run_job(job, &mut out);
                        if seq != NO_REPLY {
                            replies.push((
                                from,
                                Msg::Reply {
                                    conn,
                                    seq,
                                    bytes: out,
                                },
                            ));
                        }
                    }
                    Msg::Reply { conn, seq, bytes } => {
                        let ConnId { idx, gen } = ConnId::from_token(conn);
                        if let Some(c) = self.conn_mut(idx, gen) {
                            c.fill(seq, bytes);
                            self.maybe_resume(idx);
                            self.after_process(idx);
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

    pub(super) fn run_job(&mut self, job: Job, out: &mut Vec<u8>) {
        let item_max = self.shared.settings.item_max;
        match job {
            Job::ResetStats => self.shard.reset_counters(),
            // The receiving worker counted the command once; the other
            // shards only apply it.
            Job::Flush { delay } => self.shard.store.flush(delay),
            Job::MemLimit { mb } => {
                self.shard.set_memlimit(mb);
            }
            Job::GetKey { key, cas, touch } => {
                exec::text::get_key(&mut self.shard, &key, cas, touch, out)
            }
            Job::Raw {
                binary: false,
                bytes,
            } => match text::parse(&bytes, item_max) {
                Parse::Done(req, _) | Parse::Skip(req, _, _) => {
                    exec::text::exec(&mut self.shard, &req, out)
                }
                _ => {}
            },
            Job::Raw {
                binary: true,
                bytes,
            } => match binary::parse(&bytes, item_max) {
                Parse::Done(Ok(r), _) | Parse::Skip(Ok(r), _, _) => {
                    exec::binary::exec(&mut self.shard, &r, out)
                }
                _ => {}
            },
        }
    }

    /// Sends a job to every other worker to run there too (flush_all,
    /// cache_memlimit); nothing comes back.
    pub(super) fn broadcast(&mut self, job: Job) {
        for to in 0..self.shared.mesh.n {
            if to != self.id {
                let m = Msg::Job {
                    from: self.id,
                    conn: 0,
                    seq: NO_REPLY,
                    job: job.clone(),
                };
                self.send_msg(to, m);
            }
        }
    }
}
