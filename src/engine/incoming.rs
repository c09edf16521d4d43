//! The budget for requests still arriving: bytes a worker holds for
//! values whose data blocks have not all come.
//!
//! memcached allocates an item as soon as a storage command's line is
//! read and receives the value into it, so values still arriving are
//! part of `-m`: when they fill it, the next store is refused ("SERVER_ERROR
//! out of memory storing object", or "Out of memory during read" for an
//! item it reads in chunks) and its data swallowed. corecache receives a
//! value in the connection's input buffer and copies it into the store
//! once whole, so without a bound the bytes held grew with the number of
//! connections, not with `-m`: 1,000 clients each half-way through a
//! 1 MB set held 1,045 MiB of RSS at `-m 64`, where memcached 1.6.18 held
//! 86 MiB and refused the stores it had no room for (measured 2026-12-05,
//! `tests/incoming.rs` runs the same).
//!
//! So each worker may hold at most its share of `-o incoming_mem_limit`
//! (by default as much as `-m`, so a load memcached serves from its
//! memory is served here too) for requests larger than [`UNCOUNTED`]
//! still arriving. A storage command whose data block would take the
//! worker past it is refused with memcached's reply, before its block is
//! read, and the block dropped as it arrives, as a too-large one is
//! (`protocol::Refusal::NoMemory`). Only storage commands (and binary
//! stores) are counted, and one once counted is never refused later.
//! Other long requests (a multi-key `get` line, which memcached does not
//! bound either) are neither counted nor refused: they must not make
//! other clients' stores fail. A binary request whose shape is wrong for
//! its opcode is refused on its header, as memcached refuses it, and an
//! unknown opcode's body dropped as it arrives (protocol/binary.rs).
//!
//! Replies clients do not read are the other half: a connection stops
//! being read at its cap (`conn::CONN_CAP`, 256 KiB), and once the
//! connections paused on a worker held its share of the same limit when
//! they paused (`stalled_bytes`), the next ones stop at `conn::STALLED_CAP`
//! (16 KiB): 300 clients asking for 1 KB values and reading nothing held
//! 96 MiB at `-m 64` before.

use super::conn::{CONN_CAP, READ_CHUNK, STALLED_CAP};
use super::dispatch::Request;
use super::worker::Worker;
use crate::protocol::meta::base64_decode;
use crate::protocol::{binary, text, Parse, Refusal, KEY_MAX};
use crate::store::classes::memcached_size;

/// Requests up to this many bytes are neither counted nor refused: they
/// fit the buffers a connection keeps anyway. 1,024 connections (`-c`'s
/// default) holding one each hold 64 MiB.
pub const UNCOUNTED: usize = 4 * READ_CHUNK;

/// What a parser makes of a request when told no value fits, for a
/// request the worker has no room to hold.
pub(super) enum Reparse<T> {
    /// A storage command: its refusal, dropping the data block unread
    /// (`Parse::Skip`), marked as a want of memory.
    Refused(Parse<T>),
    /// The head (a binary request's extras and key) is not all here yet:
    /// at least this many more bytes are needed to decide.
    Head(usize),
    /// Anything else: neither counted nor refused.
    Other,
}

/// A worker's share of `-o incoming_mem_limit`, in bytes: never less than
/// one largest request (`-I` and a line), so any item can still arrive
/// on any worker; no limit when the option is 0.
pub(super) fn worker_limit(total: usize, workers: usize, item_max: usize) -> usize {
    if total == 0 {
        return usize::MAX;
    }
    (total / workers.max(1)).max(item_max + 2 * READ_CHUNK)
}

/// A text storage command (`set`..`cas`, `ms`) whose line is in `buf`,
/// as its refusal for want of memory; `scanned` and `more_waiting` as
/// `text::parse_stream` takes them.
pub(super) fn refuse_text<'a>(
    buf: &'a [u8],
    scanned: &mut usize,
    more_waiting: bool,
) -> Reparse<text::Request<'a>> {
    // Told that no value fits, the parser refuses the command as too
    // large, with its key, mode and reply suppression; only why changes.
    match text::parse_stream(buf, 0, scanned, more_waiting) {
        Parse::Skip(text::Request::TooLarge(mut o), used, skip) => {
            // memcached decodes a base64 key before it sizes the item.
            let mut kbuf = [0u8; KEY_MAX + 6];
            let key_len = match o.base64 {
                true => base64_decode(o.key, &mut kbuf).map_or(o.key.len(), |k| k.len()),
                false => o.key.len(),
            };
            // `skip` is the data block: the value and its "\r\n".
            o.refusal = Refusal::no_memory(memcached_size(key_len, skip - 2, o.flags));
            Reparse::Refused(Parse::Skip(text::Request::TooLarge(o), used, skip))
        }
        _ => Reparse::Other,
    }
}

/// A binary storage request whose head is in `buf`, as its refusal for
/// want of memory.
pub(super) fn refuse_binary(buf: &[u8]) -> Reparse<Result<binary::Request<'_>, binary::Invalid>> {
    match binary::parse(buf, 0) {
        Parse::Skip(Ok(mut r), used, skip) if r.refused.is_some() => {
            // `skip` is the value. SET, ADD and REPLACE carry the flags first in their extras;
            // memcached's APPEND and PREPEND allocate with none.
            let flags = r
                .extras
                .get(..4)
                .map_or(0, |f| u32::from_be_bytes(f.try_into().expect("four bytes")));
            r.refused = Some(Refusal::no_memory(memcached_size(r.key.len(), skip, flags)));
            Reparse::Refused(Parse::Skip(Ok(r), used, skip))
        }
        Parse::NeedMore(m) => Reparse::Head(m),
        _ => Reparse::Other,
    }
}

/// Whether a request is a store refused for want of memory: its raw bytes
/// are only its head, which the owner must parse as such (hop_io.rs).
pub(super) fn refused_for_memory(req: &Request) -> bool {
    let refusal = match req {
        Request::Text(text::Request::TooLarge(o)) => Some(o.refusal),
        Request::Binary(Ok(r)) => r.refused,
        _ => None,
    };
    matches!(refusal, Some(Refusal::NoMemory | Refusal::NoMemoryReading))
}

impl Worker {
    /// Counts what a request still arriving will hold (`have` bytes here
    /// and the parser's `NeedMore`), or, if the worker's budget cannot
    /// take it and it is a storage command, returns its refusal instead
    /// (`refuse` parses it again as if no value fitted).
    pub(super) fn admit<T>(
        &mut self,
        idx: u32,
        parsed: Parse<T>,
        have: usize,
        refuse: impl FnOnce() -> Reparse<T>,
    ) -> Parse<T> {
        let Parse::NeedMore(n) = parsed else {
            return parsed;
        };
        let total = have + n;
        if total <= UNCOUNTED {
            return parsed;
        }
        let limit = self.incoming_limit;
        let held = self.shard.c.incoming_bytes as usize;
        let Some(c) = self.conns[idx as usize].as_mut() else {
            return parsed;
        };
        if total <= c.incoming {
            return parsed;
        }
        if c.incoming == 0 {
            // Only what may be refused is counted: a long multi-key get
            // line is held as memcached holds it, and must not make other
            // clients' stores fail (a breaker's 17 MB line refused every
            // large set at -m 16).
            match refuse() {
                Reparse::Refused(r) if held.saturating_add(total) > limit => {
                    self.shard.c.incoming_refused += 1;
                    return r;
                }
                Reparse::Refused(_) => {}
                Reparse::Head(m) if m < n => return Parse::NeedMore(m),
                Reparse::Head(_) | Reparse::Other => return parsed,
            }
        }
        let more = total - c.incoming;
        c.incoming = total;
        self.shard.c.incoming_bytes += more as u64;
        parsed
    }

    /// The cap a connection is held to now: [`CONN_CAP`], or, once the
    /// connections paused on this worker held its share of the limit when
    /// they paused, [`STALLED_CAP`].
    pub(super) fn conn_cap(&self) -> usize {
        if self.shard.c.stalled_bytes as usize >= self.incoming_limit {
            STALLED_CAP
        } else {
            CONN_CAP
        }
    }

    /// The request at hand is whole, or its connection is closing: what
    /// it held goes back to the worker's budget.
    pub(super) fn release_incoming(&mut self, idx: u32) {
        if let Some(c) = self.conns[idx as usize].as_mut() {
            if c.incoming > 0 {
                let n = std::mem::take(&mut c.incoming) as u64;
                self.shard.c.incoming_bytes -= n;
            }
        }
    }

    /// A paused connection goes on, or closes: what it held when it paused
    /// no longer counts as stalled.
    pub(super) fn release_stalled(&mut self, idx: u32) {
        if let Some(c) = self.conns[idx as usize].as_mut() {
            let n = std::mem::take(&mut c.stalled) as u64;
            self.shard.c.stalled_bytes -= n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Refusal;

    #[test]
    fn a_worker_can_always_take_one_largest_item() {
        assert_eq!(worker_limit(64 << 20, 2, 1 << 20), 32 << 20);
        assert_eq!(
            worker_limit(1 << 20, 4, 1 << 20),
            (1 << 20) + 2 * READ_CHUNK
        );
        assert_eq!(worker_limit(0, 2, 1 << 20), usize::MAX);
    }

    #[test]
    fn memcached_refuses_chunked_items_during_the_read() {
        let refusal = |klen, flags, vlen| Refusal::no_memory(memcached_size(klen, vlen, flags));
        assert_eq!(refusal(10, 0, 200_000), Refusal::NoMemory);
        assert_eq!(refusal(10, 0, 1_000_000), Refusal::NoMemoryReading);
        // At the edge: 48 + 8 header and CAS, the key and its NUL, 4
        // bytes for flags that are not 0, then the value and "\r\n".
        let edge = 512 * 1024 - (48 + 8 + 11) - 2;
        assert_eq!(refusal(10, 0, edge), Refusal::NoMemory);
        assert_eq!(refusal(10, 0, edge + 1), Refusal::NoMemoryReading);
        assert_eq!(refusal(10, 7, edge - 4), Refusal::NoMemory);
        assert_eq!(refusal(10, 7, edge - 3), Refusal::NoMemoryReading);
    }
}
