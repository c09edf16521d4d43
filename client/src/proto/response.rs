//! Meta replies parsed from bytes. Pure: no I/O.
//!
//! A reply is one line, `<code> <flag>*\r\n`, and for `VA <size>` a data
//! block of `size` bytes and `\r\n` after it (memcached's `protocol.txt`).

/// The return code of one reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Status {
    /// `VA <size>`: the value follows.
    Value,
    /// `HD`: success, no value.
    Stored,
    /// `EN`: miss (mg).
    Miss,
    /// `NS`: not stored (ms).
    NotStored,
    /// `EX`: CAS mismatch.
    Exists,
    /// `NF`: not found (md, ma, ms in replace/append modes).
    NotFound,
    /// `MN`: the end of a pipeline (`mn`).
    Noop,
    /// `ERROR`: unknown command.
    Error,
    /// `CLIENT_ERROR <message>`.
    ClientError(String),
    /// `SERVER_ERROR <message>`.
    ServerError(String),
    /// Any other line, kept whole (`ME ...`, `OK`, `VERSION ...`), for raw
    /// commands.
    Other(String),
}

/// The flags a reply carries back (`c f t s O h l W X Z`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Meta {
    /// `c`: CAS unique.
    pub cas: Option<u64>,
    /// `f`: client flags.
    pub flags: Option<u32>,
    /// `t`: remaining TTL in seconds, -1 for none.
    pub ttl: Option<i64>,
    /// `s`: value size in bytes.
    pub size: Option<u64>,
    /// `O`: the opaque token echoed.
    pub opaque: Option<u32>,
    /// `h`: fetched before this read.
    pub fetched: Option<bool>,
    /// `l`: seconds since the last access.
    pub last_access: Option<u64>,
    /// `W`: this caller won the right to recompute the value.
    pub won: bool,
    /// `X`: the item is stale (invalidated).
    pub stale: bool,
    /// `Z`: another caller already holds the win token.
    pub win_taken: bool,
}

/// One parsed reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    /// The return code.
    pub status: Status,
    /// The returned flags.
    pub meta: Meta,
    /// The data block of a `VA` reply.
    pub value: Option<Vec<u8>>,
}

/// A parsed reply line; `value_len` says how many data bytes (plus
/// `\r\n`) follow it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Head {
    /// The return code.
    pub status: Status,
    /// The returned flags.
    pub meta: Meta,
    /// For `VA`, the size of the data block.
    pub value_len: Option<usize>,
}

/// Parses one reply line (without its `\r\n`). Err holds what was wrong.
pub(crate) fn parse_head(line: &[u8]) -> Result<Head, String> {
    let text = std::str::from_utf8(line).map_err(|_| "reply line is not UTF-8".to_string())?;
    let mut toks = text.split(' ').filter(|t| !t.is_empty());
    let code = toks.next().unwrap_or("");
    let rest = || text.split_once(' ').map_or("", |(_, r)| r).to_string();
    let status = match code {
        "VA" => Status::Value,
        "HD" => Status::Stored,
        "EN" => Status::Miss,
        "NS" => Status::NotStored,
        "EX" => Status::Exists,
        "NF" => Status::NotFound,
        "MN" => Status::Noop,
        "ERROR" => Status::Error,
        "CLIENT_ERROR" => Status::ClientError(rest()),
        "SERVER_ERROR" => Status::ServerError(rest()),
        _ => {
            return Ok(Head {
                status: Status::Other(text.to_string()),
                meta: Meta::default(),
                value_len: None,
            })
        }
    };
    let mut head = Head {
        status,
        meta: Meta::default(),
        value_len: None,
    };
    if matches!(
        head.status,
        Status::Error | Status::ClientError(_) | Status::ServerError(_)
    ) {
        return Ok(head);
    }
    if head.status == Status::Value {
        let len = toks.next().ok_or("VA without a size")?;
        head.value_len = Some(len.parse().map_err(|_| format!("bad VA size {len:?}"))?);
    }
    for t in toks {
        let bad = || format!("bad flag token {t:?}");
        // The first byte, which garbage need not end a character with.
        let (f, arg) = t.split_at_checked(1).ok_or_else(bad)?;
        let m = &mut head.meta;
        match f {
            "c" => m.cas = Some(arg.parse().map_err(|_| bad())?),
            "f" => m.flags = Some(arg.parse().map_err(|_| bad())?),
            "t" => m.ttl = Some(arg.parse().map_err(|_| bad())?),
            "s" => m.size = Some(arg.parse().map_err(|_| bad())?),
            "l" => m.last_access = Some(arg.parse().map_err(|_| bad())?),
            "h" => m.fetched = Some(arg == "1"),
            // Opaques this client sends are decimal; others are ignored.
            "O" => m.opaque = arg.parse().ok(),
            "W" => m.won = true,
            "X" => m.stale = true,
            "Z" => m.win_taken = true,
            // k (key), b (base64 marker) and unknown flags carry nothing
            // this client needs.
            _ => {}
        }
    }
    Ok(head)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_reply_with_tokens() {
        let h = parse_head(b"VA 3 c5 f7 t-1 s3 O12 h1 l4 X W Z kfoo b").unwrap();
        assert_eq!(h.status, Status::Value);
        assert_eq!(h.value_len, Some(3));
        let m = h.meta;
        assert_eq!(
            (m.cas, m.flags, m.ttl, m.size, m.opaque),
            (Some(5), Some(7), Some(-1), Some(3), Some(12))
        );
        assert_eq!((m.fetched, m.last_access), (Some(true), Some(4)));
        assert!(m.won && m.stale && m.win_taken);
    }

    #[test]
    fn codes() {
        for (line, st) in [
            (&b"HD"[..], Status::Stored),
            (b"EN", Status::Miss),
            (b"NS O1", Status::NotStored),
            (b"EX", Status::Exists),
            (b"NF", Status::NotFound),
            (b"MN", Status::Noop),
            (b"ERROR", Status::Error),
        ] {
            assert_eq!(parse_head(line).unwrap().status, st);
        }
        assert_eq!(
            parse_head(b"SERVER_ERROR object too large for cache")
                .unwrap()
                .status,
            Status::ServerError("object too large for cache".into())
        );
        assert_eq!(
            parse_head(b"CLIENT_ERROR bad data chunk").unwrap().status,
            Status::ClientError("bad data chunk".into())
        );
        assert_eq!(
            parse_head(b"OK").unwrap().status,
            Status::Other("OK".into())
        );
    }

    #[test]
    fn malformed() {
        assert!(parse_head(b"VA").is_err());
        assert!(parse_head(b"VA x").is_err());
        assert!(parse_head(b"HD cX").is_err());
        assert!(parse_head(b"HD t").is_err());
        assert!(parse_head(&[0xff, 0xfe]).is_err());
    }
}
