//! memcached's binary protocol (memcached `doc/protocol-binary.txt`).
//!
//! ```text
//!  request header, 24 bytes, big endian
//!  0        1        2        3        4        5        6        7
//! +--------+--------+--------+--------+--------+--------+--------+--------+
//! | magic  | opcode | key length      | extras | dtype  | vbucket         |
//! +--------+--------+--------+--------+--------+--------+--------+--------+
//! | total body length                 | opaque                            |
//! +--------+--------+--------+--------+--------+--------+--------+--------+
//! | cas                                                                   |
//! +--------+--------+--------+--------+--------+--------+--------+--------+
//!  body: extras, key, value
//! ```

use super::{Parse, Refusal, SetMode, KEY_MAX};

/// First byte of a request (and what selects binary on a connection).
pub const REQ_MAGIC: u8 = 0x80;
/// First byte of a response.
pub const RES_MAGIC: u8 = 0x81;
/// Header length in bytes, requests and responses alike.
pub const HEADER_LEN: usize = 24;
/// Longest SASL mechanism name (memcached's `MAX_SASL_MECH_LEN`).
pub const SASL_MECH_MAX: usize = 32;
/// Largest SASL_AUTH/SASL_STEP body, in bytes: larger closes the
/// connection (status 4) rather than being buffered.
pub const SASL_BODY_MAX: usize = 4096;

/// Opcodes, named as in protocol-binary.txt ("Q" = quiet, "K" = returns
/// the key).
#[allow(missing_docs)]
pub mod op {
    pub const GET: u8 = 0x00;
    pub const SET: u8 = 0x01;
    pub const ADD: u8 = 0x02;
    pub const REPLACE: u8 = 0x03;
    pub const DELETE: u8 = 0x04;
    pub const INCREMENT: u8 = 0x05;
    pub const DECREMENT: u8 = 0x06;
    pub const QUIT: u8 = 0x07;
    pub const FLUSH: u8 = 0x08;
    pub const GETQ: u8 = 0x09;
    pub const NOOP: u8 = 0x0a;
    pub const VERSION: u8 = 0x0b;
    pub const GETK: u8 = 0x0c;
    pub const GETKQ: u8 = 0x0d;
    pub const APPEND: u8 = 0x0e;
    pub const PREPEND: u8 = 0x0f;
    pub const STAT: u8 = 0x10;
    pub const SETQ: u8 = 0x11;
    pub const ADDQ: u8 = 0x12;
    pub const REPLACEQ: u8 = 0x13;
    pub const DELETEQ: u8 = 0x14;
    pub const INCREMENTQ: u8 = 0x15;
    pub const DECREMENTQ: u8 = 0x16;
    pub const QUITQ: u8 = 0x17;
    pub const FLUSHQ: u8 = 0x18;
    pub const APPENDQ: u8 = 0x19;
    pub const PREPENDQ: u8 = 0x1a;
    pub const VERBOSITY: u8 = 0x1b;
    pub const TOUCH: u8 = 0x1c;
    pub const GAT: u8 = 0x1d;
    pub const GATQ: u8 = 0x1e;
    pub const SASL_LIST_MECHS: u8 = 0x20;
    pub const SASL_AUTH: u8 = 0x21;
    pub const SASL_STEP: u8 = 0x22;
    pub const GATK: u8 = 0x23;
    pub const GATKQ: u8 = 0x24;
}

/// Response status codes, named as in protocol-binary.txt.
#[allow(missing_docs)]
pub mod status {
    pub const OK: u16 = 0x00;
    pub const KEY_ENOENT: u16 = 0x01;
    pub const KEY_EEXISTS: u16 = 0x02;
    pub const E2BIG: u16 = 0x03;
    pub const EINVAL: u16 = 0x04;
    pub const NOT_STORED: u16 = 0x05;
    pub const DELTA_BADVAL: u16 = 0x06;
    pub const AUTH_ERROR: u16 = 0x20;
    pub const AUTH_CONTINUE: u16 = 0x21;
    pub const UNKNOWN_COMMAND: u16 = 0x81;
    pub const ENOMEM: u16 = 0x82;
}

/// A request header, decoded (the layout is drawn at the top of this file).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// See `op`.
    pub opcode: u8,
    /// Key length in bytes.
    pub key_len: u16,
    /// Extras length in bytes.
    pub extras_len: u8,
    /// Extras, key and value together, in bytes.
    pub body_len: u32,
    /// Echoed in the response, untouched.
    pub opaque: u32,
    /// CAS unique to match; 0 = no check (protocol-binary.txt).
    pub cas: u64,
}

/// One binary request, its body borrowed from the input buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    /// The header as sent.
    pub h: Header,
    /// What the opcode is, decoded once.
    pub cmd: Command,
    /// Extras (flags, exptime, delta...), by opcode.
    pub extras: &'a [u8],
    /// The key; empty for opcodes without one.
    pub key: &'a [u8],
    /// The value; empty when `refused`.
    pub value: &'a [u8],
    /// A storage body refused before it is read (over the item size
    /// limit, or no memory to hold it): dropped unread, so `extras` and
    /// `value` are empty (the key is kept).
    pub refused: Option<Refusal>,
}

/// What an opcode does, whatever its quiet or key-returning variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// GET, GETQ, GETK, GETKQ.
    Get,
    /// GAT, GATQ, GATK, GATKQ: get and touch.
    Gat,
    /// TOUCH.
    Touch,
    /// SET..PREPEND and their quiet variants.
    Store(SetMode),
    /// DELETE, DELETEQ.
    Delete,
    /// INCREMENT, DECREMENT and quiet variants; `true` = increment.
    Arith(bool),
    /// QUIT, QUITQ.
    Quit,
    /// FLUSH, FLUSHQ.
    Flush,
    /// NOOP.
    Noop,
    /// VERSION.
    Version,
    /// STAT, with an optional group key.
    Stat,
    /// VERBOSITY.
    Verbosity,
    /// SASL_LIST_MECHS: which mechanisms the server offers.
    SaslList,
    /// SASL_AUTH: the key names the mechanism, the value its first message.
    SaslAuth,
    /// SASL_STEP: the next message of a SASL exchange.
    SaslStep,
}

/// An opcode decoded: what it does and how it replies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Command {
    /// What it does.
    pub kind: Kind,
    /// Quiet: no reply on success (and for gets, none on a miss).
    pub quiet: bool,
    /// The reply carries the key (GETK, GATK and their quiet variants).
    pub with_key: bool,
}

impl Command {
    /// Decodes an opcode; None for one this server does not implement.
    pub fn decode(opcode: u8) -> Option<Command> {
        use op::*;
        let kind = match opcode {
            GET | GETQ | GETK | GETKQ => Kind::Get,
            GAT | GATQ | GATK | GATKQ => Kind::Gat,
            TOUCH => Kind::Touch,
            SET | SETQ => Kind::Store(SetMode::Set),
            ADD | ADDQ => Kind::Store(SetMode::Add),
            REPLACE | REPLACEQ => Kind::Store(SetMode::Replace),
            APPEND | APPENDQ => Kind::Store(SetMode::Append),
            PREPEND | PREPENDQ => Kind::Store(SetMode::Prepend),
            DELETE | DELETEQ => Kind::Delete,
            INCREMENT | INCREMENTQ => Kind::Arith(true),
            DECREMENT | DECREMENTQ => Kind::Arith(false),
            QUIT | QUITQ => Kind::Quit,
            FLUSH | FLUSHQ => Kind::Flush,
            NOOP => Kind::Noop,
            VERSION => Kind::Version,
            STAT => Kind::Stat,
            VERBOSITY => Kind::Verbosity,
            SASL_LIST_MECHS => Kind::SaslList,
            SASL_AUTH => Kind::SaslAuth,
            SASL_STEP => Kind::SaslStep,
            _ => return None,
        };
        Some(Command {
            kind,
            quiet: is_quiet(opcode),
            with_key: matches!(opcode, GETK | GETKQ | GATK | GATKQ),
        })
    }
}

impl Request<'_> {
    /// The big-endian u32 of the extras at byte `at`. Panics if the
    /// extras are shorter: the parser checks each opcode's extras length.
    pub fn extra_u32(&self, at: usize) -> u32 {
        u32::from_be_bytes(self.extras[at..at + 4].try_into().unwrap())
    }
    /// The big-endian u64 of the extras at byte `at` (as `extra_u32`).
    pub fn extra_u64(&self, at: usize) -> u64 {
        u64::from_be_bytes(self.extras[at..at + 8].try_into().unwrap())
    }
}

/// Whether a quiet opcode (replies suppressed on success or miss).
pub fn is_quiet(opcode: u8) -> bool {
    matches!(
        opcode,
        op::GETQ
            | op::GETKQ
            | op::SETQ
            | op::ADDQ
            | op::REPLACEQ
            | op::DELETEQ
            | op::INCREMENTQ
            | op::DECREMENTQ
            | op::QUITQ
            | op::FLUSHQ
            | op::APPENDQ
            | op::PREPENDQ
            | op::GATQ
            | op::GATKQ
    )
}

/// What each opcode requires of its extras, key and value; None = any.
fn shape(opcode: u8) -> Option<(Option<u8>, bool, Option<bool>)> {
    // (extras length, key required, value allowed: Some(false) = must be empty)
    use op::*;
    Some(match opcode {
        GET | GETQ | GETK | GETKQ => (Some(0), true, Some(false)),
        SET | SETQ | ADD | ADDQ | REPLACE | REPLACEQ => (Some(8), true, None),
        DELETE | DELETEQ => (Some(0), true, Some(false)),
        INCREMENT | DECREMENT | INCREMENTQ | DECREMENTQ => (Some(20), true, Some(false)),
        QUIT | QUITQ | NOOP | VERSION => (Some(0), false, Some(false)),
        FLUSH | FLUSHQ => (None, false, Some(false)),
        APPEND | PREPEND | APPENDQ | PREPENDQ => (Some(0), true, None),
        STAT => (Some(0), false, Some(false)),
        VERBOSITY => (Some(4), false, Some(false)),
        TOUCH | GAT | GATQ | GATK | GATKQ => (Some(4), true, Some(false)),
        SASL_LIST_MECHS => (Some(0), false, Some(false)),
        SASL_AUTH | SASL_STEP => (Some(0), true, None),
        _ => return None,
    })
}

/// Outcome of a malformed header: reply EINVAL (or unknown command) and close.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Invalid {
    /// Lengths that do not fit the opcode (or a key over 250 bytes):
    /// status 4 "Invalid arguments", then the connection closes.
    Args(Header),
    /// An opcode this server does not implement: status 0x81.
    Unknown(Header),
    /// Key and extras longer than the whole body: a frame that cannot be
    /// read. Status 0x81 "Unknown command", then the connection closes
    /// (memcached's `dispatch_bin_command` checks this before the
    /// opcode).
    Frame(Header),
}

impl Invalid {
    /// The header of the refused request.
    pub fn header(&self) -> &Header {
        match self {
            Invalid::Args(h) | Invalid::Unknown(h) | Invalid::Frame(h) => h,
        }
    }
}

/// Parses one binary request. `item_max` bounds what is buffered: a larger
/// storage body is answered E2BIG and skipped; any other oversized body
/// closes the connection.
pub fn parse(buf: &[u8], item_max: usize) -> Parse<Result<Request<'_>, Invalid>> {
    if buf.len() < HEADER_LEN {
        return Parse::NeedMore(HEADER_LEN - buf.len());
    }
    if buf[0] != REQ_MAGIC {
        return Parse::Close;
    }
    let h = Header {
        opcode: buf[1],
        key_len: u16::from_be_bytes([buf[2], buf[3]]),
        extras_len: buf[4],
        body_len: u32::from_be_bytes(buf[8..12].try_into().unwrap()),
        opaque: u32::from_be_bytes(buf[12..16].try_into().unwrap()),
        cas: u64::from_be_bytes(buf[16..24].try_into().unwrap()),
    };
    let body = h.body_len as usize;
    let kx = h.key_len as usize + h.extras_len as usize;
    if kx > body {
        return Parse::Done(Err(Invalid::Frame(h)), HEADER_LEN);
    }
    if h.key_len as usize > KEY_MAX {
        return Parse::Done(Err(Invalid::Args(h)), HEADER_LEN);
    }
    if matches!(h.opcode, op::SASL_AUTH | op::SASL_STEP)
        && (h.key_len as usize > SASL_MECH_MAX || body > SASL_BODY_MAX)
    {
        // memcached's MAX_SASL_MECH_LEN; a credential is never this long,
        // and it is not buffered past this.
        return Parse::Done(Err(Invalid::Args(h)), HEADER_LEN);
    }
    let (Some((ext, key_req, val_ok)), Some(cmd)) = (shape(h.opcode), Command::decode(h.opcode))
    else {
        // memcached answers an unknown command and swallows its body
        // (proto_bin.c dispatch_bin_command): dropped as it arrives, never
        // buffered, whatever its length.
        return match body {
            0 => Parse::Done(Err(Invalid::Unknown(h)), HEADER_LEN),
            _ => Parse::Skip(Err(Invalid::Unknown(h)), HEADER_LEN, body),
        };
    };
    // The opcode's shape is judged on the header, as memcached judges it
    // before reading the body (a protocol error, then the connection
    // closes): a GET declaring a megabyte of body is refused at once,
    // not buffered first.
    let ext_ok = match (h.opcode, ext) {
        (op::FLUSH | op::FLUSHQ, _) => h.extras_len == 0 || h.extras_len == 4,
        (_, Some(n)) => h.extras_len == n,
        (_, None) => true,
    };
    let key_ok = match (h.opcode, key_req) {
        // STAT's key, when present, names a group ("settings", "items").
        (op::STAT, _) => true,
        (_, true) => h.key_len > 0,
        (_, false) => h.key_len == 0,
    };
    let value_ok = val_ok != Some(false) || body == kx;
    if !ext_ok || !key_ok || !value_ok {
        return Parse::Done(Err(Invalid::Args(h)), HEADER_LEN);
    }
    if body > item_max + 1024 {
        if let Kind::Store(_) = cmd.kind {
            // Read up to the key, then drop the value unbuffered; the
            // executor answers E2BIG (and a SET drops the old value, which
            // is why the key is read).
            let head = HEADER_LEN + kx;
            if buf.len() < head {
                return Parse::NeedMore(head - buf.len());
            }
            let ex = HEADER_LEN + h.extras_len as usize;
            let req = Request {
                h,
                cmd,
                extras: &buf[HEADER_LEN..ex],
                key: &buf[ex..head],
                value: &[],
                refused: Some(Refusal::TooLarge),
            };
            return Parse::Skip(Ok(req), head, body - kx);
        }
        return Parse::Done(Err(Invalid::Args(h)), HEADER_LEN);
    }
    let total = HEADER_LEN + body;
    if buf.len() < total {
        return Parse::NeedMore(total - buf.len());
    }
    let b = &buf[HEADER_LEN..total];
    let req = Request {
        h,
        cmd,
        extras: &b[..h.extras_len as usize],
        key: &b[h.extras_len as usize..kx],
        value: &b[kx..],
        refused: None,
    };
    Parse::Done(Ok(req), total)
}

/// Writes a response header and body parts.
#[allow(clippy::too_many_arguments)]
pub fn write_response(
    out: &mut Vec<u8>,
    opcode: u8,
    status: u16,
    opaque: u32,
    cas: u64,
    extras: &[u8],
    key: &[u8],
    value: &[u8],
) {
    write_head(out, opcode, status, opaque, cas, extras, key, value.len());
    out.extend_from_slice(value);
}

/// A response up to its value, which the caller appends (`value_len` bytes).
#[allow(clippy::too_many_arguments)]
pub fn write_head(
    out: &mut Vec<u8>,
    opcode: u8,
    status: u16,
    opaque: u32,
    cas: u64,
    extras: &[u8],
    key: &[u8],
    value_len: usize,
) {
    let body = extras.len() + key.len() + value_len;
    out.reserve(HEADER_LEN + body);
    out.push(RES_MAGIC);
    out.push(opcode);
    out.extend_from_slice(&(key.len() as u16).to_be_bytes());
    out.push(extras.len() as u8);
    out.push(0);
    out.extend_from_slice(&status.to_be_bytes());
    out.extend_from_slice(&(body as u32).to_be_bytes());
    out.extend_from_slice(&opaque.to_be_bytes());
    out.extend_from_slice(&cas.to_be_bytes());
    out.extend_from_slice(extras);
    out.extend_from_slice(key);
}
