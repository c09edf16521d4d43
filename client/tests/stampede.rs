//! Cache-aside under contention, against both servers: how many times the
//! loader runs is counted, never timed.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Server;
use corecache_client::{AsideConfig, Client, EarlyRefresh, Error, OnLeaseTimeout};

const MIN: Duration = Duration::from_secs(60);

/// How long a crowd's loader works.
#[derive(Clone, Copy)]
enum Work {
    /// A fixed time: the other callers wait for it.
    Takes(Duration),
    /// Until every other caller has returned (they are served the value
    /// already there without waiting), at most `ASSUMED_NEVER`. A fixed
    /// time here would assume all callers reach the server before it ends,
    /// which a loaded machine can break; with this a caller that waited
    /// for the load still shows as a wrong count or a wrong value.
    OthersReturn,
}

/// Far longer than any wait in these tests should take: a bound that only
/// a lost lease or a stuck caller reaches.
const ASSUMED_NEVER: Duration = Duration::from_secs(30);

/// `n` callers spread over `clients` separate clients (as if in separate
/// processes: no shared connection or state) all call `get_or_load(key)`
/// at once; the loader counts, works (`work`), and returns `value`.
/// Returns what each caller got.
async fn crowd(
    clients: &[Client],
    n: usize,
    key: &str,
    work: Work,
    value: &'static str,
    loads: &Arc<AtomicUsize>,
) -> Vec<Result<Vec<u8>, Error>> {
    let gate = Arc::new(tokio::sync::Barrier::new(n));
    let returned = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..n {
        let c = clients[i % clients.len()].clone();
        let (gate, loads, key) = (gate.clone(), loads.clone(), key.to_string());
        let returned = returned.clone();
        tasks.push(tokio::spawn(async move {
            gate.wait().await;
            let got = c
                .get_or_load(&key, MIN, || async {
                    loads.fetch_add(1, Ordering::SeqCst);
                    match work {
                        Work::Takes(t) => tokio::time::sleep(t).await,
                        Work::OthersReturn => {
                            let deadline = Instant::now() + ASSUMED_NEVER;
                            while returned.load(Ordering::SeqCst) < n - 1
                                && Instant::now() < deadline
                            {
                                tokio::time::sleep(Duration::from_millis(10)).await;
                            }
                        }
                    }
                    Ok::<_, std::io::Error>(value.as_bytes().to_vec())
                })
                .await;
            returned.fetch_add(1, Ordering::SeqCst);
            got
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

/// `n` clients with `aside`, whose waiters wait up to `ASSUMED_NEVER` for
/// another caller's load. The tests count loader calls, and a waiter that
/// gives up (after `lease_wait`, 5 s by default) loads too: 1000 pollers
/// on a loaded 2-core machine can come near 5 s without any fault, while
/// a lost lease still makes a waiter load, only later.
fn clients(srv: &Server, n: usize, aside: AsideConfig) -> Vec<Client> {
    let aside = AsideConfig {
        lease_wait: ASSUMED_NEVER,
        ..aside
    };
    (0..n)
        .map(|_| srv.builder().aside(aside.clone()).build())
        .collect()
}

async fn expired_hot_key_loads_once(srv: Server) {
    let cs = clients(&srv, 4, AsideConfig::default());
    cs[0]
        .set("hot", "old", Duration::from_secs(1))
        .await
        .unwrap();
    // Due within 2 s of the server's whole-second clock, which (memcached's
    // is a timer thread) can run late on a loaded machine: polled, not
    // read once after a fixed sleep.
    let deadline = Instant::now() + Duration::from_secs(15);
    tokio::time::sleep(Duration::from_millis(2000)).await;
    while cs[0].get("hot").await.unwrap().is_some() {
        assert!(Instant::now() < deadline, "the key never expired");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let loads = Arc::new(AtomicUsize::new(0));
    let since = Instant::now();
    let got = crowd(
        &cs,
        1000,
        "hot",
        Work::Takes(Duration::from_millis(300)),
        "fresh",
        &loads,
    )
    .await;
    // The callers' errors say why more than one loaded (a CI run's 229
    // loads were a client's connection declared broken: conn.rs).
    let errs: Vec<String> = got
        .iter()
        .filter_map(|r| r.as_ref().err().map(|e| e.to_string()))
        .collect();
    assert_eq!(
        loads.load(Ordering::SeqCst),
        1,
        "exactly one loader call; callers' errors: {errs:?}"
    );
    assert!(got.iter().all(|r| r.as_deref().ok() == Some(&b"fresh"[..])));
    assert_eq!(cs[1].get("hot").await.unwrap(), Some(b"fresh".to_vec()));
    // A whole-second TTL loses at most one second more than has passed
    // since the crowd began (the store came after that).
    let t = cs[1].ttl("hot").await.unwrap().unwrap();
    let floor = MIN.as_secs() - 1 - since.elapsed().as_secs();
    assert!(
        t >= Duration::from_secs(floor) && t <= MIN,
        "stored with the caller's TTL: {t:?}"
    );
}
both!(expired_hot_key_loads_once_, expired_hot_key_loads_once);

async fn failed_load_does_not_poison(srv: Server) {
    let cs = clients(&srv, 2, AsideConfig::default());
    let calls = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(tokio::sync::Barrier::new(50));
    let mut tasks = Vec::new();
    for i in 0..50 {
        let c = cs[i % 2].clone();
        let (gate, calls) = (gate.clone(), calls.clone());
        tasks.push(tokio::spawn(async move {
            gate.wait().await;
            c.get_or_load("flaky", MIN, || async move {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(200)).await;
                if n == 0 {
                    Err(std::io::Error::other("database timeout"))
                } else {
                    Ok(b"second try".to_vec())
                }
            })
            .await
        }));
    }
    let mut failed = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(v) => assert_eq!(v, b"second try"),
            Err(Error::Source(e)) => {
                assert!(e.to_string().contains("database timeout"));
                failed += 1;
            }
            Err(e) => panic!("{e:?}"),
        }
    }
    // The failed winner gave the key back; one waiter won it and loaded.
    assert_eq!((failed, calls.load(Ordering::SeqCst)), (1, 2));
    assert_eq!(
        cs[0].get("flaky").await.unwrap(),
        Some(b"second try".to_vec())
    );
}
both!(failed_load_does_not_poison_, failed_load_does_not_poison);

async fn stale_while_revalidate(srv: Server) {
    let cs = clients(&srv, 2, AsideConfig::default());
    cs[0].set("item", "old", MIN).await.unwrap();
    assert!(cs[0].invalidate("item").await.unwrap());
    let loads = Arc::new(AtomicUsize::new(0));
    let got = crowd(&cs, 200, "item", Work::OthersReturn, "new", &loads).await;
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    let new = got
        .iter()
        .filter(|r| r.as_deref().unwrap() == b"new")
        .count();
    let old = got
        .iter()
        .filter(|r| r.as_deref().unwrap() == b"old")
        .count();
    // The winner waited for its load; everyone else was served the stale
    // value at once instead of waiting.
    assert_eq!((new, old), (1, 199));
    assert_eq!(cs[0].get("item").await.unwrap(), Some(b"new".to_vec()));
    // The stale mark is gone: the next reader is a plain hit.
    let got = crowd(
        &cs,
        10,
        "item",
        Work::Takes(Duration::ZERO),
        "newer",
        &loads,
    )
    .await;
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    assert!(got.iter().all(|r| r.as_deref().unwrap() == b"new"));
}
both!(stale_while_revalidate_, stale_while_revalidate);

async fn recache_window_refreshes_once(srv: Server) {
    let aside = AsideConfig {
        recache_before: Duration::from_secs(30),
        ..AsideConfig::default()
    };
    let cs = clients(&srv, 2, aside);
    let loads = Arc::new(AtomicUsize::new(0));
    // 100 s left: outside the window, nobody reloads.
    cs[0]
        .set("w", "current", Duration::from_secs(100))
        .await
        .unwrap();
    let got = crowd(&cs, 50, "w", Work::Takes(Duration::ZERO), "x", &loads).await;
    assert_eq!(loads.load(Ordering::SeqCst), 0);
    assert!(got.iter().all(|r| r.as_deref().unwrap() == b"current"));
    // 10 s left: inside it, one caller reloads, the others keep the value.
    cs[0]
        .set("w", "current", Duration::from_secs(10))
        .await
        .unwrap();
    let since = Instant::now();
    let got = crowd(&cs, 200, "w", Work::OthersReturn, "refreshed", &loads).await;
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    let refreshed = got
        .iter()
        .filter(|r| r.as_deref().unwrap() == b"refreshed")
        .count();
    assert_eq!(refreshed, 1);
    assert_eq!(cs[0].get("w").await.unwrap(), Some(b"refreshed".to_vec()));
    // Stored during the crowd: at most one second more gone than since.
    let floor = MIN.as_secs() - 1 - since.elapsed().as_secs();
    assert!(cs[0].ttl("w").await.unwrap().unwrap() >= Duration::from_secs(floor));
}
both!(
    recache_window_refreshes_once_,
    recache_window_refreshes_once
);

async fn early_refresh_is_probabilistic_and_single(srv: Server) {
    // delta 20 s, beta 1: with 10 s left each reader asks to refresh with
    // probability exp(-10/20) = 0.61; with 100 readers someone does, and
    // the server lets exactly one of them. 10 s rather than less: the
    // crowd must be over before the value expires (a miss then is a second,
    // legitimate load), which a loaded machine can stretch to seconds.
    let eager = AsideConfig {
        early_refresh: Some(EarlyRefresh {
            beta: 1.0,
            delta: Some(Duration::from_secs(20)),
        }),
        ..AsideConfig::default()
    };
    let cs = clients(&srv, 2, eager);
    let loads = Arc::new(AtomicUsize::new(0));
    cs[0].set("x", "v1", Duration::from_secs(10)).await.unwrap();
    crowd(&cs, 100, "x", Work::OthersReturn, "v2", &loads).await;
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    assert_eq!(cs[0].get("x").await.unwrap(), Some(b"v2".to_vec()));
    // With a TTL of hours left, the chance is exp(-3600/20): nobody.
    cs[0]
        .set("y", "v1", Duration::from_secs(3600))
        .await
        .unwrap();
    crowd(&cs, 100, "y", Work::Takes(Duration::ZERO), "v2", &loads).await;
    assert_eq!(loads.load(Ordering::SeqCst), 1);
}
both!(
    early_refresh_is_probabilistic_and_single_,
    early_refresh_is_probabilistic_and_single
);

async fn lease_timeout(srv: Server) {
    let fail = AsideConfig {
        lease_wait: Duration::from_millis(300),
        on_lease_timeout: OnLeaseTimeout::Fail,
        ..AsideConfig::default()
    };
    let load = AsideConfig {
        on_lease_timeout: OnLeaseTimeout::Load,
        ..fail.clone()
    };
    let slow = srv.client();
    let impatient = srv.builder().aside(fail).build();
    let fallback = srv.builder().aside(load).build();
    // The winner's load starts (it holds the placeholder) before the
    // others ask, and ends only after they are done: signalled, not timed,
    // since a fixed 2 s load assumed the two 300 ms waits fit in it.
    let (started_tx, started) = tokio::sync::oneshot::channel();
    let (finish, finish_rx) = tokio::sync::oneshot::channel::<()>();
    let winner = tokio::spawn(async move {
        slow.get_or_load("slow", MIN, || async {
            started_tx.send(()).unwrap();
            let _ = finish_rx.await;
            Ok::<_, std::io::Error>(b"slow value".to_vec())
        })
        .await
    });
    started.await.unwrap();
    let r = impatient
        .get_or_load("slow", MIN, || async {
            Ok::<_, std::io::Error>(b"mine".to_vec())
        })
        .await;
    assert!(matches!(r, Err(Error::LeaseTimeout(_))), "{r:?}");
    let r = fallback
        .get_or_load("slow", MIN, || async {
            Ok::<_, std::io::Error>(b"mine".to_vec())
        })
        .await;
    assert_eq!(r.unwrap(), b"mine");
    // The fallback stored with the placeholder's CAS; the slow winner's
    // later store then misses its CAS and does not overwrite it.
    finish.send(()).unwrap();
    assert_eq!(winner.await.unwrap().unwrap(), b"slow value");
    assert_eq!(fallback.get("slow").await.unwrap(), Some(b"mine".to_vec()));
}
both!(lease_timeout_, lease_timeout);

#[tokio::test]
async fn cache_down_serves_from_the_source() {
    let port = common::free_port();
    let c = Client::builder()
        .node(corecache_client::Node::new("127.0.0.1", port))
        .build();
    let v = c
        .get_or_load("k", MIN, || async {
            Ok::<_, std::io::Error>(b"from db".to_vec())
        })
        .await
        .unwrap();
    assert_eq!(v, b"from db");
    let strict = Client::builder()
        .node(corecache_client::Node::new("127.0.0.1", port))
        .aside(AsideConfig {
            load_on_cache_error: false,
            ..AsideConfig::default()
        })
        .build();
    let r = strict
        .get_or_load("k", MIN, || async {
            Ok::<_, std::io::Error>(b"from db".to_vec())
        })
        .await;
    assert!(r.unwrap_err().is_transport());
}

/// How the first loader of a crowd is lost.
#[derive(Clone, Copy, Debug)]
enum Lost {
    /// It panics (the caller's task dies with it).
    Panics,
    /// Its caller's future is dropped mid-load (as by a `timeout` or a
    /// `select!` around the call); the loader never finishes.
    Dropped,
}

/// 1,000 callers on a missing key, whose first loader is lost as `how`
/// says while holding the lease. Asserts exactly two loader calls (the
/// lost one and one that completes) and the value for every other caller.
/// Why exactly two: the lost winner's lease is given back at once (a drop
/// guard deletes the placeholder if its CAS still matches), so the waiters
/// elect one new winner long before their lease wait (30 s here, see
/// `clients`) could run out; a third call would mean a waiter loaded on
/// its own. Without the guard every waiter loads after the lease wait. The
/// placeholder's TTL is longer than the lease wait, so its expiry cannot
/// stand in for the guard.
async fn lost_winner_gives_the_lease_back(srv: Server, how: Lost) {
    let aside = AsideConfig {
        lease_ttl: Duration::from_secs(300),
        ..AsideConfig::default()
    };
    let cs = clients(&srv, 4, aside);
    let n = 1000;
    let calls = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(tokio::sync::Barrier::new(n));
    let mut tasks = Vec::new();
    for i in 0..n {
        let c = cs[i % cs.len()].clone();
        let (gate, calls) = (gate.clone(), calls.clone());
        let cancel = Arc::new(tokio::sync::Notify::new());
        tasks.push(tokio::spawn(async move {
            gate.wait().await;
            let load = c.get_or_load("lost", MIN, || async {
                if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                    match how {
                        Lost::Panics => panic!("the first loader panics (on purpose)"),
                        Lost::Dropped => {
                            cancel.notify_one();
                            std::future::pending::<()>().await;
                        }
                    }
                }
                Ok::<_, std::io::Error>(b"fresh".to_vec())
            });
            tokio::select! {
                r = load => Some(r),
                _ = cancel.notified() => None,
            }
        }));
    }
    let (mut got, mut lost) = (0, 0);
    for t in tasks {
        match t.await {
            Ok(Some(r)) => {
                assert_eq!(r.unwrap(), b"fresh");
                got += 1;
            }
            Ok(None) | Err(_) => lost += 1,
        }
    }
    assert_eq!((got, lost), (n - 1, 1), "{how:?}");
    assert_eq!(calls.load(Ordering::SeqCst), 2, "{how:?}: loader calls");
    assert_eq!(cs[0].get("lost").await.unwrap(), Some(b"fresh".to_vec()));
}

async fn winner_panics(srv: Server) {
    lost_winner_gives_the_lease_back(srv, Lost::Panics).await
}
both!(winner_panics_, winner_panics);

async fn winner_dropped(srv: Server) {
    lost_winner_gives_the_lease_back(srv, Lost::Dropped).await
}
both!(winner_dropped_, winner_dropped);

/// A winner whose load outlasts `lease_wait` (3 s): the 199 waiters take
/// its lease away and compete for one new win, instead of each loading.
/// Asserts exactly two loads (the stuck one, one new winner's), the new
/// value for all waiters, and that the stuck winner's late store (its
/// lease's CAS is gone) does not overwrite it. A third load would need the
/// new winner's instant load to take longer than a whole lease wait.
async fn slow_winner_one_new_win(srv: Server) {
    let aside = AsideConfig {
        lease_wait: Duration::from_secs(3),
        ..AsideConfig::default()
    };
    let cs: Vec<Client> = (0..4)
        .map(|_| srv.builder().aside(aside.clone()).build())
        .collect();
    let loads = Arc::new(AtomicUsize::new(0));
    let (started_tx, started) = tokio::sync::oneshot::channel();
    let (finish, finish_rx) = tokio::sync::oneshot::channel::<()>();
    let slow = cs[0].clone();
    let l = loads.clone();
    let winner = tokio::spawn(async move {
        slow.get_or_load("slowkey", MIN, || async {
            l.fetch_add(1, Ordering::SeqCst);
            started_tx.send(()).unwrap();
            let _ = finish_rx.await;
            Ok::<_, std::io::Error>(b"slow".to_vec())
        })
        .await
    });
    started.await.unwrap();
    let n = 199;
    let mut tasks = Vec::new();
    for i in 0..n {
        let c = cs[i % cs.len()].clone();
        let loads = loads.clone();
        tasks.push(tokio::spawn(async move {
            c.get_or_load("slowkey", MIN, || async {
                loads.fetch_add(1, Ordering::SeqCst);
                Ok::<_, std::io::Error>(b"fresh".to_vec())
            })
            .await
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), b"fresh");
    }
    assert_eq!(loads.load(Ordering::SeqCst), 2, "loads");
    finish.send(()).unwrap();
    assert_eq!(winner.await.unwrap().unwrap(), b"slow");
    assert_eq!(cs[1].get("slowkey").await.unwrap(), Some(b"fresh".to_vec()));
}
both!(slow_winner_one_new_win_, slow_winner_one_new_win);

/// While a `get_or_load` winner loads, its empty placeholder is a miss to
/// every read that does not load (the servers answer `VA 0 Z` to a plain
/// `mg v`), and none of them disturbs the load.
async fn placeholder_reads_as_miss(srv: Server) {
    let c = srv.client();
    let loader_client = srv.client();
    let (started_tx, started) = tokio::sync::oneshot::channel();
    let (finish, finish_rx) = tokio::sync::oneshot::channel::<()>();
    let winner = tokio::spawn(async move {
        loader_client
            .get_or_load("ph", MIN, || async {
                started_tx.send(()).unwrap();
                let _ = finish_rx.await;
                Ok::<_, std::io::Error>(b"loaded".to_vec())
            })
            .await
    });
    started.await.unwrap();
    assert_eq!(c.get("ph").await.unwrap(), None, "get");
    assert_eq!(c.gets("ph").await.unwrap(), None, "gets");
    assert_eq!(c.mget(&["ph", "ph"]).await.unwrap(), vec![None, None]);
    assert!(matches!(c.ttl("ph").await, Err(Error::NotFound)), "ttl");
    finish.send(()).unwrap();
    assert_eq!(winner.await.unwrap().unwrap(), b"loaded");
    assert_eq!(c.get("ph").await.unwrap(), Some(b"loaded".to_vec()));
    assert_eq!(
        c.mget(&["ph"]).await.unwrap(),
        vec![Some(b"loaded".to_vec())]
    );
    assert!(c.ttl("ph").await.unwrap().is_some());
}
both!(placeholder_reads_as_miss_, placeholder_reads_as_miss);

/// After `invalidate`, the first `mg` of the key wins its reload whatever
/// it asked (`VA … X W`). Each read that does not load (get, gets, mget,
/// ttl, expire) runs in between on its own key; the next `get_or_load`
/// must still reload: exactly one load, the new value returned and cached.
async fn reads_leave_the_reload_to_get_or_load(srv: Server) {
    let c = srv.client();
    let readers = ["get", "gets", "mget", "ttl", "expire"];
    for r in readers {
        let key = format!("inv-{r}");
        c.set(&key, "old", MIN).await.unwrap();
        assert!(c.invalidate(&key).await.unwrap());
        match r {
            "get" => assert_eq!(c.get(&key).await.unwrap(), Some(b"old".to_vec())),
            "gets" => assert_eq!(c.gets(&key).await.unwrap().unwrap().value, b"old"),
            "mget" => assert_eq!(c.mget(&[&key]).await.unwrap(), vec![Some(b"old".to_vec())]),
            "ttl" => assert!(c.ttl(&key).await.unwrap().is_some()),
            _ => c.expire(&key, MIN).await.unwrap(),
        }
        let loads = AtomicUsize::new(0);
        let v = c
            .get_or_load(&key, MIN, || async {
                loads.fetch_add(1, Ordering::SeqCst);
                Ok::<_, std::io::Error>(b"new".to_vec())
            })
            .await
            .unwrap();
        assert_eq!(
            (v, loads.load(Ordering::SeqCst)),
            (b"new".to_vec(), 1),
            "{r}"
        );
        assert_eq!(c.get(&key).await.unwrap(), Some(b"new".to_vec()), "{r}");
    }
}
both!(
    reads_leave_the_reload_to_get_or_load_,
    reads_leave_the_reload_to_get_or_load
);

/// A later caller, patient enough never to take the winner's lease, starts;
/// then the winner (waiting on `release`) stores "winner": the caller must
/// get the winner's value without loading, and the winner its own.
async fn late_caller_waits_for_the_winner(
    srv: &Server,
    key: &'static str,
    release: tokio::sync::oneshot::Sender<()>,
    results: &mut Outcomes,
) {
    let late = srv
        .builder()
        .aside(AsideConfig {
            lease_wait: ASSUMED_NEVER,
            ..AsideConfig::default()
        })
        .build();
    let late_loads = Arc::new(AtomicUsize::new(0));
    let l = late_loads.clone();
    let d = tokio::spawn(async move {
        late.get_or_load(key, MIN, || async move {
            l.fetch_add(1, Ordering::SeqCst);
            Ok::<_, std::io::Error>(b"late".to_vec())
        })
        .await
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    release.send(()).unwrap();
    assert_eq!(results.recv().await.unwrap().unwrap(), b"winner");
    assert_eq!(d.await.unwrap().unwrap(), b"winner");
    assert_eq!(late_loads.load(Ordering::SeqCst), 0, "late caller loaded");
}

type Outcomes = tokio::sync::mpsc::UnboundedReceiver<Result<Vec<u8>, Error>>;

/// Leaves a crashed winner's placeholder under `key` (a raw `mg … N` that
/// never stores), then starts two `get_or_load` callers with a 500 ms
/// lease wait, the second `stagger` after the first. The first loader to
/// run works until `release` is sent and loads "winner"; the second fails.
/// Waits for the first outcome to arrive, which must be the failure.
/// Returns how many loaders ran, the release, and the other outcome to come.
async fn a_winner_and_a_failing_loader(
    srv: &Server,
    key: &'static str,
    stagger: Duration,
) -> (Arc<AtomicUsize>, tokio::sync::oneshot::Sender<()>, Outcomes) {
    let crashed = srv.raw(format!("mg {key} v c N30\r\n").as_bytes(), b"\r\n");
    assert!(crashed.starts_with(b"VA 0 "), "{crashed:?}");
    let aside = AsideConfig {
        lease_wait: Duration::from_millis(500),
        ..AsideConfig::default()
    };
    let cs: Vec<Client> = (0..2)
        .map(|_| srv.builder().aside(aside.clone()).build())
        .collect();
    let loads = Arc::new(AtomicUsize::new(0));
    let (release, release_rx) = tokio::sync::oneshot::channel::<()>();
    let release_rx = Arc::new(tokio::sync::Mutex::new(Some(release_rx)));
    let gate = Arc::new(tokio::sync::Barrier::new(2));
    let (done, mut results) = tokio::sync::mpsc::unbounded_channel();
    for (i, c) in cs.into_iter().enumerate() {
        let (loads, release_rx, gate) = (loads.clone(), release_rx.clone(), gate.clone());
        let done = done.clone();
        tokio::spawn(async move {
            gate.wait().await;
            if i == 1 && !stagger.is_zero() {
                tokio::time::sleep(stagger).await;
            }
            let r = c.get_or_load(key, MIN, || async move {
                // The first loader is the new winner's: it works until
                // released. The second is the fallback's: it fails.
                if loads.fetch_add(1, Ordering::SeqCst) == 0 {
                    let rx = release_rx.lock().await.take().unwrap();
                    let _ = rx.await;
                    Ok(b"winner".to_vec())
                } else {
                    Err(std::io::Error::other("source down"))
                }
            });
            let _ = done.send(r.await);
        });
    }
    // The failing loader ends first (the winner waits for the release).
    let first = results.recv().await.unwrap();
    assert!(matches!(first, Err(Error::Source(_))), "{first:?}");
    (loads, release, results)
}

/// A caller that falls back to its own load after waiting twice holds no
/// lease: its failed load must not give the live winner's placeholder back
/// (that deleted it, `md <k> C<winner's cas>`, and the next caller loaded
/// too). A crashed winner makes the two callers compete again after one
/// lease wait: one wins and loads until released, the other falls back at
/// twice the wait and fails. A caller arriving after that must wait for
/// the winner, not load, and the winner's value must be cached.
async fn failed_fallback_keeps_the_winners_lease(srv: Server) {
    let key = "fallback";
    let (loads, release, mut results) =
        a_winner_and_a_failing_loader(&srv, key, Duration::ZERO).await;
    assert_eq!(
        loads.load(Ordering::SeqCst),
        2,
        "winner and fallback loaded"
    );
    late_caller_waits_for_the_winner(&srv, key, release, &mut results).await;
    let c = srv.client();
    assert_eq!(c.get(key).await.unwrap(), Some(b"winner".to_vec()));
}
both!(
    failed_fallback_keeps_the_winners_lease_,
    failed_fallback_keeps_the_winners_lease
);

/// The same, with the second caller arriving 300 ms after the first, so
/// the first alone takes the crashed lease back and wins the new one: the
/// second sees the placeholder change and must count that as its one
/// recompete. Before, its own lease wait ran out on the new placeholder
/// before its two waits were over, and it deleted the live winner's lease
/// (CI saw this one time in the test above, from timing).
async fn a_waiter_that_saw_the_lease_change_keeps_the_new_winners(srv: Server) {
    let key = "changed";
    let (_, release, mut results) =
        a_winner_and_a_failing_loader(&srv, key, Duration::from_millis(300)).await;
    late_caller_waits_for_the_winner(&srv, key, release, &mut results).await;
}
both!(
    a_waiter_that_saw_the_lease_change_keeps_the_new_winners_,
    a_waiter_that_saw_the_lease_change_keeps_the_new_winners
);

/// An invalidated item whose reload winner is lost (a process that took
/// the `W` and died: here a raw `mg` on its own connection, closed at
/// once) must not be served stale forever: once the same stale item has
/// read `X Z` for a lease wait, a `get_or_load` takes the win back and
/// reloads, once.
async fn lost_stale_winner_is_replaced(srv: Server) {
    let c = srv
        .builder()
        .aside(AsideConfig {
            lease_wait: Duration::from_millis(500),
            ..AsideConfig::default()
        })
        .build();
    c.set("lost", "old", Duration::ZERO).await.unwrap();
    assert!(c.invalidate("lost").await.unwrap());
    let won = srv.raw(b"mg lost v c\r\n", b"\r\n");
    let head = String::from_utf8_lossy(&won);
    assert!(head.contains(" W"), "the crashed winner took W: {head}");
    let loads = AtomicUsize::new(0);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = Vec::new();
    while Instant::now() < deadline {
        got = c
            .get_or_load("lost", Duration::ZERO, || async {
                loads.fetch_add(1, Ordering::SeqCst);
                Ok::<_, std::io::Error>(b"new".to_vec())
            })
            .await
            .unwrap();
        if got == b"new" {
            break;
        }
        assert_eq!(got, b"old");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(got, b"new", "still stale after 10 s");
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    assert_eq!(c.get("lost").await.unwrap(), Some(b"new".to_vec()));
}
both!(
    lost_stale_winner_is_replaced_,
    lost_stale_winner_is_replaced
);
