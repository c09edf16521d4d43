//! A provided-buffer ring: receive buffers the kernel picks from when a
//! multishot recv completes, so no buffer is tied to an idle connection and
//! no recv has to be re-armed per message.
//!
//! The kernel takes buffers in ring order, so a ring that offered every
//! buffer would cycle through all of them and keep them all resident
//! (1024 × 8 KiB = 8 MiB a worker, 3 % of `-m 256` and a quarter of the
//! default `-m 64` at `-t 2`, for one client). Only `offer` buffers are
//! in the ring at a time; returned ones wait on a stack and go back most
//! recent first, so the buffers in use are the few, cache-warm, ones the
//! load needs. When the kernel runs out (`ENOBUFS`) the offer doubles,
//! up to every buffer: memory follows the peak number of receives
//! completing in one loop turn, not the pool's size. Once a second, an
//! offer four times what the busiest turn since used is halved (down to
//! the first offer), and the pages of buffers too deep in the stack to be
//! reached are given back to the kernel, so a burst of connections does
//! not leave its buffers resident for good.
//!
//! ```text
//!  ring: entries × 16 bytes, shared with the kernel
//! +----------------+-----------+----------+--------------------+
//! | addr (u64)     | len (u32) | bid (u16)| resv / tail (u16)  |  entry 0's last field is the tail
//! +----------------+-----------+----------+--------------------+
//! ```

use memmap2::{MmapMut, MmapOptions};
use std::sync::atomic::{AtomicU16, Ordering};

const ENTRY: usize = 16;
const TAIL_OFFSET: usize = 14;

pub struct BufRing {
    ring: MmapMut,
    bufs: MmapMut,
    entries: u16,
    buf_size: usize,
    tail: u16,
    pub bgid: u16,
    /// Buffers neither in the ring nor being read, the most recently
    /// returned last (taken first).
    free: Vec<u16>,
    /// Buffers put in the ring and not yet returned by `recycle`: those the
    /// kernel still has, and those in completions not processed yet.
    out: u16,
    /// How many buffers the ring keeps out (see the module's comment).
    offer: u16,
    /// The offer it starts with and never goes below.
    first_offer: u16,
    /// Buffers returned this loop turn, and the most in one turn since the
    /// last `trim`.
    turn_use: u16,
    peak: u16,
    /// The bottom `cold` entries of `free` have had their pages given back.
    cold: usize,
}

/// Buffers a worker's ring offers at first. With deferred task running the
/// kernel completes receives in batches of about 20, each handed back
/// before the next, so the offer rarely has to grow.
pub(super) const FIRST_OFFER: u16 = 128;

impl BufRing {
    pub fn new(
        ring: &io_uring::IoUring,
        entries: u16,
        buf_size: usize,
        bgid: u16,
        first_offer: u16,
    ) -> std::io::Result<BufRing> {
        assert!(entries.is_power_of_two());
        let mem = MmapOptions::new()
            .len(entries as usize * ENTRY)
            .map_anon()?;
        let bufs = MmapOptions::new()
            .len(entries as usize * buf_size)
            .map_anon()?;
        let mut br = BufRing {
            ring: mem,
            bufs,
            entries,
            buf_size,
            tail: 0,
            bgid,
            free: (0..entries).rev().collect(),
            out: 0,
            offer: first_offer.clamp(1, entries),
            first_offer: first_offer.clamp(1, entries),
            turn_use: 0,
            peak: 0,
            cold: 0,
        };
        br.top_up();
        // SAFETY: the ring memory is page aligned, sized for `entries`, and
        // lives as long as the BufRing, which the worker drops after the ring.
        unsafe {
            ring.submitter().register_buf_ring_with_flags(
                br.ring.as_ptr() as u64,
                entries,
                bgid,
                0,
            )?;
        }
        Ok(br)
    }

    fn put(&mut self, bid: u16) {
        let slot = (self.tail & (self.entries - 1)) as usize * ENTRY;
        let addr = self.bufs.as_ptr() as u64 + bid as u64 * self.buf_size as u64;
        let e = &mut self.ring[slot..slot + ENTRY];
        e[0..8].copy_from_slice(&addr.to_ne_bytes());
        e[8..12].copy_from_slice(&(self.buf_size as u32).to_ne_bytes());
        e[12..14].copy_from_slice(&bid.to_ne_bytes());
        self.tail = self.tail.wrapping_add(1);
    }

    fn publish(&mut self) {
        // SAFETY: the tail field is a naturally aligned u16 inside the ring
        // mapping; the kernel reads it, so it is written atomically with
        // release ordering after the entries.
        let tail = unsafe { &*(self.ring.as_mut_ptr().add(TAIL_OFFSET) as *const AtomicU16) };
        tail.store(self.tail, Ordering::Release);
    }

    /// The bytes the kernel put in buffer `bid`.
    pub fn data(&self, bid: u16, len: usize) -> &[u8] {
        let start = bid as usize * self.buf_size;
        &self.bufs[start..start + len.min(self.buf_size)]
    }

    /// Each buffer's size in bytes.
    pub fn buf_size(&self) -> usize {
        self.buf_size
    }

    /// Takes a buffer back from a completion and offers the ring what it
    /// is short of.
    pub fn recycle(&mut self, bid: u16) {
        debug_assert!(self.out > 0 && !self.free.contains(&bid));
        self.out -= 1;
        self.turn_use = self.turn_use.saturating_add(1);
        self.free.push(bid);
        self.top_up();
    }

    /// Ends a loop turn: its returned buffers count towards the peak.
    pub fn turn_end(&mut self) {
        self.peak = self.peak.max(self.turn_use);
        self.turn_use = 0;
    }

    /// Once a second: halves an offer four times the busiest turn's use
    /// since the last call (not below the first offer), and gives back the
    /// pages of free buffers below the top `offer` of the stack. Returns
    /// how many buffers it gave back.
    pub fn trim(&mut self) -> usize {
        if self.peak.saturating_mul(4) < self.offer && self.offer > self.first_offer {
            self.offer = (self.offer / 2).max(self.first_offer);
        }
        self.peak = 0;
        // madvise works on whole pages: a buffer smaller than one would
        // take its neighbours with it.
        if !self.buf_size.is_multiple_of(page_size()) {
            return 0;
        }
        let reach = self.free.len().saturating_sub(self.offer as usize);
        let mut given = 0;
        while self.cold < reach {
            let bid = self.free[self.cold] as usize;
            // SAFETY: the buffer lies inside `bufs`, a private anonymous
            // mapping; it is on the free stack, so neither in the kernel's
            // ring nor being read.
            unsafe {
                crate::store::arena::discard_pages(
                    self.bufs.as_mut_ptr().add(bid * self.buf_size),
                    self.buf_size,
                )
            }
            self.cold += 1;
            given += 1;
        }
        given
    }

    /// The kernel found the ring empty (a receive ended with `ENOBUFS`):
    /// offer twice as many buffers from now on.
    pub fn starved(&mut self) {
        self.offer = self.offer.saturating_mul(2).min(self.entries);
        self.top_up();
    }

    fn top_up(&mut self) {
        let mut put = false;
        while self.out < self.offer {
            let Some(bid) = self.free.pop() else { break };
            self.cold = self.cold.min(self.free.len());
            self.put(bid);
            self.out += 1;
            put = true;
        }
        if put {
            self.publish();
        }
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(n).unwrap_or(4096).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use io_uring::{cqueue, opcode, types, IoUring};
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    /// Arms a multishot receive and returns its completions up to the one
    /// that ends it: (buffer id, bytes) per buffer, and the final result.
    fn receive(ring: &mut IoUring, fd: i32, bgid: u16) -> (Vec<(u16, usize)>, i32) {
        let e = opcode::RecvMulti::new(types::Fd(fd), bgid)
            .build()
            .user_data(7);
        // SAFETY: the entry refers to a socket and a registered buffer
        // group that outlive the ring's use of them here.
        unsafe { ring.submission().push(&e).unwrap() };
        let mut got = Vec::new();
        loop {
            ring.submit_and_wait(1).unwrap();
            let cqes: Vec<cqueue::Entry> = ring.completion().collect();
            for c in cqes {
                if let Some(bid) = cqueue::buffer_select(c.flags()) {
                    got.push((bid, c.result() as usize));
                }
                if !cqueue::more(c.flags()) {
                    return (got, c.result());
                }
            }
        }
    }

    /// Against the kernel: a ring offering 2 of its 8 buffers runs dry
    /// after 2 receives (ENOBUFS); starved, it offers 4; returned buffers
    /// go out again most recent first, so buffers 4-7 are never used; and
    /// the bytes come through in order.
    #[test]
    fn offers_by_need_and_reuses_recent_buffers() {
        let mut ring = IoUring::new(16).unwrap();
        const B: usize = 4096;
        let mut br = BufRing::new(&ring, 8, B, 3, 2).unwrap();
        let (mut tx, rx) = UnixStream::pair().unwrap();
        let sent: Vec<u8> = (0..B * 12).map(|i| (i % 251) as u8).collect();
        let mut seen = Vec::new();
        let mut used = std::collections::BTreeSet::new();

        // Sends `bytes`, receives until the ring runs dry, which must take
        // `buffers` buffers, and hands them back.
        let mut round = |bytes: &[u8], buffers: usize, br: &mut BufRing| {
            tx.write_all(bytes).unwrap();
            let (got, end) = receive(&mut ring, rx.as_raw_fd(), 3);
            assert_eq!(end, -libc::ENOBUFS, "{got:?}");
            assert_eq!(got.len(), buffers, "{got:?}");
            assert!(got.iter().all(|&(_, n)| n == B), "{got:?}");
            for &(bid, n) in &got {
                seen.extend_from_slice(br.data(bid, n));
                used.insert(bid);
                br.recycle(bid);
            }
        };
        round(&sent[..B * 3], 2, &mut br);
        br.starved();
        round(&sent[B * 3..B * 7], 4, &mut br);
        // Idle seconds: the offer halves back to the first one and the
        // buffers the smaller offer cannot reach are given back; receiving
        // goes on, in order.
        br.turn_end();
        assert_eq!(br.trim(), 0, "a busy turn keeps the offer");
        assert_eq!(br.trim(), 2, "idle, the two deepest buffers go back");
        assert_eq!(br.trim(), 0, "given back once");
        round(&sent[B * 7..], 4, &mut br);
        assert!(
            seen == sent[..seen.len()] && seen.len() == B * 10,
            "{} bytes received, in order: {}",
            seen.len(),
            seen == sent[..seen.len().min(sent.len())]
        );
        assert_eq!(used, (0..4).collect(), "only the offered buffers were used");
    }
}
