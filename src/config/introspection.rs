//! The flags that govern looking inside the cache: `-X` (no dumps), `-W`
//! (no `watch`), `-D` (the key prefix delimiter of `stats detail`).

use super::Args;

/// What introspection commands may do, from memcached's flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Introspection {
    /// Not `-X`: `stats cachedump` and `lru_crawler metadump` answer.
    pub dump_enabled: bool,
    /// Not `-W`: `watch` streams log lines.
    pub watch_enabled: bool,
    /// `-D <c>`: the byte ending a key's prefix in `stats detail` (the
    /// first of the argument, as memcached takes it); `:` by default.
    pub prefix_delimiter: u8,
    /// `-D` also turns `stats detail` on from the start (memcached.c).
    pub detail_at_start: bool,
}

impl Default for Introspection {
    fn default() -> Self {
        Introspection {
            dump_enabled: true,
            watch_enabled: true,
            prefix_delimiter: b':',
            detail_at_start: false,
        }
    }
}

impl Introspection {
    /// From the command line (a file's values are already merged in).
    pub fn from_args(args: &Args) -> Introspection {
        let delimiter = args
            .prefix_delimiter
            .as_deref()
            .and_then(|d| d.bytes().next());
        Introspection {
            dump_enabled: !args.disable_dumping,
            watch_enabled: !args.disable_watch,
            prefix_delimiter: delimiter.unwrap_or(b':'),
            detail_at_start: delimiter.is_some(),
        }
    }
}
