//! Sending: one send per connection per turn with everything it has ready
//! (a sendmsg when large values go by reference), and backpressure: a
//! client with too many unsent replies is not read until it catches up.
use super::user_data::{ConnId, Kind, UserData};
use super::worker::Worker;
use io_uring::{opcode, types};
use std::time::Instant;

impl Worker {
    /// Queues the connection's output, and stops reading from a client
    /// whose unsent replies are over the cap until it reads them. Called
    /// after parsing and after a reply from another shard arrives.
    pub(super) fn after_process(&mut self, idx: u32) {
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
                let e = opcode::AsyncCancel::new(
                    UserData::new(Kind::Recv, ConnId { idx, gen: c.gen }).0,
                )
                .build()
                .user_data(UserData::plain(Kind::Cancel, idx).0);
                self.push_sqe(e);
            }
        }
    }

    pub(super) fn on_send(&mut self, idx: u32, gen: u32, res: i32) {
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
    pub(super) fn maybe_resume(&mut self, idx: u32) {
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

    pub(super) fn issue_sends(&mut self) {
        let list = std::mem::take(&mut self.to_send);
        let mut now: Option<Instant> = None;
        for &idx in &list {
            let Some(c) = self.conns[idx as usize].as_mut() else {
                continue;
            };
            c.queued_for_send = false;
            if c.send_inflight || !c.send_ready() {
                continue;
            }
            // Every request answered so far is handed to the kernel now.
            if c.pending.is_empty() && !c.lat.is_empty() {
                if let Some(h) = self.shared.telemetry.latency(self.id) {
                    c.lat.sent(h, *now.get_or_insert_with(Instant::now));
                }
            }
            std::mem::swap(&mut c.out, &mut c.sending);
            std::mem::swap(&mut c.out_refs, &mut c.sending_refs);
            c.send_off = 0;
            self.submit_send(idx);
        }
        self.to_send = list;
        self.to_send.clear();
    }

    pub(super) fn submit_send(&mut self, idx: u32) {
        let Some(c) = self.conns[idx as usize].as_mut() else {
            return;
        };
        c.send_inflight = true;
        let user = UserData::new(Kind::Send, ConnId { idx, gen: c.gen }).0;
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
}
