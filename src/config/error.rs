//! Why a configuration was refused.

use std::fmt;

/// A configuration corecache refuses to start with. Every variant exits
/// with sysexits' `EX_USAGE` (64), memcached's status for a bad setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// The command line (or a file's flags) did not parse: clap's message.
    Usage(String),
    /// A `--conf` or `--config` file that could not be read or parsed.
    File {
        /// The file as given.
        path: String,
        /// What was wrong, with its line where known.
        reason: String,
    },
    /// A value out of range, or two settings that contradict each other.
    Invalid(String),
}

impl ConfigError {
    /// The process exit status for this error: `EX_USAGE`.
    pub fn exit_code(&self) -> u8 {
        crate::process::EX_USAGE
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Usage(m) | ConfigError::Invalid(m) => f.write_str(m.trim_end()),
            ConfigError::File { path, reason } => write!(f, "{path}: {reason}"),
        }
    }
}

impl std::error::Error for ConfigError {}
