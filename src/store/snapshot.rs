//! A shard's items across a restart (`-e`, memcached's restartable
//! cache): at a graceful stop the store writes its segments out as they
//! lie in memory, and a new process with the same settings reads them
//! back into fresh segments and links their records into its index.
//!
//! Segments are copied whole, at their old offsets and with their old
//! incarnation numbers, so every item keeps its CAS (`seq << SEG_SHIFT |
//! offset`, see `item`) at no cost per item; the store clock continues the
//! old one's epoch (`Clock::resume`), so expiries and access times need no
//! rewriting and an item that expired while no process ran is simply past
//! its time. Records that were not live at the stop (replaced, deleted,
//! expired, hidden by a prefix flush) are marked dead in the copy, so the
//! restored index links exactly the items that were served.
//!
//! ```text
//!  file   = header, then `segments` entries, oldest `order` first
//!  header (96 bytes, little endian)
//!    0  magic "CCWARM05"     8  segment size      16 segments allowed
//!   24  index buckets       32  clock epoch (Unix s)
//!   40  store time at stop  48  next incarnation  56  pending flush_all
//!                                                     (store time, 0 none)
//!   64  segments            72  live items       80  run (the stop's id,
//!                                                     also in the marker)
//!   88  checksum of 0..88
//!  entry (48 bytes + data)
//!    0  seq                  8  order            16  write_off (u32)
//!   20  create_at (u32)     24  expire_at (u32)  28  expire_min (u32)
//!   32  ttl_bucket (u16)    34  write_at (u32; 0 in files of
//!                               earlier builds)  38  unused (2 bytes)
//!   40  checksum (u64) of bytes 0..40 and the data, then write_off
//!       bytes of data
//! ```
//!
//! The format is the store's own record layout, so a file is only read
//! back by a build with the same `FORMAT` and the same segment size; the
//! process layer (`process::warm`) checks the rest of the settings and the
//! clean-stop marker.

use std::io::{self, Read, Write};

use super::item::{self, RawItem, DELETED};
use super::segment::{SegHeader, NEVER_EXPIRES, NONE};
use super::ttl::{self, CHAINS};
use super::Store;

/// The file's first eight bytes; the digit is the format's version.
pub const FORMAT: &[u8; 8] = b"CCWARM05";
/// Bytes of the file header.
pub const HEADER_LEN: usize = 96;
/// Where the header's checksum is (of the bytes before it).
const SUM_AT: usize = 88;
const ENTRY_LEN: usize = 48;

/// What a save wrote or a restore linked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SnapshotCounts {
    /// Segments written or read back.
    pub segments: u64,
    /// Items written, or linked again.
    pub items: u64,
    /// Restore only: items that expired while no process ran, and whole
    /// segments of them skipped.
    pub expired: u64,
    /// Restore only: items not linked because `keep` refused them or no
    /// segment could be freed for theirs (eviction policy `none`).
    pub dropped: u64,
}

/// Why a file was not restored. The store is left empty (cold) then.
#[derive(Debug)]
pub enum RestoreError {
    /// Reading failed.
    Io(io::Error),
    /// Not this format, or another segment size.
    Incompatible(String),
    /// A checksum or a record's framing does not hold: a torn or damaged
    /// file, never served.
    Damaged(String),
}

impl std::fmt::Display for RestoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RestoreError::Io(e) => write!(f, "{e}"),
            RestoreError::Incompatible(s) => write!(f, "incompatible file: {s}"),
            RestoreError::Damaged(s) => write!(f, "damaged file: {s}"),
        }
    }
}

/// XXH3-64 of a segment's bytes (or of a header's fields). The
/// Fletcher-style sum it replaces was linear: adding d to one word, 2d
/// less to the next and d to the one after, or flipping bit 63 of two
/// words an even distance apart, left it unchanged, and a file damaged so
/// was restored and served a value never stored (found by a breaker).
/// XXH3 mixes every word non-linearly and runs at memory speed.
/// The run a file's header names, if `head` (its first [`HEADER_LEN`]
/// bytes) is a header of this format with a good checksum.
pub fn file_run(head: &[u8]) -> Option<u64> {
    (head.len() >= HEADER_LEN
        && &head[..8] == FORMAT
        && checksum(&head[..SUM_AT]) == u64_at(head, SUM_AT))
    .then(|| u64_at(head, 80))
}

/// A header of this format naming `run` and nothing else (the process
/// layer's tests).
#[cfg(test)]
pub(crate) fn header_for_tests(run: u64) -> Vec<u8> {
    let mut head = vec![0u8; HEADER_LEN];
    head[..8].copy_from_slice(FORMAT);
    head[80..88].copy_from_slice(&run.to_le_bytes());
    let sum = checksum(&head[..SUM_AT]);
    head[SUM_AT..].copy_from_slice(&sum.to_le_bytes());
    head
}

fn checksum(data: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(data)
}

/// An entry's checksum: its fields (bytes 0..40) and its segment's data,
/// so a damaged number (an incarnation, an expiry) is caught as surely as
/// a damaged value.
fn entry_checksum(fields: &[u8], data: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64_with_seed(data, checksum(fields))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

/// The size a record header word announces, if it can be a record of
/// this store: a key of 1..=250 bytes, and no more than `room` bytes.
fn framed_size(data: &[u8], room: usize) -> Option<usize> {
    if data.len() < item::HEADER_SIZE {
        return None;
    }
    let w = u64_at(data, 0);
    let (klen, vlen, hlen) = item::header_lens(w);
    let f = ((w >> item::IFLAGS_SHIFT) & item::IFLAGS_MASK) as u8;
    let size = hlen + item::optional_len(f) + klen + vlen;
    (klen > 0 && klen <= item::MAX_KEY_LEN && size <= room).then_some(size)
}

impl Store {
    /// As [`Store::save_run`], for run 0 (tests).
    ///
    /// # Errors
    /// What `w` returns.
    pub fn save(&self, w: &mut impl Write) -> io::Result<SnapshotCounts> {
        self.save_run(w, 0)
    }

    /// Writes every live item out (see the module comment), the header
    /// naming `run`: one id for all the shard files of one stop, which the
    /// clean-stop marker names too, so that files of two processes given
    /// the same `-e` path are never restored together (`file_run`). Read
    /// only: the store serves on unchanged.
    ///
    /// # Errors
    /// What `w` returns.
    pub fn save_run(&self, w: &mut impl Write, run: u64) -> io::Result<SnapshotCounts> {
        let now = self.clock.now();
        let mut ids: Vec<u32> = (0..self.segs.count() as u32)
            .filter(|&s| {
                let h = self.segs.header(s);
                h.seq != 0 && h.live_items > 0
            })
            .collect();
        ids.sort_by_key(|&s| self.segs.header(s).order);
        let mut head = [0u8; HEADER_LEN];
        head[..8].copy_from_slice(FORMAT);
        let fields = [
            self.segs.seg_size as u64,
            self.seg_limit as u64,
            self.index.primary_buckets() as u64,
            self.clock.epoch_unix() as u64,
            now as u64,
            self.segs.next_seq(),
            self.flush_at as u64,
            ids.len() as u64,
            self.index.items as u64,
            run,
        ];
        for (i, v) in fields.iter().enumerate() {
            head[8 + 8 * i..16 + 8 * i].copy_from_slice(&v.to_le_bytes());
        }
        let sum = checksum(&head[..SUM_AT]);
        head[SUM_AT..HEADER_LEN].copy_from_slice(&sum.to_le_bytes());
        w.write_all(&head)?;
        let mut counts = SnapshotCounts::default();
        let mut buf = Vec::with_capacity(self.segs.seg_size);
        for id in ids {
            let h = *self.segs.header(id);
            buf.clear();
            // SAFETY: the first write_off bytes of a live segment are records
            // the store wrote; nothing writes them while `&self` is held.
            buf.extend_from_slice(unsafe {
                std::slice::from_raw_parts(self.segs.ptr(id, 0), h.write_off as usize)
            });
            let mut off = 0usize;
            while off < buf.len() {
                let it = self.item_at(id, off as u32);
                let size = it.size();
                let e = it.expire();
                let live = it.iflags() & DELETED == 0
                    && (e == 0 || e > now)
                    && !self.hidden(id, off as u32, it)
                    && self.slot_at(self.hash(it.key()), id, off as u32).is_some();
                if live {
                    counts.items += 1;
                } else {
                    // SAFETY: `off` starts a record inside `buf`, a copy of
                    // the segment; only the copy's header word changes.
                    unsafe { RawItem::at(buf.as_mut_ptr().add(off)) }.set_iflags(DELETED, 0);
                }
                off += size;
            }
            let mut entry = [0u8; ENTRY_LEN];
            entry[0..8].copy_from_slice(&h.seq.to_le_bytes());
            entry[8..16].copy_from_slice(&h.order.to_le_bytes());
            for (i, v) in [h.write_off, h.create_at, h.expire_at, h.expire_min]
                .iter()
                .enumerate()
            {
                entry[16 + 4 * i..20 + 4 * i].copy_from_slice(&v.to_le_bytes());
            }
            entry[32..34].copy_from_slice(&h.ttl_bucket.to_le_bytes());
            entry[34..38].copy_from_slice(&h.write_at.to_le_bytes());
            let sum = entry_checksum(&entry[..40], &buf);
            entry[40..48].copy_from_slice(&sum.to_le_bytes());
            w.write_all(&entry)?;
            w.write_all(&buf)?;
            counts.segments += 1;
        }
        w.flush()?;
        Ok(counts)
    }

    /// Reads a file `save` wrote into this store, which must be new
    /// (nothing stored yet); items whose key `keep` refuses are left dead
    /// (another shard owns them). `unix_now` is the wall clock (seconds).
    ///
    /// # Errors
    /// [`RestoreError`]; the store is then emptied, as if started cold.
    pub fn restore(
        &mut self,
        r: &mut impl Read,
        unix_now: i64,
        keep: impl Fn(&[u8]) -> bool,
    ) -> Result<SnapshotCounts, RestoreError> {
        debug_assert_eq!(self.index.items, 0, "restore into a new store");
        let res = self.restore_inner(r, unix_now, keep);
        if res.is_err() {
            self.empty_now();
        }
        res
    }

    fn restore_inner(
        &mut self,
        r: &mut impl Read,
        unix_now: i64,
        keep: impl Fn(&[u8]) -> bool,
    ) -> Result<SnapshotCounts, RestoreError> {
        let mut head = [0u8; HEADER_LEN];
        r.read_exact(&mut head).map_err(RestoreError::Io)?;
        if &head[..8] != FORMAT {
            return Err(RestoreError::Incompatible(
                "not a corecache warm-restart file of this format".into(),
            ));
        }
        if checksum(&head[..SUM_AT]) != u64_at(&head, SUM_AT) {
            return Err(RestoreError::Damaged("header checksum".into()));
        }
        let f = |i: usize| u64_at(&head, 8 + 8 * i);
        let seg_size = self.segs.seg_size;
        if f(0) != seg_size as u64 {
            return Err(RestoreError::Incompatible(format!(
                "segment size {} where this process has {seg_size}",
                f(0)
            )));
        }
        let (seg_limit, buckets, epoch, stopped_at) = (f(1), f(2), f(3) as i64, f(4) as u32);
        let (next_seq, flush_at, nsegs) = (f(5), f(6) as u32, f(7));
        if f(4) > u32::MAX as u64 / 2 || f(6) > u32::MAX as u64 {
            return Err(RestoreError::Damaged("store time out of range".into()));
        }
        self.clock.resume(epoch, unix_now, stopped_at);
        let now = self.clock.now();
        self.segs.resume_seq(next_seq);
        self.grow_index_to(buckets as usize);
        let same_layout = self.seg_limit as u64 == seg_limit;
        let mut counts = SnapshotCounts::default();
        let mut entry = [0u8; ENTRY_LEN];
        let mut sink = Vec::new();
        for _ in 0..nsegs {
            r.read_exact(&mut entry).map_err(RestoreError::Io)?;
            let h = SegHeader {
                seq: u64_at(&entry, 0),
                order: u64_at(&entry, 8),
                write_off: u32_at(&entry, 16),
                end: seg_size as u32,
                create_at: u32_at(&entry, 20),
                // Bytes earlier builds left unused (0): such segments date
                // every record at their creation.
                write_at: u32_at(&entry, 34).max(u32_at(&entry, 20)),
                expire_at: u32_at(&entry, 24),
                expire_min: u32_at(&entry, 28),
                ttl_bucket: u16::from_le_bytes([entry[32], entry[33]]),
                live_items: 0,
                live_bytes: 0,
                prev: NONE,
                next: NONE,
                largest: 0,
            };
            let len = h.write_off as usize;
            if len > seg_size || h.seq == 0 || h.seq >= next_seq {
                return Err(RestoreError::Damaged(format!(
                    "segment entry {}",
                    counts.segments
                )));
            }
            let sum = u64_at(&entry, 40);
            let gone = h.expire_at != NEVER_EXPIRES && h.expire_at != 0 && h.expire_at <= now;
            // Short of room (the index grew further than before), the
            // oldest restored segments make way, as eviction would. The
            // first segment whose bytes fit the short one's is restored
            // short, into its slot (`take_short`).
            let mut taken = None;
            if !gone {
                taken = self
                    .take_short(ttl::NEVER, len)
                    .or_else(|| self.take_segment(ttl::NEVER, len));
                if taken.is_none() && self.evict() {
                    taken = self.take_segment(ttl::NEVER, len);
                }
            }
            let Some(id) = taken else {
                // Read past it (all expired, or no room left), checking it all the same.
                sink.resize(len, 0);
                r.read_exact(&mut sink).map_err(RestoreError::Io)?;
                if entry_checksum(&entry[..40], &sink) != sum {
                    return Err(RestoreError::Damaged(format!("segment {} checksum", h.seq)));
                }
                let items = self.count_framed(&sink)?;
                if gone {
                    counts.expired += items;
                } else {
                    counts.dropped += items;
                }
                continue;
            };
            // SAFETY: `id` was just taken off the free list: no index slot,
            // chain or pin refers to its bytes, and `len <= seg_size`.
            let data = unsafe { std::slice::from_raw_parts_mut(self.segs.ptr(id, 0), len) };
            let read = r.read_exact(data);
            let bucket = if same_layout && (h.ttl_bucket as usize) < CHAINS {
                h.ttl_bucket
            } else {
                let ttl = match h.expire_at {
                    0 | NEVER_EXPIRES => 0,
                    e => e - now,
                };
                self.layout.chain(ttl, false)
            };
            let short = self.live_short() == Some(id);
            *self.segs.header_mut(id) = SegHeader {
                ttl_bucket: bucket,
                end: self.segs.header(id).end,
                ..h
            };
            if short {
                self.short.1 = h.seq;
            }
            self.segs.publish_incarnation(id);
            self.ttl.push_back(&mut self.segs, bucket, id);
            read.map_err(RestoreError::Io)?;
            if entry_checksum(&entry[..40], data) != sum {
                return Err(RestoreError::Damaged(format!("segment {} checksum", h.seq)));
            }
            self.link_segment(id, now, &keep, &mut counts)?;
            counts.segments += 1;
        }
        if flush_at != 0 {
            self.flush_at = flush_at.max(now);
        }
        // Items a restore linked and then evicted to make room count as
        // dropped, not restored.
        let present = self.index.items as u64;
        counts.dropped += counts.items.saturating_sub(present);
        counts.items = counts.items.min(present);
        Ok(counts)
    }

    /// Records in `data` (a segment's bytes) that are not marked dead.
    fn count_framed(&self, data: &[u8]) -> Result<u64, RestoreError> {
        let (mut off, mut n) = (0, 0);
        while off < data.len() {
            let size = framed_size(&data[off..], data.len() - off)
                .ok_or_else(|| RestoreError::Damaged("record framing".into()))?;
            let w = u64_at(data, off);
            n += ((w >> item::IFLAGS_SHIFT) as u8 & DELETED == 0) as u64;
            off += size;
        }
        Ok(n)
    }

    /// Links the live records of a restored segment into the index.
    fn link_segment(
        &mut self,
        id: u32,
        now: u32,
        keep: &impl Fn(&[u8]) -> bool,
        counts: &mut SnapshotCounts,
    ) -> Result<(), RestoreError> {
        let len = self.segs.header(id).write_off as usize;
        let mut off = 0usize;
        while off < len {
            // SAFETY: [off, len) lies inside the segment just read.
            let rest = unsafe { std::slice::from_raw_parts(self.segs.ptr(id, off), len - off) };
            let size = framed_size(rest, len - off)
                .ok_or_else(|| RestoreError::Damaged(format!("record framing in segment {id}")))?;
            let it = self.item_at(id, off as u32);
            let h = self.segs.header_mut(id);
            h.largest = h.largest.max(size as u32);
            if it.iflags() & DELETED == 0 {
                let e = it.expire();
                if e != 0 && e <= now {
                    it.set_iflags(DELETED, 0);
                    counts.expired += 1;
                } else if !keep(it.key()) {
                    it.set_iflags(DELETED, 0);
                    counts.dropped += 1;
                } else {
                    // Its expiry is already in the restored header.
                    self.segs.header_mut(id).note_record(size, e);
                    self.live_bytes += size;
                    self.count_linked(it, size);
                    let hash = self.hash(it.key());
                    // One live record per key was saved; should a file say
                    // otherwise, the later record wins as a later write would.
                    let old = self.slot_for_key(hash, it.key());
                    self.link(old, hash, id, off as u32, it);
                    counts.items += 1;
                }
            }
            off += size;
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "snapshot_tests.rs"]
mod tests;
