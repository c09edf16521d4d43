//! Authentication and authorisation: the password file (`-Y`, and `-S`'s
//! SASL PLAIN against the same file), the ACL file (`-o acl_file=`), and
//! the table every worker checks, replaced whole on SIGHUP.
//!
//! The engine asks two questions, both in `engine/dispatch.rs`
//! `Worker::policy`: is this connection authenticated (its `Conn::user`),
//! and may its user run this request (`acl::Rules`). A connection keeps
//! an `Arc<User>`; when the table's generation moves on (a reload), the
//! connection looks its user up again, so removing a user or a right
//! takes effect at its next request.

#![warn(missing_docs)]

pub mod acl;
pub mod passwd;
pub mod sasl;

use acl::Rules;
use passwd::Secret;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock};

/// An authenticated user and what it may do.
#[derive(Debug, PartialEq, Eq)]
pub struct User {
    /// The name in the password file.
    pub name: String,
    /// Its rights (every right when there is no ACL file).
    pub rules: Rules,
}

/// One loaded password file and ACL file.
#[derive(Debug)]
pub struct Table {
    users: HashMap<Vec<u8>, (Secret, Arc<User>)>,
    /// Compared against when the user is unknown, so an unknown name takes
    /// as long as a wrong password.
    dummy: Secret,
}

impl Table {
    /// Builds a table from the two files' text.
    ///
    /// # Errors
    /// A bad line of either file (see `passwd::parse`, `acl::parse`).
    pub fn from_text(passwd: &str, acl: Option<&str>) -> Result<Table, String> {
        let secrets = passwd::parse(passwd)?;
        let rules = match acl {
            Some(t) => Some(acl::parse(t).map_err(|e| format!("ACL file: {e}"))?),
            None => None,
        };
        let rules_of = |name: &str| match &rules {
            None => Rules::all(),
            Some(r) => r
                .iter()
                .find(|(u, _)| u == name)
                .or_else(|| r.iter().find(|(u, _)| u == "*"))
                .map(|(_, r)| r.clone())
                .unwrap_or_default(),
        };
        let mut users = HashMap::new();
        for (name, secret) in secrets {
            let user = Arc::new(User {
                rules: rules_of(&name),
                name: name.clone(),
            });
            // memcached's authfile_check takes the first matching line.
            users.entry(name.into_bytes()).or_insert((secret, user));
        }
        Ok(Table {
            users,
            dummy: Secret::Plain([0; 32]),
        })
    }

    /// Reads and parses the files.
    ///
    /// # Errors
    /// An unreadable file (named) or a bad line.
    pub fn load(passwd: &Path, acl: Option<&Path>) -> Result<Table, String> {
        let read =
            |p: &Path| std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()));
        let p = read(passwd)?;
        let a = acl.map(read).transpose()?;
        Table::from_text(&p, a.as_deref()).map_err(|e| format!("{}: {e}", passwd.display()))
    }

    /// The user if `password` is theirs; the comparison is constant time.
    pub fn verify(&self, user: &[u8], password: &[u8]) -> Option<Arc<User>> {
        match self.users.get(user) {
            Some((s, u)) if s.matches(password) => Some(u.clone()),
            Some(_) => None,
            None => {
                let _ = self.dummy.matches(password);
                None
            }
        }
    }

    /// A user by name (to follow a connection's user across a reload).
    pub fn user(&self, name: &str) -> Option<Arc<User>> {
        self.users.get(name.as_bytes()).map(|(_, u)| u.clone())
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether the file names no user (then nobody can authenticate).
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

/// Where the tables come from, and which protocols authenticate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthConfig {
    /// The password file (`-Y`, or `MEMCACHED_SASL_PWDB` with `-S` alone).
    pub passwd: PathBuf,
    /// The ACL file (`-o acl_file=`).
    pub acl: Option<PathBuf>,
    /// `-S` given.
    pub sasl: bool,
    /// `-Y FILE` as given (memcached's `stats settings` shows it as
    /// `auth_enabled_ascii`), if given.
    pub ascii: Option<String>,
}

/// The current table, shared by every worker and replaced on reload.
#[derive(Debug)]
pub struct Registry {
    /// Where the files are.
    pub config: AuthConfig,
    table: RwLock<Arc<Table>>,
    generation: AtomicU64,
}

impl Registry {
    /// Loads the files named by `config`.
    ///
    /// # Errors
    /// As `Table::load`.
    pub fn new(config: AuthConfig) -> Result<Registry, String> {
        let t = Table::load(&config.passwd, config.acl.as_deref())?;
        Ok(Registry {
            config,
            table: RwLock::new(Arc::new(t)),
            generation: AtomicU64::new(0),
        })
    }

    /// Changes on every successful reload; connections compare it with
    /// the one they authenticated under (one relaxed load per request).
    pub fn generation(&self) -> u64 {
        self.generation.load(Relaxed)
    }

    /// The table now in force.
    pub fn current(&self) -> Arc<Table> {
        self.table.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Reads the files again and, if they parse, puts them in force.
    /// Returns the number of users.
    ///
    /// # Errors
    /// As `Table::load`; the table in force is then kept.
    pub fn reload(&self) -> Result<usize, String> {
        let t = Table::load(&self.config.passwd, self.config.acl.as_deref())?;
        let n = t.len();
        *self.table.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(t);
        self.generation.fetch_add(1, Relaxed);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_and_rules() {
        let t = Table::from_text(
            "alice:secret\nbob:pw\nalice:other\n",
            Some("alice admin read=*\n* read=pub:\n"),
        )
        .unwrap();
        let a = t.verify(b"alice", b"secret").unwrap();
        assert!(a.rules.admin);
        assert!(t.verify(b"alice", b"other").is_none());
        assert!(t.verify(b"carol", b"secret").is_none());
        let b = t.verify(b"bob", b"pw").unwrap();
        assert!(!b.rules.admin && b.rules.may_read(b"pub:1") && !b.rules.may_read(b"x"));
        let t = Table::from_text("alice:secret\n", None).unwrap();
        assert_eq!(t.verify(b"alice", b"secret").unwrap().rules, Rules::all());
    }
}
