//! Segment eviction. When no segment is free, one policy picks what goes:
//! merge (Segcache's default), or whole-segment FIFO, random,
//! closest-to-expire, least-utilized, volatile-only, or none at all.

use super::segment::NEVER_EXPIRES;
use super::Store;

/// What a full store gives up to take a write (`-o eviction=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Eviction {
    /// Compact runs of segments whose live items fit in fewer, else pass a
    /// clock hand over the oldest segment, keeping the items read since it
    /// last passed (`merge.rs`).
    Merge,
    /// Evict the oldest segment.
    Fifo,
    /// Evict a segment picked at random.
    Random,
    /// Closest to expire.
    Cte,
    /// Least utilized (fewest live bytes).
    Util,
    /// Only segments whose items have a TTL, closest to expire first.
    Volatile,
    /// Never evict: a full store refuses writes (memcached `-M`).
    None,
}

impl std::str::FromStr for Eviction {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "merge" => Eviction::Merge,
            "fifo" => Eviction::Fifo,
            "random" => Eviction::Random,
            "cte" => Eviction::Cte,
            "util" => Eviction::Util,
            "volatile" => Eviction::Volatile,
            "none" => Eviction::None,
            _ => {
                return Err(format!(
                    "unknown eviction policy '{s}' (merge, fifo, random, cte, util, volatile, none)"
                ))
            }
        })
    }
}

impl Store {
    /// Frees at least one segment; false if the policy allows none.
    pub(super) fn evict(&mut self) -> bool {
        if self.sweep_flush_for_room() {
            return true;
        }
        let victim = match self.cfg.eviction {
            Eviction::None => self.pick(|_| None),
            Eviction::Merge => {
                if self.merge() {
                    return true;
                }
                self.pick(|h| Some(h.seq))
            }
            Eviction::Fifo => self.pick(|h| Some(h.seq)),
            Eviction::Random => {
                let r = self.rand();
                self.pick(move |h| Some(h.seq.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ r))
            }
            Eviction::Cte => self.pick(|h| Some(h.expire_at as u64)),
            Eviction::Util => self.pick(|h| Some(h.live_bytes as u64)),
            Eviction::Volatile => {
                self.pick(|h| (h.expire_at != NEVER_EXPIRES).then_some(h.expire_at as u64))
            }
        };
        match victim {
            Some(id) => {
                self.drop_segment(id, false);
                self.stats.evicted_segments += 1;
                // Merge needs its reserve back (a merge's victim was pinned
                // and parked when it was freed): the next eviction merges.
                if self.cfg.eviction == Eviction::Merge {
                    self.renew_reserve();
                }
                true
            }
            None => false,
        }
    }

    /// The in-use segment with the lowest score; before any, one whose
    /// records are all dead (replaced, deleted, flushed), which holds
    /// nothing and which a policy that scores only some segments (volatile)
    /// would otherwise never free.
    fn pick(&self, score: impl Fn(&super::segment::SegHeader) -> Option<u64>) -> Option<u32> {
        let mut best: Option<(u64, u32)> = None;
        for (id, h) in self.segs.headers.iter().enumerate() {
            if h.seq == 0 || id as u32 == self.reserve || self.segs.is_pinned(id as u32) {
                continue;
            }
            if h.live_items == 0 {
                return Some(id as u32);
            }
            if let Some(s) = score(h) {
                if best.is_none_or(|(b, _)| s < b) {
                    best = Some((s, id as u32));
                }
            }
        }
        best.map(|(_, id)| id)
    }
}
