//! Keys as the meta protocol carries them.
//!
//! memcached's text key is 1 to 250 bytes without spaces or control
//! characters (`KEY_MAX_LENGTH` in memcached.h). Any other byte string is
//! sent base64-encoded with the meta `b` flag, and the 250-byte limit then
//! applies to the encoded form (memcached checks the token before it
//! decodes it). Rings always hash the raw key bytes, as libmemcached does.

use base64::Engine as _;

use crate::error::{Error, Result};

/// The longest key memcached accepts on the wire, in bytes.
pub const KEY_MAX: usize = 250;

/// A key ready to be written into a meta command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WireKey<'a> {
    /// Printable ASCII, sent as is.
    Text(&'a [u8]),
    /// Anything else, sent base64-encoded with the `b` flag.
    Base64(String),
}

impl<'a> WireKey<'a> {
    /// Checks a key and picks its wire form.
    pub(crate) fn new(key: &'a [u8]) -> Result<WireKey<'a>> {
        if key.is_empty() {
            return Err(Error::InvalidKey("empty key".into()));
        }
        if key.iter().all(|&b| b.is_ascii_graphic()) {
            if key.len() > KEY_MAX {
                return Err(Error::InvalidKey(format!(
                    "{} bytes, more than {KEY_MAX}",
                    key.len()
                )));
            }
            return Ok(WireKey::Text(key));
        }
        let enc = base64::engine::general_purpose::STANDARD.encode(key);
        if enc.len() > KEY_MAX {
            return Err(Error::InvalidKey(format!(
                "{} bytes with spaces or binary, {} base64-encoded, more than {KEY_MAX}",
                key.len(),
                enc.len()
            )));
        }
        Ok(WireKey::Base64(enc))
    }

    /// The bytes written after the command name.
    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            WireKey::Text(k) => k,
            WireKey::Base64(s) => s.as_bytes(),
        }
    }

    /// True if the command must carry the `b` flag.
    pub(crate) fn is_base64(&self) -> bool {
        matches!(self, WireKey::Base64(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_keys_go_as_text() {
        assert_eq!(WireKey::new(b"user:1").unwrap(), WireKey::Text(b"user:1"));
        assert!(WireKey::new(&[b'a'; 250]).is_ok());
    }

    #[test]
    fn spaces_controls_and_binary_go_base64() {
        for k in [&b"a b"[..], b"a\r\nb", b"\x00", "é".as_bytes(), b"\x7f"] {
            let w = WireKey::new(k).unwrap();
            assert!(w.is_base64(), "{k:?}");
            let back = base64::engine::general_purpose::STANDARD
                .decode(w.bytes())
                .unwrap();
            assert_eq!(back, k);
        }
    }

    #[test]
    fn limits() {
        assert!(matches!(WireKey::new(b""), Err(Error::InvalidKey(_))));
        assert!(matches!(
            WireKey::new(&[b'a'; 251]),
            Err(Error::InvalidKey(_))
        ));
        // 187 raw bytes encode to 252 > 250; 186 encode to 248.
        assert!(WireKey::new(&[0u8; 186]).is_ok());
        assert!(matches!(
            WireKey::new(&[0u8; 187]),
            Err(Error::InvalidKey(_))
        ));
    }
}
