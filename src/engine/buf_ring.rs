//! A provided-buffer ring: receive buffers the kernel picks from when a
//! multishot recv completes, so no buffer is tied to an idle connection and
//! no recv has to be re-armed per message.
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
}

impl BufRing {
    pub fn new(
        ring: &io_uring::IoUring,
        entries: u16,
        buf_size: usize,
        bgid: u16,
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
        };
        for bid in 0..entries {
            br.put(bid);
        }
        br.publish();
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

    /// Hands a buffer back to the kernel.
    pub fn recycle(&mut self, bid: u16) {
        self.put(bid);
        self.publish();
    }
}
