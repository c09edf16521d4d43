//! From flags to checked, typed settings.

use super::tls::tls_config;
use super::{parse_extended, parse_listen, parse_size, Args, ConfigError, ListenSpec};
use crate::store::index::{MAX_SEGMENTS, MAX_SEGMENT_SIZE};
use crate::store::Eviction;
use crate::tls::TlsConfig;
#[cfg(test)]
use crate::tls::VerifyMode;
use std::path::PathBuf;

/// A configuration that passed every check: the values start-up uses.
#[derive(Debug, Clone)]
pub struct Config {
    /// TCP port; 0 means no TCP listener (also the case with `-s`).
    pub tcp_port: u16,
    /// Interfaces to listen on, each as given (`-l`, split on commas);
    /// `127.0.0.1` when none was given.
    pub interfaces: Vec<String>,
    /// The same entries read (`[notls:]HOST[:PORT]`).
    pub listens: Vec<ListenSpec>,
    /// Whether `-l` was given (memcached words its listen error by it).
    pub interfaces_given: bool,
    /// `-s`: the UNIX socket to listen on.
    pub unix_socket: Option<PathBuf>,
    /// `-a`: permission bits of the UNIX socket (e.g. 0o700).
    pub unix_mask: u32,
    /// `-b`: listen backlog, in connections.
    pub backlog: i32,
    /// `-t`: worker threads, each owning one store shard.
    pub threads: usize,
    /// `-m`: item memory in bytes, over all shards.
    pub memory: usize,
    /// Bytes per store segment, after shrinking so every shard has several.
    pub segment_size: usize,
    /// `-I`: largest item in bytes (at most the segment size).
    pub item_max: usize,
    /// `-o eviction`, or `Eviction::None` with `-M`.
    pub eviction: Eviction,
    /// `-L` / `-o hugepages`: back item memory with huge pages.
    pub huge_pages: bool,
    /// `-o prefault`: fault item memory in at start.
    pub prefault: bool,
    /// `-o fault_ahead`: fault the next free segments in ahead of writes.
    pub fault_ahead: bool,
    /// `-o foreign_reads`: reads of other workers' keys served without a
    /// hop (store/foreign.rs).
    pub foreign_reads: bool,
    /// `-o borrow_shards`: requests for other workers' keys run on their
    /// shards here while they sleep (engine/lend.rs).
    pub borrow_shards: bool,
    /// `-o pin_workers`: each worker bound to one CPU.
    pub pin_workers: bool,
    /// `-o steer_connections`: new connections go to the worker of the CPU
    /// they arrive on (engine/steer.rs).
    pub steer_connections: bool,
    /// `-e PATH`: keep the cache across a graceful restart in files at
    /// PATH (`process::warm`), made absolute (`-d` changes directory).
    pub memory_file: Option<PathBuf>,
    /// `-k`: mlockall, item memory included.
    pub lock_memory: bool,
    /// `-r`: raise the core file limit.
    pub core_dumps: bool,
    /// `-c`: most simultaneous connections.
    pub max_conns: usize,
    /// `-o idle_timeout`: seconds of silence before a connection is closed; 0 = never.
    pub idle_timeout: u32,
    /// `-o incoming_mem_limit`, in bytes over all workers: what they may
    /// hold for requests still arriving; as `-m` unless given, 0 = no limit.
    pub incoming_limit: usize,
    /// `-o worker_ports[=BASE]`: the first worker port; worker *i* also
    /// listens on `BASE + i` (every `-l` address), and requests arriving
    /// there run on its shard alone. `BASE` defaults to `-p` + 1.
    pub worker_ports: Option<u16>,
    /// Not `-F`: `flush_all` works.
    pub flush_enabled: bool,
    /// `-A`: the `shutdown` command stops the server.
    pub shutdown_enabled: bool,
    /// Not `-C`: items carry CAS values.
    pub cas_enabled: bool,
    /// `-v` count.
    pub verbosity: u8,
    /// `-u`: the user to become after binding (when started as root).
    pub user: Option<String>,
    /// `-d`: fork into the background.
    pub daemonize: bool,
    /// `-P`: file holding the pid while the server runs.
    pub pidfile: Option<PathBuf>,
    /// `--logfile`: where stdout and stderr go once the ports are bound.
    pub logfile: Option<PathBuf>,
    /// Options given that have no effect here, as given, for one warning.
    pub no_effect: Vec<String>,
    /// Adjustments made to fit the request, one line each.
    pub notes: Vec<String>,
    /// `-Y`/`-S`: where users and their rights come from; None = no
    /// authentication.
    pub auth: Option<crate::auth::AuthConfig>,
    /// `-Z`: TLS on the TCP listeners not marked `notls:`.
    pub tls: Option<TlsConfig>,
    /// `-X`, `-W`, `-D`.
    pub introspection: super::Introspection,
}

pub(super) fn invalid(msg: impl Into<String>) -> ConfigError {
    ConfigError::Invalid(msg.into())
}

/// A path made absolute, so a reload after `-d` (which moves to `/`)
/// reads the same file.
pub(super) fn absolute(p: &str) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| PathBuf::from(p))
}

/// `-Y FILE` turns on ASCII authentication; `-S` SASL PLAIN over the
/// binary protocol, against the `-Y` file or, as memcached's own SASL
/// password database, the file `MEMCACHED_SASL_PWDB` names. Either one
/// makes every connection authenticate, in its own protocol's way.
fn auth_config(
    args: &Args,
    acl: Option<&str>,
) -> Result<Option<crate::auth::AuthConfig>, ConfigError> {
    let passwd = args
        .auth_file
        .clone()
        .filter(|p| !p.is_empty())
        .or_else(|| {
            args.sasl
                .then(|| std::env::var("MEMCACHED_SASL_PWDB").ok())
                .flatten()
        });
    let Some(passwd) = passwd else {
        if args.sasl {
            return Err(invalid(
                "-S needs a password file: -Y FILE (or MEMCACHED_SASL_PWDB=FILE)",
            ));
        }
        if acl.is_some() {
            return Err(invalid("-o acl_file needs authentication: -Y FILE or -S"));
        }
        return Ok(None);
    };
    Ok(Some(crate::auth::AuthConfig {
        passwd: absolute(&passwd),
        acl: acl.map(absolute),
        sasl: args.sasl,
        ascii: args.auth_file.clone().filter(|p| !p.is_empty()),
    }))
}

/// The most item memory (`-m`), bytes: 64 TiB, half of x86-64's 128 TiB
/// of user address space, which the item memory and the index (mapped at
/// start, touched as used) must share. memcached allocates as it goes and
/// starts with any -m; `-m 99999999999` aborted here, allocating segment
/// headers for 95 PB (found by a breaker).
pub const MAX_MEMORY: usize = 64 << 40;

/// Most worker threads (`-t`), and so of shards and of a warm restart's
/// shard files.
pub const MAX_THREADS: usize = 256;

/// Segments a shard should have at least. With fewer, each eviction frees
/// an eighth of the shard or more, and live items follow a sawtooth that
/// high (PERFORMANCE.md, "Resident memory at `-m 256` by worker count");
/// smaller shards get smaller segments, down to 64 KiB, which lowers `-I`.
const SHARD_SEGMENTS: usize = 8;

/// `-t` when not given: one worker per CPU, but no more than `memory`
/// bytes (`-m`) give [`SHARD_SEGMENTS`] segments of `seg` bytes each, so
/// that the default `-I` stays what memcached stores (1 MiB): one per CPU
/// at the default `-m 64` lowered `-I` to 256 KiB on a 32-CPU host and to
/// 64 KiB on a 128-CPU one. At least one worker, at most [`MAX_THREADS`].
pub fn default_threads(cpus: usize, memory: usize, seg: usize) -> usize {
    cpus.min(memory / (seg * SHARD_SEGMENTS))
        .clamp(1, MAX_THREADS)
}

impl Config {
    /// Checks `args` and derives the typed settings, with the same limits
    /// memcached applies (`-I` at least 1k, `-c` above 0) and corecache's
    /// own (every shard holds at least three segments).
    ///
    /// # Errors
    /// `ConfigError::Invalid` for values out of range or in conflict
    /// (`-S` without a password file, `-o acl_file` without `-Y`/`-S`,
    /// `-Z` without a certificate or without TCP).
    pub fn from_args(args: &Args) -> Result<Config, ConfigError> {
        let x = parse_extended(&args.extended)?;
        let auth = auth_config(args, x.acl_file.as_deref())?;
        let mut no_effect = Vec::new();
        let mut flag = |on: bool, f: String| {
            if on {
                no_effect.push(f);
            }
        };
        flag(args.udp_port != 0, format!("-U {}", args.udp_port));
        flag(args.protocol != "auto", format!("-B {}", args.protocol));
        for (f, v) in [
            ("-f", &args.growth_factor),
            ("-n", &args.slab_min_size),
            ("-R", &args.reqs_per_event),
            ("-N", &args.napi_ids),
        ] {
            // Each occurrence, as memcached checks each as getopt meets it.
            for v in v {
                super::memcached_checks::check_flag(f, v).map_err(invalid)?;
            }
            if let Some(last) = v.last() {
                flag(true, format!("{f} {last}"));
            }
        }
        no_effect.extend(x.no_effect.iter().cloned());
        if x.ssl.given && !args.ssl {
            no_effect.push("-o ssl_* without -Z".into());
        }

        if !matches!(args.protocol.as_str(), "auto" | "ascii" | "binary") {
            return Err(invalid(format!(
                "Invalid value for binding protocol: {} -- should be one of auto, binary, or ascii",
                args.protocol
            )));
        }
        let unix_mask = u32::from_str_radix(&args.unix_mask, 8)
            .ok()
            .filter(|m| *m <= 0o777)
            .ok_or_else(|| invalid(format!("invalid -a '{}': an octal mode", args.unix_mask)))?;
        if args.max_conns == 0 {
            return Err(invalid("Maximum connections must be greater than 0"));
        }
        let item_max = parse_size(&args.item_max).map_err(invalid)?;
        if item_max < 1024 {
            return Err(invalid("-I must be at least 1k"));
        }
        super::memcached_checks::check_combined(
            &args.extended,
            args.threads,
            item_max,
            args.napi_ids.last().map(String::as_str),
        )
        .map_err(invalid)?;
        if args.memory_mb == 0 {
            return Err(invalid("-m must be at least 1"));
        }
        let memory = usize::try_from(args.memory_mb)
            .ok()
            .and_then(|m| m.checked_mul(1 << 20))
            .filter(|&m| m <= MAX_MEMORY)
            .ok_or_else(|| {
                invalid(format!(
                    "-m {} is more than corecache can map (at most {} MB)",
                    args.memory_mb,
                    MAX_MEMORY >> 20
                ))
            })?;
        // An item lives in one segment: `-I` above the default segment
        // size (memcached takes `-I 2m`) raises it, unless segment_size
        // was given.
        // A slot's offset field bounds a segment (`MAX_SEGMENT_SIZE`, 8
        // MiB), so a larger `-I` (memcached takes up to 1 GiB) is lowered.
        let mut seg = x.segment_size;
        if !x.segment_size_given && item_max > seg {
            seg = item_max.next_power_of_two().min(MAX_SEGMENT_SIZE);
        }
        let mut notes = Vec::new();
        let threads = match args.threads {
            Some(t) => t,
            None => {
                let cpus = std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(1);
                let t = default_threads(cpus, memory, seg);
                if t < cpus {
                    notes.push(format!(
                        "-t defaults to {t} worker thread{}, not one for each of the {cpus} CPUs: \
                         a shard needs {SHARD_SEGMENTS} segments of {seg} bytes of -m \
                         so that -I ({item_max} bytes) fits; give -t, or more -m, for more",
                        if t == 1 { "" } else { "s" }
                    ));
                }
                t
            }
        };
        if threads == 0 {
            return Err(invalid(format!("-t must be between 1 and {MAX_THREADS}")));
        }
        // memcached starts with any -t above 0 and only warns past 64; a
        // config written for it should start here too, with the most
        // workers this build runs (warm restart files are numbered up to it).
        let threads = if threads > MAX_THREADS {
            notes.push(format!(
                "-t {threads} lowered to {MAX_THREADS}, the most worker threads corecache runs"
            ));
            MAX_THREADS
        } else {
            threads
        };
        let per_shard = memory / threads;
        // Small budgets get smaller segments, so every shard has a few
        // (an `-t` asked for wins over `-I`, which is lowered below).
        while per_shard / seg < SHARD_SEGMENTS && seg > 64 << 10 {
            seg /= 2;
        }
        // A slot names one of `MAX_SEGMENTS` segments a shard: a shard of
        // more (2 TiB of 1 MiB segments) gets larger segments, as
        // memcached takes any -m its address space allows.
        while per_shard / seg > MAX_SEGMENTS && seg < MAX_SEGMENT_SIZE {
            seg *= 2;
        }
        if per_shard / seg > MAX_SEGMENTS {
            return Err(invalid(format!(
                "-m {} is more than {threads} threads can address; give more -t",
                args.memory_mb
            )));
        }
        if per_shard / seg < 3 {
            return Err(invalid(format!(
                "-m {} is too small for {threads} threads",
                args.memory_mb
            )));
        }
        if x.segment_size_given && seg < x.segment_size {
            notes.push(format!(
                "-o segment_size lowered to {seg} bytes, so that each of {threads} shards of -m \
                 has {SHARD_SEGMENTS} segments"
            ));
        }
        if item_max > seg {
            if x.segment_size_given && x.segment_size < item_max {
                return Err(invalid(
                    "-I cannot exceed the segment size (-o segment_size)",
                ));
            }
            notes.push(if item_max > MAX_SEGMENT_SIZE && seg == MAX_SEGMENT_SIZE {
                format!("-I lowered to {seg} bytes: an item lives in one segment, at most {seg} bytes")
            } else {
                format!("-I lowered to the segment size, {seg} bytes, to fit -m across {threads} shards")
            });
        }
        let interfaces: Vec<String> = args
            .listen
            .iter()
            .flat_map(|l| l.split(','))
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        let listens = interfaces
            .iter()
            .map(|i| parse_listen(i))
            .collect::<Result<Vec<_>, _>>()?;
        let unix_socket = args.unix_socket.as_ref().map(PathBuf::from);
        let tcp_port = if unix_socket.is_some() { 0 } else { args.port };
        if tcp_port == 0 && unix_socket.is_none() {
            return Err(invalid("nothing to listen on: -p 0 and no -s"));
        }
        let tls = if args.ssl {
            if tcp_port == 0 {
                // memcached's words and status.
                return Err(invalid("ERROR: You cannot enable SSL without a TCP port."));
            }
            Some(tls_config(&x.ssl)?)
        } else {
            None
        };
        let worker_ports = match x.worker_ports {
            None => None,
            Some(_) if tcp_port == 0 => {
                return Err(invalid("-o worker_ports needs TCP (-p, not -s)"))
            }
            Some(base) => {
                let base = u32::from(base.unwrap_or(tcp_port.saturating_add(1)));
                let last = base + threads as u32 - 1;
                if last > u32::from(u16::MAX) {
                    return Err(invalid(format!(
                        "-o worker_ports: ports {base}..{last} for {threads} workers pass 65535"
                    )));
                }
                if (base..=last).contains(&u32::from(tcp_port)) {
                    return Err(invalid(format!(
                        "-o worker_ports: ports {base}..{last} include -p {tcp_port}"
                    )));
                }
                Some(base as u16)
            }
        };
        Ok(Config {
            tcp_port,
            listens: if listens.is_empty() {
                vec![parse_listen("127.0.0.1")?]
            } else {
                listens
            },
            interfaces_given: !interfaces.is_empty(),
            interfaces: if interfaces.is_empty() {
                vec!["127.0.0.1".to_string()]
            } else {
                interfaces
            },
            unix_socket,
            unix_mask,
            backlog: args.backlog.or(x.backlog).unwrap_or(1024),
            threads,
            memory,
            segment_size: seg,
            item_max: item_max.min(seg),
            eviction: if args.no_evict {
                Eviction::None
            } else {
                x.eviction
            },
            huge_pages: x.hugepages || args.large_pages,
            prefault: x.prefault,
            fault_ahead: x.fault_ahead,
            foreign_reads: x.foreign_reads,
            borrow_shards: x.borrow_shards,
            pin_workers: x.pin_workers,
            steer_connections: x.steer_connections,
            memory_file: args
                .memory_file
                .as_deref()
                .filter(|p| !p.is_empty())
                .map(absolute),
            lock_memory: args.lock_memory,
            core_dumps: args.core_dumps,
            max_conns: args.max_conns,
            idle_timeout: x.idle_timeout,
            incoming_limit: x
                .incoming_mem_limit
                .map_or(memory, |mb| mb.saturating_mul(1 << 20)),
            worker_ports,
            flush_enabled: !args.no_flush,
            shutdown_enabled: args.enable_shutdown,
            cas_enabled: !args.disable_cas,
            verbosity: args.verbose,
            user: args.user.clone().filter(|u| !u.is_empty()),
            daemonize: args.daemon,
            pidfile: args.pidfile.as_ref().map(PathBuf::from),
            logfile: args.logfile.as_ref().map(PathBuf::from),
            no_effect,
            notes,
            auth,
            tls,
            introspection: super::Introspection::from_args(args),
        })
    }

    /// The one warning line for options that have no effect, if any.
    pub fn no_effect_warning(&self) -> Option<String> {
        (!self.no_effect.is_empty()).then(|| {
            format!(
                "warning: these options have no effect in corecache: {}",
                self.no_effect.join(", ")
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn config(s: &[&str]) -> Result<Config, ConfigError> {
        let a =
            Args::try_parse_from(std::iter::once("corecache").chain(s.iter().copied())).unwrap();
        Config::from_args(&a)
    }

    #[test]
    fn worker_ports_follow_the_tcp_port_and_must_fit() {
        let wp = |s: &[&str]| config(s).map(|c| c.worker_ports);
        assert_eq!(wp(&["-p", "5000", "-t", "3"]).unwrap(), None);
        let on = ["-p", "5000", "-t", "3", "-o", "worker_ports"];
        assert_eq!(wp(&on).unwrap(), Some(5001));
        let base = ["-p", "5000", "-t", "3", "-o", "worker_ports=6000"];
        assert_eq!(wp(&base).unwrap(), Some(6000));
        assert!(wp(&["-p", "5000", "-t", "3", "-o", "worker_ports=4998"]).is_err());
        assert!(wp(&["-p", "5000", "-t", "3", "-o", "worker_ports=65534"]).is_err());
        assert!(wp(&["-s", "/tmp/x.sock", "-o", "worker_ports"]).is_err());
    }

    #[test]
    fn a_large_item_size_raises_the_segment_size_unless_it_was_given() {
        let c = config(&["-I", "2m", "-m", "64", "-t", "2"]).unwrap();
        assert_eq!((c.item_max, c.segment_size), (2 << 20, 2 << 20));
        let c = config(&["-I", "3m", "-m", "256", "-t", "2"]).unwrap();
        assert_eq!((c.item_max, c.segment_size), (3 << 20, 4 << 20));
        let c = config(&["-I", "512k"]).unwrap();
        assert_eq!((c.item_max, c.segment_size), (512 << 10, 1 << 20));
        assert!(config(&["-I", "2m", "-o", "segment_size=1m"]).is_err());
    }

    #[test]
    fn default_threads_leave_every_shard_eight_segments() {
        const MIB: usize = 1 << 20;
        assert_eq!(default_threads(2, 64 * MIB, MIB), 2);
        assert_eq!(default_threads(32, 64 * MIB, MIB), 8);
        assert_eq!(default_threads(32, 1024 * MIB, MIB), 32);
        assert_eq!(default_threads(32, 64 * MIB, 2 * MIB), 4);
        assert_eq!(default_threads(4, 8 * MIB, MIB), 1);
        assert_eq!(default_threads(4, MIB, MIB), 1);
        assert_eq!(default_threads(512, 1 << 40, MIB), MAX_THREADS);
    }

    #[test]
    fn item_size_is_kept_by_the_default_threads_and_lowered_by_an_explicit_one() {
        // Whatever this host's CPU count, the default never lowers -I.
        for m in ["8", "16", "64", "100"] {
            let c = config(&["-m", m]).unwrap();
            assert_eq!((c.item_max, c.segment_size), (1 << 20, 1 << 20), "-m {m}");
            assert!(c.threads == 1 || c.memory / c.threads >= 8 << 20, "-m {m}");
        }
        let c = config(&["-m", "8", "-t", "2"]).unwrap();
        assert_eq!(
            (c.threads, c.item_max, c.segment_size),
            (2, 512 << 10, 512 << 10)
        );
        assert!(
            c.notes.iter().any(|n| n.starts_with("-I lowered")),
            "{:?}",
            c.notes
        );
        assert!(config(&["-t", "0"]).is_err());
        // memcached starts with any -t (a warning past 64): so does
        // corecache, with its most workers and a note.
        for t in ["257", "100000"] {
            let c = config(&["-m", "1024", "-t", t]).unwrap();
            assert_eq!(c.threads, MAX_THREADS, "-t {t}");
            assert!(
                c.notes
                    .iter()
                    .any(|n| n.starts_with(&format!("-t {t} lowered"))),
                "{:?}",
                c.notes
            );
        }
    }

    #[test]
    fn item_sizes_past_the_largest_segment_start_with_it() {
        // -I 16m made a 16 MiB segment the store refused (exit 1) from
        // -m 128 up, and was lowered to 8m below.
        for m in ["64", "128", "1024"] {
            let c = config(&["-m", m, "-I", "16m", "-t", "1"]).unwrap();
            assert_eq!((c.item_max, c.segment_size), (8 << 20, 8 << 20), "-m {m}");
            assert!(
                c.notes.iter().any(|n| n.starts_with("-I lowered")),
                "{:?}",
                c.notes
            );
        }
    }

    #[test]
    fn segment_sizes_out_of_range_are_refused_before_use() {
        // 0 divided by zero in start-up (a panic).
        for v in ["0", "0k", "1001", "2k", "16m"] {
            let arg = format!("segment_size={v}");
            let e = config(&["-o", &arg]).unwrap_err().to_string();
            assert!(e.contains("a segment is a multiple of 8 bytes"), "{v}: {e}");
        }
        let c = config(&["-m", "8", "-t", "1", "-o", "segment_size=2m"]).unwrap();
        assert_eq!(c.segment_size, 1 << 20);
        assert!(
            c.notes
                .iter()
                .any(|n| n.starts_with("-o segment_size lowered")),
            "{:?}",
            c.notes
        );
    }

    #[test]
    fn memory_file_is_made_absolute() {
        let c = config(&["-e", "mem"]).unwrap();
        let p = c.memory_file.unwrap();
        assert!(p.is_absolute() && p.ends_with("mem"), "{p:?}");
        assert_eq!(config(&[]).unwrap().memory_file, None);
    }

    #[test]
    fn tls_flags() {
        let c = config(&[
            "-Z",
            "-o",
            "ssl_chain_cert=c.pem",
            "-l",
            "notls:127.0.0.1:7000,::1",
        ])
        .unwrap();
        let t = c.tls.unwrap();
        assert!(t.chain_cert.is_absolute() && t.key == t.chain_cert);
        assert_eq!((t.verify_mode, t.ca_cert), (VerifyMode::None, None));
        assert_eq!(c.listens.len(), 2);
        assert!(c.listens[0].notls && c.listens[0].port == Some(7000) && !c.listens[1].notls);
        let c = config(&[
            "-Z",
            "-o",
            "ssl_chain_cert=/c,ssl_key=/k,ssl_ca_cert=/ca,ssl_verify_mode=3",
        ]);
        let t = c.unwrap().tls.unwrap();
        assert_eq!(
            (t.key.to_str(), t.verify_mode),
            (Some("/k"), VerifyMode::Once)
        );
        assert!(config(&["-Z"])
            .unwrap_err()
            .to_string()
            .contains("ssl_chain_cert"));
        assert!(config(&["-Z", "-o", "ssl_chain_cert=/c,ssl_verify_mode=2"]).is_err());
        assert!(config(&["-Z", "-o", "ssl_chain_cert=/c", "-s", "/tmp/s"]).is_err());
        assert!(config(&["-l", "127.0.0.1:x"]).is_err());
        // Without -Z the options do nothing, and say so.
        let c = config(&["-o", "ssl_chain_cert=/c"]).unwrap();
        assert!(c.tls.is_none() && c.no_effect_warning().unwrap().contains("ssl_"));
    }

    #[test]
    fn authentication_flags() {
        let c = config(&["-Y", "rel/users", "-o", "acl_file=acl"]).unwrap();
        let a = c.auth.unwrap();
        assert!(a.ascii.as_deref() == Some("rel/users") && !a.sasl && a.passwd.is_absolute());
        assert!(a.acl.unwrap().ends_with("acl"));
        let a = config(&["-S", "-Y", "/u"]).unwrap().auth.unwrap();
        assert!(a.sasl && a.ascii.is_some());
        assert!(config(&[]).unwrap().auth.is_none());
        assert!(config(&["-o", "acl_file=/a"]).is_err());
        if std::env::var_os("MEMCACHED_SASL_PWDB").is_none() {
            assert!(config(&["-S"]).unwrap_err().to_string().contains("-Y FILE"));
        }
    }

    #[test]
    fn no_effect_options_make_one_warning() {
        let c = config(&[
            "-f",
            "1.5",
            "-n",
            "64",
            "-R",
            "40",
            "-D",
            ":",
            "-X",
            "-W",
            "-N",
            "1",
            "-U",
            "11211",
            "-B",
            "ascii",
            "-C",
            "-o",
            "lru_crawler,hashpower=20",
            "-o",
            "modern",
        ])
        .unwrap();
        let w = c.no_effect_warning().unwrap();
        for part in [
            "-f 1.5",
            "-n 64",
            "-R 40",
            "-N 1",
            "-U 11211",
            "-B ascii",
            "-o lru_crawler",
            "-o hashpower=20",
        ] {
            assert!(w.contains(part), "{part} in {w}");
        }
        assert!(!w.contains("modern"));
        for acts in ["-D", "-X", "-W", "-C"] {
            assert!(!w.contains(acts), "{acts} acts: {w}");
        }
        assert!(config(&[]).unwrap().no_effect_warning().is_none());
    }

    #[test]
    fn typed_values() {
        let c = config(&["-M", "-a", "750", "-b", "77", "-L", "-o", "hugepages=off"]).unwrap();
        assert_eq!(c.eviction, Eviction::None);
        assert_eq!(c.unix_mask, 0o750);
        assert_eq!(c.backlog, 77);
        assert!(c.huge_pages, "-L asks for huge pages");
        let c = config(&["-s", "/tmp/x.sock", "-o", "eviction=fifo,backlog=5"]).unwrap();
        assert_eq!(c.tcp_port, 0, "-s disables TCP");
        assert_eq!(c.eviction, Eviction::Fifo);
        assert_eq!(c.backlog, 5);
        assert!(config(&["-a", "9"]).is_err());
        assert!(config(&["-B", "udp"]).is_err());
        assert!(config(&["-c", "0"]).is_err());
        assert!(config(&["-p", "0"]).is_err());
    }
}
