//! The credential messages: SASL PLAIN (auth/sasl.rs), as binary
//! SASL_AUTH and SASL_STEP carry it, and the admin port's HTTP Basic
//! value (admin/users.rs). On arbitrary bytes: never a panic, only parts
//! of the input returned; and a message built from any parts reads back
//! as exactly those parts whenever it is valid.
#![no_main]
use base64::Engine;
use corecache::admin::users::basic;
use corecache::auth::sasl::parse_plain;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(p) = parse_plain(data) {
        assert_eq!(
            p.authzid.len() + p.authcid.len() + p.passwd.len() + 2,
            data.len()
        );
        assert!(!p.authcid.is_empty() && !p.passwd.contains(&0));
        assert!(p.authzid.is_empty() || p.authzid == p.authcid);
    }
    if let Some((u, _)) = basic(data) {
        assert!(!u.contains(&b':'));
    }
    // Build messages from parts: the first two bytes cut the rest.
    if data.len() >= 2 {
        let rest = &data[2..];
        let a = (data[0] as usize).min(rest.len());
        let b = (data[1] as usize).min(rest.len() - a);
        let (authzid, authcid, passwd) = (&rest[..a], &rest[a..a + b], &rest[a + b..]);
        let msg = [authzid, b"\0", authcid, b"\0", passwd].concat();
        let valid = !authzid.contains(&0)
            && !authcid.contains(&0)
            && !passwd.contains(&0)
            && !authcid.is_empty()
            && (authzid.is_empty() || authzid == authcid);
        match parse_plain(&msg) {
            Some(p) => {
                assert!(valid, "{msg:?}");
                assert_eq!((p.authzid, p.authcid, p.passwd), (authzid, authcid, passwd));
            }
            // A NUL inside a part makes a third NUL: never valid.
            None => assert!(!valid, "{msg:?}"),
        }
        let user = &rest[..a];
        let pass = &rest[a..];
        let value = [
            &b"Basic "[..],
            base64::engine::general_purpose::STANDARD
                .encode([user, b":", pass].concat())
                .as_bytes(),
        ]
        .concat();
        let got = basic(&value);
        if user.contains(&b':') {
            // The user ends at the first ':' (RFC 7617).
            let (u, _) = got.unwrap();
            assert!(user.starts_with(&u));
        } else {
            assert_eq!(got, Some((user.to_vec(), pass.to_vec())));
        }
    }
});
