//! Authorisation rules (`-o acl_file=PATH`), which memcached lacks: which
//! key prefixes a user may read or write, and who may run administrative
//! commands.
//!
//! ```text
//! # user  rules (space separated)
//! ops     admin read=* write=*
//! web     read=app:,session: write=session:
//! report  read=*
//! *       read=public:
//! ```
//!
//! - `read=P1,P2` — gets (`get`, `gets`, `mg`, `me`, binary GET*) of keys
//!   starting with any listed prefix; `*` is every key.
//! - `write=P1,P2` — stores, deletes, incr/decr, touch and gat (they
//!   change the item); `write` does not imply `read`.
//! - `admin` — `flush_all`, `cache_memlimit`, `shutdown`, `verbosity`,
//!   `stats reset`/`detail`/`cachedump`, `watch` (binary FLUSH,
//!   VERBOSITY, STAT reset and detail alike).
//! - The user `*` holds the rules of every user the file does not name.
//!
//! The admin port applies the same rules to its logins (`admin/users.rs`):
//! `read` to view a key or list it in the key browser, `write` to edit or
//! delete it, `admin` to invalidate a prefix.
//!
//! Without an ACL file every authenticated user may do everything, as in
//! memcached. With one, a user it does not name (and no `*` line) may
//! authenticate and run `version`, `stats`, `mn`, `quit`, nothing else.

/// One user's rights.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rules {
    /// Key prefixes the user may read; an empty prefix is every key.
    pub read: Vec<Vec<u8>>,
    /// Key prefixes the user may write.
    pub write: Vec<Vec<u8>>,
    /// May run administrative commands.
    pub admin: bool,
}

impl Rules {
    /// Every right: the rules of every user when there is no ACL file.
    pub fn all() -> Rules {
        Rules {
            read: vec![Vec::new()],
            write: vec![Vec::new()],
            admin: true,
        }
    }

    fn allows(list: &[Vec<u8>], key: &[u8]) -> bool {
        list.iter().any(|p| key.starts_with(p))
    }

    /// Whether `key` may be read.
    pub fn may_read(&self, key: &[u8]) -> bool {
        Rules::allows(&self.read, key)
    }

    /// Whether `key` may be written (stored, deleted, changed, touched).
    pub fn may_write(&self, key: &[u8]) -> bool {
        Rules::allows(&self.write, key)
    }
}

fn prefixes(v: &str) -> Vec<Vec<u8>> {
    v.split(',')
        .filter(|p| !p.is_empty())
        .map(|p| {
            if p == "*" {
                Vec::new()
            } else {
                p.as_bytes().to_vec()
            }
        })
        .collect()
}

/// Parses an ACL file's text into (user, rules) pairs; `*` names the
/// default. A user named twice has the union of the lines' rules.
///
/// # Errors
/// The first unknown rule, by line number.
pub fn parse(text: &str) -> Result<Vec<(String, Rules)>, String> {
    let mut out: Vec<(String, Rules)> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("");
        let mut words = line.split_whitespace();
        let Some(user) = words.next() else { continue };
        let mut r = Rules::default();
        for w in words {
            match w.split_once('=') {
                Some(("read", v)) => r.read.extend(prefixes(v)),
                Some(("write", v)) => r.write.extend(prefixes(v)),
                None if w == "admin" => r.admin = true,
                _ => return Err(format!("line {}: unknown rule '{w}'", n + 1)),
            }
        }
        match out.iter_mut().find(|(u, _)| u == user) {
            Some((_, old)) => {
                old.read.extend(r.read);
                old.write.extend(r.write);
                old.admin |= r.admin;
            }
            None => out.push((user.to_string(), r)),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_by_user() {
        let a = parse(
            "ops admin read=* write=*\n# x\nweb read=app:,session: write=session: # c\n*\tread=public:\nweb write=tmp:\n",
        )
        .unwrap();
        assert_eq!(a.len(), 3);
        let ops = &a[0].1;
        assert!(ops.admin && ops.may_read(b"anything") && ops.may_write(b""));
        let web = &a[1].1;
        assert!(!web.admin);
        assert!(web.may_read(b"app:1") && web.may_read(b"session:x"));
        assert!(!web.may_read(b"ap") && !web.may_read(b"tmp:1"));
        assert!(web.may_write(b"session:x") && web.may_write(b"tmp:1"));
        assert!(!web.may_write(b"app:1"));
        assert_eq!(a[2].0, "*");
        assert!(a[2].1.may_read(b"public:1") && !a[2].1.may_write(b"public:1"));
        assert!(parse("x reed=a\n").unwrap_err().starts_with("line 1"));
        assert!(Rules::all().may_write(b"k"));
        assert!(!Rules::default().may_read(b"k"));
    }
}
