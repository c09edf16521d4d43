//! Zero-copy replies: a large value leaves straight from segment memory.
//! The execution layer records where values go (`ValueRef`); the engine's
//! `zerocopy::MsgBuf` turns them into iovecs for the send.
//!
//! A get for a value of `ZC_MIN` bytes or more does not copy the value
//! into the connection's output. It pins the value's segment and records a
//! `ValueRef`: "the value's bytes go here, at byte `at` of the output". The
//! send then becomes a `sendmsg` whose iovecs alternate between the output
//! buffer and segment memory, and the pin is dropped when the kernel has
//! taken every byte. Pinned segments are never reused (see
//! `store::segment::Segments::release`), so the bytes sent are the bytes
//! that were stored under that key when the get ran, whatever happens to
//! the item meanwhile.
//!
//! ```text
//!   out:   | VALUE k 0 100000\r\n | \r\nEND\r\n |
//!                                ^ at
//!   refs:  [ValueRef { at, ptr ─────────► segment memory, len: 100000 }]
//!   iovecs: out[..at], value, out[at..]
//! ```

use crate::store::Store;

/// Values at least this large are sent by reference. Measured here (c50 or
/// c20, 1:9, server CPU per request): 16 KiB values cost the same either
/// way; 100 KB values 0.80x by reference. Smaller values are copied: the
/// copy is cheap, and it keeps segments free of pins.
pub const ZC_MIN: usize = 32 * 1024;

/// Values at least this large go by reference in a reply made for another
/// worker's connection (a cross-shard hop). The requesting worker bounds
/// what it holds per connection (`engine::conn::CONN_CAP`) by the replies
/// it has outstanding times this size: a copied value costs heap on both
/// workers, a referenced one a pin and an iovec.
pub const HOP_ZC_MIN: usize = 4 * 1024;

/// A large value to be sent from segment memory, spliced into a reply.
#[derive(Clone, Copy, Debug)]
pub struct ValueRef {
    /// Where in the output buffer the value's bytes belong.
    pub at: usize,
    /// The value's first byte, in a pinned segment.
    pub ptr: *const u8,
    /// The value's length in bytes.
    pub len: usize,
    /// The pinned segment holding them.
    pub seg: u32,
    /// The shard (worker) whose store holds the segment: only it may unpin.
    pub shard: u32,
}

// SAFETY: `ptr` points into a pinned segment of the store of worker
// `shard`; the bytes are not written while the pin lasts (segments are
// append-only and a pinned one is never reused), the mapping outlives every
// worker's sends (workers stop together, see engine::worker), and only the
// owner touches the pin count (others send it an unpin message).
unsafe impl Send for ValueRef {}

/// The value references of one output buffer, in order of `at`.
#[derive(Default)]
pub struct Refs {
    /// The references, in order of `at`.
    pub list: Vec<ValueRef>,
    /// Their total length.
    pub bytes: usize,
}

impl Refs {
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Adds one, after every other.
    pub fn push(&mut self, r: ValueRef) {
        self.bytes += r.len;
        self.list.push(r);
    }

    /// Moves all of `other`'s to the end of these.
    pub fn append(&mut self, other: &mut Refs) {
        self.bytes += std::mem::take(&mut other.bytes);
        self.list.append(&mut other.list);
    }

    /// Drops every pin: the bytes are sent, or will never be. Every
    /// reference must be `store`'s (the engine releases mixed lists
    /// itself, sending other shards theirs).
    pub fn release(&mut self, store: &mut Store) {
        for r in self.list.drain(..) {
            store.unpin(r.seg);
        }
        self.bytes = 0;
    }

    /// Moves all of `other`'s to the end of these, as if `other`'s output
    /// buffer were appended at byte `base` of this one's.
    pub fn append_at(&mut self, other: &mut Refs, base: usize) {
        for r in &mut other.list {
            r.at += base;
        }
        self.append(other);
    }
}
