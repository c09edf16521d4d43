//! Wire protocols, pure: bytes in, requests out, no I/O.
//!
//! Every parser works on whatever bytes have arrived: it either returns one
//! request and how many bytes it used, or says it needs more. Keys and values
//! are borrowed from the input buffer. The protocol of a connection is chosen
//! from its first byte (0x80 = binary), as memcached's `-B auto`.

pub mod binary;
pub mod meta;
pub mod text;

pub use crate::store::SetMode;

/// memcached's key length limit.
pub const KEY_MAX: usize = 250;
/// A text line without "\r\n" within this many bytes closes the connection
/// (unless it is a get, whose key lists may be long).
pub const LINE_MAX: usize = 2048;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    Text,
    Binary,
}

impl Proto {
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

/// A text-protocol storage command, shared by the text and meta parsers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Storage<'a> {
    pub mode: SetMode,
    pub key: &'a [u8],
    pub flags: u32,
    pub exptime: i64,
    pub value: &'a [u8],
    /// `cas` command's unique; 0 for the others.
    pub cas: u64,
    pub noreply: bool,
}

#[cfg(test)]
mod binary_tests;
