//! memcached's ASCII authentication (`-Y`, protocol.txt
//! "Authentication"): until a text connection authenticates, each line is
//! read as a `set <key> <flags> <exptime> <bytes>` whose data block is
//! `user password`. Key, flags and exptime are ignored (any token will
//! do), `noreply` too. Measured against memcached 1.6.18:
//!
//! | input | reply |
//! | --- | --- |
//! | a line of fewer than five tokens, not starting `set`, or a bad `<bytes>` | `CLIENT_ERROR unauthenticated` |
//! | a data block not ending in `\r\n` | `CLIENT_ERROR bad command line termination` |
//! | a data block of fewer than two space-separated tokens | `CLIENT_ERROR bad authentication token format` |
//! | wrong user or password | `CLIENT_ERROR authentication failure` |
//! | right user and password | `STORED` |
//!
//! Extra tokens after the password are ignored, leading spaces too.

use super::text::{may_exceed_line_max, parse_u32, tokens};
use super::{Parse, LINE_MAX, READ_MAX};

/// The largest `<bytes>` of an authentication `set`. memcached buffers
/// any size; a credential is a few dozen bytes, so a larger block closes
/// the connection instead of being held in memory.
pub const AUTH_DATA_MAX: usize = 4096;

/// One line (and data block) of an unauthenticated text connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AsciiAuth<'a> {
    /// A well-formed attempt, to check against the password file.
    Credentials {
        /// The first token of the data block.
        user: &'a [u8],
        /// The second token.
        password: &'a [u8],
    },
    /// Not an authentication `set`: refused as unauthenticated.
    NotAuth,
    /// `CLIENT_ERROR bad command line termination`.
    BadTermination,
    /// `CLIENT_ERROR bad authentication token format`.
    BadFormat,
}

/// Reads one request of an unauthenticated text connection.
///
/// Lines are bounded as memcached bounds them (`text::parse_stream`): a
/// line end within one read buffer (`READ_MAX`) serves the line, however
/// long; without one, more than `LINE_MAX` bytes close the connection
/// unless they begin a `get`/`gets`. memcached reads an unauthenticated
/// `get` line without end; here it stops at `READ_MAX`, as nothing an
/// unauthenticated client sends needs more (a breaker found every line
/// over `LINE_MAX` closed, where memcached answers `CLIENT_ERROR
/// unauthenticated` and keeps the connection).
pub fn parse(buf: &[u8]) -> Parse<AsciiAuth<'_>> {
    let Some(nl) = buf.iter().take(READ_MAX).position(|&c| c == b'\n') else {
        let over = buf.len() >= READ_MAX || (buf.len() > LINE_MAX && !may_exceed_line_max(buf));
        return if over {
            Parse::Close
        } else {
            Parse::NeedMore(1)
        };
    };
    let line = &buf[..nl];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let head = nl + 1;
    let t: Vec<&[u8]> = tokens(line).take(5).collect();
    let size = match t.as_slice() {
        [b"set", _, _, _, n] => parse_u32(n),
        _ => None,
    };
    let Some(size) = size else {
        return Parse::Done(AsciiAuth::NotAuth, head);
    };
    let size = size as usize;
    if size > AUTH_DATA_MAX {
        return Parse::Close;
    }
    let total = head + size + 2;
    if buf.len() < total {
        return Parse::NeedMore(total - buf.len());
    }
    let data = &buf[head..total];
    if !data.ends_with(b"\r\n") {
        return Parse::Done(AsciiAuth::BadTermination, total);
    }
    let mut words = tokens(&data[..size]);
    match (words.next(), words.next()) {
        (Some(user), Some(password)) => {
            Parse::Done(AsciiAuth::Credentials { user, password }, total)
        }
        _ => Parse::Done(AsciiAuth::BadFormat, total),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(b: &[u8]) -> (AsciiAuth<'_>, usize) {
        match parse(b) {
            Parse::Done(a, n) => (a, n),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn attempts_as_memcached_reads_them() {
        let cred = |u: &'static [u8], p: &'static [u8]| AsciiAuth::Credentials {
            user: u,
            password: p,
        };
        assert_eq!(
            done(b"set x 0 0 12\r\nalice secret\r\nget"),
            (cred(b"alice", b"secret"), 28)
        );
        assert_eq!(
            done(b"set x y z 12 noreply\nalice secret\r\n").0,
            cred(b"alice", b"secret")
        );
        assert_eq!(
            done(b"set x 0 0 18\r\nalice secret extra\r\n").0,
            cred(b"alice", b"secret")
        );
        assert_eq!(
            done(b"set x 0 0 13\r\n alice secret\r\n").0,
            cred(b"alice", b"secret")
        );
        assert_eq!(
            done(b"set x 0 0 12\r\nalice\tsecret\r\n").0,
            AsciiAuth::BadFormat
        );
        assert_eq!(done(b"set x 0 0 1\r\n \r\n").0, AsciiAuth::BadFormat);
        // safe_strtoul keeps the low 32 bits: 2^32 + 12 is 12.
        assert_eq!(
            done(b"set x 0 0 4294967308\r\nalice secret\r\n").0,
            cred(b"alice", b"secret")
        );
        assert_eq!(
            done(b"set x 0 0 12\r\nalice secretAB").0,
            AsciiAuth::BadTermination
        );
        for l in [
            &b"get foo\r\n"[..],
            b"\r\n",
            b"quit\r\n",
            b"set x 0 0\r\n",
            b"sets x 0 0 12\r\n",
            b"set x 0 0 -1\r\n",
            b"add x 0 0 12\r\n",
        ] {
            assert_eq!(done(l), (AsciiAuth::NotAuth, l.len()), "{l:?}");
        }
    }

    #[test]
    fn partial_and_hostile_input() {
        assert!(matches!(
            parse(b"set x 0 0 12\r\nalice"),
            Parse::NeedMore(_)
        ));
        assert!(matches!(parse(b"set x 0"), Parse::NeedMore(_)));
        assert!(matches!(parse(&[b'x'; LINE_MAX + 1]), Parse::Close));
        // A long line that arrives whole is answered, as memcached answers
        // it; a get line may grow to a read buffer's size first.
        let mut long = vec![b'x'; LINE_MAX + 100];
        long.extend_from_slice(b"\r\n");
        assert_eq!(done(&long), (AsciiAuth::NotAuth, long.len()));
        let mut get = b"get ".to_vec();
        get.extend_from_slice(&[b'k'; LINE_MAX]);
        assert!(matches!(parse(&get), Parse::NeedMore(_)));
        get.extend_from_slice(&[b'k'; READ_MAX]);
        assert!(matches!(parse(&get), Parse::Close));
        assert!(matches!(parse(b"set x 0 0 4097\r\n"), Parse::Close));
    }
}
