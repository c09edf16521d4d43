//! `Segments::give_back_spill`: what a huge page faulted in for a segment
//! brings of its empty neighbours goes back to the kernel, and nothing a
//! segment in use holds is touched.

use super::*;
use crate::store::arena::resident_pages;

const SEG: usize = 1 << 20;
const PAGES: usize = SEG / 4096;

/// Eight 1 MiB segments over an arena of eleven, on transparent huge
/// pages where the host has them (a length that is not a whole number of
/// huge pages keeps hugetlb out): the last segment retired, the other
/// seven taken, so the room past them and the retired one hold nothing.
fn segments() -> Segments {
    let arena = Arena::new(11 * SEG, true).unwrap();
    let mut s = Segments::new(arena, SEG, 8);
    assert!(s.retire_one());
    let mut taken: Vec<u32> = (0..7).map(|_| s.take(0, 1).unwrap()).collect();
    taken.sort_unstable();
    assert_eq!(taken, (0..7).collect::<Vec<u32>>());
    s
}

fn fill(s: &Segments, id: u32, len: usize) {
    // SAFETY: segment `id` is taken and `len` is within it.
    let bytes = unsafe { std::slice::from_raw_parts_mut(s.ptr(id, 0), len) };
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = (i as u32 ^ id) as u8 | 1;
    }
}

fn intact(s: &Segments, id: u32, len: usize) -> bool {
    // SAFETY: as in `fill`.
    let bytes = unsafe { std::slice::from_raw_parts(s.ptr(id, 0), len) };
    bytes
        .iter()
        .enumerate()
        .all(|(i, b)| *b == (i as u32 ^ id) as u8 | 1)
}

/// Pages resident of the byte range [from, to) of the arena.
fn resident_in(s: &Segments, from: usize, to: usize) -> usize {
    // SAFETY: the range lies inside the arena's mapping.
    resident_pages(unsafe { s.arena.base_ptr().add(from) }, to - from)
}

/// The worst a spill can do, simulated so that it does not depend on the
/// kernel having a huge page to give: every page of every segment that
/// holds nothing, and of the room past them, resident. After two passes
/// (the first only ages what was watched), no segment that holds nothing
/// and shares a huge page with a segment taken keeps a page; the taken
/// ones keep all of theirs, bytes unchanged; the short one keeps its
/// pages up to its end.
#[test]
fn what_a_huge_page_brought_of_empty_neighbours_goes_back() {
    let mut s = segments();
    s.shorten(6, SEG / 2);
    for id in 0..6 {
        fill(&s, id, SEG);
    }
    fill(&s, 6, SEG / 2);
    s.arena.prefault(6 * SEG + SEG / 2, SEG / 2);
    s.arena.prefault(7 * SEG, 4 * SEG);
    assert_eq!(
        resident_in(&s, 6 * SEG, 11 * SEG),
        5 * PAGES - PAGES / 2 + PAGES / 2
    );

    s.give_back_spill();
    assert_eq!(
        resident_in(&s, 7 * SEG, 11 * SEG),
        4 * PAGES,
        "not yet a pass old"
    );
    s.give_back_spill();

    let base = s.arena.base_ptr() as usize;
    let hp = HUGE_PAGE;
    // The huge pages segment 6 lies in reach the retired one and the
    // room past it as far as the next huge page boundary.
    let reach = ((base + 7 * SEG).next_multiple_of(hp) - base).max(7 * SEG);
    if reach > 7 * SEG {
        assert_eq!(resident_in(&s, 7 * SEG, 8 * SEG), 0, "retired segment");
        let room_end = reach.min(11 * SEG);
        if room_end > 8 * SEG {
            assert_eq!(resident_in(&s, 8 * SEG, room_end), 0, "room past");
        }
    }
    assert_eq!(
        resident_in(&s, 6 * SEG + SEG / 2, 7 * SEG),
        0,
        "short's tail"
    );
    for id in 0..6 {
        assert_eq!(
            resident_in(&s, id as usize * SEG, (id as usize + 1) * SEG),
            PAGES
        );
        assert!(intact(&s, id, SEG), "segment {id}");
    }
    assert!(intact(&s, 6, SEG / 2), "the short segment's bytes");
}

/// The same with real writes: whatever the kernel faulted in (huge pages
/// where it had them), the retired segment ends with no page inside the
/// huge pages of segment 6, and every byte written reads back.
#[test]
fn real_huge_page_faults_leave_written_bytes_alone() {
    let mut s = segments();
    for id in 0..7 {
        fill(&s, id, SEG);
    }
    let spilled = resident_in(&s, 7 * SEG, 8 * SEG);
    s.give_back_spill();
    s.give_back_spill();
    let base = s.arena.base_ptr() as usize;
    if !(base + 7 * SEG).is_multiple_of(HUGE_PAGE) {
        assert_eq!(
            resident_in(&s, 7 * SEG, 8 * SEG),
            0,
            "{spilled} pages had spilled"
        );
    }
    for id in 0..7 {
        assert!(intact(&s, id, SEG), "segment {id}");
    }
}

/// Free segments are the next to be written: what a huge page brought of
/// them stays (giving it back would only split the huge page of the
/// segment in use beside them), however the spill came.
#[test]
fn free_segments_beside_a_taken_one_keep_their_pages() {
    let arena = Arena::new(11 * SEG, true).unwrap();
    let mut s = Segments::new(arena, SEG, 8);
    let taken: Vec<u32> = (0..4).map(|_| s.take(0, 1).unwrap()).collect();
    let free: Vec<u32> = (0..8).filter(|id| !taken.contains(id)).collect();
    for &id in &taken {
        fill(&s, id, SEG);
    }
    for &id in &free {
        s.arena.prefault(id as usize * SEG, SEG);
    }
    s.give_back_spill();
    s.give_back_spill();
    for &id in &free {
        let at = id as usize * SEG;
        assert_eq!(resident_in(&s, at, at + SEG), PAGES, "free segment {id}");
    }
    for &id in &taken {
        assert!(intact(&s, id, SEG), "segment {id}");
    }
}
