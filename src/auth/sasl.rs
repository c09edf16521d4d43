//! SASL PLAIN (RFC 4616), the mechanism corecache offers over the binary
//! protocol's SASL_AUTH and SASL_STEP: `[authzid] NUL authcid NUL passwd`.

/// The one mechanism offered (SASL_LIST_MECHS' reply).
pub const MECHS: &str = "PLAIN";

/// A PLAIN message's identities and password, borrowed from the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plain<'a> {
    /// The user to act as; empty means `authcid`.
    pub authzid: &'a [u8],
    /// The user whose password this is.
    pub authcid: &'a [u8],
    /// The password.
    pub passwd: &'a [u8],
}

/// Splits a PLAIN message. None unless it has exactly two NULs and a
/// non-empty `authcid`, and `authzid` is empty or names `authcid` (acting
/// as another user is not offered).
pub fn parse_plain(msg: &[u8]) -> Option<Plain<'_>> {
    let mut parts = msg.splitn(3, |&b| b == 0);
    let authzid = parts.next()?;
    let authcid = parts.next()?;
    let passwd = parts.next()?;
    if authcid.is_empty() || passwd.contains(&0) {
        return None;
    }
    if !authzid.is_empty() && authzid != authcid {
        return None;
    }
    Some(Plain {
        authzid,
        authcid,
        passwd,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_messages() {
        let p = parse_plain(b"\0alice\0secret").unwrap();
        assert_eq!((p.authcid, p.passwd), (&b"alice"[..], &b"secret"[..]));
        assert!(parse_plain(b"alice\0alice\0pw").is_some());
        assert!(parse_plain(b"\0alice\0").is_some());
        assert!(parse_plain(b"bob\0alice\0pw").is_none());
        assert!(parse_plain(b"\0\0pw").is_none());
        assert!(parse_plain(b"alice\0secret").is_none());
        assert!(parse_plain(b"\0a\0b\0c").is_none());
        assert!(parse_plain(b"").is_none());
    }
}
