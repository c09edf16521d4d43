//! One client connection's buffers, its in-order reply queue, and the one
//! memory cap that covers them.
//!
//! ```text
//!  replies, in request order:
//!
//!  sending ◄── out ◄── pending: [Waiting | Ready | Waiting | ...] ◄── tail
//!  (kernel)   (ready)   slot seq = base_seq + index                (local replies
//!                                                                   behind them)
//! ```
//!
//! A reply another worker will produce gets a `Waiting` slot; local replies
//! behind it collect in `tail`, which becomes a `Ready` slot when the next
//! slot is reserved. Every slot has a sequence number, so a reply finds its
//! slot by subtraction, not by search.

use super::zerocopy::MsgBuf;
use crate::exec::value_ref::{Refs, ValueRef, HOP_ZC_MIN};
use crate::protocol::Proto;
use std::collections::VecDeque;
use std::os::fd::RawFd;

/// Input buffers start this large and grow only for large requests.
pub const READ_CHUNK: usize = 16 * 1024;
/// The per-connection memory cap, in bytes: unparsed input, replies not
/// yet sent (copied or by reference, the whole buffer of a send in flight)
/// and replies from other shards waiting for their turn. A connection at
/// the cap is neither executed nor read until it drains. A single reply
/// may overshoot it by one value (at most the item size), and replies
/// still due from other shards by `MAX_WAITING` × `HOP_ZC_MIN` (they carry
/// larger values by reference). Measured (tests/memory_cap.rs): a client
/// that asks for 5 MB of 1 KB values and reads nothing costs about 0.55
/// MB at 256 KiB (2.3 MB at 1 MiB); a big multi-get costs the same CPU.
pub const CONN_CAP: usize = 256 << 10;
/// The cap while the worker's budget for stalled connections is spent
/// (engine/incoming.rs): what each further client that reads nothing
/// may make the worker hold. memcached holds references, not copies, for
/// such a client; 300 clients asking for 1 KB values and reading nothing
/// held 96 MiB here at 256 KiB each (memcached: none).
pub const STALLED_CAP: usize = 16 << 10;
/// Replies a connection may have outstanding on other shards.
pub const MAX_WAITING: usize = CONN_CAP / HOP_ZC_MIN;
/// Ready output held back while cross-shard replies are due, at most.
pub const HOLD_MAX: usize = 64 * 1024;

/// A reply that must wait: either for another shard, or behind one that does.
pub enum Slot {
    /// Another worker is producing it.
    Waiting,
    /// Produced, with the values it references; waits for earlier ones.
    Ready(Vec<u8>, Refs),
}

/// A text multi-key get suspended part-way (at the cap, or after its share
/// of a loop turn). It stays at the front of the connection's unparsed
/// input; offsets count from the request's first byte.
#[derive(Clone, Copy, Debug)]
pub struct GetCursor {
    /// Where the next key (or the spaces before it) starts.
    pub next: usize,
    /// Where the key list ends.
    pub end: usize,
    /// The request's length, line end included.
    pub used: usize,
    /// gets/gats.
    pub cas: bool,
    /// gat/gats exptime.
    pub touch: Option<i64>,
}

pub struct Conn {
    pub fd: RawFd,
    pub gen: u32,
    pub proto: Option<Proto>,
    pub inbuf: Vec<u8>,
    pub in_start: usize,
    /// Bytes of the request at `in_start` already searched for a line end
    /// (a long line arriving in pieces is searched once, not per piece).
    pub scanned: usize,
    /// The last receive filled its buffer: more bytes were waiting.
    pub read_full: bool,
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
    /// Replies behind a cross-shard request, in request order; the front
    /// one has sequence number `base_seq`.
    pub pending: VecDeque<Slot>,
    pub base_seq: u64,
    /// Slots still waiting for another shard.
    pub waiting: usize,
    /// A `stats` is parsed and waits, unrun, until `waiting` is 0: it must
    /// count what this connection's requests before it did on other shards
    /// (a pipelined `stats` after `stats reset`, or after a forwarded
    /// `set`), as memcached's one thread per connection does.
    pub stats_wait: bool,
    /// Read-your-writes for foreign reads (engine/foreign_read.rs): one
    /// past the slot of this connection's last forwarded request that may
    /// change any key (flush_all, cache_memlimit, a gat batch): until
    /// that reply is in (`base_seq` has passed it), every read goes to its
    /// owner, in order behind it.
    pub write_fence: u64,
    /// The same for single-key requests forwarded: (key hash, one past
    /// the slot). A read of a key with a write still in flight goes to the
    /// owner behind it; reads of other keys need not wait (memcached
    /// orders a connection's requests, but a read of one key cannot tell
    /// whether a write of another came before it, eviction aside, which a
    /// cache may do at any time). Pruned as replies come in.
    pub key_fences: Vec<(u64, u64)>,
    /// Bytes (copied and referenced) of the `Ready` slots in `pending`.
    pub held: usize,
    /// Local replies behind the last pending slot, and their references.
    pub tail: Vec<u8>,
    pub tail_refs: Refs,
    /// A multi-key get that is not finished.
    pub get: Option<GetCursor>,
    /// A metadump or cachedump in progress (dump.rs): parsing waits.
    pub dump: Option<Box<super::dump::DumpState>>,
    /// Bytes the parser said are still missing from the request at hand.
    pub need: usize,
    /// Bytes of the worker's budget for requests still arriving that the
    /// request at hand holds (incoming.rs); 0 when it holds none.
    pub incoming: usize,
    /// While paused: what it held when it paused, counted in the worker's
    /// stalled bytes (incoming.rs).
    pub stalled: usize,
    /// Bytes of a refused data block still to drop.
    pub skip: usize,
    /// No more input will be read: the peer shut down its side, or the
    /// server is stopping. What was read is still answered.
    pub eof: bool,
    /// Close once the output is flushed (quit, protocol error, input done).
    pub closing: bool,
    pub queued_for_send: bool,
    /// Not reading: the connection is at its memory cap.
    pub paused: bool,
    /// Store-clock second of the last bytes received or sent.
    pub last_active: u32,
    /// Accepted on this worker's own port (`-o worker_ports`): every
    /// request runs on this shard, whatever worker owns its key.
    pub pinned: bool,
    /// Requests parsed and not yet answered, for the latency histograms.
    pub lat: crate::admin::histogram::Pending,
    /// The authenticated user (`-Y`/`-S`); None until the connection
    /// authenticates, and always None without authentication.
    pub user: Option<std::sync::Arc<crate::auth::User>>,
    /// The auth table's generation `user` was found in (auth/mod.rs).
    pub auth_gen: u64,
    /// A SASL PLAIN exchange waits for its SASL_STEP.
    pub sasl_step: bool,
    /// Accepted on a TLS listener (`-Z`): the record layer (tls.rs).
    pub tls: Option<Box<super::tls::TlsConn>>,
    /// Streaming `watch` lines (watch_conn.rs): input is dropped.
    pub watch: Option<std::sync::Arc<super::watch::Watcher>>,
}

impl Conn {
    pub fn new(fd: RawFd, gen: u32) -> Conn {
        Conn {
            fd,
            gen,
            proto: None,
            inbuf: Vec::new(),
            in_start: 0,
            scanned: 0,
            read_full: false,
            out: Vec::new(),
            out_refs: Refs::default(),
            sending: Vec::new(),
            sending_refs: Refs::default(),
            msg: MsgBuf::default(),
            send_off: 0,
            send_inflight: false,
            recv_inflight: false,
            pending: VecDeque::new(),
            base_seq: 0,
            waiting: 0,
            write_fence: 0,
            key_fences: Vec::new(),
            stats_wait: false,
            held: 0,
            tail: Vec::new(),
            tail_refs: Refs::default(),
            get: None,
            dump: None,
            need: 0,
            incoming: 0,
            stalled: 0,
            skip: 0,
            pinned: false,
            eof: false,
            closing: false,
            queued_for_send: false,
            paused: false,
            last_active: 0,
            lat: Default::default(),
            user: None,
            auth_gen: 0,
            sasl_step: false,
            tls: None,
            watch: None,
        }
    }

    /// Where a locally produced reply goes: straight to `out` unless
    /// earlier replies are still waiting on another shard.
    pub fn reply_buf(&mut self) -> &mut Vec<u8> {
        self.reply_target().0
    }

    /// `reply_buf` and the references that go with it.
    pub fn reply_target(&mut self) -> (&mut Vec<u8>, &mut Refs) {
        if self.pending.is_empty() {
            (&mut self.out, &mut self.out_refs)
        } else {
            (&mut self.tail, &mut self.tail_refs)
        }
    }

    /// Read-your-writes (`write_fence`, `key_fences`): whether a read of
    /// the key of hash `hash` may be answered now, ahead of the replies
    /// still waiting, rather than queued behind them on the owner.
    pub fn read_may_pass(&mut self, hash: u64) -> bool {
        if self.write_fence > self.base_seq {
            return false;
        }
        self.prune_key_fences();
        !self.key_fences.iter().any(|&(h, _)| h == hash)
    }

    /// Records a request for the key of hash `hash` forwarded in slot
    /// `seq`: reads of that key wait for its reply.
    pub fn fence_key(&mut self, hash: u64, seq: u64) {
        if self.key_fences.len() >= 64 {
            // Bounded by the replies in flight (`MAX_WAITING`).
            self.prune_key_fences();
        }
        self.key_fences.push((hash, seq + 1));
    }

    /// Drops the fences whose replies are in.
    fn prune_key_fences(&mut self) {
        let base = self.base_seq;
        self.key_fences.retain(|&(_, end)| end > base);
    }

    /// Reserves a slot for a reply another shard will produce; returns its
    /// sequence number.
    pub fn wait_slot(&mut self) -> u64 {
        if !self.tail.is_empty() || !self.tail_refs.is_empty() {
            let (t, r) = (
                std::mem::take(&mut self.tail),
                std::mem::take(&mut self.tail_refs),
            );
            self.held += t.len() + r.bytes;
            self.pending.push_back(Slot::Ready(t, r));
        }
        self.waiting += 1;
        self.pending.push_back(Slot::Waiting);
        self.base_seq + self.pending.len() as u64 - 1
    }

    /// Fills waiting slot `seq` with `bytes`, whose values by reference
    /// are `refs` (their `at` counts from `bytes[0]` plus `base`), and
    /// moves every reply now in order to `out`. Returns false, taking
    /// nothing, if there is no such waiting slot (the connection dropped
    /// its replies); the caller then releases `refs`.
    pub fn fill(&mut self, seq: u64, bytes: &[u8], refs: &[ValueRef], base: usize) -> bool {
        let Some(i) = seq.checked_sub(self.base_seq) else {
            return false;
        };
        let Some(slot) = self.pending.get_mut(i as usize) else {
            return false;
        };
        if !matches!(slot, Slot::Waiting) {
            return false;
        }
        self.waiting -= 1;
        if i == 0 {
            // In order (the usual case): straight to the output.
            self.pending.pop_front();
            self.base_seq += 1;
            push_shifted(&mut self.out, &mut self.out_refs, bytes, refs, base);
        } else {
            let mut r = Refs::default();
            let mut v = Vec::new();
            push_shifted(&mut v, &mut r, bytes, refs, base);
            self.held += v.len() + r.bytes;
            *slot = Slot::Ready(v, r);
        }
        while let Some(Slot::Ready(..)) = self.pending.front() {
            if let Some(Slot::Ready(v, mut r)) = self.pending.pop_front() {
                self.base_seq += 1;
                self.held -= v.len() + r.bytes;
                self.out_refs.append_at(&mut r, self.out.len());
                self.out.extend_from_slice(&v);
            }
        }
        if self.pending.is_empty() && !self.tail.is_empty() {
            self.out_refs.append_at(&mut self.tail_refs, self.out.len());
            self.out.append(&mut self.tail);
        }
        true
    }

    /// Whether `out` should go now: yes unless replies for the same batch
    /// are still due from another shard (then one send carries them all),
    /// within a bound; and yes when TLS records (handshake, alert,
    /// close_notify) are waiting.
    pub fn send_ready(&self) -> bool {
        let ready = self.out.len() + self.out_refs.bytes;
        ready > 0 && (self.waiting == 0 || ready >= HOLD_MAX || self.closing)
            || self.tls_wants_write()
    }

    /// Whether TLS records wait to be sealed and sent (never without TLS).
    pub fn tls_wants_write(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.wants_write())
    }

    /// Whether newly received bytes can be parsed where the kernel put
    /// them: nothing unparsed is queued before them and reading is on.
    pub fn parses_in_place(&self) -> bool {
        !self.paused && self.inbuf.len() <= self.in_start
    }

    /// Bytes of the send in flight, referenced values included.
    pub fn sending_len(&self) -> usize {
        self.sending.len() + self.sending_refs.bytes
    }

    /// Reply bytes held for this connection: ready, being sent (all of
    /// the send's buffer, which is kept until the kernel has taken its
    /// last byte), and produced but waiting for earlier replies.
    /// Bytes of output not yet taken by the kernel (`output_held`).
    pub fn unsent(&self) -> usize {
        self.output_held()
    }

    pub fn output_held(&self) -> usize {
        self.out.len()
            + self.out_refs.bytes
            + self.sending_len()
            + self.held
            + self.tail.len()
            + self.tail_refs.bytes
    }

    /// Every byte the cap covers: replies held, and unparsed input.
    pub fn held_total(&self) -> usize {
        self.output_held() + self.inbuf.len().saturating_sub(self.in_start)
    }

    /// Whether to stop executing this connection's requests: its replies
    /// reached the cap, or it has too many outstanding on other shards.
    pub fn over_cap(&self, cap: usize) -> bool {
        self.output_held() >= cap || self.waiting >= MAX_WAITING || self.stats_waits()
    }

    /// Whether a parsed `stats` still waits for replies from other shards.
    pub fn stats_waits(&self) -> bool {
        self.stats_wait && self.waiting > 0
    }

    /// Whether to stop reading: executing stopped, or input and output
    /// together reached the cap while something can drain. (Input alone is
    /// one request still arriving; it needs its bytes, and is bounded by
    /// the item size, or is a multi-key get line, which memcached does not
    /// bound either.)
    pub fn should_pause(&self, cap: usize) -> bool {
        self.over_cap(cap)
            || (self.held_total() >= cap && (self.output_held() > 0 || self.waiting > 0))
    }

    /// Whether a paused connection may go on: well under the cap again
    /// (half of it for replies outstanding elsewhere, so they are asked
    /// for in batches), and no `stats` waiting.
    pub fn may_resume(&self, cap: usize) -> bool {
        !self.stats_waits()
            && self.output_held() < cap
            && self.waiting <= MAX_WAITING / 2
            && !(self.held_total() >= cap && self.output_held() > 0)
    }

    /// Whether nothing is left to send or waiting.
    pub fn drained(&self) -> bool {
        self.out.is_empty()
            && self.out_refs.is_empty()
            && !self.send_inflight
            && self.pending.is_empty()
            && self.tail.is_empty()
            && !self.tls_wants_write()
    }

    /// Drops every reply not yet handed to the kernel (the peer is gone),
    /// returning the value references to release. Replies still due from
    /// other shards find no slot when they come.
    pub fn drop_replies(&mut self) -> Refs {
        let mut refs = std::mem::take(&mut self.out_refs);
        self.out.clear();
        // Later slots get numbers after every dropped one's.
        self.base_seq += self.pending.len() as u64;
        for s in self.pending.drain(..) {
            if let Slot::Ready(_, mut r) = s {
                refs.append(&mut r);
            }
        }
        self.waiting = 0;
        self.held = 0;
        self.tail.clear();
        refs.append(&mut self.tail_refs);
        self.get = None;
        refs
    }
}

/// Appends `bytes` to `out` and `refs` (positions counted from `base`) to
/// `out_refs`, rebased to where the bytes land.
fn push_shifted(
    out: &mut Vec<u8>,
    out_refs: &mut Refs,
    bytes: &[u8],
    refs: &[ValueRef],
    base: usize,
) {
    let at = out.len();
    for r in refs {
        let mut r = *r;
        r.at = r.at - base + at;
        out_refs.push(r);
    }
    out.extend_from_slice(bytes);
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
        assert!(c.fill(s2, b"d", &[], 0));
        assert_eq!(c.out, b"a");
        assert_eq!(c.held, 2, "c and d wait behind b");
        assert!(c.fill(s1, b"b", &[], 0));
        assert_eq!(c.out, b"abcde");
        assert_eq!(c.waiting, 0);
        assert_eq!(c.held, 0);
        assert!(c.pending.is_empty());
        assert!(!c.fill(s1, b"again", &[], 0), "a slot is filled once");
    }

    #[test]
    fn references_are_rebased_to_where_their_bytes_land() {
        let v = b"VALUE".to_vec();
        let r = |at| ValueRef {
            at,
            ptr: v.as_ptr(),
            len: 5,
            seg: 0,
            shard: 1,
        };
        let mut c = Conn::new(-1, 0);
        c.reply_buf().extend_from_slice(b"0123");
        let s1 = c.wait_slot();
        let s2 = c.wait_slot();
        // A batch reply: two keys' bytes in one buffer, refs counted from it.
        let batch = b"xxAByyCD";
        assert!(c.fill(s2, &batch[4..], &[r(6)], 4));
        assert!(c.fill(s1, &batch[..4], &[r(2)], 0));
        assert_eq!(c.out, b"0123xxAByyCD");
        let ats: Vec<usize> = c.out_refs.list.iter().map(|r| r.at).collect();
        assert_eq!(ats, [6, 10]);
        assert_eq!(c.out_refs.bytes, 10);
    }

    #[test]
    fn dropped_replies_refuse_late_fills() {
        let mut c = Conn::new(-1, 0);
        let s = c.wait_slot();
        c.reply_buf().extend_from_slice(b"later");
        let refs = c.drop_replies();
        assert!(refs.is_empty());
        assert!(!c.fill(s, b"late", &[], 0));
        assert!(c.drained());
        // New slots after the drop still work.
        let s = c.wait_slot();
        assert!(c.fill(s, b"ok", &[], 0));
        assert_eq!(c.out, b"ok");
    }
}
