//! The password file (auth/passwd.rs) and the ACL file (auth/acl.rs) on
//! arbitrary text: never a panic; every plain `user:password` line of a
//! file that loads lets that user in with that password (the first line
//! of a name wins, as memcached's authfile_check), and with nothing else
//! that differs; a salted field built for any salt and password matches
//! that password; an ACL file that loads names each user once.
#![no_main]
use corecache::auth::passwd::{self, Secret};
use corecache::auth::{acl, Table};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(users) = passwd::parse(text) {
        for (name, _) in &users {
            assert!(!name.is_empty() && !name.contains(':') && !name.contains('\n'));
        }
    }
    if let Ok(rules) = acl::parse(text) {
        let mut names: Vec<&str> = rules.iter().map(|(u, _)| u.as_str()).collect();
        names.sort_unstable();
        let n = names.len();
        names.dedup();
        assert_eq!(names.len(), n, "a user named twice");
        for (_, r) in &rules {
            // Only `*` is the empty prefix; no empty word becomes one.
            assert!(r
                .read
                .iter()
                .chain(&r.write)
                .all(|p| !p.is_empty() || text.contains('*')));
        }
    }
    // The text as the password file, and as the ACL file (if it is one).
    let acl_text = acl::parse(text).is_ok().then_some(text);
    if let Ok(t) = Table::from_text(text, acl_text) {
        let mut seen = std::collections::HashSet::new();
        for line in text.split('\n') {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let (user, pass) = line.split_once(':').unwrap();
            if !seen.insert(user) || pass.starts_with(passwd::SHA256_PREFIX) {
                continue;
            }
            assert!(
                t.verify(user.as_bytes(), pass.as_bytes()).is_some(),
                "{line:?}"
            );
            let other = [pass.as_bytes(), b"x"].concat();
            assert!(t.verify(user.as_bytes(), &other).is_none(), "{line:?}");
        }
        assert!(t.verify(b"\0nobody", b"").is_none());
    }
    // A salted field for any salt and password.
    if let Some((salt, pw)) = text.split_once('\n') {
        let f = Secret::hash_field(salt, pw);
        let s = Secret::parse(&f).unwrap();
        assert!(s.matches(pw.as_bytes()));
        assert!(!s.matches([pw.as_bytes(), b"!"].concat().as_slice()));
    }
});
