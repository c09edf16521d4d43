//! One worker: a pinned thread with its own store shard and io_uring.
//!
//! Each loop turn: take messages from other workers, reap completions
//! (accepts, receives, sends), parse and execute what arrived, then issue
//! at most one send per connection with everything that connection has
//! ready, and block in the kernel until something happens.

use super::buf_ring::BufRing;
use super::conn::{Conn, READ_CHUNK};
use super::counters::Counters;
use super::exec_binary;
use super::exec_meta::meta_key;
use super::exec_text;
use super::hop::{Job, Msg, NO_REPLY};
use super::prefetch::{Prefetcher, PREFETCH_MAX};
use super::shard::{push_line, Shard};
use super::{stats, Shared};
use crate::protocol::binary::{self, op, status};
use crate::protocol::meta::MetaCmd;
use crate::protocol::text::{self, Request};
use crate::protocol::{Parse, Proto, KEY_MAX};
use io_uring::{cqueue, opcode, squeue, types, IoUring};
use std::collections::VecDeque;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

const KIND_SHIFT: u64 = 56;
const GEN_SHIFT: u64 = 32;
const ACCEPT: u64 = 1;
const RECV: u64 = 2;
const SEND: u64 = 3;
const WAKE: u64 = 4;
const CANCEL: u64 = 5;

/// Receive buffers per worker, and their size.
const RECV_BUFS: u16 = 1024;
const RECV_BUF_SIZE: usize = 8 * 1024;

fn ud(kind: u64, gen: u32, idx: u32) -> u64 {
    (kind << KIND_SHIFT) | (((gen & 0xff_ffff) as u64) << GEN_SHIFT) | idx as u64
}

/// The (kind, generation, connection index) that `ud` packed.
fn parts(u: u64) -> (u64, u32, u32) {
    (
        u >> KIND_SHIFT,
        ((u >> GEN_SHIFT) & 0xff_ffff) as u32,
        (u & 0xffff_ffff) as u32,
    )
}

fn token(gen: u32, idx: u32) -> u64 {
    ((gen as u64) << 32) | idx as u64
}

pub struct Worker {
    id: usize,
    shared: Arc<Shared>,
    shard: Shard,
    ring: IoUring,
    /// Declared after `ring` so the ring is dropped before the buffers it uses.
    bufs: Option<BufRing>,
    /// Connections whose multishot recv ran out of buffers; re-armed next turn.
    rearm: Vec<u32>,
    listeners: Vec<RawFd>,
    conns: Vec<Option<Conn>>,
    free: Vec<u32>,
    gens: Vec<u32>,
    to_send: Vec<u32>,
    /// The largest input buffer a finished large request left (keep_tail).
    spare_in: Vec<u8>,
    /// Completions taken from the ring, reused every turn.
    batch: Vec<(u64, i32, u32)>,
    /// Hashes of the keys prefetched for the batch being reaped.
    hashes: Vec<u64>,
    /// Messages a full queue refused, per destination, retried each turn.
    backlog: Vec<VecDeque<Msg>>,
    route: ahash::RandomState,
    stopping: bool,
    last_sec: u32,
}

/// Which worker owns a key.
pub fn owner(route: &ahash::RandomState, n: usize, key: &[u8]) -> usize {
    if n == 1 {
        return 0;
    }
    let h = route.hash_one(key);
    (((h >> 32) * n as u64) >> 32) as usize
}

pub fn route_hasher() -> ahash::RandomState {
    ahash::RandomState::with_seeds(
        0x5be0_cd19_137e_2179,
        0x1f83_d9ab_fb41_bd6b,
        0x9b05_688c_2b3e_6c1f,
        0x510e_527f_ade6_82d1,
    )
}

impl Worker {
    pub fn new(
        id: usize,
        shared: Arc<Shared>,
        shard: Shard,
        listeners: Vec<RawFd>,
    ) -> std::io::Result<Worker> {
        let ring = IoUring::builder()
            .setup_single_issuer()
            .setup_defer_taskrun()
            .setup_coop_taskrun()
            .build(4096)?;
        shared.mesh.ring_fds[id].store(ring.as_raw_fd() as usize, SeqCst);
        let bufs = BufRing::new(&ring, RECV_BUFS, RECV_BUF_SIZE, 0)?;
        let n = shared.mesh.n;
        let mut w = Worker {
            id,
            shared,
            shard,
            ring,
            bufs: Some(bufs),
            rearm: Vec::new(),
            listeners,
            conns: Vec::new(),
            free: Vec::new(),
            gens: Vec::new(),
            to_send: Vec::new(),
            batch: Vec::with_capacity(256),
            hashes: Vec::with_capacity(PREFETCH_MAX),
            spare_in: Vec::new(),
            backlog: (0..n).map(|_| VecDeque::new()).collect(),
            route: route_hasher(),
            stopping: false,
            last_sec: 0,
        };
        // Before the server reports ready: a `stats` served by another
        // worker sums this one's figures (limit_maxbytes among them).
        w.publish();
        Ok(w)
    }

    fn push_sqe(&mut self, e: squeue::Entry) {
        // SAFETY: every buffer an entry points at (connection buffers) stays
        // alive and unmoved until its completion is reaped: connections are
        // only freed with no operation in flight.
        while unsafe { self.ring.submission().push(&e) }.is_err() {
            let _ = self.ring.submit();
        }
    }

    pub fn run(mut self) -> std::io::Result<()> {
        for (i, &fd) in self.listeners.clone().iter().enumerate() {
            self.push_sqe(
                opcode::AcceptMulti::new(types::Fd(fd))
                    .build()
                    .user_data(ud(ACCEPT, 0, i as u32)),
            );
        }
        let mut stop_deadline: Option<Instant> = None;
        loop {
            self.drain_inbox();
            self.reap();
            for idx in std::mem::take(&mut self.rearm) {
                self.arm_recv(idx);
            }
            self.flush_backlog();
            self.issue_sends();
            self.maintain();
            if self.shared.stop.load(Relaxed) && !self.stopping {
                self.begin_stop();
                stop_deadline = Some(Instant::now() + Duration::from_secs(3));
            }
            if let Some(d) = stop_deadline {
                let open = self.conns.iter().filter(|c| c.is_some()).count();
                if open == 0 || Instant::now() > d {
                    self.publish();
                    return Ok(());
                }
            }
            self.wait();
        }
    }

    fn wait(&mut self) {
        let mesh = &self.shared.mesh;
        let have_cqe = !self.ring.completion().is_empty();
        let backlog = self.backlog.iter().any(|b| !b.is_empty());
        if have_cqe || !self.to_send.is_empty() {
            let _ = self.ring.submit();
            return;
        }
        mesh.sleeping[self.id].store(true, SeqCst);
        if !mesh.inbox_empty(self.id) {
            mesh.sleeping[self.id].store(false, SeqCst);
            let _ = self.ring.submit();
            return;
        }
        let ts = types::Timespec::new().nsec(if backlog { 1_000_000 } else { 100_000_000 });
        let args = types::SubmitArgs::new().timespec(&ts);
        let _ = self.ring.submitter().submit_with_args(1, &args);
        mesh.sleeping[self.id].store(false, SeqCst);
    }

    fn maintain(&mut self) {
        let now = self.shard.store.tick();
        if now != self.last_sec {
            self.last_sec = now;
            self.shard.store.expire(16);
            self.close_idle(now);
        }
        self.publish();
    }

    /// `-o idle_timeout`: closes connections silent for that long, once
    /// their replies are out.
    fn close_idle(&mut self, now: u32) {
        let limit = self.shared.settings.idle_timeout;
        if limit == 0 {
            return;
        }
        for i in 0..self.conns.len() {
            if let Some(c) = self.conns[i].as_mut() {
                if now.saturating_sub(c.last_active) >= limit && c.pending.is_empty() {
                    c.closing = true;
                    self.try_close(i as u32);
                }
            }
        }
    }

    fn publish(&mut self) {
        let c = self.shard.counters();
        self.shared.published[self.id].publish(&c);
    }

    fn begin_stop(&mut self) {
        self.stopping = true;
        for &fd in &self.listeners {
            // SAFETY: shutting down our own listening socket wakes the accept.
            unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
        }
        for i in 0..self.conns.len() {
            if let Some(c) = self.conns[i].as_mut() {
                c.closing = true;
            }
            self.try_close(i as u32);
        }
    }

    fn reap(&mut self) {
        let mut batch = std::mem::take(&mut self.batch);
        loop {
            batch.clear();
            batch.extend(
                self.ring
                    .completion()
                    .take(256)
                    .map(|c| (c.user_data(), c.result(), c.flags())),
            );
            if batch.is_empty() {
                self.batch = batch;
                return;
            }
            let mut prefetched = 0;
            for (i, &(u, res, flags)) in batch.iter().enumerate() {
                if i == prefetched {
                    prefetched = i + self.prefetch(&batch[i..]);
                }
                let (kind, gen, idx) = parts(u);
                match kind {
                    ACCEPT => self.on_accept(idx, res, flags),
                    RECV => self.on_recv(idx, gen, res, flags),
                    SEND => self.on_send(idx, gen, res),
                    _ => {}
                }
            }
        }
    }

    /// Starts loading the index buckets and items that the requests at
    /// the front of `batch` will look up, up to `PREFETCH_MAX` keys, so
    /// their misses overlap. Returns how many completions it covered.
    fn prefetch(&mut self, batch: &[(u64, i32, u32)]) -> usize {
        let Some(bufs) = self.bufs.as_ref() else {
            return batch.len();
        };
        let p = Prefetcher {
            store: &self.shard.store,
            route: &self.route,
            shards: self.shared.mesh.n,
            me: self.id,
            item_max: self.shared.settings.item_max,
        };
        let hashes = &mut self.hashes;
        hashes.clear();
        let mut covered = 0;
        for &(u, res, flags) in batch {
            if hashes.len() >= PREFETCH_MAX {
                break;
            }
            covered += 1;
            let (kind, gen, idx) = parts(u);
            let (Some(bid), RECV) = (cqueue::buffer_select(flags), kind) else {
                continue;
            };
            let Some(c) = self.conns.get(idx as usize).and_then(|c| c.as_ref()) else {
                continue;
            };
            // Only the common case: whole requests at the buffer's start.
            if res <= 0 || c.gen & 0xff_ffff != gen || !c.parses_in_place() || c.skip > 0 {
                continue;
            }
            let data = bufs.data(bid, res as usize);
            p.buckets(c.proto.unwrap_or(Proto::detect(data[0])), data, hashes);
        }
        if hashes.len() > 1 {
            p.items(hashes);
        }
        covered
    }

    fn on_accept(&mut self, li: u32, res: i32, flags: u32) {
        if !cqueue::more(flags) && !self.stopping {
            let fd = self.listeners[li as usize];
            self.push_sqe(
                opcode::AcceptMulti::new(types::Fd(fd))
                    .build()
                    .user_data(ud(ACCEPT, 0, li)),
            );
        }
        if res < 0 {
            return;
        }
        let fd = res;
        if self.stopping {
            // SAFETY: closing a socket we were just handed.
            unsafe { libc::close(fd) };
            return;
        }
        let total = self.shared.conns.fetch_add(1, SeqCst);
        if total >= self.shared.settings.max_conns {
            self.shared.conns.fetch_sub(1, SeqCst);
            self.shard.c.rejected_connections += 1;
            let msg = b"ERROR Too many open connections\r\n";
            // SAFETY: best-effort write and close of a socket we own.
            unsafe {
                libc::write(fd, msg.as_ptr() as *const libc::c_void, msg.len());
                libc::close(fd);
            }
            return;
        }
        self.shard.c.curr_connections += 1;
        self.shard.c.total_connections += 1;
        let idx = match self.free.pop() {
            Some(i) => i,
            None => {
                self.conns.push(None);
                self.gens.push(0);
                (self.conns.len() - 1) as u32
            }
        };
        self.gens[idx as usize] = self.gens[idx as usize].wrapping_add(1) & 0xff_ffff;
        let mut conn = Conn::new(fd, self.gens[idx as usize]);
        conn.last_active = self.last_sec;
        self.conns[idx as usize] = Some(conn);
        self.arm_recv(idx);
    }

    fn arm_recv(&mut self, idx: u32) {
        let bgid = self.bufs.as_ref().map_or(0, |b| b.bgid);
        let Some(c) = self.conns[idx as usize].as_mut() else {
            return;
        };
        if c.recv_inflight || c.closing || c.paused {
            return;
        }
        c.recv_inflight = true;
        let e = opcode::RecvMulti::new(types::Fd(c.fd), bgid)
            .build()
            .user_data(ud(RECV, c.gen, idx));
        self.push_sqe(e);
    }

    fn conn_mut(&mut self, idx: u32, gen: u32) -> Option<&mut Conn> {
        self.conns
            .get_mut(idx as usize)?
            .as_mut()
            .filter(|c| c.gen & 0xff_ffff == gen)
    }

    fn on_recv(&mut self, idx: u32, gen: u32, res: i32, flags: u32) {
        let bid = cqueue::buffer_select(flags);
        let more = cqueue::more(flags);
        let mut bufs = self.bufs.take().expect("buffer ring");
        self.recv_data(idx, gen, res, bid, more, &bufs);
        if let Some(b) = bid {
            bufs.recycle(b);
        }
        self.bufs = Some(bufs);
    }

    fn recv_data(
        &mut self,
        idx: u32,
        gen: u32,
        res: i32,
        bid: Option<u16>,
        more: bool,
        bufs: &BufRing,
    ) {
        let Some(c) = self.conn_mut(idx, gen) else {
            return;
        };
        if !more {
            c.recv_inflight = false;
        }
        if res == -libc::ENOBUFS || res == -libc::ECANCELED {
            // Out of receive buffers, or cancelled for backpressure: the
            // connection is re-armed once there is room.
            if !c.paused && !c.closing {
                self.rearm.push(idx);
            }
            return;
        }
        if res <= 0 {
            return self.abandon(idx);
        }
        let Some(bid) = bid else { return };
        let data = bufs.data(bid, res as usize);
        self.shard.c.bytes_read += res as u64;
        let now = self.last_sec;
        let c = self.conns[idx as usize].as_mut().expect("live connection");
        c.last_active = now;
        if c.closing {
            return;
        }
        if !c.parses_in_place() {
            // Behind earlier bytes: queue, then parse from the connection's buffer.
            c.inbuf.extend_from_slice(data);
            if !c.paused {
                self.process(idx);
            }
        } else {
            // The common case: parse straight from the kernel's buffer and
            // keep only an incomplete tail.
            c.inbuf.clear();
            c.in_start = 0;
            let used = self.parse_loop(idx, data);
            if used < data.len() {
                self.keep_tail(idx, &data[used..]);
            }
        }
        self.after_process(idx);
        if !more {
            self.arm_recv(idx);
        }
    }

    /// Queues the connection's output, and stops reading from a client
    /// whose unsent replies are over the cap until it reads them. Called
    /// after parsing and after a reply from another shard arrives.
    fn after_process(&mut self, idx: u32) {
        let Some(c) = self.conns[idx as usize].as_mut() else {
            return;
        };
        if c.send_ready() && !c.queued_for_send {
            c.queued_for_send = true;
            self.to_send.push(idx);
        }
        if c.closing {
            self.try_close(idx);
        } else if c.over_cap() && !c.paused {
            c.paused = true;
            if c.recv_inflight {
                let e = opcode::AsyncCancel::new(ud(RECV, c.gen, idx))
                    .build()
                    .user_data(ud(CANCEL, 0, idx));
                self.push_sqe(e);
            }
        }
    }

    /// The peer is gone or failed: nothing more can be delivered.
    fn abandon(&mut self, idx: u32) {
        let Some(c) = self.conns[idx as usize].as_mut() else {
            return;
        };
        c.closing = true;
        c.out.clear();
        c.pending.clear();
        c.out_refs.release(&mut self.shard.store);
        if !c.send_inflight {
            // A send in flight still reads them; its completion lets go.
            c.sending_refs.release(&mut self.shard.store);
        }
        self.try_close(idx);
    }

    fn on_send(&mut self, idx: u32, gen: u32, res: i32) {
        let Some(c) = self.conn_mut(idx, gen) else {
            return;
        };
        c.send_inflight = false;
        if res < 0 {
            return self.abandon(idx);
        }
        c.send_off += res as usize;
        let more = c.send_off < c.sending_len();
        self.shard.c.bytes_written += res as u64;
        let Some(c) = self.conns[idx as usize].as_mut() else {
            return;
        };
        if more {
            self.submit_send(idx);
            return;
        }
        c.sending.clear();
        c.sending_refs.release(&mut self.shard.store);
        c.send_off = 0;
        self.maybe_resume(idx);
        self.after_process(idx);
    }

    /// A paused client that caught up: parse what waited, then read again.
    fn maybe_resume(&mut self, idx: u32) {
        let Some(c) = self.conns[idx as usize].as_mut() else {
            return;
        };
        if c.paused && !c.over_cap() && !c.closing {
            c.paused = false;
            self.process(idx);
            // Parsing may have filled the cap again, pausing once more.
            self.after_process(idx);
            self.arm_recv(idx);
        }
    }

    fn issue_sends(&mut self) {
        let list = std::mem::take(&mut self.to_send);
        for &idx in &list {
            let Some(c) = self.conns[idx as usize].as_mut() else {
                continue;
            };
            c.queued_for_send = false;
            if c.send_inflight || !c.send_ready() {
                continue;
            }
            std::mem::swap(&mut c.out, &mut c.sending);
            std::mem::swap(&mut c.out_refs, &mut c.sending_refs);
            c.send_off = 0;
            self.submit_send(idx);
        }
        self.to_send = list;
        self.to_send.clear();
    }

    fn submit_send(&mut self, idx: u32) {
        let Some(c) = self.conns[idx as usize].as_mut() else {
            return;
        };
        c.send_inflight = true;
        let user = ud(SEND, c.gen, idx);
        let e = if c.sending_refs.is_empty() {
            let rest = &c.sending[c.send_off..];
            opcode::Send::new(types::Fd(c.fd), rest.as_ptr(), rest.len() as u32)
                .flags(libc::MSG_NOSIGNAL)
                .build()
        } else {
            // Large values straight from their pinned segments.
            let msg = c.msg.build(&c.sending, &c.sending_refs, c.send_off);
            opcode::SendMsg::new(types::Fd(c.fd), msg)
                .flags(libc::MSG_NOSIGNAL as u32)
                .build()
        };
        self.push_sqe(e.user_data(user));
    }

    /// Closes a connection that is marked closing once its output is out
    /// and no operation on it is in flight.
    fn try_close(&mut self, idx: u32) {
        let Some(c) = self.conns[idx as usize].as_mut() else {
            return;
        };
        if !c.closing {
            return;
        }
        if !c.out.is_empty() && !c.send_inflight && !c.queued_for_send {
            c.queued_for_send = true;
            self.to_send.push(idx);
            return;
        }
        if !c.drained() {
            return;
        }
        if c.recv_inflight {
            // SAFETY: shutting down our socket makes the pending recv complete.
            unsafe { libc::shutdown(c.fd, libc::SHUT_RDWR) };
            return;
        }
        // SAFETY: no operation references the fd or buffers any more.
        unsafe { libc::close(c.fd) };
        self.conns[idx as usize] = None;
        self.free.push(idx);
        self.shard.c.curr_connections = self.shard.c.curr_connections.saturating_sub(1);
        self.shared.conns.fetch_sub(1, SeqCst);
    }

    /// Keeps the incomplete start of a request. Room for the rest the
    /// parser said is missing is made once (from the worker's spare large
    /// buffer when it fits), so a large value is not copied again at each
    /// doubling of the buffer.
    fn keep_tail(&mut self, idx: u32, tail: &[u8]) {
        let Some(c) = self.conns[idx as usize].as_mut() else {
            return;
        };
        let want = tail.len() + c.need;
        c.need = 0;
        if want > 4 * READ_CHUNK && c.inbuf.is_empty() && self.spare_in.capacity() >= want {
            c.inbuf = std::mem::take(&mut self.spare_in);
            c.in_start = 0;
        }
        c.inbuf.reserve(want);
        c.inbuf.extend_from_slice(tail);
    }

    /// Parses and executes what is complete in a connection's own buffer.
    fn process(&mut self, idx: u32) {
        let Some(c) = self.conns[idx as usize].as_mut() else {
            return;
        };
        let mut inbuf = std::mem::take(&mut c.inbuf);
        let mut pos = c.in_start;
        pos += self.parse_loop(idx, &inbuf[pos..]);
        if let Some(c) = self.conns[idx as usize].as_mut() {
            if pos == inbuf.len() {
                inbuf.clear();
                pos = 0;
                if inbuf.capacity() > 4 * READ_CHUNK {
                    // Large requests are done: keep the biggest buffer for
                    // the next one on this worker, not on this connection.
                    let big = std::mem::take(&mut inbuf);
                    if big.capacity() > self.spare_in.capacity() {
                        self.spare_in = big;
                    }
                }
            } else if pos > 0 && pos > inbuf.len() / 2 {
                inbuf.drain(..pos);
                pos = 0;
            }
            c.inbuf = inbuf;
            c.in_start = pos;
        }
    }

    /// Parses and executes whole requests from `inbuf`; returns the bytes
    /// used. Stops at an incomplete request, a closing connection, or when
    /// the client has too many unsent replies.
    fn parse_loop(&mut self, idx: u32, inbuf: &[u8]) -> usize {
        let mut pos = 0;
        let item_max = self.shared.settings.item_max;
        while let Some(c) = self.conns[idx as usize].as_mut() {
            if c.closing || c.over_cap() {
                break;
            }
            if c.skip > 0 {
                let n = c.skip.min(inbuf.len() - pos);
                c.skip -= n;
                pos += n;
                if c.skip > 0 {
                    break;
                }
            }
            if pos >= inbuf.len() {
                break;
            }
            let proto = *c.proto.get_or_insert(Proto::detect(inbuf[pos]));
            let buf = &inbuf[pos..];
            let used = match proto {
                Proto::Text => self.step(idx, text::parse(buf, item_max), buf, |w, req, raw| {
                    w.dispatch_text(idx, &req, raw)
                }),
                Proto::Binary => {
                    self.step(idx, binary::parse(buf, item_max), buf, |w, req, raw| {
                        w.dispatch_binary(idx, req, raw)
                    })
                }
            };
            let Some(used) = used else { break };
            pos += used;
        }
        pos
    }

    /// Acts on one parse result, for either protocol: dispatches a whole
    /// request (arranging to drop a refused data block), or says to stop
    /// (more bytes needed, or the connection must close). Returns the bytes
    /// used.
    fn step<T>(
        &mut self,
        idx: u32,
        parsed: Parse<T>,
        buf: &[u8],
        dispatch: impl FnOnce(&mut Self, T, &[u8]),
    ) -> Option<usize> {
        match parsed {
            Parse::Done(req, used) => {
                dispatch(self, req, &buf[..used]);
                Some(used)
            }
            Parse::Skip(req, used, skip) => {
                dispatch(self, req, &buf[..used]);
                if let Some(c) = self.conns[idx as usize].as_mut() {
                    c.skip = skip;
                }
                Some(used)
            }
            Parse::NeedMore(n) => {
                if let Some(c) = self.conns[idx as usize].as_mut() {
                    c.need = n;
                }
                None
            }
            Parse::Close => {
                self.conn(idx).closing = true;
                None
            }
        }
    }

    fn conn(&mut self, idx: u32) -> &mut Conn {
        self.conns[idx as usize].as_mut().expect("live connection")
    }

    /// Sends a job to the owning worker, keeping the reply's place.
    fn forward(&mut self, idx: u32, to: usize, job: Job) {
        let c = self.conn(idx);
        let seq = c.wait_slot();
        let conn = token(c.gen, idx);
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
    fn forward_raw(&mut self, idx: u32, to: usize, binary: bool, raw: &[u8]) {
        let bytes = raw.to_vec();
        self.forward(idx, to, Job::Raw { binary, bytes });
    }

    fn send_msg(&mut self, to: usize, m: Msg) {
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

    fn flush_backlog(&mut self) {
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

    fn wake(&mut self, to: usize) {
        let mesh = &self.shared.mesh;
        if mesh.sleeping[to].swap(false, SeqCst) {
            let fd = mesh.ring_fds[to].load(SeqCst) as RawFd;
            let e = opcode::MsgRingData::new(types::Fd(fd), 0, ud(WAKE, 0, 0), None)
                .build()
                .user_data(ud(WAKE, 0, 1));
            // Goes out with this turn's submit, which always follows.
            self.push_sqe(e);
        }
    }

    fn drain_inbox(&mut self) {
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
                        let (gen, idx) = ((conn >> 32) as u32, conn as u32);
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

    fn run_job(&mut self, job: Job, out: &mut Vec<u8>) {
        let item_max = self.shared.settings.item_max;
        match job {
            Job::GetKey { key, cas, touch } => {
                exec_text::get_key(&mut self.shard, &key, cas, touch, out)
            }
            Job::Raw {
                binary: false,
                bytes,
            } => match text::parse(&bytes, item_max) {
                Parse::Done(req, _) | Parse::Skip(req, _, _) => {
                    exec_text::exec(&mut self.shard, &req, out)
                }
                _ => {}
            },
            Job::Raw {
                binary: true,
                bytes,
            } => match binary::parse(&bytes, item_max) {
                Parse::Done(Ok(r), _) | Parse::Skip(Ok(r), _, _) => {
                    exec_binary::exec(&mut self.shard, &r, out)
                }
                _ => {}
            },
        }
    }

    /// Sends a whole request, as received, to every other worker to run
    /// there too (flush_all, cache_memlimit); nothing comes back.
    fn broadcast(&mut self, binary: bool, raw: &[u8]) {
        for to in 0..self.shared.mesh.n {
            if to != self.id {
                let m = Msg::Job {
                    from: self.id,
                    conn: 0,
                    seq: NO_REPLY,
                    job: Job::Raw {
                        binary,
                        bytes: raw.to_vec(),
                    },
                };
                self.send_msg(to, m);
            }
        }
    }

    fn totals(&self) -> Counters {
        let mut t = Counters::default();
        for (i, p) in self.shared.published.iter().enumerate() {
            if i == self.id {
                t.add(&self.shard.counters());
            } else {
                t.add(&p.snapshot());
            }
        }
        t
    }

    fn dispatch_text(&mut self, idx: u32, req: &Request, raw: &[u8]) {
        let n = self.shared.mesh.n;
        let key: Option<&[u8]> = match *req {
            Request::Get { keys, cas, touch } => {
                let mut it = text::tokens(keys);
                let first = it.next();
                let single = it.next().is_none();
                // A get with an over-long key is answered with the error alone.
                if n == 1
                    || single && first.is_some_and(|k| owner(&self.route, n, k) == self.id)
                    || text::tokens(keys).any(|k| k.len() > KEY_MAX)
                {
                    return self.exec_local(idx, |sh, out| exec_text::exec(sh, req, out));
                }
                for k in text::tokens(keys) {
                    let to = owner(&self.route, n, k);
                    if to == self.id {
                        self.exec_local(idx, |sh, out| exec_text::get_key(sh, k, cas, touch, out));
                    } else {
                        let job = Job::GetKey {
                            key: k.to_vec(),
                            cas,
                            touch,
                        };
                        self.forward(idx, to, job);
                    }
                }
                self.conn(idx).reply_buf().extend_from_slice(b"END\r\n");
                return;
            }
            Request::Store(s) => Some(s.key),
            Request::Delete { key, .. }
            | Request::Delta { key, .. }
            | Request::Touch { key, .. } => Some(key),
            Request::TooLarge { key, .. } => Some(key),
            Request::Meta(m) if m.cmd != MetaCmd::Noop => {
                let mut kb = [0u8; KEY_MAX + 6];
                if let Some(k) = meta_key(&m, &mut kb) {
                    let to = owner(&self.route, n, k);
                    if to != self.id {
                        return self.forward_raw(idx, to, false, raw);
                    }
                }
                None
            }
            Request::Flush { .. } => {
                if !self.shared.settings.flush_enabled {
                    push_line(
                        self.conn(idx).reply_buf(),
                        "CLIENT_ERROR flush_all not allowed",
                    );
                    return;
                }
                self.broadcast(false, raw);
                None
            }
            Request::CacheMemlimit { .. } => {
                // Every shard takes its share; they all check the same
                // bounds, so the local answer stands for all.
                self.broadcast(false, raw);
                None
            }
            Request::Stats { arg } => {
                self.stats_text(idx, arg);
                return;
            }
            Request::Quit => {
                self.conn(idx).closing = true;
                return;
            }
            Request::Shutdown if self.shared.settings.shutdown_enabled => {
                // As memcached with -A: no reply; every worker winds down.
                self.shared.stop.store(true, SeqCst);
                self.conn(idx).closing = true;
                return;
            }
            _ => None,
        };
        if let Some(k) = key {
            let to = owner(&self.route, n, k);
            if to != self.id && k.len() <= KEY_MAX {
                return self.forward_raw(idx, to, false, raw);
            }
        }
        self.exec_local(idx, |sh, out| exec_text::exec(sh, req, out));
    }

    /// Runs a request on this shard into the connection's replies.
    /// When they go straight to the output (nothing waits on another
    /// shard before them), large values may be sent by reference.
    fn exec_local(&mut self, idx: u32, f: impl FnOnce(&mut Shard, &mut Vec<u8>)) {
        let Some(c) = self.conns[idx as usize].as_mut() else {
            return;
        };
        self.shard.zc_on = c.pending.is_empty();
        f(&mut self.shard, c.reply_buf());
        self.shard.zc_on = false;
        if !self.shard.zc_refs.is_empty() {
            c.out_refs.append(&mut self.shard.zc_refs);
        }
    }

    fn stats_text(&mut self, idx: u32, arg: &[u8]) {
        let arg = text::tokens(arg).next().unwrap_or(b"");
        let rows = match arg {
            b"" => stats::general(&self.shared, &self.totals()),
            b"settings" => stats::settings(&self.shared),
            b"items" | b"slabs" | b"sizes" | b"conns" => Vec::new(),
            b"reset" => {
                let keep = (
                    self.shard.c.curr_connections,
                    self.shard.c.total_connections,
                );
                self.shard.c = Counters::default();
                (
                    self.shard.c.curr_connections,
                    self.shard.c.total_connections,
                ) = keep;
                push_line(self.conn(idx).reply_buf(), "RESET");
                return;
            }
            _ => {
                push_line(self.conn(idx).reply_buf(), "ERROR");
                return;
            }
        };
        let out = self.conn(idx).reply_buf();
        for (k, v) in rows {
            out.extend_from_slice(b"STAT ");
            out.extend_from_slice(k.as_bytes());
            out.push(b' ');
            out.extend_from_slice(v.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"END\r\n");
    }

    fn dispatch_binary(
        &mut self,
        idx: u32,
        r: Result<binary::Request, binary::Invalid>,
        raw: &[u8],
    ) {
        let r = match r {
            Ok(r) => r,
            Err(binary::Invalid::Args(h)) => {
                exec_binary::error(
                    self.conn(idx).reply_buf(),
                    h.opcode,
                    status::EINVAL,
                    h.opaque,
                );
                self.conn(idx).closing = true;
                return;
            }
            Err(binary::Invalid::Unknown(h)) => {
                exec_binary::error(
                    self.conn(idx).reply_buf(),
                    h.opcode,
                    status::UNKNOWN_COMMAND,
                    h.opaque,
                );
                return;
            }
        };
        let h = r.h;
        match h.opcode {
            op::QUIT | op::QUITQ => {
                if h.opcode == op::QUIT {
                    binary::write_response(
                        self.conn(idx).reply_buf(),
                        h.opcode,
                        0,
                        h.opaque,
                        0,
                        &[],
                        &[],
                        &[],
                    );
                }
                self.conn(idx).closing = true;
                return;
            }
            op::STAT => {
                let rows = stats::general(&self.shared, &self.totals());
                let out = self.conn(idx).reply_buf();
                for (k, v) in rows {
                    binary::write_response(
                        out,
                        op::STAT,
                        0,
                        h.opaque,
                        0,
                        &[],
                        k.as_bytes(),
                        v.as_bytes(),
                    );
                }
                binary::write_response(out, op::STAT, 0, h.opaque, 0, &[], &[], &[]);
                return;
            }
            op::FLUSH | op::FLUSHQ => self.broadcast(true, raw),
            _ => {}
        }
        let n = self.shared.mesh.n;
        if !r.key.is_empty() {
            let to = owner(&self.route, n, r.key);
            if to != self.id {
                return self.forward_raw(idx, to, true, raw);
            }
        }
        self.exec_local(idx, |sh, out| exec_binary::exec(sh, &r, out));
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
