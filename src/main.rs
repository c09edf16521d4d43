//! The corecache server binary.

use clap::Parser;
use corecache::config::{self, Args};
use corecache::engine::{
    counters::Published, hop::Mesh, listener, shard::Shard, worker::Worker, Settings, Shared,
};
use corecache::store::{Clock, Eviction, Store, StoreConfig};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn fail(msg: impl std::fmt::Display) -> ! {
    eprintln!("corecache: {msg}");
    std::process::exit(2);
}

fn main() {
    let mut argv: Vec<String> = std::env::args().collect();
    // File settings go first, so the command line's own flags win.
    type Reader = fn(&str) -> Result<Vec<String>, String>;
    let readers: [(&str, Reader); 2] = [
        ("--conf", config::conf_args),
        ("--config", config::toml_args),
    ];
    for (flag, read) in readers {
        if let Some(i) = argv.iter().position(|a| a == flag) {
            let path = argv
                .get(i + 1)
                .cloned()
                .unwrap_or_else(|| fail(format!("{flag} needs a file")));
            let extra = read(&path).unwrap_or_else(|e| fail(e));
            argv.splice(1..1, extra);
        }
    }
    let args = match Args::try_parse_from(&argv) {
        Ok(a) => a,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    if let Err(e) = run(args) {
        eprintln!("corecache: {e}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> Result<(), String> {
    let a = &args.admin;
    corecache::admin::logging::init(args.verbose, a.logfile.as_deref(), a.audit_log.as_deref())?;
    if args.udp_port != 0 {
        fail("UDP is not supported; use -U 0");
    }
    if !matches!(args.protocol.as_str(), "auto" | "ascii" | "binary") {
        fail(format!(
            "invalid -B '{}': auto, ascii or binary",
            args.protocol
        ));
    }
    let x = config::parse_extended(&args.extended).unwrap_or_else(|e| fail(e));
    let mut policy: Eviction = x.eviction.parse().unwrap_or_else(|e: String| fail(e));
    if args.no_evict {
        policy = Eviction::None;
    }
    let item_max = config::parse_size(&args.item_max).unwrap_or_else(|e| fail(e));
    if item_max < 1024 {
        fail("-I must be at least 1k");
    }
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    if threads == 0 || threads > 256 {
        fail("-t must be between 1 and 256");
    }
    if args.memory_mb == 0 {
        fail("-m must be at least 1");
    }
    let memory = (args.memory_mb as usize) << 20;
    let per_shard = memory / threads;
    // Small budgets get smaller segments, so every shard has a few.
    let mut seg = x.segment_size;
    while per_shard / seg < 8 && seg > 64 << 10 {
        seg /= 2;
    }
    if per_shard / seg < 3 {
        fail(format!(
            "-m {} is too small for {threads} threads",
            args.memory_mb
        ));
    }
    if item_max > seg {
        if x.segment_size < item_max {
            fail("-I cannot exceed the segment size (-o segment_size)");
        }
        eprintln!("corecache: -I lowered to the segment size, {seg} bytes, to fit -m across {threads} shards");
    }
    let item_max = item_max.min(seg);

    let hosts: Vec<String> = if args.listen.is_empty() {
        vec!["127.0.0.1".to_string()]
    } else {
        args.listen
            .iter()
            .flat_map(|l| l.split(',').map(|s| s.trim().to_string()))
            .collect()
    };
    let mut addrs = Vec::new();
    for h in &hosts {
        let r =
            listener::resolve(h, args.port).map_err(|e| format!("cannot resolve -l {h}: {e}"))?;
        addrs.extend(r);
    }
    if let Some(p) = &args.pidfile {
        std::fs::write(p, format!("{}\n", std::process::id()))
            .map_err(|e| format!("cannot write pidfile {p}: {e}"))?;
    }

    raise_nofile(args.max_conns);
    let admin = corecache::admin::bind(&args.admin)?;
    let shared = Arc::new(Shared {
        mesh: Mesh::new(threads, 4096),
        published: (0..threads).map(|_| Published::default()).collect(),
        stop: AtomicBool::new(false),
        conns: AtomicUsize::new(0),
        settings: Settings {
            port: args.port,
            memory,
            item_max,
            max_conns: args.max_conns,
            segment_size: seg,
            evict: policy != Eviction::None,
            policy: x.eviction.clone(),
            flush_enabled: !args.no_flush,
            idle_timeout: x.idle_timeout,
            shutdown_enabled: args.enable_shutdown,
        },
        started: std::time::Instant::now(),
        page_kind: Mutex::new(String::new()),
        telemetry: corecache::admin::Telemetry::new(threads, admin.as_ref()),
    });

    // SAFETY: installing an async-signal-safe handler that only stores an atomic.
    unsafe {
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }

    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
    // No worker serves before every worker exists: a request may cross to
    // any shard (its ring must be there to wake) and `stats` sums them all.
    let all_ready = Arc::new(std::sync::Barrier::new(threads));
    let mut handles = Vec::new();
    for id in 0..threads {
        let mut listeners = Vec::new();
        for a in &addrs {
            listeners.push(
                listener::listen(a, x.backlog).map_err(|e| format!("cannot listen on {a}: {e}"))?,
            );
        }
        let shared = shared.clone();
        let core = cores.get(id % cores.len().max(1)).copied();
        let ready = ready_tx.clone();
        let all_ready = all_ready.clone();
        let cfg = StoreConfig {
            memory: memory / threads + if id < memory % threads { 1 } else { 0 },
            segment_size: seg,
            item_size_max: item_max,
            eviction: policy,
            huge_pages: x.hugepages,
        };
        let verbose = args.verbose;
        let prefault = x.prefault;
        handles.push(std::thread::Builder::new().name(format!("worker-{id}")).spawn(move || {
            if let Some(c) = core {
                core_affinity::set_for_current(c);
            }
            let mut store = match Store::new(cfg, Clock::system()) {
                Ok(s) => s,
                Err(e) => {
                    let _ = ready.send(Err(e.to_string()));
                    return;
                }
            };
            if prefault {
                // On the worker's own (pinned) thread, so pages come from its node.
                store.prefault();
            }
            if id == 0 {
                *shared.page_kind.lock().unwrap() = store.page_kind().name().to_string();
            }
            if verbose > 0 {
                eprintln!("worker {id}: {} MiB item memory on {} pages", store.memory_bytes() >> 20, store.page_kind().name());
            }
            let mut shard = Shard::new(store);
            shard.shards = threads;
            let w = match Worker::new(id, shared.clone(), shard, listeners) {
                Ok(w) => w,
                Err(e) => {
                    let _ = ready.send(Err(format!(
                        "io_uring with SINGLE_ISSUER and DEFER_TASKRUN is required (Linux 6.1 or newer): {e}"
                    )));
                    return;
                }
            };
            let _ = ready.send(Ok(()));
            // If another worker fails instead, the process exits from main.
            all_ready.wait();
            shared.telemetry.worker_started(id);
            if let Err(e) = w.run() {
                eprintln!("corecache: worker {id}: {e}");
            }
            shared.telemetry.worker_stopped(id);
        }).map_err(|e| e.to_string())?);
    }
    drop(ready_tx);
    for _ in 0..threads {
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err("a worker failed to start".into()),
        }
    }
    if let Some(l) = admin {
        corecache::admin::server::spawn(l, shared.clone())?;
    }
    if args.verbose > 0 {
        eprintln!(
            "corecache {} listening on {:?} with {threads} workers",
            env!("CARGO_PKG_VERSION"),
            addrs
        );
    }
    while !STOP.load(Ordering::SeqCst) && !handles.iter().all(|h| h.is_finished()) {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    shared.stop.store(true, Ordering::SeqCst);
    for h in handles {
        let _ = h.join();
    }
    if let Some(p) = &args.pidfile {
        let _ = std::fs::remove_file(p);
    }
    Ok(())
}

/// Lifts the soft RLIMIT_NOFILE towards what `-c` needs, as memcached
/// does, so `-c 10000` works without a wrapper raising `ulimit -n`.
fn raise_nofile(max_conns: usize) {
    let want = (max_conns as u64 + 128) as libc::rlim_t;
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: get/setrlimit with a valid, initialised struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && r.rlim_cur < want {
            r.rlim_cur = want.min(r.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}
