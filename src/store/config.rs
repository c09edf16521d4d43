//! How a store is built, what it counts, and why it could not be made.
use super::{index, Eviction};

/// How a shard's store is built.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// Bytes this shard's store may use: segments, hash index and segment
    /// bookkeeping together (its share of `-m`).
    pub memory: usize,
    /// Bytes per segment: a multiple of 8 from 4 KiB to 8 MiB.
    pub segment_size: usize,
    /// memcached's `-I`: the largest record in bytes, header included.
    pub item_size_max: usize,
    /// What goes when memory is full.
    pub eviction: Eviction,
    /// Ask for huge pages for segments and the index.
    pub huge_pages: bool,
    /// The most bytes `cache_memlimit` may raise `memory` to: address
    /// space reserved up front and never touched until used (see
    /// `Arena::with_room`). At most `memory` means no growth (`-k` for a
    /// user whose RLIMIT_MEMLOCK is finite: a locked reservation past it
    /// would not map).
    pub max_memory: usize,
    /// Fault the next free segments' pages in on a helper thread before
    /// they are written (store/fault_ahead.rs). Off in the default, which
    /// unit tests build by the thousand; the server turns it on.
    pub fault_ahead: bool,
    /// Whether clients see CAS uniques: false is memcached's `-C`, whose
    /// `ITEM_get_cas` then reads 0 for every item (memcached.h). Replies
    /// carry 0 and a client's nonzero unique matches nothing; the store
    /// keeps its own record CAS all the same (flush marks read it).
    pub cas: bool,
    /// `-k`: memory is locked as it is touched (mlockall, MCL_ONFAULT), and
    /// locked pages cannot be given back (MADV_DONTNEED refuses them), so
    /// the merge reserve is paid for like any segment.
    pub locked: bool,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            memory: 64 << 20,
            segment_size: 1 << 20,
            item_size_max: 1 << 20,
            eviction: Eviction::Merge,
            huge_pages: true,
            max_memory: super::physical_memory(),
            fault_ahead: false,
            cas: true,
            locked: false,
        }
    }
}

/// Counters memcached reports from its item layer, and the store's own,
/// since the store was made.
#[derive(Clone, Copy, Debug, Default)]
pub struct StoreStats {
    /// Items linked by a store, as memcached's `total_items` counts its
    /// `do_item_link`: set/add/replace/cas/append/prepend (meta `ms`),
    /// items created by a miss (incr's initial, `ma N`, `mg N`), an
    /// item stored already expired, and an incr/decr whose result is
    /// longer than the value (memcached allocates a new item only then).
    /// Rewrites that memcached does in place (touch, gat, `mg T`, a
    /// shorter or equal incr/decr) do not count.
    pub total_items: u64,
    /// Live items evicted to make room (`evictions`).
    pub evictions: u64,
    /// Of those, items never read (`evicted_unfetched`).
    pub evicted_unfetched: u64,
    /// Expired items reclaimed that were never read (`expired_unfetched`).
    pub expired_unfetched: u64,
    /// Expired items reclaimed: on a read, by eviction, or with their
    /// segment (`reclaimed`).
    pub reclaimed: u64,
    /// Segments freed whole because everything in them had expired.
    pub expired_segments: u64,
    /// Segments evicted whole (every policy but merge, and merge when
    /// it finds nothing to compact or visit).
    pub evicted_segments: u64,
    /// Merge eviction steps (compactions and hand visits).
    pub merges: u64,
    /// Those of them finished ahead of need, between loop turns or by a
    /// write's assist (`merge_assist`), rather than by a write that found
    /// no free segment (`merge_job.rs`).
    pub merges_ahead: u64,
    /// Records copied by merge eviction (kept by the hand or compacted).
    pub moved_items: u64,
    /// Bytes of those records.
    pub moved_bytes: u64,
    /// New keys linked as if read once because a read missed them after
    /// the hand evicted them (`ghost.rs`).
    pub ghost_credits: u64,
    /// New small items linked as if read once because ghosts vouch for
    /// many new small keys (`ghost.rs`).
    pub arrival_credits: u64,
    /// Items reclaimed because a `flush_prefix` hid them.
    pub prefix_reclaimed: u64,
    /// Lookups that found the key's item expired (`get_expired`): as
    /// memcached's `do_item_get`, every command's lookup counts, not only
    /// gets (a set over an expired item, a delete, an incr...).
    pub get_expired: u64,
    /// Lookups that found the key's item hidden by a `flush_all` or a
    /// `flush_prefix` before the sweep reclaimed it (`get_flushed`, as
    /// memcached counts its lazily unlinked flushed items).
    pub get_flushed: u64,
    /// Crawler calls that read records (`lru_crawler_starts`).
    pub crawler_starts: u64,
    /// Records the crawler read (`crawler_items_checked`).
    pub crawler_items_checked: u64,
    /// Expired items the crawler reclaimed (`crawler_reclaimed`).
    pub crawler_reclaimed: u64,
}

/// Whether a store takes segments of `bytes`: a multiple of 8 from 4 KiB
/// to [`index::MAX_SEGMENT_SIZE`] (a slot's offset field). `-o
/// segment_size` is checked by the same rule before start-up sizes shards.
pub fn segment_size_ok(bytes: usize) -> bool {
    bytes.is_multiple_of(8) && (4096..=index::MAX_SEGMENT_SIZE).contains(&bytes)
}

/// Why a store could not be made.
#[derive(Debug)]
pub enum ConfigError {
    /// The segment size is not a multiple of 8 between 4 KiB and 8 MiB.
    SegmentSize,
    /// The memory holds fewer than three segments besides their index.
    TooLittleMemory,
    /// More segments than an index slot can name (`slot::MAX_SEGMENTS`).
    TooMuchMemory,
    /// The kernel refused the mapping.
    Map(std::io::Error),
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigError::SegmentSize => write!(
                f,
                "segment size must be a multiple of 8 between 4 KiB and {} bytes",
                index::MAX_SEGMENT_SIZE
            ),
            ConfigError::TooLittleMemory => {
                write!(f, "memory per shard must hold at least 3 segments")
            }
            ConfigError::TooMuchMemory => write!(
                f,
                "memory per shard is more than {} segments (give more -t or a larger -o segment_size)",
                super::slot::MAX_SEGMENTS
            ),
            ConfigError::Map(e) => write!(f, "cannot map item memory or its index: {e}"),
        }
    }
}

impl std::error::Error for ConfigError {}
