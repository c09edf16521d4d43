//! The memory that segments are carved from: one anonymous mapping per
//! shard, backed by 2 MiB hugetlb pages when the host has them reserved,
//! by transparent huge pages (madvise) otherwise, by plain pages last.

use memmap2::{MmapMut, MmapOptions};

/// Bytes per huge page (hugetlb or transparent) on x86-64.
pub const HUGE_PAGE: usize = 2 << 20;
/// log2 of the huge page size, as MAP_HUGETLB wants it.
const HUGE_PAGE_SHIFT: u8 = 21;

/// What backs an arena's memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageKind {
    /// Explicit 2 MiB hugetlb pages.
    HugeTlb,
    /// Transparent huge pages requested with madvise.
    Transparent,
    /// Ordinary 4 KiB pages.
    Plain,
}

impl PageKind {
    /// The name `stats` reports (`page_kind`).
    pub fn name(self) -> &'static str {
        match self {
            PageKind::HugeTlb => "hugetlb",
            PageKind::Transparent => "thp",
            PageKind::Plain => "plain",
        }
    }
}

/// One anonymous mapping that a shard's segments are carved from.
pub struct Arena {
    map: MmapMut,
    kind: PageKind,
}

impl Arena {
    /// Maps `len` bytes. Hugetlb is only tried when `len` is a whole number
    /// of huge pages, so the mapping is never larger than asked.
    pub fn new(len: usize, allow_huge: bool) -> std::io::Result<Arena> {
        Arena::with_room(len, len, allow_huge)
    }

    /// Maps `len` bytes, and address space up to `room` bytes when it can
    /// without hugetlb pages (which are reserved when mapped): the rest is
    /// mapped without swap reservation (MAP_NORESERVE) and never touched
    /// until `cache_memlimit` raises the limit into it, so it costs no
    /// memory. If that mapping is refused (strict overcommit), just `len`.
    pub fn with_room(len: usize, room: usize, allow_huge: bool) -> std::io::Result<Arena> {
        let len = len.max(1);
        if allow_huge && len.is_multiple_of(HUGE_PAGE) {
            if let Ok(map) = MmapOptions::new()
                .len(len)
                .huge(Some(HUGE_PAGE_SHIFT))
                .map_anon()
            {
                return Ok(Arena {
                    map,
                    kind: PageKind::HugeTlb,
                });
            }
        }
        if room > len {
            if let Ok(map) = MmapOptions::new().len(room).no_reserve_swap().map_anon() {
                return Ok(Arena::plain_or_thp(map, allow_huge));
            }
        }
        // Without swap reservation too: the kernel's overcommit heuristic
        // refuses one mapping past RAM and swap, where memcached, which
        // allocates as it goes, starts with any -m. Pages still come as
        // written; strict overcommit ignores the flag and counts them.
        let map = MmapOptions::new().len(len).no_reserve_swap().map_anon()?;
        Ok(Arena::plain_or_thp(map, allow_huge))
    }

    fn plain_or_thp(map: MmapMut, allow_huge: bool) -> Arena {
        let kind = if allow_huge && thp_available() && map.advise(memmap2::Advice::HugePage).is_ok()
        {
            PageKind::Transparent
        } else {
            PageKind::Plain
        };
        Arena { map, kind }
    }

    /// What the mapping ended up backed by.
    pub fn kind(&self) -> PageKind {
        self.kind
    }

    /// Bytes mapped.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether nothing is mapped (never, as `new` maps at least a byte).
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Gives the pages of `len` bytes at `off` back to the kernel; they read
    /// as zero when next touched. Best effort: a refusal (hugetlb pages
    /// not covered whole) leaves them resident, which changes nothing else.
    ///
    /// Only the pages wholly inside the range go: madvise rounds a length
    /// up to a whole page, and with a segment size that is not a multiple
    /// of the page size (`-o segment_size` asks only for a multiple of 8)
    /// that zeroed the first bytes of the next segment, live records
    /// included (a review found it, giving back a retired segment).
    pub fn discard(&self, off: usize, len: usize) {
        debug_assert!(off + len <= self.map.len());
        let page = self.page_size();
        let (start, end) = (off.next_multiple_of(page), (off + len) / page * page);
        if end <= start {
            return;
        }
        // SAFETY: the range lies inside the mapping and inside the caller's
        // bytes (a segment on no list, in no index slot), page aligned.
        unsafe { discard_pages(self.base().add(start), end - start) }
    }

    /// Bytes per page of the mapping: what madvise ranges must be whole
    /// multiples of.
    pub fn page_size(&self) -> usize {
        match self.kind {
            PageKind::HugeTlb => HUGE_PAGE,
            PageKind::Transparent | PageKind::Plain => 4096,
        }
    }

    /// The first byte of the mapping, for reading only.
    pub fn base_ptr(&self) -> *const u8 {
        self.map.as_ptr()
    }

    /// The first byte of the mapping. Writable: the pointer comes from
    /// the mapping, not from a reference to this value.
    pub fn base(&self) -> *mut u8 {
        self.map.as_ptr() as *mut u8
    }

    /// Faults the pages of `len` bytes from `from` in now (`-o prefault`), so no
    /// request pays for the kernel zeroing fresh memory: the store
    /// appends, so until the arena has been written through once, every
    /// set lands on new pages.
    pub fn prefault(&self, from: usize, len: usize) {
        let base = self.base();
        let end = (from + len).min(self.map.len());
        for off in (from..end).step_by(4096) {
            // SAFETY: `off` is inside the mapping; anonymous memory reads
            // as zero, so writing zero leaves its contents unchanged.
            unsafe { base.add(off).write_volatile(0) };
        }
    }
}

/// Gives the pages of `len` bytes at `ptr` back to the kernel; they read as
/// zero when next touched. Best effort: a refusal (a range not of whole
/// pages) leaves them resident, which changes nothing else.
///
/// # Safety
///
/// The range must lie inside one private anonymous mapping, and nothing
/// may be using its bytes (no reference to them, no kernel I/O into them).
pub unsafe fn discard_pages(ptr: *mut u8, len: usize) {
    // SAFETY: per the contract, MADV_DONTNEED only zeroes bytes no one uses.
    unsafe { libc::madvise(ptr as *mut libc::c_void, len, libc::MADV_DONTNEED) };
}

/// Pages (of 4 KiB) of `len` bytes at `p` the kernel has resident, by
/// mincore(2): what the tests of memory given back and faulted in count.
/// `p` must be page aligned and the range inside a live mapping.
#[cfg(test)]
pub(crate) fn resident_pages(p: *const u8, len: usize) -> usize {
    let mut v = vec![0u8; len / 4096];
    // SAFETY: `v` has one byte per page of the range, which the caller
    // says lies in a live mapping.
    let r = unsafe { libc::mincore(p as *mut libc::c_void, len, v.as_mut_ptr()) };
    assert_eq!(r, 0);
    v.iter().filter(|b| **b & 1 == 1).count()
}

/// Asks for transparent huge pages under memory that was allocated but
/// not yet touched (the hash index, whose lookups land on random lines:
/// with 4 KiB pages nearly every one also misses the TLB). Only whole
/// 2 MiB pages inside the range are affected; a refusal changes nothing.
pub fn advise_huge(ptr: *const u8, len: usize) {
    let start = (ptr as usize).next_multiple_of(HUGE_PAGE);
    let end = (ptr as usize + len) / HUGE_PAGE * HUGE_PAGE;
    if end > start && thp_available() {
        // SAFETY: [start, end) lies inside one live allocation of the
        // caller; MADV_HUGEPAGE changes how it is backed, never its contents.
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
    }
}

pub(crate) fn thp_available() -> bool {
    match std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled") {
        Ok(s) => !s.contains("[never]"),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_requested_length_and_is_writable() {
        let a = Arena::new(4 << 20, true).unwrap();
        assert_eq!(a.len(), 4 << 20);
        let p = a.base();
        unsafe {
            p.write(7);
            p.add((4 << 20) - 1).write(9);
            assert_eq!(p.read(), 7);
        }
        let plain = Arena::new(1 << 20, false).unwrap();
        assert_eq!(plain.kind(), PageKind::Plain);
    }

    /// Discarding a segment whose size is not a whole number of pages
    /// (6 KiB here) zeroes only pages wholly inside it: its neighbours'
    /// bytes stay as written, whichever side the partial page is on.
    #[test]
    fn discard_leaves_the_neighbours_bytes_alone() {
        const SEG: usize = 6144;
        let a = Arena::new(4 * SEG, false).unwrap();
        let fill = |a: &Arena| {
            // SAFETY: writes inside the mapping.
            unsafe { std::ptr::write_bytes(a.base(), 0xab, 4 * SEG) }
        };
        // SAFETY: reads inside the mapping.
        let byte = |a: &Arena, i: usize| unsafe { a.base().add(i).read() };
        for seg in 0..4 {
            fill(&a);
            a.discard(seg * SEG, SEG);
            let (lo, hi) = (seg * SEG, (seg + 1) * SEG);
            for i in (0..4 * SEG).filter(|i| !(lo..hi).contains(i)) {
                assert_eq!(
                    byte(&a, i),
                    0xab,
                    "segment {seg}: byte {i} outside it zeroed"
                );
            }
            // The whole pages inside went back (read as zero).
            let first = lo.next_multiple_of(4096);
            if first + 4096 <= hi {
                assert_eq!(byte(&a, first), 0, "segment {seg}: its page kept");
            }
        }
    }
}
