//! Merge eviction in bounded steps, started ahead of need.
//!
//! A merge copies or evicts every record of one to [`COMPACT_RUN`]
//! segments (`merge.rs`); done at once by the write that found no free
//! segment, it held the worker 1.5 ms at p99.99 of sets into a full 64 MiB
//! store and up to 8 ms (`examples/eviction_stall.rs`, 1 MiB segments of
//! 123-byte records). So a merge is a job that runs [`MERGE_STEP`] records
//! at a time: the worker runs steps between loop turns while the next
//! segment a write would need is not free yet (`evict_ahead_pending`), and a
//! write that finds none anyway finishes the job in progress (`merge`).
//!
//! Between steps the store changes under the job, and the job checks what
//! it holds before using it:
//! - a victim or a compaction destination is kept with its incarnation
//!   (`SegHeader::seq`); the expiry pass or a flush sweep may free either
//!   (every copy in a destination expired), and a segment freed, or freed
//!   and taken again, is skipped, never read or written as the job's; so
//!   is a victim that became its chain's open tail again (the expiry pass
//!   freed the tail after it), which writes append to;
//! - records of a victim may be replaced or deleted meanwhile (`DELETED`,
//!   and a record no slot points at is not moved), and frequencies change:
//!   the hand's cut, counted in earlier steps, is an estimate, and what is
//!   kept is still bounded by the open segment's room and the reserve;
//! - a victim may be pinned by a send: freeing parks it until the send is
//!   done (`Segments::release`), so the reserve may not be renewed at
//!   once, and until it is, `evict` frees a segment the whole-segment way.
//!
//! [`COMPACT_RUN`]: super::merge
//! [`MERGE_STEP`]: MERGE_STEP

use super::eviction::Eviction;
use super::segment::NONE;
use super::Store;
use std::time::{Duration, Instant};

/// Records one merge step reads at most: about 0.2-0.4 µs each (an index
/// lookup, a cache miss, and a copy for those kept), some 10 µs a step.
pub const MERGE_STEP: usize = 32;

/// The fewest segments a shard has for the hand to pass ahead of need.
/// Compaction ahead costs no live item (it frees dead bytes, which would
/// have waited in their segments), but the hand evicts: run early, what it
/// frees waits empty until a write needs it, about a segment's worth of
/// items. Measured with the hand ahead at every size (`scripts/
/// bench-memory.py`): -m 256 fill 0.4 % fewer items; -m 64 1.2-1.4 % fewer
/// at -t 1 and 1.8-1.9 % at -t 2 (32 segments a shard), which put live
/// items below memcached's. In smaller shards the hand's first pass, which
/// counts its victim's bytes by frequency and evicts nothing, still runs
/// ahead (once the open segment runs low), and the job then waits for the
/// write that needs the room (`merge_waits_for_need`): p99.99 of a set into
/// a full 64 MiB store 1.6-1.7 ms -> 0.76-0.83 ms (`examples/eviction_stall`),
/// or, since session 33, for an open segment nearly full ([`HAND_LEAD_DIV`]).
pub const AHEAD_HAND_SEGMENTS: usize = 128;

/// In a shard of fewer than [`AHEAD_HAND_SEGMENTS`] segments, the hand's
/// evicting pass runs ahead of need once a write has left its open
/// segment less than 1/`HAND_LEAD_DIV` of its room (64 KiB of 1 MiB), so
/// the write that needs the next segment mostly finds it freed instead
/// of running the whole pass. Measured 2026-12-04 (session 33) with
/// `examples/eviction_stall` (a full 64 MiB store, 1 MiB segments of
/// 140-byte records, 10 µs of steps every 16 sets): p99.99 of a set
/// 659 µs with the pass left to the write, 63 / 104 / 80 / 80 / 75 µs
/// with a lead of 1/8 / 1/4 / 1/16 / 1/32 / 1/64. `examples/hitsim` (-m 64,
/// 2.56 M operations, merge steps ahead) at 1/16 against none: hit ratio
/// 0.8168 / 0.8169 (no TTL, 1 shard), 0.8153 / 0.8152 (2 shards), 0.8161
/// / 0.8161 (jittered TTLs, 1 shard), 0.8149 / 0.8150 (2 shards); live
/// items within a segment's worth of each other (104,145 / 103,467,
/// 100,043 / 101,190, 100,587 / 99,777, 99,705 / 98,369). With a lead of
/// 1/8 live items fell 1-2 % in three of the four. A reviewer found that
/// a pass whose keeps opened a fresh segment left the flag set, so the
/// next pass ran ahead at once (9-10 in a row, a segment and more evicted
/// early): a fresh open segment now resets it (`Store::open_tail`), and a
/// pass not yet started gives way to expired segments and flush sweeps.
/// With that: p99.99 56 µs; hitsim 0.8168, 0.8150, 0.8161, 0.8150.
pub const HAND_LEAD_DIV: usize = 16;

/// Pacing of a merge by the writes that use up the room it must free
/// before a write needs it (a mutator assist, as Go's garbage collector
/// paces marking by allocation): a write that fits its open segment first
/// runs `ASSIST_LEAD` times its share of what the merge in progress has
/// left to read, its bytes over the room left, and at most
/// [`ASSIST_MAX`] records. Without it, under a zipf write load
/// (`ZIPF=1 examples/eviction_stall`), a compaction begun ahead was often
/// not done when its room ran out, and the write that then needed a
/// segment copied the rest itself: 2,000-9,000 records, 1-5 ms.
pub const ASSIST_LEAD: usize = 2;

/// Records a write's assist reads at most (a [`MERGE_STEP`], some 10 µs):
/// what a job still owes beyond it is left to the worker's slices ahead,
/// or to the write that needs the segment.
pub const ASSIST_MAX: usize = MERGE_STEP;

/// How far writes have filled their open segment since one was last
/// opened (`Store::open_tail`); it only rises in between, whatever the
/// mix of chains written, so eviction ahead waits on its changes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum TailFill {
    /// A quarter of its room or more left.
    #[default]
    Ample,
    /// Under a quarter: the hand's victim may be counted ahead.
    Low,
    /// Under 1/[`HAND_LEAD_DIV`]: the hand may evict ahead.
    NearlyFull,
}

impl TailFill {
    /// The fill of a segment of `seg_size` bytes with `left` bytes of room.
    pub(super) fn of(left: usize, seg_size: usize) -> TailFill {
        if left < seg_size / HAND_LEAD_DIV {
            TailFill::NearlyFull
        } else if left < seg_size / 4 {
            TailFill::Low
        } else {
            TailFill::Ample
        }
    }
}

/// What merge eviction chose to do (`Store::merge_plan`).
#[derive(Clone, Copy, Debug)]
pub enum Plan {
    /// Copy every live item of `.1` segments from `.0` on into fewer.
    Compact(u32, usize),
    /// Pass the hand over this segment.
    Hand(u32),
}

/// Where a compaction copies to.
#[derive(Debug)]
pub struct CompactTo {
    /// The destination being filled and its incarnation ((NONE, 0): none).
    pub dest: (u32, u64),
    /// The run's chain.
    pub bucket: u16,
    /// The run's place in the hand's order, which its copies take.
    pub order: u64,
    /// Destinations used so far.
    pub used: usize,
}

/// What the hand keeps of its victim (see `Store::hand_cut`).
#[derive(Debug)]
pub struct HandCut {
    /// Levels above this are kept whole (a level: reads since the hand
    /// last passed over rent, `merge.rs`).
    pub cut: u8,
    /// Bytes still kept at the cut frequency.
    pub room: usize,
    /// The victim's chain, whose open segment takes what is kept.
    pub bucket: u16,
    /// The mean live record (bytes) the count weighed records against.
    pub mean: usize,
}

#[derive(Debug)]
enum Work {
    /// Copying the run's segments, the `next`-th now.
    Compact {
        run: Vec<(u32, u64)>,
        next: usize,
        to: CompactTo,
    },
    /// Counting the victim's live bytes by level, for the cut, records
    /// weighed against a mean live record of `mean` bytes.
    Count {
        victim: (u32, u64),
        hist: Box<[usize; 256]>,
        mean: usize,
    },
    /// Keeping or evicting the victim's records. `started`: a step of
    /// this pass has run, so it goes on to the end whatever the open
    /// segment's room (see `merge_waits_for_need`).
    Hand {
        victim: (u32, u64),
        cut: HandCut,
        started: bool,
    },
}

/// What a step leads to.
enum Next {
    /// More of the same work.
    Stay,
    /// Other work (the hand after counting, or after a compaction that
    /// freed nothing).
    Then(MergeJob),
}

/// A merge in progress: what it does and the offset reached in the
/// segment it reads.
#[derive(Debug)]
pub(super) struct MergeJob {
    work: Work,
    off: u32,
}

impl Store {
    /// Whether a merge is in progress.
    #[inline]
    pub(super) fn merge_running(&self) -> bool {
        self.merge_job.is_some()
    }

    /// Whether the merge in progress may go on only when a write needs
    /// a segment: the hand's eviction part, in a shard of fewer than
    /// [`AHEAD_HAND_SEGMENTS`] segments, until a write leaves its open
    /// segment nearly full ([`HAND_LEAD_DIV`]). Its counting, which
    /// evicts nothing, runs ahead at every size.
    ///
    /// A pass not yet started also waits while whole expired segments or
    /// a flush sweep could make the room at no live item's cost, as the
    /// write path frees those before it evicts. A pass started goes on:
    /// its own keeps may open a fresh segment for their chain, which
    /// resets `tail_fill` (`Store::open_tail`), and stopping
    /// halfway would leave the rest to the write it was meant to spare.
    pub(super) fn merge_waits_for_need(&self) -> bool {
        let Some(MergeJob {
            work: Work::Hand { started, .. },
            ..
        }) = self.merge_job
        else {
            return false;
        };
        self.seg_limit < AHEAD_HAND_SEGMENTS
            && !started
            && (!self.tail_nearly_full() || self.expiry_has_segments() || self.sweep_pending())
    }

    /// A write left its open segment under a quarter of its room since
    /// one was last opened.
    pub(super) fn tail_low(&self) -> bool {
        self.tail_fill() >= TailFill::Low
    }

    /// How full writes have left their open segment since one was last
    /// opened.
    fn tail_fill(&self) -> TailFill {
        TailFill::of(self.tail_room, self.segs.seg_size)
    }

    /// A write left its open segment under 1/[`HAND_LEAD_DIV`] of its room
    /// since one was last opened.
    pub(super) fn tail_nearly_full(&self) -> bool {
        self.tail_fill() == TailFill::NearlyFull
    }

    /// What eviction ahead found nothing to do in, and waits to change:
    /// (store second, merges done, `tail_fill`).
    fn ahead_state(&self) -> (u32, u64, TailFill) {
        (self.clock.now(), self.stats.merges, self.tail_fill())
    }

    /// Begins a merge ahead of need, if one may begin now: a compaction
    /// always; the hand in a shard of fewer than [`AHEAD_HAND_SEGMENTS`]
    /// only once a write left its open segment under a quarter of its room
    /// (`tail_low`), so that the victim it counts is the one the next
    /// write's need finds (counted earlier, measured 0.0001-0.0003 lower hit
    /// ratio in `examples/hitsim.rs` at -m 64, 4 seeds).
    fn merge_begin_ahead(&mut self) -> bool {
        match self.merge_plan() {
            Some(Plan::Hand(_)) if self.seg_limit < AHEAD_HAND_SEGMENTS && !self.tail_low() => {
                false
            }
            Some(plan) => {
                self.merge_job = Some(self.job_for(plan));
                true
            }
            None => false,
        }
    }

    /// Plans a merge and makes it the job in progress; false if there is
    /// nothing to merge (or no reserve to copy into).
    pub(super) fn merge_begin(&mut self) -> bool {
        match self.merge_plan() {
            Some(plan) => {
                self.merge_job = Some(self.job_for(plan));
                true
            }
            None => false,
        }
    }

    fn job_for(&self, plan: Plan) -> MergeJob {
        let seq = |id: u32| (id, self.segs.header(id).seq);
        let work = match plan {
            Plan::Compact(a, k) => {
                let h = self.segs.header(a);
                let to = CompactTo {
                    dest: (NONE, 0),
                    bucket: h.ttl_bucket,
                    order: h.order,
                    used: 0,
                };
                let mut run = Vec::with_capacity(k);
                let mut s = a;
                for _ in 0..k {
                    run.push(seq(s));
                    s = self.segs.header(s).next;
                }
                Work::Compact { run, next: 0, to }
            }
            Plan::Hand(id) => Work::Count {
                victim: seq(id),
                hist: Box::new([0; 256]),
                mean: self.mean_record(),
            },
        };
        MergeJob { work, off: 0 }
    }

    /// Whether `(id, seq)` is still the segment a job took as its victim,
    /// and still sealed: if the expiry pass freed the open segment after
    /// it in its chain, it is the chain's tail again, which writes append
    /// to, and it is left alone (freed, it would take the new records with
    /// it).
    #[inline]
    fn same(&self, (id, seq): (u32, u64)) -> bool {
        let h = self.segs.header(id);
        h.seq == seq && self.ttl.chains[h.ttl_bucket as usize].tail != id
    }

    /// Frees a victim a step has read to its end, and takes a free
    /// segment as the reserve at once if a copy used it.
    fn free_victim(&mut self, id: u32) {
        self.ttl.unlink(&mut self.segs, id);
        self.segs.release(id);
        self.renew_reserve();
    }

    /// Does at most `records` records' worth of the merge in progress.
    /// Returns the records read.
    pub(super) fn merge_step(&mut self, records: usize) -> usize {
        let Some(mut job) = self.merge_job.take() else {
            return 0;
        };
        let mut read = 0;
        let done = loop {
            if read >= records {
                break false;
            }
            let (off, n, next) = match &mut job.work {
                Work::Compact { run, next, to } => match run.get(*next) {
                    // Sizes defeated the plan and nothing was freed: the
                    // hand frees instead, so eviction never spins.
                    None if to.used >= run.len() => match self.oldest_sealed() {
                        Some(id) => (0, 0, Next::Then(self.job_for(Plan::Hand(id)))),
                        None => break true,
                    },
                    None => break true,
                    Some(&victim) if !self.same(victim) => {
                        *next += 1;
                        (0, 0, Next::Stay)
                    }
                    Some(&victim) => {
                        let (off, n, end) =
                            self.drain_some(victim.0, job.off, records - read, |st, freq, size| {
                                st.compact_place(to, victim.0, freq, size)
                            });
                        if end {
                            self.free_victim(victim.0);
                            *next += 1;
                            (0, n, Next::Stay)
                        } else {
                            (off, n, Next::Stay)
                        }
                    }
                },
                Work::Count { victim, hist, mean } => {
                    let (victim, mean) = (*victim, *mean);
                    if !self.same(victim) {
                        break true;
                    }
                    let (off, n, end) =
                        self.count_some(victim.0, job.off, records - read, hist, mean);
                    if end {
                        let (cut, room) = self.hand_cut(hist);
                        let bucket = self.segs.header(victim.0).ttl_bucket;
                        let work = Work::Hand {
                            victim,
                            cut: HandCut {
                                cut,
                                room,
                                bucket,
                                mean,
                            },
                            started: false,
                        };
                        (0, n, Next::Then(MergeJob { work, off: 0 }))
                    } else {
                        (off, n, Next::Stay)
                    }
                }
                Work::Hand {
                    victim,
                    cut,
                    started,
                } => {
                    *started = true;
                    let victim = *victim;
                    if !self.same(victim) {
                        break true;
                    }
                    let (off, n, end) =
                        self.drain_some(victim.0, job.off, records - read, |st, freq, size| {
                            st.hand_place(cut, freq, size)
                        });
                    if end {
                        self.free_victim(victim.0);
                        break true;
                    }
                    (off, n, Next::Stay)
                }
            };
            read += n;
            job.off = off;
            if let Next::Then(j) = next {
                job = j;
                // A step ends where the job may wait for a write's need
                // (`merge_waits_for_need`): what follows evicts. And where
                // a compaction that freed nothing hands over to the hand's
                // counting, which a write's assist does not run
                // (`merge_assisted`).
                if matches!(job.work, Work::Count { .. })
                    || matches!(job.work, Work::Hand { .. }) && self.seg_limit < AHEAD_HAND_SEGMENTS
                {
                    break false;
                }
            }
        };
        if done {
            self.renew_reserve();
            self.stats.merges += 1;
        } else {
            self.merge_job = Some(job);
        }
        read
    }

    /// Whether writes assist the merge in progress: a compaction, the
    /// hand's pass once it may evict, and its counting only once a write
    /// has left its open segment nearly full (when the pass would run
    /// ahead anyway). Counting assisted from a quarter of the room on ran
    /// further ahead of the pass that uses the count, and
    /// `examples/hitsim` (`VALUES=bimodal`, -m 64, 1 and 2 shards, three
    /// seeds) hit 0.0016 lower on average; not assisted at all, the count
    /// was often unfinished when a write needed the room (118 of 159
    /// needs in `examples/eviction_stall`'s uniform load).
    fn merge_assisted(&self) -> bool {
        match &self.merge_job {
            Some(MergeJob {
                work: Work::Compact { .. } | Work::Hand { .. },
                ..
            }) => !self.merge_waits_for_need(),
            Some(MergeJob {
                work: Work::Count { .. },
                ..
            }) => self.tail_nearly_full(),
            None => false,
        }
    }

    /// Bytes the merge in progress has still to read: the rest of its run
    /// or victim (one being counted is read again by the pass).
    fn merge_left(&self) -> usize {
        let Some(job) = &self.merge_job else {
            return 0;
        };
        // A segment the job will skip (`same`) is not left to read.
        let left = |v: (u32, u64), from: u32| {
            if self.same(v) {
                (self.segs.header(v.0).write_off as usize).saturating_sub(from as usize)
            } else {
                0
            }
        };
        match &job.work {
            Work::Compact { run, next, .. } => run
                .iter()
                .skip(*next)
                .enumerate()
                .map(|(i, &v)| left(v, if i == 0 { job.off } else { 0 }))
                .sum(),
            Work::Count { victim, .. } => left(*victim, job.off) + left(*victim, 0),
            Work::Hand { victim, .. } => left(*victim, job.off),
        }
    }

    /// A write of `size` bytes to chain `bucket` assists the merge in
    /// progress (see [`ASSIST_LEAD`]) if it is one writes assist
    /// (`merge_assisted`) and the record fits the chain's open segment
    /// (else the write takes a segment, or evicts, anyway). The room it
    /// paces by is the least any write has left since a segment was
    /// opened: another chain's open segment may be the one that needs the
    /// next. Returns records read.
    pub(super) fn merge_assist(&mut self, bucket: u16, size: usize) -> usize {
        if !self.merge_assisted() {
            return 0;
        }
        let room = self.ttl.tail(bucket).map_or(0, |t| self.segs.room(t));
        if room < size {
            return 0;
        }
        let room = room.min(self.tail_room);
        let owed = self.merge_left().saturating_mul(ASSIST_LEAD * size) / room.max(1);
        let records = (owed / self.mean_record()).clamp(1, ASSIST_MAX);
        self.merge_step_ahead(records)
    }

    /// Whether eviction should work ahead now: merge eviction, and the
    /// next segment a write needs is not free, or a merge is half done.
    /// Not while whole expired segments wait to be freed (the expiry pass
    /// frees them) or a flush sweep is pending: what they free costs no
    /// live item.
    pub fn evict_ahead_pending(&self) -> bool {
        if self.cfg.eviction != Eviction::Merge {
            return false;
        }
        if self.merge_running() && !self.merge_waits_for_need() {
            return true;
        }
        !self.segment_ready()
            && self.reserve != NONE
            && self.ahead_blocked != Some(self.ahead_state())
            && !self.expiry_has_segments()
            && !self.sweep_pending()
    }

    /// One step of eviction ahead of need: at most `records` records of
    /// the merge in progress, or of one begun now. Returns records read.
    pub fn evict_ahead_step(&mut self, records: usize) -> usize {
        // A segment whose items have all expired frees room at no live
        // item's cost, as the write path frees one before it evicts: the
        // expiry pass frees it in its steps. (Merging ahead while expired
        // segments waited cost 0.001-0.002 of hit ratio under TTLs jittered
        // over 30 s-1 h at -m 64.)
        if !self.merge_running() && self.queue_expired_segment() {
            return 0;
        }
        // Every plan may begin ahead: in a small shard the hand's victim
        // is counted ahead and the job then waits for a write to need it.
        // A counted hand that waits gives way to a compaction that has
        // become possible meanwhile (dead bytes cost no live item).
        if self.merge_waits_for_need() {
            if matches!(self.merge_plan(), Some(Plan::Compact(..))) {
                self.merge_job = None;
            } else {
                self.ahead_blocked = Some(self.ahead_state());
                return 0;
            }
        }
        if !self.merge_running() && !self.merge_begin_ahead() {
            // Asked again next second, after the next merge, or once a
            // write leaves its open segment low, not every loop turn.
            self.ahead_blocked = Some(self.ahead_state());
            return 0;
        }
        if self.merge_waits_for_need() {
            return 0;
        }
        self.merge_step_ahead(records)
    }

    /// A merge step taken before any write needed the room (between loop
    /// turns or in a write's assist): a job it finishes counts as done
    /// ahead.
    fn merge_step_ahead(&mut self, records: usize) -> usize {
        let read = self.merge_step(records);
        if !self.merge_running() {
            self.stats.merges_ahead += 1;
        }
        read
    }

    /// Runs merge steps until the merge in progress (or one begun now) is
    /// done or `slice` has passed (at least one step): what the worker
    /// gives eviction ahead of need in a loop turn. Returns records read.
    pub fn evict_ahead_for(&mut self, slice: Duration) -> usize {
        let start = Instant::now();
        let mut read = self.evict_ahead_step(MERGE_STEP);
        while self.merge_running() && !self.merge_waits_for_need() && start.elapsed() < slice {
            read += self.evict_ahead_step(MERGE_STEP);
        }
        read
    }
}

#[cfg(test)]
#[path = "merge_job_tests.rs"]
mod tests;
