//! Wire protocols, pure: bytes in, requests out, no I/O.
//!
//! Every parser works on whatever bytes have arrived: it either returns one
//! request and how many bytes it used, or says it needs more. Keys and values
//! are borrowed from the input buffer. The protocol of a connection is chosen
//! from its first byte (0x80 = binary), as memcached's `-B auto`.

#![warn(missing_docs)]

pub mod admin;
pub mod ascii_auth;
pub mod binary;
pub mod meta;
pub mod text;

/// memcached's key length limit.
pub const KEY_MAX: usize = 250;
/// A text line without "\r\n" within this many bytes closes the connection
/// (unless it is a get, whose key lists may be long).
pub const LINE_MAX: usize = 2048;
/// memcached's read buffer (`READ_BUFFER_SIZE`): a line that arrives
/// whole within this many bytes is served whatever its command; a longer
/// one only for get/gets (see `text::parse_stream`).
pub const READ_MAX: usize = 16384;

/// A connection's wire protocol, fixed by its first byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    /// memcached's text protocol, meta commands included.
    Text,
    /// memcached's binary protocol.
    Binary,
}

impl Proto {
    /// The protocol a connection whose first byte is `first` speaks.
    pub fn detect(first: u8) -> Proto {
        if first == binary::REQ_MAGIC {
            Proto::Binary
        } else {
            Proto::Text
        }
    }
}

/// What a parser made of the front of the buffer.
#[derive(Debug)]
pub enum Parse<T> {
    /// A whole request, using this many bytes.
    Done(T, usize),
    /// Not enough bytes yet; at least this many more are needed (a hint).
    NeedMore(usize),
    /// A request that used `used` bytes, after which `skip` more bytes are
    /// to be dropped as they arrive (the data block of a refused storage
    /// command), without buffering them.
    Skip(T, usize, usize),
    /// The connection must be closed.
    Close,
}

/// How a storage command combines its value with what the key holds
/// (memcached's `set`, `add`, `replace`, `append`, `prepend`; `cas` is a
/// `Set` with a CAS unique).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetMode {
    /// Store whatever the key holds.
    Set,
    /// Store only if the key holds nothing.
    Add,
    /// Store only if the key holds an item.
    Replace,
    /// Add the value after the item's.
    Append,
    /// Add the value before the item's.
    Prepend,
}

/// Why a storage command's data block is dropped as it arrives, unread,
/// and the store refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Over the item size limit (`-I`), decided by the parser: memcached's
    /// `SERVER_ERROR object too large for cache`, binary E2BIG.
    TooLarge,
    /// The worker's budget for requests still arriving is spent
    /// (`-o incoming_mem_limit`, engine/incoming.rs), decided by the
    /// engine: memcached's failed item allocation, `SERVER_ERROR out of
    /// memory storing object`, binary ENOMEM; a set drops the old value
    /// as on a too-large one.
    NoMemory,
    /// As `NoMemory`, for a value memcached reads in chunks (an item over
    /// its 512 KiB `slab_chunk_max`): there the allocation that fails is
    /// a chunk's, during the read, `SERVER_ERROR Out of memory during
    /// read`, and the old value stays.
    NoMemoryReading,
}

/// memcached's default `slab_chunk_max` (half its 1 MiB slab page), bytes:
/// an item larger than this is allocated a chunk at a time as its data
/// arrives (memcached.c `read_into_chunked_item`).
pub const MEMCACHED_CHUNK_MAX: usize = 512 * 1024;

impl Refusal {
    /// The refusal memcached gives when it has no memory for an item of
    /// `item_size` bytes, as memcached sizes it (`store::classes::
    /// memcached_size`: header, CAS, key and NUL, flags when not 0, value
    /// and "\r\n"): over its chunk size it fails during the read.
    pub fn no_memory(item_size: usize) -> Refusal {
        if item_size > MEMCACHED_CHUNK_MAX {
            Refusal::NoMemoryReading
        } else {
            Refusal::NoMemory
        }
    }
}

/// A storage command whose data block is refused before it is read (over
/// the item size limit, or no memory to hold it while it arrives): the
/// block is dropped as it arrives, unbuffered, and the executor refuses
/// the store with the reply `refusal` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Oversized<'a> {
    /// Why the block is refused.
    pub refusal: Refusal,
    /// The key as sent (base64 when `base64`).
    pub key: &'a [u8],
    /// Meta `b` flag: the key is base64.
    pub base64: bool,
    /// The store's mode.
    pub mode: SetMode,
    /// Which command asked: the text `cas` command, a meta `ms`, or any
    /// other text set/add/.. (binary's oversized stores are flagged on
    /// their request instead).
    pub cmd: StoreCmd,
    /// The client flags asked for (they size memcached's item).
    pub flags: u32,
    /// Suppress the reply (text `noreply`).
    pub noreply: bool,
    /// Meta `q`. It silences only the refusal made while the value is
    /// read (`NoMemoryReading`): memcached's conn_nread answers that
    /// through `out_string`, which honours quiet mode, while ms's other
    /// refusals go out through `out_errstring`, which does not
    /// (proto_text.c `process_mset_command`, 1.6.18).
    pub quiet: bool,
}

impl Oversized<'_> {
    /// Whether the refusal's reply is silenced.
    pub fn silenced(&self) -> bool {
        self.noreply || (self.quiet && self.refusal == Refusal::NoMemoryReading)
    }
}

/// Which family of storage command a store came from, where memcached's
/// semantics differ by command rather than by mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreCmd {
    /// Text `set`/`add`/`replace`/`append`/`prepend`.
    Plain,
    /// Binary SET..PREPEND: refused as `Plain`, but memcached's proto_bin
    /// counts no `store_too_large` / `store_no_memory` for them.
    Binary,
    /// Text `cas`.
    Cas,
    /// Meta `ms`.
    Meta,
}

/// A text-protocol storage command, shared by the text and meta parsers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Storage<'a> {
    /// How the value combines with the key's item.
    pub mode: SetMode,
    /// The key, at most `KEY_MAX` bytes.
    pub key: &'a [u8],
    /// Client flags, stored and returned opaque.
    pub flags: u32,
    /// Relative seconds up to 30 days, absolute Unix time beyond, 0 =
    /// never, negative = already expired (protocol.txt "Expiration times").
    pub exptime: i64,
    /// The data block, without its "\r\n".
    pub value: &'a [u8],
    /// The `cas` command's unique (0 included, which matches nothing);
    /// None for the other commands.
    pub cas: Option<u64>,
    /// `noreply`: no reply at all, errors included.
    pub noreply: bool,
}

#[cfg(test)]
mod binary_tests;
