//! The item record as it lies in a segment.
//!
//! Every item starts with a header of 6, 7 or 8 bytes, by the value's
//! length, followed by optional fields that only items needing them pay
//! for, then the key and the value. Records follow each other with no
//! padding (index slots hold byte offsets), so nothing is read from them
//! aligned.
//!
//! ```text
//!  header (little endian)
//!  63 (long) 55 (short) 47 (tiny) 40  39  38           16 15      8 7        0
//! +------------------------------+---+---+---------------+---------+----------+
//! | value length                 | L | T | atime (23 bit)| iflags  | key len  |
//! +------------------------------+---+---+---------------+---------+----------+
//!  T = 1: tiny header, 6 bytes, value length in bits 40-47 (8 bits:
//!         under 256 bytes; bit 40 is the length's, not L);
//!  T = 0, L = 0: short header, 7 bytes, value length in bits 41-55 (15 bits);
//!  T = 0, L = 1: long header, 8 bytes, value length in bits 41-63 (23 bits).
//!
//!  record
//! +--------+-----------+-----------+-----------+-----+-------+
//! | header | [expire]  | [flags]   | [cas]     | key | value |
//! | 6, 7   | u32 if    | u32 if    | u64 if    |     |       |
//! | or 8 B | HAS_EXPIRE| HAS_FLAGS | HAS_CAS   |     |       |
//! +--------+-----------+-----------+-----------+-----+-------+
//! ```
//!
//! A 15-byte key with a 100-byte value and no client flags takes
//! 6 + 15 + 100 = 121 bytes, 125 with a TTL. (Padding each record to 8
//! bytes, as Segcache does, cost 3.5 bytes an item on average and 5 for
//! this one: 4 % of the items a store of such items keeps. The short
//! header's byte gave 0.48 % more items at `-m 256`: 2,014,786 against
//! 2,005,150; the tiny header's, for values under 256 bytes, took the
//! access time from 24 bits to 23 (meta `l` wraps after 97 days, not 194),
//! see PERFORMANCE.md "Memory" for what it gave.)
//!
//! The bytes changed in place (item flags, access time: bytes 1-4) are
//! the same in all forms; the tiny bit T shares byte 4 with the access
//! time, and the owner writes it back unchanged whenever it writes that
//! byte, so a reader of byte 4 always sees it. The key length (byte 0) and
//! the value length (bytes 5-7, as far as the form has them) are written
//! once, before the record is linked. The owner reads a header as a whole
//! word with the bytes after it (a record is at least 8 bytes: the tiny
//! form is only used when the key and value together have 2 bytes or
//! more), which the masks drop; another worker must not read those bytes,
//! which `touch` may be rewriting (the expiry), so it reads the lengths
//! byte by byte (`shared_lens`).
//!
//! The CAS value is not stored unless it has to be (see `HAS_CAS`): items are
//! never modified in place, so the pair (segment incarnation, offset) already
//! identifies one version of one item and serves as its CAS.

use std::sync::atomic::AtomicU8;
use std::sync::atomic::Ordering::Relaxed;

/// Bytes of the longest header (a value of [`SHORT_VALUE_LIMIT`] bytes or
/// more); a shorter value's header is one or two bytes less.
pub const HEADER_SIZE: usize = 8;
/// Values shorter than this have the 7-byte header (or the tiny one).
pub const SHORT_VALUE_LIMIT: usize = 1 << 15;
/// Values shorter than this have the 6-byte header, if the record is at
/// least 8 bytes with it (see the module comment).
pub const TINY_VALUE_LIMIT: usize = 1 << 8;
/// The header byte that holds the item flags (changed in place).
const IFLAGS_BYTE: usize = IFLAGS_SHIFT as usize / 8;
/// The first of the three header bytes of the access time (changed in
/// place; the last also holds the tiny bit).
const ATIME_BYTE: usize = ATIME_SHIFT as usize / 8;
/// The header byte that holds the tiny bit (and the access time's top bits).
const TINY_BYTE: usize = TINY_SHIFT as usize / 8;
/// The tiny bit within [`TINY_BYTE`].
const TINY_BIT: u8 = 1 << (TINY_SHIFT % 8);
/// The first header byte of the value length (and the long-form bit).
const VLEN_BYTE: usize = LONG_SHIFT as usize / 8;

/// Key length bits of the header word (after shifting).
pub const KLEN_MASK: u64 = 0xff;
/// Bit position of the key length.
pub const KLEN_SHIFT: u32 = 0;
/// Item flag bits (after shifting): `DELETED`, `HAS_EXPIRE`, ...
pub const IFLAGS_MASK: u64 = 0xff;
/// Bit position of the item flags.
pub const IFLAGS_SHIFT: u32 = 8;
/// Access time bits (after shifting): store time, modulo 2^23 seconds.
pub const ATIME_MASK: u64 = 0x7f_ffff;
/// Bit position of the access time.
pub const ATIME_SHIFT: u32 = 16;
/// Bit position of the tiny-form bit: set, the header is 6 bytes.
pub const TINY_SHIFT: u32 = 39;
/// Bit position of the long-form bit (when not tiny): set, 8 bytes.
pub const LONG_SHIFT: u32 = 40;
/// Bit position of the value length in a short or long header.
pub const VLEN_SHIFT: u32 = 41;
/// Value length bits of a tiny header (after shifting by `LONG_SHIFT`,
/// where a tiny header's length starts).
pub const VLEN_TINY_MASK: u64 = 0xff;
/// Value length bits of a short header (after shifting).
pub const VLEN_SHORT_MASK: u64 = 0x7fff;
/// Value length bits of a long header (after shifting).
pub const VLEN_MASK: u64 = 0x7f_ffff;

/// Largest value length the header can describe (a record must fit in
/// one segment, which is at most 8 MiB, so this is no limit of its own).
pub const MAX_VALUE_LEN: usize = VLEN_MASK as usize;
/// memcached's key limit.
pub const MAX_KEY_LEN: usize = 250;

/// Bytes of the header of a record of a `klen`-byte key and a `vlen`-byte
/// value.
#[inline]
pub fn header_len(klen: usize, vlen: usize) -> usize {
    if vlen < TINY_VALUE_LIMIT && klen + vlen >= 2 {
        HEADER_SIZE - 2
    } else {
        HEADER_SIZE - (vlen < SHORT_VALUE_LIMIT) as usize
    }
}

/// The key length, value length and header length a header word
/// (read whole, little endian, from the record's first byte) gives.
#[inline]
pub fn header_lens(w: u64) -> (usize, usize, usize) {
    let klen = ((w >> KLEN_SHIFT) & KLEN_MASK) as usize;
    if (w >> TINY_SHIFT) & 1 != 0 {
        return (
            klen,
            ((w >> LONG_SHIFT) & VLEN_TINY_MASK) as usize,
            HEADER_SIZE - 2,
        );
    }
    let long = w >> LONG_SHIFT;
    let mask = if long & 1 != 0 {
        VLEN_MASK
    } else {
        VLEN_SHORT_MASK
    };
    (
        klen,
        ((w >> VLEN_SHIFT) & mask) as usize,
        HEADER_SIZE - 1 + (long & 1) as usize,
    )
}

/// The item was replaced, deleted, evicted or expired; its bytes are dead.
pub const DELETED: u8 = 1 << 0;
/// A u32 absolute expiry (store clock) follows the header.
pub const HAS_EXPIRE: u8 = 1 << 1;
/// A u32 of client flags follows.
pub const HAS_FLAGS: u8 = 1 << 2;
/// A u64 CAS value follows: the item kept its CAS across a move (touch,
/// merge) or the client chose it (meta `E`).
pub const HAS_CAS: u8 = 1 << 3;
/// The item has been read at least once (meta `h`, `expired_unfetched`).
pub const FETCHED: u8 = 1 << 4;
/// The item was invalidated by meta `I` and is served as stale (meta `X`).
pub const STALE: u8 = 1 << 5;
/// A client already got the win token for this item (meta `W` / `Z`).
pub const WIN_SENT: u8 = 1 << 6;
/// The key was stored by a meta command with `b` (base64), so meta replies
/// echo it base64 with a `b`, however a later request names it
/// (memcached's ITEM_KEY_BINARY).
pub const KEY_BINARY: u8 = 1 << 7;
/// The item flags that describe the item rather than its record: a record
/// written again for the same item (touch, arithmetic in place, a merge,
/// meta `I`) carries them over.
pub const ITEM_STATE: u8 = FETCHED | STALE | WIN_SENT | KEY_BINARY;

/// The fields a writer supplies for a new record.
#[derive(Clone, Copy, Debug, Default)]
pub struct ItemMeta {
    /// Absolute expiry in store-clock seconds, 0 = never.
    pub expire: u32,
    /// The client's opaque flags.
    pub flags: u32,
    /// Some = store this CAS explicitly.
    pub cas: Option<u64>,
    /// Extra iflags to set (STALE, WIN_SENT, FETCHED, KEY_BINARY).
    pub iflags: u8,
}

impl ItemMeta {
    fn iflags(&self) -> u8 {
        let mut f = self.iflags & ITEM_STATE;
        if self.expire != 0 {
            f |= HAS_EXPIRE;
        }
        if self.flags != 0 {
            f |= HAS_FLAGS;
        }
        if self.cas.is_some() {
            f |= HAS_CAS;
        }
        f
    }
}

/// Bytes of the optional fields (expiry, client flags, CAS) that `iflags`
/// say follow the header.
#[inline]
pub fn optional_len(iflags: u8) -> usize {
    let mut n = 0;
    if iflags & HAS_EXPIRE != 0 {
        n += 4;
    }
    if iflags & HAS_FLAGS != 0 {
        n += 4;
    }
    if iflags & HAS_CAS != 0 {
        n += 8;
    }
    n
}

/// Bytes a record with these fields takes in a segment.
pub fn record_size(klen: usize, vlen: usize, meta: &ItemMeta) -> usize {
    header_len(klen, vlen) + optional_len(meta.iflags()) + klen + vlen
}

/// A view of one record in segment memory.
///
/// Holds a raw pointer because records live in the mmap arena owned by the
/// store; the store hands these out only while it holds `&self`/`&mut self`.
#[derive(Clone, Copy)]
pub struct RawItem {
    ptr: *mut u8,
}

impl RawItem {
    /// # Safety
    /// `ptr` must point at a record header written by `write` inside a live
    /// arena mapping.
    #[inline]
    pub unsafe fn at(ptr: *mut u8) -> Self {
        RawItem { ptr }
    }

    #[inline]
    fn header(&self) -> u64 {
        // SAFETY: `at` requires a header inside the arena.
        unsafe { (self.ptr as *const u64).read_unaligned() }
    }

    /// Byte `i` of the record as an atomic: the header bytes the owner
    /// changes in place while other workers may read them (foreign reads,
    /// `foreign.rs`) are written and read only this way, so a reader sees
    /// each byte old or new and never races. Bytes are always aligned, and
    /// on x86 an atomic byte access is a plain one.
    #[inline]
    fn byte(&self, i: usize) -> &AtomicU8 {
        // SAFETY: `at` requires a record inside the arena, which outlives
        // every `RawItem`; callers pass offsets inside the record.
        unsafe { AtomicU8::from_ptr(self.ptr.add(i)) }
    }

    /// Stores `v`'s low `n` bytes, little endian, at record offset `at`.
    #[inline]
    fn store_bytes(&self, at: usize, v: u32, n: usize) {
        for i in 0..n {
            self.byte(at + i).store((v >> (8 * i)) as u8, Relaxed);
        }
    }

    /// Loads `n` bytes, little endian, from record offset `at`.
    #[inline]
    fn load_bytes(&self, at: usize, n: usize) -> u32 {
        (0..n).fold(0, |v, i| {
            v | (self.byte(at + i).load(Relaxed) as u32) << (8 * i)
        })
    }

    /// Key length in bytes.
    #[inline]
    pub fn klen(&self) -> usize {
        ((self.header() >> KLEN_SHIFT) & KLEN_MASK) as usize
    }

    /// Value length in bytes.
    #[inline]
    pub fn vlen(&self) -> usize {
        header_lens(self.header()).1
    }

    /// Header length in bytes (6, 7 or 8).
    #[inline]
    fn hlen(&self) -> usize {
        header_lens(self.header()).2
    }

    /// The item flags (`DELETED`, `HAS_EXPIRE`, `FETCHED`, ...).
    #[inline]
    pub fn iflags(&self) -> u8 {
        ((self.header() >> IFLAGS_SHIFT) & IFLAGS_MASK) as u8
    }

    /// Store time of the last access, modulo 2^24 seconds.
    #[inline]
    pub fn atime(&self) -> u32 {
        ((self.header() >> ATIME_SHIFT) & ATIME_MASK) as u32
    }

    /// Sets the item flags in `set` and clears those in `clear`.
    #[inline]
    pub fn set_iflags(&self, set: u8, clear: u8) {
        let f = (self.iflags() | set) & !clear;
        self.byte(IFLAGS_BYTE).store(f, Relaxed);
    }

    /// Records an access at store time `now`. The tiny bit, in the same
    /// byte as the access time's top bits, is written back as it was.
    #[inline]
    pub fn set_atime(&self, now: u32) {
        let tiny = self.byte(TINY_BYTE).load(Relaxed) & TINY_BIT;
        self.store_bytes(ATIME_BYTE, now & ATIME_MASK as u32, 2);
        self.byte(TINY_BYTE)
            .store((now >> 16) as u8 & !TINY_BIT | tiny, Relaxed);
    }

    /// Seconds since the last access, given the store clock; the 23-bit
    /// field wraps after 97 days, which only matters for meta `l`.
    #[inline]
    pub fn idle_secs(&self, now: u32) -> u32 {
        (now.wrapping_sub(self.atime())) & ATIME_MASK as u32
    }

    #[inline]
    fn opt_ptr(&self, which: u8) -> *mut u8 {
        let f = self.iflags();
        let mut off = self.hlen();
        if which == HAS_EXPIRE {
            return self.ptr.wrapping_add(off);
        }
        if f & HAS_EXPIRE != 0 {
            off += 4;
        }
        if which == HAS_FLAGS {
            return self.ptr.wrapping_add(off);
        }
        if f & HAS_FLAGS != 0 {
            off += 4;
        }
        self.ptr.wrapping_add(off)
    }

    /// Absolute expiry in store time, 0 = never.
    #[inline]
    pub fn expire(&self) -> u32 {
        if self.iflags() & HAS_EXPIRE == 0 {
            return 0;
        }
        // SAFETY: HAS_EXPIRE says the writer reserved these 4 bytes.
        unsafe { (self.opt_ptr(HAS_EXPIRE) as *const u32).read_unaligned() }
    }

    /// Only valid for records written with an expiry; callers check first.
    #[inline]
    pub fn set_expire_in_place(&self, expire: u32) {
        debug_assert!(self.iflags() & HAS_EXPIRE != 0 && expire != 0);
        // Byte-wise atomics (see `byte`); the store brackets this with the
        // index's write section, so a reader never keeps a torn expiry.
        self.store_bytes(self.hlen(), expire, 4);
    }

    /// The item flags, read as another worker must (see `byte`).
    #[inline]
    pub fn shared_iflags(&self) -> u8 {
        self.byte(IFLAGS_BYTE).load(Relaxed)
    }

    /// The last access time, read as another worker must; a torn value
    /// (old and new bytes) is possible and only ever shown by meta `l`.
    #[inline]
    pub fn shared_atime(&self) -> u32 {
        self.load_bytes(ATIME_BYTE, 3) & ATIME_MASK as u32
    }

    /// The expiry, read as another worker must; the caller validates the
    /// index's sequence count after, which throws a torn value away.
    #[inline]
    pub fn shared_expire(&self, iflags: u8) -> u32 {
        if iflags & HAS_EXPIRE == 0 {
            return 0;
        }
        self.load_bytes(self.shared_hlen(), 4)
    }

    /// Header byte `i` of those never changed in place (0, and 5-7 as far
    /// as the header has them), read as another worker may: written once,
    /// before the record is linked.
    #[inline]
    fn fixed_byte(&self, i: usize) -> u64 {
        debug_assert!(i == 0 || (VLEN_BYTE..HEADER_SIZE).contains(&i));
        // SAFETY: `at` requires a header inside the arena; callers read
        // bytes 6 and 7 only of headers that have them.
        unsafe { self.ptr.add(i).read() as u64 }
    }

    /// Whether the header is tiny, read as another worker must: the bit
    /// shares a byte with the access time, changed in place (see `byte`).
    #[inline]
    fn shared_tiny(&self) -> bool {
        self.byte(TINY_BYTE).load(Relaxed) & TINY_BIT != 0
    }

    /// The header length, read as another worker must (see `fixed_byte`).
    #[inline]
    fn shared_hlen(&self) -> usize {
        if self.shared_tiny() {
            return HEADER_SIZE - 2;
        }
        HEADER_SIZE - 1 + (self.fixed_byte(VLEN_BYTE) & 1) as usize
    }

    /// The key and value lengths, from the header bytes never changed in
    /// place (the others may be written while another worker reads).
    #[inline]
    pub fn shared_lens(&self) -> (usize, usize) {
        let klen = self.fixed_byte(0) as usize;
        let first = self.fixed_byte(VLEN_BYTE);
        // Bytes 6 and 7 are the header's only if it has them: otherwise
        // they may be the expiry's, which `touch` may be writing now.
        if self.shared_tiny() {
            return (klen, first as usize);
        }
        let mut w = first << LONG_SHIFT | self.fixed_byte(VLEN_BYTE + 1) << (LONG_SHIFT + 8);
        if first & 1 != 0 {
            w |= self.fixed_byte(VLEN_BYTE + 2) << (LONG_SHIFT + 16);
        }
        (klen, header_lens(w).1)
    }

    /// The client flags and stored CAS, given the item flags: fields
    /// written once, before the record is linked.
    #[inline]
    pub fn shared_fixed(&self, iflags: u8) -> (u32, Option<u64>) {
        let mut off = self.shared_hlen() + if iflags & HAS_EXPIRE != 0 { 4 } else { 0 };
        let flags = if iflags & HAS_FLAGS != 0 {
            // SAFETY: HAS_FLAGS says the writer reserved these bytes.
            let f = unsafe { (self.ptr.add(off) as *const u32).read_unaligned() };
            off += 4;
            f
        } else {
            0
        };
        let cas = (iflags & HAS_CAS != 0).then(|| {
            // SAFETY: HAS_CAS says the writer reserved these bytes.
            unsafe { (self.ptr.add(off) as *const u64).read_unaligned() }
        });
        (flags, cas)
    }

    /// Where the key starts, given the item flags.
    #[inline]
    pub fn shared_key_offset(&self, iflags: u8) -> usize {
        self.shared_hlen() + optional_len(iflags)
    }

    /// The record's first byte.
    #[inline]
    pub fn as_ptr(&self) -> *const u8 {
        self.ptr
    }

    /// The client's flags.
    #[inline]
    pub fn flags(&self) -> u32 {
        if self.iflags() & HAS_FLAGS == 0 {
            return 0;
        }
        // SAFETY: HAS_FLAGS says the writer reserved these 4 bytes.
        unsafe { (self.opt_ptr(HAS_FLAGS) as *const u32).read_unaligned() }
    }

    /// The stored CAS, if the record carries one.
    #[inline]
    pub fn stored_cas(&self) -> Option<u64> {
        if self.iflags() & HAS_CAS == 0 {
            return None;
        }
        // SAFETY: HAS_CAS says the writer reserved these 8 bytes.
        Some(unsafe { (self.opt_ptr(HAS_CAS) as *const u64).read_unaligned() })
    }

    #[inline]
    fn key_offset(&self) -> usize {
        self.hlen() + optional_len(self.iflags())
    }

    /// The key bytes, valid while the store is not written to.
    #[inline]
    pub fn key<'a>(&self) -> &'a [u8] {
        // SAFETY: the writer put klen key bytes at key_offset; the arena
        // outlives every borrow the store hands out.
        unsafe { std::slice::from_raw_parts(self.ptr.add(self.key_offset()), self.klen()) }
    }

    /// The value bytes, valid while the store is not written to (or while
    /// its segment is pinned).
    #[inline]
    pub fn value<'a>(&self) -> &'a [u8] {
        // SAFETY: as for `key`; the value follows the key.
        unsafe {
            std::slice::from_raw_parts(self.ptr.add(self.key_offset() + self.klen()), self.vlen())
        }
    }

    /// Size of the whole record in bytes.
    #[inline]
    pub fn size(&self) -> usize {
        self.key_offset() + self.klen() + self.vlen()
    }

    /// Writes a record at `ptr` from the given parts; the value may be given
    /// in up to two pieces (append and prepend build it that way).
    ///
    /// # Safety
    /// `ptr` must have `record_size` writable bytes that do not overlap
    /// `key` or the value pieces.
    pub unsafe fn write(
        ptr: *mut u8,
        key: &[u8],
        v1: &[u8],
        v2: &[u8],
        meta: &ItemMeta,
        now: u32,
    ) -> RawItem {
        let f = meta.iflags();
        let vlen = v1.len() + v2.len();
        debug_assert!(!key.is_empty() && key.len() <= MAX_KEY_LEN && vlen <= MAX_VALUE_LEN);
        let mut off = header_len(key.len(), vlen);
        let form = match off {
            6 => 1 << TINY_SHIFT | (vlen as u64) << LONG_SHIFT,
            7 => (vlen as u64) << VLEN_SHIFT,
            _ => 1 << LONG_SHIFT | (vlen as u64) << VLEN_SHIFT,
        };
        let h = ((key.len() as u64) << KLEN_SHIFT)
            | ((f as u64) << IFLAGS_SHIFT)
            | (((now as u64) & ATIME_MASK) << ATIME_SHIFT)
            | form;
        std::ptr::copy_nonoverlapping(h.to_le_bytes().as_ptr(), ptr, off);
        if f & HAS_EXPIRE != 0 {
            (ptr.add(off) as *mut u32).write_unaligned(meta.expire);
            off += 4;
        }
        if f & HAS_FLAGS != 0 {
            (ptr.add(off) as *mut u32).write_unaligned(meta.flags);
            off += 4;
        }
        if let Some(cas) = meta.cas {
            (ptr.add(off) as *mut u64).write_unaligned(cas);
            off += 8;
        }
        std::ptr::copy_nonoverlapping(key.as_ptr(), ptr.add(off), key.len());
        off += key.len();
        std::ptr::copy_nonoverlapping(v1.as_ptr(), ptr.add(off), v1.len());
        off += v1.len();
        std::ptr::copy_nonoverlapping(v2.as_ptr(), ptr.add(off), v2.len());
        RawItem { ptr }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_item_is_121_bytes() {
        let m = ItemMeta::default();
        assert_eq!(record_size(15, 100, &m), 121);
        let m = ItemMeta {
            expire: 100,
            ..Default::default()
        };
        assert_eq!(record_size(15, 100, &m), 125);
    }

    /// The three header forms, at the lengths where they meet and at the
    /// largest value, with every optional field and without, in place
    /// changes (the access time's top bits beside the tiny bit) and the
    /// reads other workers make.
    #[test]
    fn tiny_short_and_long_headers_roundtrip() {
        let full = ItemMeta {
            expire: 0x0102_0304,
            flags: 0xdead_beef,
            cas: Some(0x0123_4567_89ab_cdef),
            iflags: FETCHED,
        };
        let bare = ItemMeta {
            expire: 0x0102_0304,
            ..Default::default()
        };
        for ((klen, vlen, hl), meta) in [
            // One byte of key and none of value: 8 bytes only in the
            // short form (the owner reads a header as a word).
            (1, 0, 7),
            (1, 1, 6),
            (2, 0, 6),
            (250, 1, 6),
            (3, TINY_VALUE_LIMIT - 1, 6),
            (3, TINY_VALUE_LIMIT, 7),
            (3, SHORT_VALUE_LIMIT - 1, 7),
            (3, SHORT_VALUE_LIMIT, 8),
            (250, MAX_VALUE_LEN, 8),
        ]
        .into_iter()
        .flat_map(|c| [(c, full), (c, bare)])
        {
            let key: Vec<u8> = (0..klen).map(|i| b'a' + (i % 26) as u8).collect();
            let value: Vec<u8> = (0..vlen).map(|i| (i * 7 + 1) as u8).collect();
            let size = record_size(klen, vlen, &meta);
            let opt = optional_len(meta.iflags());
            assert_eq!(size, hl + opt + klen + vlen);
            let mut buf = vec![0xffu8; size + 1];
            let it = unsafe {
                RawItem::write(
                    buf.as_mut_ptr(),
                    &key,
                    &value[..vlen / 2],
                    &value[vlen / 2..],
                    &meta,
                    0xab_cdef,
                )
            };
            // The store clock's bit 23 (written at 0xab_cdef) is not the
            // access time's, nor the tiny bit.
            assert_eq!(it.atime(), 0x2b_cdef);
            it.set_iflags(STALE, FETCHED);
            it.set_expire_in_place(0x0a0b_0c0d);
            for now in [0x12_3456, 0xff_ffff, 0x80_0000, 0] {
                it.set_atime(now);
                assert_eq!((it.klen(), it.vlen(), it.size()), (klen, vlen, size));
                assert_eq!(it.shared_lens(), (klen, vlen));
                let a = now & ATIME_MASK as u32;
                assert_eq!((it.atime(), it.shared_atime()), (a, a));
                assert_eq!(it.idle_secs(now.wrapping_add(5)), 5);
            }
            assert_eq!(it.iflags(), meta.iflags() & !FETCHED | STALE);
            assert_eq!(
                (it.expire(), it.shared_expire(it.iflags())),
                (0x0a0b_0c0d, 0x0a0b_0c0d)
            );
            assert_eq!((it.flags(), it.stored_cas()), (meta.flags, meta.cas));
            assert_eq!(it.shared_fixed(it.iflags()), (meta.flags, meta.cas));
            assert_eq!(it.shared_key_offset(it.iflags()), hl + opt);
            assert_eq!(it.key(), &key[..]);
            assert_eq!(it.value(), &value[..]);
            assert_eq!(buf[size], 0xff, "nothing written past the record");
        }
    }

    #[test]
    fn roundtrip_all_fields() {
        let mut buf = vec![0u64; 64];
        let meta = ItemMeta {
            expire: 77,
            flags: 0xdead_beef,
            cas: Some(0x0123_4567_89ab_cdef),
            iflags: FETCHED,
        };
        let it =
            unsafe { RawItem::write(buf.as_mut_ptr() as *mut u8, b"key", b"val", b"ue", &meta, 5) };
        assert_eq!(it.key(), b"key");
        assert_eq!(it.value(), b"value");
        assert_eq!(it.expire(), 77);
        assert_eq!(it.flags(), 0xdead_beef);
        assert_eq!(it.stored_cas(), Some(0x0123_4567_89ab_cdef));
        assert_eq!(it.atime(), 5);
        assert!(it.iflags() & FETCHED != 0);
        assert_eq!(it.size(), record_size(3, 5, &meta));
        it.set_iflags(STALE, FETCHED);
        assert!(it.iflags() & STALE != 0 && it.iflags() & FETCHED == 0);
        assert_eq!(it.value(), b"value");
        it.set_expire_in_place(99);
        assert_eq!(it.expire(), 99);
        assert_eq!(it.flags(), 0xdead_beef);
    }
}
