//! The corecache server binary: configuration, then the process set-up
//! memcached does, in its order where it matters (limits; listening
//! sockets; the user `-u` names; the daemon fork; the pidfile), then one
//! worker thread per shard until a stop signal. `main` is the only exit.

use corecache::admin::log_writer::say;
use corecache::admin::systemd;
use corecache::config::{self, Config, ConfigError, Loaded};
use corecache::engine::{
    counters::Published, hop::Mesh, shard::Shard, worker::Worker, Settings, Shared,
};
use corecache::process::daemon::{self, Forked, Ready};
use corecache::process::sockets::{
    listen_tcp, listen_unix, listen_worker_ports, pidfile_for_this_process, TcpGroup,
};
use corecache::process::{identity, limits, warm, StartError, EX_OSERR};
use corecache::store::{physical_memory, Clock, Store, StoreConfig};
use std::os::fd::{IntoRawFd, OwnedFd};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

static STOP: AtomicBool = AtomicBool::new(false);
/// SIGHUP: reopen the log files, read the password and ACL files again.
static RELOAD: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Stop signals and SIGHUP, installed before the first port is bound: a
/// client (or a test, or systemd) may send SIGTERM as soon as the port
/// answers, and the default action would kill the process with the port
/// already taken and nothing saved (seen: exit -15 right after start).
/// A stop that arrives before the workers serve is honoured when they do.
fn install_signal_handlers() {
    // SAFETY: installing an async-signal-safe handler that only stores an atomic.
    unsafe {
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        // memcached: SIGUSR1 stops gracefully. SIGHUP (a closed terminal,
        // a logrotate hook) must not lose the cache: it reopens the log
        // files and reloads the password, ACL and TLS files.
        libc::signal(libc::SIGUSR1, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGHUP, on_hup as *const () as libc::sighandler_t);
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

extern "C" fn on_hup(_: libc::c_int) {
    RELOAD.store(true, Ordering::SeqCst);
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    match start(&argv) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            say(&e.to_string());
            ExitCode::from(e.code)
        }
    }
}

fn config_error(e: ConfigError) -> StartError {
    StartError::new(e.exit_code(), format!("corecache: {e}"))
}

/// Runs the server; the exit status once it stops (or, in the parent of
/// `-d`, once the daemon serves).
fn start(argv: &[String]) -> Result<u8, StartError> {
    let args = match config::load(argv).map_err(config_error)? {
        Loaded::Print(text) => {
            print!("{text}");
            return Ok(0);
        }
        Loaded::Run(args) => args,
    };
    let mut cfg = Config::from_args(&args).map_err(config_error)?;
    let verbosity = cfg.verbosity;
    // Logs go to stderr, which `Ready::notify` points at `logfile` once the
    // server serves; until then start-up lines are copied there.
    corecache::admin::logging::init(
        verbosity,
        cfg.logfile.is_some(),
        args.admin.audit_log.as_deref(),
    )
    .map_err(|e| StartError::new(1, format!("corecache: {e}")))?;
    // The daemon leaves its directory: SIGHUP reopens the path as given here.
    if let Some(p) = &cfg.logfile {
        cfg.logfile = Some(
            std::path::absolute(p)
                .map_err(|e| StartError::new(EX_OSERR, format!("logfile: {e}")))?,
        );
    }
    let log = cfg.logfile.as_deref().map(daemon::open_log).transpose()?;
    if let Some(l) = &log {
        let copy = l
            .try_clone()
            .map_err(|e| StartError::new(EX_OSERR, format!("dup: {e}")))?;
        corecache::admin::log_writer::tee_to(std::fs::File::from(copy));
    }
    if let Some(w) = cfg.no_effect_warning() {
        say(&format!("corecache: {w}"));
    }
    for n in &cfg.notes {
        say(&format!("corecache: {n}"));
    }
    // systemd follows the process it started: a fork would look like an
    // exit (memcached's Debian wrapper drops `-d` for the same reason).
    if cfg.daemonize && systemd::managed() {
        say("corecache: -d ignored: started by systemd (NOTIFY_SOCKET is set)");
        cfg.daemonize = false;
    }
    // Read before anything is bound or forked, so a bad file stops the
    // start on the terminal (as memcached's "Could not load authfile").
    let auth = match &cfg.auth {
        Some(a) => Some(corecache::auth::Registry::new(a.clone()).map_err(|e| {
            StartError::new(
                1,
                format!("corecache: could not load the password file: {e}"),
            )
        })?),
        None => None,
    };
    // The same for the certificates (memcached: "Error loading the
    // certificate chain", before it binds).
    let tls = match &cfg.tls {
        Some(t) => Some(corecache::tls::Tls::new(t.clone()).map_err(|e| {
            StartError::new(
                1,
                format!("corecache: could not load TLS certificates: {e}"),
            )
        })?),
        None => None,
    };
    let user = identity::resolve(cfg.user.as_deref())?;
    limits::raise_nofile(cfg.max_conns)?;
    if cfg.core_dumps {
        limits::enable_core_dumps()?;
    }
    if cfg.lock_memory {
        limits::allow_locking();
    }
    install_signal_handlers();
    // Ports first, while root (low ports), and before forking, so a port
    // in use is reported on the terminal with memcached's message.
    let tcp = listen_tcp(&cfg)?;
    let own = listen_worker_ports(&cfg)?;
    let admin = corecache::admin::bind(&args.admin, auth.is_some())?;
    // Read while still the starting user: the token file may be its alone.
    let admin = admin
        .map(|l| {
            args.admin.token().map(|t| {
                let guard = corecache::admin::auth::Guard::new(t)
                    .with_open_metrics(args.admin.open_metrics);
                (l, guard, args.admin.limits())
            })
        })
        .transpose()
        .map_err(|e| StartError::new(1, format!("corecache: {e}")))?;
    if let Some(id) = &user {
        identity::become_user(id)?;
    }
    // As memcached: the UNIX socket is made by the user the server runs as.
    let unix = listen_unix(&cfg)?;
    // The daemon changes directory: relative paths are the caller's.
    let pidfile = cfg.pidfile.as_deref().map(std::path::absolute).transpose();
    let pidfile = pidfile.map_err(|e| StartError::new(EX_OSERR, format!("pidfile: {e}")))?;
    let ready = if cfg.daemonize {
        match daemon::daemonize(log, cfg.verbosity > 0, cfg.core_dumps)? {
            Forked::Parent(code) => {
                if let Some((_, socket_file)) = unix {
                    socket_file.disarm();
                }
                return Ok(code);
            }
            Forked::Child(ready) => ready,
        }
    } else {
        Ready::foreground(log)
    };
    if cfg.lock_memory {
        if let Some(w) = limits::lock_memory() {
            say(&w);
        }
    }
    let _pidfile = pidfile.as_deref().and_then(pidfile_for_this_process);
    let (unix_fd, _socket_file) = unix.unzip();
    // After the fork (a child inherits no thread): from here on workers
    // queue their log lines instead of writing them.
    if let Err(e) = corecache::admin::log_writer::start() {
        say(&format!("corecache: log lines stay on the workers: {e}"));
    }
    let served = serve(&cfg, tcp, own, unix_fd, admin, (auth, tls), ready);
    corecache::admin::log_writer::stop();
    served
}

/// What the workers read, from the checked configuration.
fn settings(cfg: &Config, steering: bool) -> Settings {
    Settings {
        port: cfg.tcp_port,
        interfaces: cfg.interfaces.join(","),
        unix_socket: cfg.unix_socket.clone(),
        unix_mask: cfg.unix_mask,
        backlog: cfg.backlog,
        memory: cfg.memory,
        item_max: cfg.item_max,
        max_conns: cfg.max_conns,
        segment_size: cfg.segment_size,
        eviction: cfg.eviction,
        flush_enabled: cfg.flush_enabled,
        idle_timeout: cfg.idle_timeout,
        incoming_limit: cfg.incoming_limit,
        worker_ports: cfg.worker_ports,
        foreign_reads: cfg.foreign_reads && cfg.threads > 1,
        borrow_shards: cfg.borrow_shards && cfg.threads > 1,
        pin_workers: cfg.pin_workers,
        steer_connections: steering,
        shutdown_enabled: cfg.shutdown_enabled,
        cas_enabled: cfg.cas_enabled,
        verbosity: cfg.verbosity,
        introspection: cfg.introspection,
    }
}

/// SIGHUP: the log files (`--logfile`, absolute, and `--audit-log`)
/// opened again, for logrotate; the password and ACL files again, if
/// authentication is on, and the TLS certificates, key and CAs, if TLS
/// is. A file that does not parse leaves what it would replace in force.
fn reload(shared: &Shared, logfile: Option<&std::path::Path>) {
    let mut reopened = Vec::new();
    if let Some(p) = logfile {
        match daemon::reopen_log(p) {
            Ok(()) => reopened.push(p.display().to_string()),
            Err(e) => tracing::error!("log file not reopened, the old one stays: {}", e.msg),
        }
    }
    match corecache::admin::logging::reopen_audit_log() {
        Ok(Some(p)) => reopened.push(p),
        Ok(None) => {}
        Err(e) => tracing::error!("audit log not reopened, the old one stays: {e}"),
    }
    if !reopened.is_empty() {
        corecache::admin::audit::audit("log_reopen", "SIGHUP", &reopened.join(" "));
    }
    if let Some(reg) = &shared.auth {
        match reg.reload() {
            Ok(n) => corecache::admin::audit::audit("auth_reload", "SIGHUP", &format!("{n} users")),
            Err(e) => tracing::error!("password file not reloaded, the old one stays: {e}"),
        }
    }
    if let Some(tls) = &shared.tls {
        match tls.reload() {
            Ok(()) => corecache::admin::audit::audit(
                "tls_reload",
                "SIGHUP",
                &tls.config.chain_cert.display().to_string(),
            ),
            Err(e) => tracing::error!("TLS certificates not reloaded, the old ones stay: {e}"),
        }
    }
}

/// Starts the workers on their listeners and runs until a stop signal,
/// `shutdown`, or every worker has ended.
fn serve(
    cfg: &Config,
    tcp: Vec<TcpGroup>,
    own: Vec<Vec<(OwnedFd, bool)>>,
    unix: Option<OwnedFd>,
    admin: Option<(
        std::net::TcpListener,
        corecache::admin::auth::Guard,
        corecache::admin::listener::Limits,
    )>,
    (auth, tls): (
        Option<corecache::auth::Registry>,
        Option<corecache::tls::Tls>,
    ),
    mut ready: Ready,
) -> Result<u8, StartError> {
    let threads = cfg.threads;
    let logfile = cfg.logfile.clone();
    let failed = |msg: String| StartError::new(1, format!("corecache: {msg}"));
    // The CPUs the process may use, in order: worker w's with -o
    // pin_workers, and the one its listeners name when steering.
    let allowed = core_affinity::get_core_ids().unwrap_or_default();
    // -o steer_connections (engine/steer.rs): only while every worker has
    // a CPU of its own; with more workers than CPUs the CPUs' listeners
    // would take every connection and the rest none.
    let tcp_groups = tcp.len();
    let steer_cpus: Vec<usize> =
        if cfg.steer_connections && threads > 1 && threads <= allowed.len() && tcp_groups > 0 {
            allowed.iter().take(threads).map(|c| c.id).collect()
        } else {
            Vec::new()
        };
    // Worker w accepts on its own socket of each TCP address, and on its
    // own descriptor of the one UNIX socket.
    // Each with whether it speaks TLS.
    let mut listeners: Vec<Vec<(OwnedFd, bool)>> = (0..threads).map(|_| Vec::new()).collect();
    for (group, tls) in tcp {
        for (w, fd) in group.into_iter().enumerate() {
            listeners[w].push((fd, tls));
        }
    }
    if let Some(u) = &unix {
        // As memcached: TLS is for TCP; the UNIX socket stays plain.
        for l in &mut listeners {
            l.push((
                u.try_clone().map_err(|e| failed(format!("dup: {e}")))?,
                false,
            ));
        }
    }
    drop(unix);
    // Then its own port's sockets, last: accept.rs marks connections from
    // listeners at or past `shared_listeners` as pinned to this shard.
    let shared_listeners: Vec<usize> = listeners.iter().map(Vec::len).collect();
    for (w, fds) in own.into_iter().enumerate() {
        listeners[w].extend(fds);
    }
    // -e: what the last run left (process/warm.rs), decided before any
    // worker exists; the marker is gone from here on.
    let fingerprint = warm::Fingerprint {
        threads,
        memory: cfg.memory,
        segment_size: cfg.segment_size,
        item_max: cfg.item_max,
    };
    let warm_path = cfg.memory_file.clone();
    let found = warm_path.as_deref().map(|p| warm::take(p, &fingerprint));
    if let Some(warm::Found::Cold(Some(why))) = &found {
        say(&format!(
            "corecache: not restoring the cache from {}: {why}; starting empty",
            warm_path.as_ref().unwrap().display()
        ));
    }
    let restoring = found == Some(warm::Found::Warm);
    if let Some(path) = &warm_path {
        warm::begin(path).map_err(|e| {
            StartError::new(EX_OSERR, format!("corecache: -e {}: {e}", path.display()))
        })?;
    }
    // With worker ports a key may live in any shard (each port is a cache
    // of its own): keep what each shard had. Otherwise only its own keys.
    let any_shard = cfg.worker_ports.is_some();
    let saves = Arc::new(warm::Saves::new(threads));
    let at_stop = warm_path.clone().map(|path| {
        let saves = saves.clone();
        Box::new(move |id: usize, store: &Store| {
            if let Err(e) = saves.save(&path, id, store) {
                say(&format!(
                    "corecache: worker {id}: saving the cache to {}: {e}",
                    path.display()
                ));
            }
        }) as corecache::engine::restart::AtStop
    });
    let shared = Arc::new(Shared {
        mesh: Mesh::new(threads, 4096),
        published: (0..threads).map(|_| Published::default()).collect(),
        stats_base: (0..threads).map(|_| Published::default()).collect(),
        stop: AtomicBool::new(false),
        conns: AtomicUsize::new(0),
        settings: settings(cfg, !steer_cpus.is_empty()),
        started: std::time::Instant::now(),
        page_kind: Mutex::new(String::new()),
        telemetry: corecache::admin::Telemetry::new(threads, admin.as_ref().map(|a| &a.0)),
        auth,
        tls,
        admin_jobs: corecache::engine::admin_jobs::AdminInboxes::new(threads),
        classes: corecache::engine::stats_classes::ClassBoards::new(threads),
        at_stop,
        restored: Default::default(),
        oldest_live: Default::default(),
        detail: Arc::new(corecache::exec::detail::Detail::new(
            cfg.introspection.prefix_delimiter,
            cfg.introspection.detail_at_start,
        )),
        foreign: (cfg.foreign_reads && threads > 1)
            .then(|| corecache::engine::ForeignViews::new(threads)),
        lends: (0..threads).map(|_| Default::default()).collect(),
    });
    shared
        .restored
        .enabled
        .store(warm_path.is_some(), Ordering::Relaxed);
    shared.restored.warm.store(restoring, Ordering::Relaxed);

    systemd::status(&format!("starting {threads} workers"));
    // Placed by the kernel unless -o pin_workers. Pinned, a worker that
    // wakes on a CPU where a client (or any other task) runs must preempt
    // it, even with the other CPU idle: on this 2-CPU host, -t 2 beside
    // memtier, 30,000 preemptions a second of the client and 25 % fewer
    // requests served at 50 and 500 connections (PERFORMANCE.md "Pinned
    // or placed workers"). memcached does not pin its threads either.
    let cores = if cfg.pin_workers {
        allowed.clone()
    } else {
        Vec::new()
    };
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
    // No worker serves before every worker exists: a request may cross to
    // any shard (its ring must be there to wake) and `stats` sums them all.
    let all_ready = Arc::new(std::sync::Barrier::new(threads));
    let mut handles = Vec::new();
    for (id, fds) in listeners.into_iter().enumerate() {
        let shared = shared.clone();
        let core = cores.get(id % cores.len().max(1)).copied();
        let steer_cpu = steer_cpus.get(id).copied();
        let ready = ready_tx.clone();
        let all_ready = all_ready.clone();
        let store_cfg = StoreConfig {
            memory: cfg.memory / threads + if id < cfg.memory % threads { 1 } else { 0 },
            segment_size: cfg.segment_size,
            item_size_max: cfg.item_max,
            eviction: cfg.eviction,
            huge_pages: cfg.huge_pages,
            // -k locks pages as they are touched (limits::lock_memory), but
            // a reservation counts against RLIMIT_MEMLOCK whole: room to
            // grow only where locking is unlimited (root lifts it).
            max_memory: if cfg.lock_memory && !limits::may_lock_unlimited() {
                0
            } else {
                physical_memory()
            },
            fault_ahead: cfg.fault_ahead,
            cas: cfg.cas_enabled,
            locked: cfg.lock_memory,
        };
        let verbose = cfg.verbosity;
        let pinned_from = shared_listeners[id];
        let prefault = cfg.prefault;
        let warm_path = warm_path.clone();
        handles.push(std::thread::Builder::new().name(format!("worker-{id}")).spawn(move || {
            // The worker owns and closes its listeners.
            let (fds, tls): (Vec<_>, Vec<bool>) =
                fds.into_iter().map(|(fd, tls)| (fd.into_raw_fd(), tls)).unzip();
            if let Some(c) = core {
                core_affinity::set_for_current(c);
            }
            // The shared ports' sockets come first in `fds` (above).
            let steer = steer_cpu
                .map(|cpu| corecache::engine::steer::Steer::new(cpu, fds[..tcp_groups].to_vec()));
            let mut store = match Store::new(store_cfg, Clock::system()) {
                Ok(s) => s,
                Err(e) => {
                    let _ = ready.send(Err(e.to_string()));
                    return;
                }
            };
            if prefault {
                // On the worker's own thread, so pages come from the node it
                // runs on (its own CPU's with -o pin_workers).
                store.prefault();
            }
            if let (true, Some(path)) = (restoring, warm_path.as_deref()) {
                let t = std::time::Instant::now();
                let route = corecache::engine::route::route_hasher();
                let mine = |k: &[u8]| any_shard || corecache::engine::route::owner(&route, threads, k) == id;
                match warm::restore_shard(path, id, &mut store, mine) {
                    Ok(c) => shared.restored.add(&c, t.elapsed().as_micros() as u64),
                    Err(e) => {
                        shared.restored.warm.store(false, Ordering::Relaxed);
                        say(&format!("corecache: worker {id}: not restoring its share of the cache: {e}; it starts empty"));
                    }
                }
            }
            if id == 0 {
                *shared.page_kind.lock().unwrap() = store.page_kind().name().to_string();
            }
            if verbose > 0 {
                say(&format!("worker {id}: {} MiB item memory on {} pages", store.memory_bytes() >> 20, store.page_kind().name()));
            }
            if let Some(f) = &shared.foreign {
                // Before the barrier below: every view is set before any
                // worker serves.
                f.share(id, &mut store);
            }
            let mut shard = Shard::new(store);
            shard.shards = threads;
            shard.detail = shared.detail.clone();
            let w = match Worker::new(id, shared.clone(), shard, fds, tls, pinned_from, steer) {
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
                say(&format!("corecache: worker {id}: {e}"));
            }
            shared.telemetry.worker_stopped(id);
        }).map_err(|e| failed(e.to_string()))?);
    }
    drop(ready_tx);
    for _ in 0..threads {
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(failed(e)),
            Err(_) => return Err(failed("a worker failed to start".into())),
        }
    }
    if restoring {
        let r = &shared.restored;
        say(&format!(
            "corecache: restored {} items from {} in {} ms ({} expired while stopped, {} dropped)",
            r.items.load(Ordering::Relaxed),
            warm_path.as_ref().unwrap().display(),
            r.micros.load(Ordering::Relaxed) / 1000,
            r.expired.load(Ordering::Relaxed),
            r.dropped.load(Ordering::Relaxed),
        ));
    }
    ready.notify()?;
    // After `notify`, which points stderr at the `logfile` (the admin
    // port's lines belong there).
    if let Some((l, guard, limits)) = admin {
        corecache::admin::server::spawn(l, shared.clone(), guard, limits).map_err(failed)?;
    }
    if cfg.verbosity > 0 {
        say(&format!(
            "corecache {} listening on {} with {threads} workers",
            corecache::version::CORECACHE,
            match &cfg.unix_socket {
                Some(p) => p.display().to_string(),
                None => format!("{} port {}", cfg.interfaces.join(","), cfg.tcp_port),
            }
        ));
        if let Some(b) = cfg.worker_ports {
            say(&format!(
                "worker ports {b}..{} (worker i on {b} + i, its shard only)",
                b as usize + threads - 1
            ));
        }
    }
    // READY=1 only once every worker has entered its loop (its listeners
    // armed), the same condition as `/readyz`.
    while !(0..threads).all(|id| shared.telemetry.serving(id)) {
        if STOP.load(Ordering::SeqCst) || handles.iter().any(|h| h.is_finished()) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    if (0..threads).all(|id| shared.telemetry.serving(id)) {
        let figures = corecache::admin::figures::gather(&shared);
        systemd::ready(&systemd::serving_line(&shared, &figures));
    }
    systemd::spawn(shared.clone()).map_err(|e| failed(e.to_string()))?;
    while !STOP.load(Ordering::SeqCst) && !handles.iter().all(|h| h.is_finished()) {
        std::thread::sleep(std::time::Duration::from_millis(50));
        if RELOAD.swap(false, Ordering::SeqCst) {
            reload(&shared, logfile.as_deref());
        }
    }
    systemd::stopping("stopping: finishing the requests in flight");
    shared.stop.store(true, Ordering::SeqCst);
    for h in handles {
        let _ = h.join();
    }
    if let Some(path) = &warm_path {
        // The clean-stop marker, once every shard's file is written.
        match saves.finish(path, &fingerprint) {
            Ok(Some(items)) => say(&format!(
                "corecache: saved {items} items to {} for a warm restart",
                path.display()
            )),
            Ok(None) => say(&format!(
                "corecache: the cache was not saved to {}; the next start is empty",
                path.display()
            )),
            Err(e) => say(&format!(
                "corecache: saving the cache to {}: {e}",
                path.display()
            )),
        }
    }
    Ok(0)
}
