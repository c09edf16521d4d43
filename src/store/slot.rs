//! An index item slot: where an item is and what little the index knows
//! of it without reading the item (the layout is drawn in `index`).
//!
//! ```text
//!  63       52 51     44 43              23 22           0
//! +-----------+---------+------------------+--------------+
//! | tag (12)  | freq(8) | segment id (21)  | offset (23)  |
//! +-----------+---------+------------------+--------------+
//! ```

/// Bit position of an item slot's tag.
pub const TAG_SHIFT: u32 = 52;
/// Tag bits (after shifting): 12 bits of the key's hash.
pub const TAG_MASK: u64 = 0xfff;
/// Bit position of an item slot's access frequency.
pub const FREQ_SHIFT: u32 = 44;
/// Frequency bits (after shifting).
pub const FREQ_MASK: u64 = 0xff;
/// Bit position of an item slot's segment id; also how far a segment's
/// incarnation number is shifted to form the CAS of items at an offset.
pub const SEG_SHIFT: u32 = 23;
/// Segment id bits (after shifting).
pub const SEG_MASK: u64 = 0x1f_ffff;
/// Bit position of an item slot's offset.
pub const OFF_SHIFT: u32 = 0;
/// Offset bits: the record's offset in its segment, in bytes.
pub const OFF_MASK: u64 = 0x7f_ffff;

/// Segments a slot can name, per shard.
pub const MAX_SEGMENTS: usize = SEG_MASK as usize + 1;
/// Largest segment, in bytes, whose every offset a slot can name.
pub const MAX_SEGMENT_SIZE: usize = OFF_MASK as usize + 1;

/// The 12-bit tag of a key's hash, never 0.
#[inline]
pub fn tag_of(hash: u64) -> u64 {
    let t = (hash >> TAG_SHIFT) & TAG_MASK;
    // Tag 0 is reserved so an occupied slot is never all zero.
    t | (t == 0) as u64
}

/// An item slot from its fields (`off` in bytes).
#[inline]
pub fn pack(tag: u64, freq: u8, seg: u32, off: u32) -> u64 {
    (tag << TAG_SHIFT)
        | ((freq as u64) << FREQ_SHIFT)
        | ((seg as u64 & SEG_MASK) << SEG_SHIFT)
        | ((off as u64 & OFF_MASK) << OFF_SHIFT)
}

/// An item slot's tag.
#[inline]
pub fn slot_tag(s: u64) -> u64 {
    (s >> TAG_SHIFT) & TAG_MASK
}
/// An item slot's access frequency.
#[inline]
pub fn slot_freq(s: u64) -> u8 {
    ((s >> FREQ_SHIFT) & FREQ_MASK) as u8
}
/// The segment an item slot points into.
#[inline]
pub fn slot_seg(s: u64) -> u32 {
    ((s >> SEG_SHIFT) & SEG_MASK) as u32
}
/// The offset in bytes an item slot points at.
#[inline]
pub fn slot_off(s: u64) -> u32 {
    ((s >> OFF_SHIFT) & OFF_MASK) as u32
}
/// The slot with another frequency.
#[inline]
pub fn with_freq(s: u64, freq: u8) -> u64 {
    (s & !(FREQ_MASK << FREQ_SHIFT)) | ((freq as u64) << FREQ_SHIFT)
}
/// The slot pointing at another record (`off` in bytes).
#[inline]
pub fn with_location(s: u64, seg: u32, off: u32) -> u64 {
    (s & !((SEG_MASK << SEG_SHIFT) | (OFF_MASK << OFF_SHIFT)))
        | ((seg as u64 & SEG_MASK) << SEG_SHIFT)
        | ((off as u64 & OFF_MASK) << OFF_SHIFT)
}
