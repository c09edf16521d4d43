//! Configuration: memcached 1.6's flags, Debian's memcached.conf
//! (`--conf`) and TOML (`--config`) files, layered so the command line
//! wins, then checked into typed values (`Config`).
//!
//! Every memcached 1.6 flag is accepted. Those with a meaning here act;
//! the rest start the server with one warning line naming them.

mod error;
mod extended;
mod files;
mod introspection;
mod listen;
pub mod memcached_checks;
mod resolve;
mod tls;

pub use error::ConfigError;
pub use extended::{parse_extended, Extended};
pub use files::{conf_args, toml_args};
pub use introspection::Introspection;
pub use listen::{parse_listen, ListenSpec};
pub use resolve::{Config, MAX_THREADS};

use clap::{ArgAction, Parser};

/// The command line, one field per memcached 1.6 flag (same letters, same
/// long names) plus corecache's `--conf`, `--config` and `--logfile`.
/// A flag given twice takes its last value (`-l` and `-o` add up, as in
/// memcached).
#[derive(Parser, Debug, Clone)]
#[command(
    name = "corecache",
    about = "A memcached-compatible cache: thread-per-core io_uring engine, segment store",
    disable_help_flag = true,
    disable_version_flag = true,
    args_override_self = true
)]
pub struct Args {
    /// TCP port to listen on (0: no TCP).
    #[arg(short = 'p', long = "port", default_value_t = 11211)]
    pub port: u16,
    /// UDP port; UDP is not served, so any port but 0 has no effect.
    #[arg(short = 'U', long = "udp-port", default_value_t = 0)]
    pub udp_port: u16,
    /// UNIX socket to listen on (disables TCP, as in memcached).
    #[arg(short = 's', long = "unix-socket")]
    pub unix_socket: Option<String>,
    /// Access mask of the UNIX socket, in octal.
    #[arg(short = 'a', long = "unix-mask", default_value = "700")]
    pub unix_mask: String,
    /// Enable the `shutdown` command.
    #[arg(short = 'A', long = "enable-shutdown")]
    pub enable_shutdown: bool,
    /// Interface to listen on, `[notls:]HOST[:PORT]` (repeatable or comma
    /// separated; default 127.0.0.1).
    #[arg(short = 'l', long = "listen", action = ArgAction::Append)]
    pub listen: Vec<String>,
    /// Run as a daemon (fork, new session, output to /dev/null or --logfile).
    #[arg(short = 'd', long = "daemon")]
    pub daemon: bool,
    /// Maximize the core file limit.
    #[arg(short = 'r', long = "enable-coredumps")]
    pub core_dumps: bool,
    /// Switch to this user after binding the ports (required when root).
    #[arg(short = 'u', long = "user")]
    pub user: Option<String>,
    /// Item memory in megabytes, split evenly across worker threads.
    #[arg(short = 'm', long = "memory-limit", default_value_t = 64)]
    pub memory_mb: u64,
    /// Return an error when memory is full instead of evicting.
    #[arg(short = 'M', long = "disable-evictions")]
    pub no_evict: bool,
    /// Maximum simultaneous connections.
    #[arg(short = 'c', long = "conn-limit", default_value_t = 1024)]
    pub max_conns: usize,
    /// Lock all memory (mlockall), item memory included.
    #[arg(short = 'k', long = "lock-memory")]
    pub lock_memory: bool,
    /// Verbose (repeat for more).
    #[arg(short = 'v', long = "verbose", action = ArgAction::Count)]
    pub verbose: u8,
    /// Print this help and exit.
    #[arg(short = 'h', long = "help", action = ArgAction::Help)]
    pub help: Option<bool>,
    /// Print the license and exit.
    #[arg(short = 'i', long = "license")]
    pub license: bool,
    /// Print the version and exit.
    #[arg(short = 'V', long = "version")]
    pub version: bool,
    /// Write the process id to this file (removed at exit).
    #[arg(short = 'P', long = "pidfile")]
    pub pidfile: Option<String>,
    /// Slab growth factor (no effect: the store has segments, not slabs).
    #[arg(short = 'f', long = "slab-growth-factor", allow_hyphen_values = true, action = clap::ArgAction::Append)]
    pub growth_factor: Vec<String>,
    /// Smallest slab chunk (no effect: the store has segments, not slabs).
    #[arg(short = 'n', long = "slab-min-size", allow_hyphen_values = true, action = clap::ArgAction::Append)]
    pub slab_min_size: Vec<String>,
    /// Worker threads, one per core (default: one per online CPU, as many as
    /// -m gives 8 segments each, so -I stays 1m: 8 at the default -m 64;
    /// at most 256, a larger -t is lowered to it with a note)
    #[arg(short = 't', long = "threads")]
    pub threads: Option<usize>,
    /// Back item memory with huge pages (the default; see -o hugepages).
    #[arg(short = 'L', long = "enable-largepages")]
    pub large_pages: bool,
    /// Key prefix delimiter for `stats detail` (its first byte); also
    /// turns `stats detail` on.
    #[arg(short = 'D')]
    pub prefix_delimiter: Option<String>,
    /// Requests per event (no effect: the engine batches per io_uring turn).
    #[arg(short = 'R', long = "max-reqs-per-event", allow_hyphen_values = true, action = clap::ArgAction::Append)]
    pub reqs_per_event: Vec<String>,
    /// Disable CAS: every CAS clients see is 0, as memcached's -C.
    #[arg(short = 'C', long = "disable-cas")]
    pub disable_cas: bool,
    /// Listen backlog.
    #[arg(short = 'b', long = "listen-backlog")]
    pub backlog: Option<i32>,
    /// Protocol: auto, ascii or binary (connections are auto-detected).
    #[arg(short = 'B', long = "protocol", default_value = "auto")]
    pub protocol: String,
    /// Largest item, e.g. 1m or 512k (never above the segment size).
    #[arg(short = 'I', long = "max-item-size", default_value = "1m")]
    pub item_max: String,
    /// SASL PLAIN authentication over the binary protocol, against the
    /// `-Y` file (or the file `MEMCACHED_SASL_PWDB` names).
    #[arg(short = 'S', long = "enable-sasl")]
    pub sasl: bool,
    /// Disable flush_all.
    #[arg(short = 'F', long = "disable-flush-all")]
    pub no_flush: bool,
    /// Disable `stats cachedump` and `lru_crawler metadump`.
    #[arg(short = 'X', long = "disable-dumping")]
    pub disable_dumping: bool,
    /// Disable `watch`.
    #[arg(short = 'W', long = "disable-watch")]
    pub disable_watch: bool,
    /// Password file (`user:password` lines): every connection must
    /// authenticate (text: ASCII auth; binary: SASL PLAIN).
    #[arg(short = 'Y', long = "auth-file")]
    pub auth_file: Option<String>,
    /// Keep the cache across a graceful restart (SIGTERM, SIGUSR1,
    /// `shutdown`): items are written to files at PATH (PATH.0, PATH.1,
    /// ..., and PATH.meta last) on the way out and read back at the next
    /// start with the same -t, -m and -I. Put PATH on tmpfs: /dev/shm, or
    /// /run/corecache under the packaged service (its RemoveIPC= empties
    /// the service user's files in /dev/shm at each stop).
    #[arg(short = 'e', long = "memory-file")]
    pub memory_file: Option<String>,
    /// TLS on every TCP listener but `-l notls:ADDR[:PORT]` ones; needs
    /// `-o ssl_chain_cert=FILE` (and `ssl_key`, `ssl_ca_cert`,
    /// `ssl_verify_mode=0..3`, `ssl_min_version`).
    #[arg(short = 'Z', long = "enable-ssl")]
    pub ssl: bool,
    /// NAPI ids (no effect).
    #[arg(short = 'N', long = "napi-ids", allow_hyphen_values = true, action = clap::ArgAction::Append)]
    pub napi_ids: Vec<String>,
    /// Extended options, comma separated: memcached's (see `memcached -h`)
    /// and segment_size=1m, eviction=merge|fifo|random|cte|util|volatile|none,
    /// hugepages=on|off, prefault, fault_ahead=on|off, foreign_reads=on|off
    /// (reads of other workers' keys served without a hop), borrow_shards=on|off
    /// (requests for a sleeping worker's keys run on its shard without a hop),
    /// pin_workers=on|off (worker i bound to the i-th allowed CPU; off by
    /// default), steer_connections=on|off (a connection goes to the worker
    /// of the CPU it arrives on, within a surplus of 64; off by default),
    /// idle_timeout=SECONDS, incoming_mem_limit=MB (what the workers may
    /// hold for values still arriving; as -m by default, 0 = no limit),
    /// worker_ports[=BASE] (worker i also listens on BASE+i; BASE defaults to
    /// the -p port + 1).
    #[arg(short = 'o', long = "extended", action = ArgAction::Append)]
    pub extended: Vec<String>,
    /// Read flags from a Debian-style conf file (one per line, `logfile PATH`).
    #[arg(long = "conf")]
    pub conf: Option<String>,
    /// Read settings from a TOML file (keys are the long flag names).
    #[arg(long = "config")]
    pub config: Option<String>,
    /// Append stdout and stderr to this file (Debian's `logfile` line).
    #[arg(long = "logfile")]
    pub logfile: Option<String>,
    /// The admin port and logging flags.
    #[command(flatten)]
    pub admin: crate::admin::AdminArgs,
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Loaded {
    /// Start a server.
    Run(Box<Args>),
    /// Print this (help, version, license) and exit 0.
    Print(String),
}

/// Parses `argv` (program name first), with the files it names under it:
/// a `--conf` file's flags, then a `--config` file's, then the command
/// line's; a later layer's value wins.
///
/// # Errors
/// `ConfigError::Usage` for a flag that does not parse (naming the file it
/// came from), `ConfigError::File` for an unreadable file.
pub fn load(argv: &[String]) -> Result<Loaded, ConfigError> {
    let cmd = match parse(argv, None)? {
        Loaded::Run(a) => a,
        print => return Ok(print),
    };
    if cmd.version {
        return Ok(Loaded::Print(format!(
            "corecache {} (memcached {} protocol)\n",
            crate::version::CORECACHE,
            crate::version::MEMCACHED
        )));
    }
    if cmd.license {
        return Ok(Loaded::Print(format!(
            "corecache {}: {}\n",
            crate::version::CORECACHE,
            env!("CARGO_PKG_LICENSE")
        )));
    }
    let mut layers = Vec::new();
    if let Some(p) = &cmd.conf {
        layers.push((p.clone(), conf_args(p)?));
    }
    if let Some(p) = &cmd.config {
        layers.push((p.clone(), toml_args(p)?));
    }
    if layers.is_empty() {
        return Ok(Loaded::Run(cmd));
    }
    let mut tokens = vec![argv[0].clone()];
    let mut parsed = Vec::new();
    for (path, t) in &layers {
        let mut alone = vec![argv[0].clone()];
        alone.extend(t.iter().cloned());
        if let Loaded::Run(a) = parse(&alone, Some(path))? {
            parsed.push(*a);
        }
        tokens.extend(t.iter().cloned());
    }
    tokens.extend(argv[1..].iter().cloned());
    let Loaded::Run(mut all) = parse(&tokens, None)? else {
        unreachable!("help is only honoured on the command line, parsed above")
    };
    parsed.push(*cmd);
    for layer in &parsed {
        if !layer.listen.is_empty() {
            all.listen = layer.listen.clone();
        }
        if layer.verbose > 0 {
            all.verbose = layer.verbose;
        }
    }
    Ok(Loaded::Run(all))
}

fn parse(argv: &[String], file: Option<&str>) -> Result<Loaded, ConfigError> {
    match Args::try_parse_from(argv) {
        Ok(a) => Ok(Loaded::Run(Box::new(a))),
        Err(e) if file.is_none() && e.kind() == clap::error::ErrorKind::DisplayHelp => {
            Ok(Loaded::Print(e.render().to_string()))
        }
        Err(e) => {
            let msg = e.render().to_string();
            let msg = msg.trim_start_matches("error: ");
            Err(match file {
                Some(path) => ConfigError::File {
                    path: path.to_string(),
                    reason: msg.to_string(),
                },
                None => ConfigError::Usage(msg.to_string()),
            })
        }
    }
}

/// Parses sizes like memcached: plain bytes, or with k/m/g suffixes.
///
/// # Errors
/// A message naming the text when it is not a size that fits a `usize`.
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn argv(s: &[&str]) -> Vec<String> {
        std::iter::once("corecache")
            .chain(s.iter().copied())
            .map(str::to_string)
            .collect()
    }

    fn run(s: &[&str]) -> Args {
        match load(&argv(s)).unwrap() {
            Loaded::Run(a) => *a,
            Loaded::Print(p) => panic!("printed {p}"),
        }
    }

    fn temp(name: &str, text: &str) -> String {
        let p = std::env::temp_dir().join(format!("cc-cfg-{name}-{}", std::process::id()));
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    }

    #[test]
    fn last_value_wins() {
        let a = run(&[
            "-p",
            "1",
            "-p",
            "2",
            "-m",
            "8",
            "--memory-limit=16",
            "-d",
            "-d",
        ]);
        assert_eq!((a.port, a.memory_mb, a.daemon), (2, 16, true));
        let a = run(&["-l", "127.0.0.1", "-l", "::1", "-vv"]);
        assert_eq!(a.listen, ["127.0.0.1", "::1"]);
        assert_eq!(a.verbose, 2);
    }

    #[test]
    fn command_line_beats_files() {
        let conf = temp(
            "conf",
            "-p 1111\n-m 32\n-l 10.0.0.1\n-vv\n-o idle_timeout=5\n-c 7\n",
        );
        let toml = temp("toml", "port = 2222\n");
        for flag in ["--conf", "--conf="] {
            let mut args = vec![];
            if flag.ends_with('=') {
                args.push(format!("{flag}{conf}"));
            } else {
                args.push(flag.to_string());
                args.push(conf.clone());
            }
            args.extend(["--config".to_string(), toml.clone()]);
            args.extend(
                ["-m", "64", "-l", "127.0.0.1", "-v", "-o", "idle_timeout=9"].map(String::from),
            );
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            let a = run(&refs);
            assert_eq!(a.port, 2222, "TOML over conf");
            assert_eq!(a.memory_mb, 64);
            assert_eq!(a.max_conns, 7, "file values stay where not overridden");
            assert_eq!(a.listen, ["127.0.0.1"]);
            assert_eq!(a.verbose, 1);
            assert_eq!(a.extended, ["idle_timeout=5", "idle_timeout=9"]);
        }
        let a = run(&["--config=".to_string() + &toml]
            .each_ref()
            .map(|s| s.as_str()));
        assert_eq!(a.port, 2222);
        std::fs::remove_file(&conf).unwrap();
        std::fs::remove_file(&toml).unwrap();
    }

    #[test]
    fn file_errors_name_the_file() {
        let conf = temp("bad", "-m abc\n");
        let e = load(&argv(&["--conf", &conf])).unwrap_err();
        assert!(e.to_string().starts_with(&conf), "{e}");
        std::fs::remove_file(&conf).unwrap();
    }

    #[test]
    fn help_version_license_print() {
        for f in ["-h", "--help", "-V", "--version", "-i"] {
            assert!(matches!(load(&argv(&[f])), Ok(Loaded::Print(_))), "{f}");
        }
    }

    /// Repeatable flags whose values a higher layer replaces rather than adds
    /// to: `-l` on the command line replaces the file's interfaces.
    const REPLACED_BY_LAYER: &[&str] = &["listen", "verbose"];
    /// Repeatable flags that add up across layers: `-o` options, where a
    /// later value of one option still wins, and the no-effect flags whose
    /// every value memcached checks (`memcached_checks::check_flag`).
    const ADDED_ACROSS_LAYERS: &[&str] = &[
        "extended",
        "growth_factor",
        "slab_min_size",
        "reqs_per_event",
        "napi_ids",
    ];

    /// `load` layers each repeatable flag by one of the two rules above: a
    /// new `Append` or `Count` flag must be added to one of them (and to
    /// `load` if it is replaced).
    #[test]
    fn layering_rules_cover_every_repeatable_flag() {
        for a in Args::command().get_arguments() {
            let id = a.get_id().as_str();
            if matches!(a.get_action(), ArgAction::Append | ArgAction::Count) {
                assert!(
                    REPLACED_BY_LAYER.contains(&id) || ADDED_ACROSS_LAYERS.contains(&id),
                    "repeatable flag '{id}' has no layering rule"
                );
            }
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1m").unwrap(), 1 << 20);
        assert_eq!(parse_size("512k").unwrap(), 512 << 10);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("x").is_err());
    }
}
