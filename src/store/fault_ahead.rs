//! Fault-ahead: the pages of the next free segments are faulted in by a
//! helper thread before the worker writes to them, so no request waits
//! while the kernel zeroes fresh memory. The same thread collapses each
//! 2 MiB of hash index buckets filled into a huge page (`collapse`).
//!
//! Why: the store appends, so until the arena has been written through
//! once, sets keep landing on memory never touched. With transparent huge
//! pages the first write to each 2 MiB faults the whole page in and the
//! kernel zeroes it on the writing thread: on this host (a VM, whose own
//! host also backs the memory on first touch) that took 6-10 ms of the
//! worker every ~0.9 s at 20,000 sets/s of 100 bytes (perf: bursts of
//! `clear_page_erms` under `do_huge_pmd_anonymous_page`), and every request
//! arriving meanwhile waited: corecache's open-loop SET p99.9 was 5-6 ms
//! where memcached's, which faults 4 KiB at a time as its slabs fill, was
//! 1.5-3 ms (docs/PERFORMANCE.md, issue 23).
//!
//! How: one thread per store, started when the store is made, with the
//! worker's CPU affinity (so pages come from the worker's NUMA node) and
//! at nice 19, so it runs mostly in the worker's idle time and yields at
//! the kernel's next preemption point (the huge page zeroing loop checks
//! every 4 KiB) when the worker wakes. It calls
//! `madvise(MADV_POPULATE_WRITE)` (Linux 5.14) on each range it is sent,
//! a huge page at a time (`CHUNK`; why not `SCHED_IDLE`: `NICE`).
//!
//! Why this is sound while the worker uses the same memory: populating
//! only maps pages, it never changes what a byte reads (anonymous memory
//! not yet mapped reads as zero and is mapped zeroed; a mapped page is left
//! alone), so it cannot race with the worker's writes in any way the worker
//! could observe. The one thing it can undo is `Arena::discard`: a segment
//! retired (its pages given back) after its range was sent would be
//! populated again and cost memory, not contents. Each job carries the
//! store's discard epoch at sending time and is skipped if a discard has
//! happened since; the window left between that check and the madvise is
//! one job's worth of memory until the segment is next used. On a kernel
//! without MADV_POPULATE_WRITE each call fails at once and writes fault as
//! before.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;

/// Linux's `MADV_POPULATE_WRITE` (uapi asm-generic/mman-common.h), not in
/// every libc crate version.
const MADV_POPULATE_WRITE: libc::c_int = 23;

/// Linux's `MADV_COLLAPSE` (6.1): makes the range's small pages one huge
/// page now, copying them, where khugepaged would take minutes to.
const MADV_COLLAPSE: libc::c_int = 25;

/// One range to fault in (or collapse): address and length in bytes, the
/// advice, and the discard epoch when it was sent.
struct Job {
    addr: usize,
    len: usize,
    advice: libc::c_int,
    epoch: u64,
}

/// The worker's end: sends ranges to the helper thread.
pub struct FaultAhead {
    tx: Sender<Job>,
    /// Bumped before every discard of arena memory (see module docs).
    epoch: Arc<AtomicU64>,
}

impl FaultAhead {
    /// Starts the helper thread; None if it cannot be started.
    pub fn start() -> Option<FaultAhead> {
        let (tx, rx) = mpsc::channel();
        let epoch = Arc::new(AtomicU64::new(0));
        let seen = epoch.clone();
        std::thread::Builder::new()
            .name("fault-ahead".into())
            .spawn(move || run(rx, seen))
            .ok()?;
        Some(FaultAhead { tx, epoch })
    }

    /// Asks for the pages under `len` bytes at `addr` to be faulted in
    /// soon; `page` is the mapping's page size (madvise wants whole pages:
    /// 4 KiB, or 2 MiB for hugetlb). Never blocks. False if the thread is
    /// gone (it only ends by panicking): stop asking.
    pub fn request(&self, addr: *const u8, len: usize, page: usize) -> bool {
        // Outward to whole pages: a segment size that is not a multiple of
        // the page, or a 1 MiB segment in a 2 MiB hugetlb page, still
        // lies in pages of its own mapping, and populating a neighbour's
        // share changes nothing it reads.
        let start = addr as usize / page * page;
        let end = (addr as usize + len).next_multiple_of(page);
        let job = Job {
            addr: start,
            len: end - start,
            advice: MADV_POPULATE_WRITE,
            epoch: self.epoch.load(Ordering::Acquire),
        };
        self.tx.send(job).is_ok()
    }

    /// Asks for `len` bytes at `addr`, whole 2 MiB pages of memory in use
    /// and asked to be on transparent huge pages, to be collapsed into
    /// huge pages soon (the hash index's buckets, faulted in as small
    /// pages as it grew). Never blocks. The contents stay as they are: the
    /// kernel copies the small pages while no one can write them.
    pub fn collapse(&self, addr: usize, len: usize) {
        let job = Job {
            addr,
            len,
            advice: MADV_COLLAPSE,
            epoch: self.epoch.load(Ordering::Acquire),
        };
        let _ = self.tx.send(job);
    }

    /// Called before arena memory is discarded: ranges sent before now are
    /// skipped if not yet faulted in.
    pub fn before_discard(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }
}

/// The most one `madvise` populates: one huge page. The call holds the
/// process's `mmap_lock` (read) for its whole range, and this thread can
/// be preempted inside it; a chunk bounds what one preemption holds.
const CHUNK: usize = 2 << 20;

/// The helper's nice value: the lowest priority that is still
/// `SCHED_OTHER`. It was `SCHED_IDLE` (weight 3 against a normal thread's
/// 1024), and that inverted priorities: preempted inside `madvise` while
/// another process kept its CPU busy, it went unscheduled for long
/// stretches still holding `mmap_lock`, and every thread of the server
/// that then needed the lock for writing (any `mmap`, `munmap` or
/// `mprotect`: allocations, a worker's ring being set up) waited behind
/// it. With a busy loop sharing the CPU, a server's first reply took up
/// to 0.2 s (17 s with three busy processes) against 15 ms with
/// fault-ahead off. At nice 19 (weight 15) a worker that wakes still
/// preempts it, and it is never shut out for long.
const NICE: libc::c_int = 19;

fn run(rx: Receiver<Job>, epoch: Arc<AtomicU64>) {
    // SAFETY: plain integers; on Linux PRIO_PROCESS with a thread id sets
    // that thread's nice value. A refusal leaves it at normal priority,
    // which is still correct.
    unsafe {
        let tid = libc::gettid() as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, NICE);
    }
    while let Ok(job) = rx.recv() {
        let mut at = job.addr;
        let end = job.addr + job.len;
        while at < end {
            // Discards give back arena memory, never index buckets.
            if job.advice == MADV_POPULATE_WRITE && epoch.load(Ordering::Acquire) != job.epoch {
                break;
            }
            let len = (end - at).min(CHUNK);
            // A kernel without MADV_POPULATE_WRITE (before 5.14) says
            // EINVAL to every call, cheaply; writes then fault as before.
            // The thread stays, so a call refused for another reason does
            // not stop it.
            // SAFETY: neither MADV_POPULATE_WRITE nor MADV_COLLAPSE
            // changes the contents of the range (see the module docs and
            // `collapse`); on an address no longer mapped either fails
            // with ENOMEM and does nothing.
            unsafe { libc::madvise(at as *mut libc::c_void, len, job.advice) };
            at += len;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::store::arena::resident_pages as resident;

    fn map(len: usize) -> memmap2::MmapMut {
        memmap2::MmapOptions::new().len(len).map_anon().unwrap()
    }

    /// Every fault-ahead thread of this process: (scheduling policy, nice),
    /// from /proc/self/task/*/stat (fields 41 and 19).
    fn helpers() -> Vec<(i64, i64)> {
        let mut found = Vec::new();
        for t in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
            let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
            if comm.trim() != "fault-ahead" {
                continue;
            }
            let Ok(stat) = std::fs::read_to_string(t.path().join("stat")) else {
                continue;
            };
            // Fields after the parenthesised name, which may hold spaces.
            let rest: Vec<&str> = stat
                .rsplit_once(')')
                .unwrap()
                .1
                .split_whitespace()
                .collect();
            // rest[0] is field 3 (state): field n is rest[n - 3].
            found.push((rest[41 - 3].parse().unwrap(), rest[19 - 3].parse().unwrap()));
        }
        found
    }

    #[test]
    fn the_helper_runs_at_nice_19_not_sched_idle() {
        // SCHED_IDLE starved it while it held mmap_lock (see NICE): it must
        // be an ordinary thread at the lowest ordinary priority.
        let fa = FaultAhead::start().unwrap();
        let mut seen = Vec::new();
        for _ in 0..200 {
            seen = helpers();
            if !seen.is_empty() && seen.iter().all(|&(_, nice)| nice == NICE as i64) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(!seen.is_empty(), "no fault-ahead thread");
        for (policy, nice) in seen {
            assert_eq!(policy, libc::SCHED_OTHER as i64, "policy");
            assert_eq!(nice, NICE as i64, "nice");
        }
        drop(fa);
    }

    fn wait_resident(p: *const u8, len: usize, want: usize) -> usize {
        for _ in 0..200 {
            let n = resident(p, len);
            if n >= want {
                return n;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        resident(p, len)
    }

    #[test]
    fn a_requested_range_becomes_resident_and_keeps_its_contents() {
        let mut m = map(1 << 20);
        m[4096] = 7;
        let p = m.as_ptr();
        assert!(resident(p, 1 << 20) < 256);
        let fa = FaultAhead::start().unwrap();
        assert!(fa.request(p, 1 << 20, 4096));
        assert_eq!(wait_resident(p, 1 << 20, 256), 256);
        assert_eq!(m[4096], 7);
        assert!(m
            .iter()
            .enumerate()
            .all(|(i, b)| *b == if i == 4096 { 7 } else { 0 }));
    }

    #[test]
    fn an_unaligned_range_is_widened_to_whole_pages_and_the_thread_goes_on() {
        let m = map(1 << 20);
        let p = m.as_ptr();
        let fa = FaultAhead::start().unwrap();
        // 4104-byte segments (a size -o segment_size allows): madvise
        // refused such a range with EINVAL, and the thread stopped.
        assert!(fa.request(unsafe { p.add(4104) }, 4104, 4096)); // SAFETY: inside `m`
        assert!(fa.request(unsafe { p.add(8 * 4104) }, 4104, 4096)); // SAFETY: as above
        assert_eq!(wait_resident(p, 1 << 20, 4), 4, "pages 1-2 and 8-9");
        assert_eq!(resident(unsafe { p.add(4 * 4096) }, 4096), 0); // SAFETY: as above
    }

    #[test]
    fn a_range_sent_before_a_discard_is_skipped() {
        let (stale, fresh) = (map(1 << 20), map(1 << 20));
        let epoch = Arc::new(AtomicU64::new(0));
        let (tx, rx) = mpsc::channel();
        let job = |m: &memmap2::MmapMut, epoch| Job {
            addr: m.as_ptr() as usize,
            len: 1 << 20,
            advice: MADV_POPULATE_WRITE,
            epoch,
        };
        tx.send(job(&stale, 0)).unwrap();
        // A discard happened after the first job was sent.
        epoch.fetch_add(1, Ordering::AcqRel);
        tx.send(job(&fresh, 1)).unwrap();
        drop(tx);
        let e = epoch.clone();
        std::thread::spawn(move || run(rx, e)).join().unwrap();
        assert_eq!(resident(fresh.as_ptr(), 1 << 20), 256);
        assert_eq!(resident(stale.as_ptr(), 1 << 20), 0);
    }

    /// The AnonHugePages (KiB) of this process's mapping that starts at
    /// `addr`, from /proc/self/smaps.
    fn anon_huge_kib(addr: usize) -> Option<usize> {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let head = format!("{addr:x}-");
        let mut lines = smaps.lines().skip_while(|l| !l.starts_with(&head)).skip(1);
        let line = lines.find(|l| l.starts_with("AnonHugePages:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    /// Linux 6.1 or later (MADV_COLLAPSE).
    fn kernel_collapses() -> bool {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let mut v = release
            .trim()
            .split(['.', '-'])
            .map(|n| n.parse::<u32>().unwrap_or(0));
        (v.next().unwrap_or(0), v.next().unwrap_or(0)) >= (6, 1)
    }

    #[test]
    fn a_collapse_keeps_contents_and_makes_a_huge_page() {
        let huge = crate::store::arena::HUGE_PAGE;
        let m = map(3 * huge);
        let at = (m.as_ptr() as usize).next_multiple_of(huge);
        // Faulted in as small pages (nothing asked for huge ones yet), as
        // index buckets are before their 2 MiB is full.
        for off in (0..huge).step_by(4096) {
            // SAFETY: inside `m`, which this test owns.
            unsafe { ((at + off) as *mut u64).write(off as u64 ^ 0x5a5a) };
        }
        crate::store::arena::advise_huge(at as *const u8, huge);
        let fa = FaultAhead::start().unwrap();
        fa.collapse(at, huge);
        let collapsed = kernel_collapses() && crate::store::arena::thp_available();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while collapsed
            && anon_huge_kib(at) != Some(huge >> 10)
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        if collapsed {
            assert_eq!(anon_huge_kib(at), Some(huge >> 10), "not collapsed");
        }
        for off in (0..huge).step_by(4096) {
            // SAFETY: as above.
            let v = unsafe { ((at + off) as *const u64).read() };
            assert_eq!(v, off as u64 ^ 0x5a5a, "offset {off}");
        }
    }

    #[test]
    fn a_store_keeps_the_next_free_segments_resident_and_no_others() {
        let cfg = crate::store::StoreConfig {
            memory: 32 << 20,
            huge_pages: false,
            fault_ahead: true,
            ..Default::default()
        };
        let mut s =
            crate::store::Store::new(cfg, crate::store::clock::Clock::manual(1_700_000_000))
                .unwrap();
        let seg = s.segs.seg_size;
        let base = s.segs.arena().base_ptr();
        // The reserve took segment 0; 1..=4 are next.
        // SAFETY (three below): offsets inside the 32 MiB arena.
        let next = unsafe { base.add(seg) };
        assert_eq!(wait_resident(next, 4 * seg, 4 * seg / 4096), 4 * seg / 4096);
        let far = unsafe { base.add(12 * seg) };
        assert_eq!(resident(far, seg), 0, "segment 12 is not next");
        // Taking one sends the fifth.
        s.segs.take(0, 2).unwrap();
        let fifth = unsafe { base.add(5 * seg) };
        assert_eq!(wait_resident(fifth, seg, seg / 4096), seg / 4096);
    }

    /// Raising `cache_memlimit` carves segments that stay untouched until
    /// used: only the next few to be taken are faulted in. Each one put
    /// back was faulted in before, so an empty store raised to 256 MiB
    /// became 256 MiB resident.
    #[test]
    fn a_raised_limit_faults_in_only_the_next_segments() {
        let cfg = crate::store::StoreConfig {
            memory: 16 << 20,
            huge_pages: false,
            fault_ahead: true,
            max_memory: 512 << 20,
            ..Default::default()
        };
        let mut s =
            crate::store::Store::new(cfg, crate::store::clock::Clock::manual(1_700_000_000))
                .unwrap();
        let seg = s.segs.seg_size;
        let carved = s.segs.count();
        assert!(s.set_memory_limit(256 << 20));
        assert!(s.segs.count() > 200);
        std::thread::sleep(std::time::Duration::from_millis(1500));
        // SAFETY: the segments carved by the raise lie inside the arena.
        let grown = unsafe { s.segs.arena().base_ptr().add(carved * seg) };
        let pages = resident(grown, (s.segs.count() - carved) * seg);
        assert!(
            pages <= crate::store::segment::FAULT_AHEAD_SEGMENTS * seg / 4096,
            "{pages} pages of the raised limit resident"
        );
    }
}
