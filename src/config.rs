//! Command line: memcached's flags, plus Debian-style conf files (one flag
//! per line, `#` comments) given with `--conf`.

use clap::{ArgAction, Parser};

#[derive(Parser, Debug, Clone)]
#[command(
    name = "corecache",
    version,
    about = "A memcached-compatible cache: thread-per-core io_uring engine, segment store",
    disable_help_flag = true
)]
pub struct Args {
    /// TCP port to listen on.
    #[arg(short = 'p', long = "port", default_value_t = 11211)]
    pub port: u16,
    /// Interface to listen on (repeatable or comma separated).
    #[arg(short = 'l', long = "listen", action = ArgAction::Append)]
    pub listen: Vec<String>,
    /// Item memory in megabytes, split evenly across worker threads.
    #[arg(short = 'm', long = "memory-limit", default_value_t = 64)]
    pub memory_mb: u64,
    /// Maximum simultaneous connections.
    #[arg(short = 'c', long = "conn-limit", default_value_t = 1024)]
    pub max_conns: usize,
    /// Worker threads, one per core (default: all online CPUs).
    #[arg(short = 't', long = "threads")]
    pub threads: Option<usize>,
    /// Largest item, e.g. 1m or 512k (never above the segment size).
    #[arg(short = 'I', long = "max-item-size", default_value = "1m")]
    pub item_max: String,
    /// Return an error when memory is full instead of evicting.
    #[arg(short = 'M', long = "disable-evictions")]
    pub no_evict: bool,
    /// UDP port; only 0 (off) is supported.
    #[arg(short = 'U', long = "udp-port", default_value_t = 0)]
    pub udp_port: u16,
    /// Verbose (repeat for more).
    #[arg(short = 'v', action = ArgAction::Count)]
    pub verbose: u8,
    /// Protocol: auto, ascii or binary (connections are auto-detected).
    #[arg(short = 'B', long = "protocol", default_value = "auto")]
    pub protocol: String,
    /// Run as this user (accepted for compatibility; only checked when root).
    #[arg(short = 'u', long = "user")]
    pub user: Option<String>,
    /// Write the process id to this file.
    #[arg(short = 'P', long = "pidfile")]
    pub pidfile: Option<String>,
    /// Disable flush_all.
    #[arg(short = 'F', long = "disable-flush-all")]
    pub no_flush: bool,
    /// Enable the `shutdown` command.
    #[arg(short = 'A', long = "enable-shutdown")]
    pub enable_shutdown: bool,
    /// Extended options: segment_size=1m, eviction=merge|fifo|random|cte|util|volatile|none,
    /// hugepages=on|off, prefault (touch all item memory at start),
    /// backlog=N, idle_timeout=SECONDS.
    #[arg(short = 'o', long = "extended", action = ArgAction::Append)]
    pub extended: Vec<String>,
    /// Read flags from a Debian-style conf file (one per line).
    #[arg(long = "conf")]
    pub conf: Option<String>,
    /// Read settings from a TOML file (keys are the long flag names).
    #[arg(long = "config")]
    pub config: Option<String>,
    #[command(flatten)]
    pub admin: crate::admin::AdminArgs,
    /// Print help.
    #[arg(short = 'h', long = "help", action = ArgAction::Help)]
    pub help: Option<bool>,
}

/// Parses sizes like memcached: plain bytes, or with k/m/g suffixes.
pub fn parse_size(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let (num, mul) = match s.chars().last().map(|c| c.to_ascii_lowercase()) {
        Some('k') => (&s[..s.len() - 1], 1usize << 10),
        Some('m') => (&s[..s.len() - 1], 1 << 20),
        Some('g') => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(mul))
        .ok_or_else(|| format!("invalid size '{s}'"))
}

/// Flags from a conf file, ahead of the command line's own.
pub fn conf_args(path: &str) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut parts = line.splitn(2, char::is_whitespace);
        let flag = parts.next().unwrap();
        // Debian's memcached.conf names its log file without a dash.
        out.push(if flag == "logfile" { "--logfile" } else { flag }.to_string());
        if let Some(v) = parts.next() {
            out.push(v.trim().to_string());
        }
    }
    Ok(out)
}

/// Flags from a TOML file: `key = value` per long flag name, arrays for
/// repeatable flags, `true` for switches.
pub fn toml_args(path: &str) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let table: toml::Table = text.parse().map_err(|e| format!("{path}: {e}"))?;
    let mut out = Vec::new();
    for (k, v) in table {
        let flag = format!("--{k}");
        let scalar = |v: &toml::Value| -> Result<String, String> {
            match v {
                toml::Value::String(s) => Ok(s.clone()),
                toml::Value::Integer(i) => Ok(i.to_string()),
                toml::Value::Float(f) => Ok(f.to_string()),
                other => Err(format!("{path}: unsupported value for {k}: {other:?}")),
            }
        };
        match &v {
            toml::Value::Boolean(true) => out.push(flag),
            toml::Value::Boolean(false) => {}
            toml::Value::Array(items) => {
                for i in items {
                    out.push(flag.clone());
                    out.push(scalar(i)?);
                }
            }
            other => {
                out.push(flag);
                out.push(scalar(other)?);
            }
        }
    }
    Ok(out)
}

#[derive(Debug, Clone)]
pub struct Extended {
    pub segment_size: usize,
    pub eviction: String,
    pub hugepages: bool,
    pub backlog: i32,
    /// Close connections idle this many seconds (0 = never).
    pub idle_timeout: u32,
    /// Fault all item memory in at start.
    pub prefault: bool,
}

pub fn parse_extended(opts: &[String]) -> Result<Extended, String> {
    let mut x = Extended {
        segment_size: 1 << 20,
        eviction: "merge".into(),
        hugepages: true,
        backlog: 1024,
        idle_timeout: 0,
        prefault: false,
    };
    for o in opts.iter().flat_map(|s| s.split(',')) {
        let (k, v) = o.split_once('=').unwrap_or((o, ""));
        match k {
            "segment_size" => x.segment_size = parse_size(v)?,
            "eviction" => x.eviction = v.to_string(),
            "hugepages" => x.hugepages = !matches!(v, "off" | "no" | "0" | "false"),
            "prefault" => x.prefault = !matches!(v, "off" | "no" | "0" | "false"),
            "backlog" => x.backlog = v.parse().map_err(|_| format!("invalid backlog '{v}'"))?,
            "idle_timeout" => {
                x.idle_timeout = v
                    .parse()
                    .map_err(|_| format!("invalid idle_timeout '{v}'"))?
            }
            _ => return Err(format!("unknown -o option '{k}'")),
        }
    }
    Ok(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_becomes_flags() {
        let dir = std::env::temp_dir().join(format!("cc-toml-{}", std::process::id()));
        std::fs::write(&dir, "port = 1234\nlisten = [\"127.0.0.1\", \"::1\"]\ndisable-evictions = true\nextended = [\"eviction=fifo\"]\n").unwrap();
        let a = toml_args(dir.to_str().unwrap()).unwrap();
        std::fs::remove_file(&dir).unwrap();
        let args = Args::try_parse_from(std::iter::once("corecache".to_string()).chain(a)).unwrap();
        assert_eq!(args.port, 1234);
        assert_eq!(args.listen, vec!["127.0.0.1", "::1"]);
        assert!(args.no_evict);
        assert_eq!(args.extended, vec!["eviction=fifo"]);
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1m").unwrap(), 1 << 20);
        assert_eq!(parse_size("512k").unwrap(), 512 << 10);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("x").is_err());
    }
}
