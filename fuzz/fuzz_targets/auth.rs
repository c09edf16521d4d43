//! The authentication parsers on arbitrary bytes: ASCII auth's `set`
//! (protocol/ascii_auth.rs) never panics, always makes progress, never
//! claims more than it was given nor buffers a block over its bound; SASL
//! PLAIN (auth/sasl.rs) never panics and only returns parts of its input;
//! the password and ACL file parsers take any text.
#![no_main]
use corecache::auth::{acl, passwd, sasl};
use corecache::protocol::{ascii_auth, Parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut buf = data;
    while !buf.is_empty() {
        match ascii_auth::parse(buf) {
            Parse::Done(_, used) | Parse::Skip(_, used, _) => {
                assert!(used > 0 && used <= buf.len());
                buf = &buf[used..];
            }
            Parse::NeedMore(n) => {
                assert!(n > 0 && buf.len() + n <= 2049 + ascii_auth::AUTH_DATA_MAX + 2);
                break;
            }
            Parse::Close => break,
        }
    }
    if let Some(p) = sasl::parse_plain(data) {
        assert!(p.authcid.len() + p.passwd.len() + p.authzid.len() + 2 == data.len());
        assert!(!p.authcid.is_empty());
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(users) = passwd::parse(text) {
            for (_, s) in users {
                let _ = s.matches(data);
            }
        }
        let _ = acl::parse(text);
    }
});
