//! One client connection's buffers and its in-order reply queue.

use super::zerocopy::MsgBuf;
use crate::exec::value_ref::Refs;
use crate::protocol::Proto;
use std::collections::VecDeque;
use std::os::fd::RawFd;

/// Input buffers start this large and grow only for large requests.
pub const READ_CHUNK: usize = 16 * 1024;
/// Stop reading from a client whose unsent replies exceed this.
pub const OUT_CAP: usize = 4 << 20;
/// ... or that has this many replies outstanding on other shards.
pub const MAX_WAITING: usize = 64;
/// Ready output held back while cross-shard replies are due, at most.
pub const HOLD_MAX: usize = 64 * 1024;

/// A reply that must wait: either for another shard, or behind one that does.
pub enum Slot {
    Waiting(u64),
    Ready(Vec<u8>),
}

pub struct Conn {
    pub fd: RawFd,
    pub gen: u32,
    pub proto: Option<Proto>,
    pub inbuf: Vec<u8>,
    pub in_start: usize,
    /// Replies ready to send, in order.
    pub out: Vec<u8>,
    /// Large values spliced into `out` by reference (zerocopy.rs).
    pub out_refs: Refs,
    /// The buffer of the send in flight, and its references.
    pub sending: Vec<u8>,
    pub sending_refs: Refs,
    pub msg: MsgBuf,
    pub send_off: usize,
    pub send_inflight: bool,
    pub recv_inflight: bool,
    /// Replies behind a cross-shard request, in request order.
    pub pending: VecDeque<Slot>,
    pub next_seq: u64,
    /// Slots still waiting for another shard.
    pub waiting: usize,
    /// Bytes the parser said are still missing from the request at hand.
    pub need: usize,
    /// Bytes of a refused data block still to drop.
    pub skip: usize,
    /// Close once the output is flushed (quit, protocol error, peer gone).
    pub closing: bool,
    pub queued_for_send: bool,
    /// Not reading: the client has too many unsent replies.
    pub paused: bool,
    /// Store-clock second of the last bytes received.
    pub last_active: u32,
    /// Requests parsed and not yet answered, for the latency histograms.
    pub lat: crate::admin::histogram::Pending,
}

impl Conn {
    pub fn new(fd: RawFd, gen: u32) -> Conn {
        Conn {
            fd,
            gen,
            proto: None,
            inbuf: Vec::new(),
            in_start: 0,
            out: Vec::new(),
            out_refs: Refs::default(),
            sending: Vec::new(),
            sending_refs: Refs::default(),
            msg: MsgBuf::default(),
            send_off: 0,
            send_inflight: false,
            recv_inflight: false,
            pending: VecDeque::new(),
            next_seq: 0,
            waiting: 0,
            need: 0,
            skip: 0,
            closing: false,
            queued_for_send: false,
            paused: false,
            last_active: 0,
            lat: Default::default(),
        }
    }

    /// Where a locally produced reply goes: straight to `out` unless
    /// earlier replies are still waiting on another shard.
    pub fn reply_buf(&mut self) -> &mut Vec<u8> {
        if self.pending.is_empty() {
            &mut self.out
        } else {
            if !matches!(self.pending.back(), Some(Slot::Ready(_))) {
                self.pending.push_back(Slot::Ready(Vec::new()));
            }
            match self.pending.back_mut() {
                Some(Slot::Ready(v)) => v,
                _ => unreachable!(),
            }
        }
    }

    /// Reserves a slot for a reply another shard will produce.
    pub fn wait_slot(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.waiting += 1;
        self.pending.push_back(Slot::Waiting(seq));
        seq
    }

    /// Fills a waiting slot and moves every reply now in order to `out`.
    pub fn fill(&mut self, seq: u64, bytes: Vec<u8>) {
        for s in self.pending.iter_mut() {
            if matches!(s, Slot::Waiting(q) if *q == seq) {
                self.waiting -= 1;
                *s = Slot::Ready(bytes);
                break;
            }
        }
        while let Some(Slot::Ready(_)) = self.pending.front() {
            if let Some(Slot::Ready(v)) = self.pending.pop_front() {
                self.out.extend_from_slice(&v);
            }
        }
    }

    /// Whether `out` should go now: yes unless replies for the same batch
    /// are still due from another shard (then one send carries them all),
    /// within a bound.
    pub fn send_ready(&self) -> bool {
        !self.out.is_empty() && (self.waiting == 0 || self.out.len() >= HOLD_MAX || self.closing)
    }

    /// Whether newly received bytes can be parsed where the kernel put
    /// them: nothing unparsed is queued before them and reading is on.
    pub fn parses_in_place(&self) -> bool {
        !self.paused && self.inbuf.len() <= self.in_start
    }

    pub fn unsent(&self) -> usize {
        self.out.len() + self.out_refs.bytes + self.sending_len() - self.send_off
    }

    /// Bytes of the send in flight, referenced values included.
    pub fn sending_len(&self) -> usize {
        self.sending.len() + self.sending_refs.bytes
    }

    /// Whether to stop reading: too many reply bytes not yet sent (ready
    /// ones included), or too many replies outstanding on other shards.
    pub fn over_cap(&self) -> bool {
        if self.pending.is_empty() {
            return self.unsent() >= OUT_CAP;
        }
        let held: usize = self
            .pending
            .iter()
            .map(|s| match s {
                Slot::Ready(v) => v.len(),
                Slot::Waiting(_) => 0,
            })
            .sum();
        self.waiting >= MAX_WAITING || self.unsent() + held >= OUT_CAP
    }

    /// Whether nothing is left to send or waiting.
    pub fn drained(&self) -> bool {
        self.out.is_empty() && !self.send_inflight && self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_leave_in_request_order() {
        let mut c = Conn::new(-1, 0);
        c.reply_buf().extend_from_slice(b"a");
        let s1 = c.wait_slot();
        c.reply_buf().extend_from_slice(b"c");
        let s2 = c.wait_slot();
        c.reply_buf().extend_from_slice(b"e");
        c.fill(s2, b"d".to_vec());
        assert_eq!(c.out, b"a");
        c.fill(s1, b"b".to_vec());
        assert_eq!(c.out, b"abcde");
        assert_eq!(c.waiting, 0);
        assert!(c.pending.is_empty());
    }
}
