//! The binary parser on arbitrary bytes: never panics, always makes
//! progress, and never asks to buffer more than the item limit allows.
#![no_main]
use corecache::protocol::{binary, Parse};
use libfuzzer_sys::fuzz_target;

const ITEM_MAX: usize = 1 << 16;

fuzz_target!(|data: &[u8]| {
    let mut buf = data;
    while !buf.is_empty() {
        match binary::parse(buf, ITEM_MAX) {
            Parse::Done(_, used) | Parse::Skip(_, used, _) => {
                assert!(used > 0 && used <= buf.len());
                buf = &buf[used..];
            }
            Parse::NeedMore(n) => {
                assert!(n > 0 && buf.len() + n <= binary::HEADER_LEN + ITEM_MAX + 1024 + 64 * 1024);
                break;
            }
            Parse::Close => break,
        }
    }
});
