//! ASCII auth's `set` (protocol/ascii_auth.rs), the parser every byte of
//! an unauthenticated text connection goes through, on arbitrary bytes:
//! never a panic; each request uses at least one byte and no more than it
//! was given; it never asks to buffer more than a line and the largest
//! credential block; credentials are non-empty words of the data block;
//! and a request cut short at any point reads as "need more", never as a
//! different request (bytes arrive in any pieces).
#![no_main]
use corecache::protocol::ascii_auth::{self, AsciiAuth, AUTH_DATA_MAX};
use corecache::protocol::{Parse, LINE_MAX};
use libfuzzer_sys::fuzz_target;

fn check_one(buf: &[u8]) -> Option<usize> {
    let whole = ascii_auth::parse(buf);
    let used = match &whole {
        Parse::Done(a, used) | Parse::Skip(a, used, _) => {
            assert!(*used > 0 && *used <= buf.len());
            if let AsciiAuth::Credentials { user, password } = a {
                for w in [user, password] {
                    assert!(!w.is_empty() && !w.contains(&b' '));
                    // Borrowed from the input.
                    let (s, e) = (buf.as_ptr() as usize, buf.as_ptr() as usize + buf.len());
                    assert!(w.as_ptr() as usize >= s && w.as_ptr() as usize + w.len() <= e);
                }
            }
            *used
        }
        Parse::NeedMore(n) => {
            assert!(*n > 0 && buf.len() + n <= LINE_MAX + 1 + AUTH_DATA_MAX + 2);
            return None;
        }
        Parse::Close => return None,
    };
    // Every cut before the end of the request waits for more; a few cuts
    // spread over long requests keep each run short.
    let step = (used / 64).max(1);
    for k in (0..used).step_by(step) {
        match ascii_auth::parse(&buf[..k]) {
            Parse::NeedMore(_) => {}
            other => panic!("cut at {k} of {used}: {other:?}, whole: {whole:?}"),
        }
    }
    // Whatever follows the request does not change it.
    match (ascii_auth::parse(&buf[..used]), &whole) {
        (Parse::Done(a, n), Parse::Done(b, m)) => assert!(a == *b && n == *m),
        (Parse::Skip(a, n, k), Parse::Skip(b, m, l)) => assert!(a == *b && (n, k) == (*m, *l)),
        (alone, _) => panic!("alone: {alone:?}, followed: {whole:?}"),
    }
    Some(used)
}

fuzz_target!(|data: &[u8]| {
    let mut buf = data;
    while let Some(used) = check_one(buf) {
        buf = &buf[used..];
    }
});
