//! The text/meta parser on arbitrary bytes: never panics, always makes
//! progress, never claims more bytes than it was given.
#![no_main]
use corecache::protocol::{text, Parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut buf = data;
    while !buf.is_empty() {
        match text::parse(buf, 1 << 16) {
            Parse::Done(_, used) | Parse::Skip(_, used, _) => {
                assert!(used > 0 && used <= buf.len());
                buf = &buf[used..];
            }
            Parse::NeedMore(n) => {
                assert!(n > 0);
                break;
            }
            Parse::Close => break,
        }
    }
});
