//! Every call of the client against the real corecache binary and against
//! Debian's memcached (the oracle): the same calls, the same answers.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Kind, Server};
use corecache_client::{Client, Error, StoreMode, StoreOptions};

const MIN: Duration = Duration::from_secs(60);

async fn get_set_delete(srv: Server) {
    let c = srv.client();
    assert_eq!(c.get("k").await.unwrap(), None);
    c.set("k", "v1", MIN).await.unwrap();
    assert_eq!(c.get("k").await.unwrap(), Some(b"v1".to_vec()));
    c.set("k", "v2", MIN).await.unwrap();
    assert_eq!(c.get("k").await.unwrap(), Some(b"v2".to_vec()));
    assert!(c.delete("k").await.unwrap());
    assert!(!c.delete("k").await.unwrap());
    assert_eq!(c.get("k").await.unwrap(), None);
    // Empty values are values.
    c.set("empty", "", MIN).await.unwrap();
    assert_eq!(c.get("empty").await.unwrap(), Some(Vec::new()));
}
both!(get_set_delete_, get_set_delete);

async fn binary_keys_and_values(srv: Server) {
    let c = srv.client();
    let value: Vec<u8> = (0..=255u8).chain(*b"\r\nEND\r\nVA 3\r\n").collect();
    let keys: [&[u8]; 4] = [
        b"with space",
        b"line\r\nbreak",
        "clé".as_bytes(),
        &[0, 1, 0xff],
    ];
    for k in keys {
        c.set(k, &value, MIN).await.unwrap();
    }
    for k in keys {
        assert_eq!(
            c.get(k).await.unwrap().as_deref(),
            Some(&value[..]),
            "{k:?}"
        );
    }
    // The base64 form is a different key from the text one.
    assert_eq!(c.get("d2l0aCBzcGFjZQ==").await.unwrap(), None);
    assert!(c.delete(b"with space").await.unwrap());
    assert_eq!(c.get(b"with space").await.unwrap(), None);
    assert!(matches!(c.get("").await, Err(Error::InvalidKey(_))));
    assert!(matches!(
        c.get("x".repeat(251)).await,
        Err(Error::InvalidKey(_))
    ));
    assert!(c.get("x".repeat(250)).await.unwrap().is_none());
}
both!(binary_keys_and_values_, binary_keys_and_values);

async fn ttl_and_expire(srv: Server) {
    let c = srv.client();
    // A relative TTL read back is whole seconds of the server's clock: it
    // loses one for each second tick between the store and the read, which
    // is at most the whole seconds that passed plus one (a tick can fall
    // just after the store). A loaded machine can stall for seconds
    // between the two calls, so the floor is measured, not assumed.
    let since = Instant::now();
    c.set("t", "v", Duration::from_secs(100)).await.unwrap();
    let t = c.ttl("t").await.unwrap().unwrap();
    let floor = 100 - 1 - since.elapsed().as_secs();
    assert!(
        t >= Duration::from_secs(floor) && t <= Duration::from_secs(100),
        "{t:?}"
    );
    c.set("forever", "v", Duration::ZERO).await.unwrap();
    assert_eq!(c.ttl("forever").await.unwrap(), None);
    let since = Instant::now();
    c.expire("forever", Duration::from_secs(50)).await.unwrap();
    let t = c.ttl("forever").await.unwrap().unwrap();
    let floor = 50 - 1 - since.elapsed().as_secs();
    assert!(
        t >= Duration::from_secs(floor) && t <= Duration::from_secs(50),
        "{t:?}"
    );
    c.expire("t", Duration::ZERO).await.unwrap();
    assert_eq!(c.ttl("t").await.unwrap(), None);
    assert!(matches!(c.ttl("missing").await, Err(Error::NotFound)));
    assert!(matches!(
        c.expire("missing", MIN).await,
        Err(Error::NotFound)
    ));
    // A TTL above 30 days goes as an absolute time and still means "from now".
    // The server's clock, like memcached's `current_time`, is whole seconds
    // counted from its start, so it reads up to one second behind the
    // client's `time()`: the absolute deadline can look one second further.
    c.set("long", "v", Duration::from_secs(40 * 86400))
        .await
        .unwrap();
    let t = c.ttl("long").await.unwrap().unwrap();
    assert!(
        t > Duration::from_secs(39 * 86400) && t <= Duration::from_secs(40 * 86400 + 1),
        "{t:?}"
    );
    // Expiry really happens, and expire() can bring it forward.
    c.set("short", "v", Duration::from_secs(1)).await.unwrap();
    c.set("cut", "v", MIN).await.unwrap();
    c.expire("cut", Duration::from_millis(10)).await.unwrap();
    // Both are due within 2 s of the server's clock; that clock (memcached's
    // is a timer) can fall behind on a loaded machine, so they are polled
    // for a generous 15 s rather than read once after a fixed sleep. Items
    // that never expire still fail.
    let deadline = Instant::now() + Duration::from_secs(15);
    tokio::time::sleep(Duration::from_millis(2000)).await;
    for key in ["short", "cut"] {
        while c.get(key).await.unwrap().is_some() {
            assert!(Instant::now() < deadline, "{key} never expired");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
both!(ttl_and_expire_, ttl_and_expire);

async fn counters(srv: Server) {
    let c = srv.client();
    assert!(matches!(c.incr("n", 1).await, Err(Error::NotFound)));
    assert!(matches!(c.decr("n", 1).await, Err(Error::NotFound)));
    c.set("n", "10", MIN).await.unwrap();
    assert_eq!(c.incr("n", 5).await.unwrap(), 15);
    assert_eq!(c.decr("n", 20).await.unwrap(), 0);
    c.set("n", "100", MIN).await.unwrap();
    // memcached keeps the length and pads with spaces: "5  ".
    assert_eq!(c.decr("n", 95).await.unwrap(), 5);
    assert_eq!(c.incr("n", 1).await.unwrap(), 6);
    c.set("max", u64::MAX.to_string(), MIN).await.unwrap();
    assert_eq!(c.incr("max", 1).await.unwrap(), 0);
    c.set("word", "abc", MIN).await.unwrap();
    assert!(matches!(c.incr("word", 1).await, Err(Error::NonNumeric)));
    assert_eq!(c.incr_or_init("fresh", 3, 7, MIN).await.unwrap(), 7);
    assert_eq!(c.incr_or_init("fresh", 3, 7, MIN).await.unwrap(), 10);
    let t = c.ttl("fresh").await.unwrap().unwrap();
    assert!(t > Duration::from_secs(55), "{t:?}");
}
both!(counters_, counters);

async fn conditional_stores_and_cas(srv: Server) {
    let c = srv.client();
    assert!(c.add("a", "1", MIN).await.unwrap());
    assert!(!c.add("a", "2", MIN).await.unwrap());
    assert_eq!(c.get("a").await.unwrap(), Some(b"1".to_vec()));
    assert!(!c.replace("r", "1", MIN).await.unwrap());
    assert!(c.replace("a", "3", MIN).await.unwrap());
    assert_eq!(c.get("a").await.unwrap(), Some(b"3".to_vec()));

    let opts = StoreOptions {
        ttl: MIN,
        flags: 0xdead_beef,
        ..StoreOptions::default()
    };
    c.store("f", "body", &opts).await.unwrap();
    let it = c.gets("f").await.unwrap().unwrap();
    assert_eq!((it.value.as_slice(), it.flags), (&b"body"[..], 0xdead_beef));
    assert!(it.ttl.unwrap() > Duration::from_secs(55));
    c.cas("f", "new", MIN, it.cas).await.unwrap();
    assert!(matches!(
        c.cas("f", "newer", MIN, it.cas).await,
        Err(Error::CasMismatch)
    ));
    let it2 = c.gets("f").await.unwrap().unwrap();
    assert_eq!(it2.value, b"new");
    assert_ne!(it2.cas, it.cas);
    c.delete("f").await.unwrap();
    assert!(matches!(
        c.cas("f", "x", MIN, it2.cas).await,
        Err(Error::NotFound)
    ));
    assert!(c.gets("f").await.unwrap().is_none());

    for (mode, want) in [
        (StoreMode::Append, &b"mid>"[..]),
        (StoreMode::Prepend, b"<mid>"),
    ] {
        let o = StoreOptions {
            mode,
            ..StoreOptions::default()
        };
        let piece: &[u8] = if mode == StoreMode::Append {
            b">"
        } else {
            b"<"
        };
        if mode == StoreMode::Append {
            assert!(matches!(
                c.store("ap", piece, &o).await,
                Err(Error::NotStored)
            ));
            c.set("ap", "mid", MIN).await.unwrap();
        }
        c.store("ap", piece, &o).await.unwrap();
        assert_eq!(c.get("ap").await.unwrap().as_deref(), Some(want));
    }
    let add = StoreOptions {
        mode: StoreMode::Add,
        ..StoreOptions::default()
    };
    assert!(matches!(
        c.store("ap", "x", &add).await,
        Err(Error::NotStored)
    ));
}
both!(conditional_stores_and_cas_, conditional_stores_and_cas);

async fn mget_mset(srv: Server) {
    let c = srv.client();
    let none: [&str; 0] = [];
    assert!(c.mget(&none).await.unwrap().is_empty());
    let pairs: Vec<(String, Vec<u8>)> = (0..1500)
        .map(|i| {
            (
                format!("m:{i}"),
                format!("value {i}").repeat(i % 7).into_bytes(),
            )
        })
        .collect();
    c.mset(&pairs, MIN).await.unwrap();
    let mut keys: Vec<Vec<u8>> = Vec::new();
    for i in 0..1600 {
        keys.push(format!("m:{i}").into_bytes());
        if i % 100 == 0 {
            keys.push(b"binary key \x00".to_vec());
        }
    }
    c.set(b"binary key \x00", "bin", MIN).await.unwrap();
    let got = c.mget(&keys).await.unwrap();
    assert_eq!(got.len(), keys.len());
    for (k, v) in keys.iter().zip(&got) {
        let k = String::from_utf8_lossy(k);
        if k.starts_with("binary") {
            assert_eq!(v.as_deref(), Some(&b"bin"[..]));
            continue;
        }
        let i: usize = k[2..].parse().unwrap();
        match pairs.get(i) {
            Some((_, want)) => assert_eq!(v.as_ref(), Some(want), "{k}"),
            None => assert_eq!(v, &None, "{k}"),
        }
    }
    // A duplicated key is answered at each place.
    let dup = c.mget(&["m:1", "m:1", "nope", "m:2"]).await.unwrap();
    assert_eq!(dup[0], dup[1]);
    assert_eq!(dup[2], None);
    assert!(matches!(
        c.mget(&["ok", ""]).await,
        Err(Error::InvalidKey(_))
    ));
}
both!(mget_mset_, mget_mset);

async fn large_values_and_server_errors(srv: Server) {
    let c = srv.client();
    let big = vec![b'x'; 900 * 1024];
    c.set("big", &big, MIN).await.unwrap();
    assert_eq!(c.get("big").await.unwrap().as_deref(), Some(&big[..]));
    let too_big = vec![b'y'; 2 * 1024 * 1024];
    match c.set("huge", &too_big, MIN).await {
        Err(Error::Server { message, .. }) => assert!(message.contains("too large"), "{message}"),
        other => panic!("{other:?}"),
    }
    match c.mset(&[("h1", &too_big[..]), ("h2", b"small")], MIN).await {
        Err(Error::Server { message, .. }) => assert!(message.contains("too large"), "{message}"),
        other => panic!("{other:?}"),
    }
    // The connection is still in step after the errors.
    assert_eq!(c.get("h2").await.unwrap().as_deref(), Some(&b"small"[..]));
    assert_eq!(c.get("huge").await.unwrap(), None);
    c.ping().await.unwrap();
}
both!(
    large_values_and_server_errors_,
    large_values_and_server_errors
);

/// `mset` of values the server has no memory for (`-m 8`, no eviction):
/// memcached refuses a value over its 512 KiB chunk size while reading
/// it, and under `q` says nothing (`out_string`); a quiet `mset` returned
/// Ok while the old values stayed (a breaker's find). The call must fail.
async fn mset_out_of_memory_is_an_error(kind: Kind) {
    let srv = Server::start_with(kind, &["-m", "8", "-M"]);
    let c = srv.client();
    let keys: Vec<String> = (0..30).map(|i| format!("oom:{i}")).collect();
    let old: Vec<(&str, Vec<u8>)> = keys
        .iter()
        .map(|k| (k.as_str(), vec![b'o'; 100 * 1024]))
        .collect();
    // Some of these may not fit either; what matters is the next call.
    let _ = c.mset(&old, MIN).await;
    let new: Vec<(&str, Vec<u8>)> = keys
        .iter()
        .map(|k| (k.as_str(), vec![b'n'; 1000 * 1024]))
        .collect();
    let r = c.mset(&new, MIN).await;
    // 30 MB cannot fit in 8 MB without eviction.
    assert!(
        r.is_err(),
        "{kind:?}: mset of 30 MB into -m 8 -M returned Ok"
    );
    // What the call did store reads back new; the rest old or gone.
    for (k, v) in &new {
        let got = c.get(k).await.unwrap();
        assert!(
            got.as_deref()
                .is_none_or(|g| g == &v[..] || g == &old[0].1[..]),
            "{kind:?} {k}: another value"
        );
    }
    c.ping().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mset_out_of_memory_is_an_error_corecache() {
    mset_out_of_memory_is_an_error(Kind::Corecache).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mset_out_of_memory_is_an_error_memcached() {
    mset_out_of_memory_is_an_error(Kind::Memcached).await
}

async fn many_callers_share_connections(srv: Server) {
    // 200 tasks on 2 pipelined connections: every reply reaches its caller.
    let c = srv.builder().pool_size(2).build();
    let mut tasks = Vec::new();
    for t in 0..200 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..50 {
                let k = format!("t{t}:{i}");
                let v = format!("{t}/{i}/{}", "z".repeat((t * 31 + i * 7) % 3000));
                c.set(&k, &v, MIN).await.unwrap();
                assert_eq!(c.get(&k).await.unwrap(), Some(v.into_bytes()));
                if i % 10 == 0 {
                    let ks: Vec<String> = (0..=i).map(|j| format!("t{t}:{j}")).collect();
                    assert!(c.mget(&ks).await.unwrap().iter().all(Option::is_some));
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}
both!(
    many_callers_share_connections_,
    many_callers_share_connections
);

async fn write_through_and_invalidation(srv: Server) {
    let c = srv.client();
    let db = Arc::new(std::sync::Mutex::new(String::from("old")));
    let d = db.clone();
    c.write_through("row", "new", MIN, || async move {
        *d.lock().unwrap() = "new".into();
        Ok::<_, std::io::Error>(())
    })
    .await
    .unwrap();
    assert_eq!(*db.lock().unwrap(), "new");
    assert_eq!(c.get("row").await.unwrap(), Some(b"new".to_vec()));
    let r = c
        .write_through("row", "newer", MIN, || async {
            Err::<(), _>(std::io::Error::other("constraint violated"))
        })
        .await;
    assert!(matches!(r, Err(Error::Source(_))), "{r:?}");
    assert_eq!(c.get("row").await.unwrap(), Some(b"new".to_vec()));

    assert!(c.invalidate("row").await.unwrap());
    assert!(!c.invalidate("nothing").await.unwrap());
    // A stale item still reads (flagged X on the wire) until reloaded.
    assert_eq!(c.get("row").await.unwrap(), Some(b"new".to_vec()));

    // corecache has `flush_prefix`: every key under the prefix goes, the
    // rest stays. memcached has no prefix invalidation: the call says so.
    c.set("user:1:name", "ann", MIN).await.unwrap();
    c.set("user:10:name", "bob", MIN).await.unwrap();
    let r = c.invalidate_prefix("user:1:").await;
    if srv.kind == Kind::Corecache {
        r.unwrap();
        assert_eq!(c.get("user:1:name").await.unwrap(), None);
        assert_eq!(c.get("user:10:name").await.unwrap(), Some(b"bob".to_vec()));
    } else {
        assert!(matches!(r, Err(Error::Unsupported { .. })), "{r:?}");
    }
    assert!(matches!(
        c.invalidate_prefix("a b").await,
        Err(Error::InvalidKey(_))
    ));
    c.ping().await.unwrap();
}
both!(
    write_through_and_invalidation_,
    write_through_and_invalidation
);

async fn connect_and_ping(srv: Server) {
    let c = Client::connect(&srv.addr()).await.unwrap();
    c.set("p", "q", MIN).await.unwrap();
    assert_eq!(c.members(), vec![srv.addr()]);
    assert_eq!(c.node_for_key("p").as_deref(), Some(srv.addr().as_str()));
    let dead = common::free_port();
    assert!(Client::connect(&format!("127.0.0.1:{dead}"))
        .await
        .unwrap_err()
        .is_transport());
    assert!(Client::connect("no:port:x:y").await.is_err());
}
both!(connect_and_ping_, connect_and_ping);

/// After the server restarts on the same port, the pooled connections are
/// dead; the next calls must succeed on fresh ones, and the dead ones must
/// not count against the node: with a failure limit of 1 and fail-fast, a
/// counted failure would mark it down and fail the calls after it with
/// `NodeDown`.
async fn survives_a_restart(mut srv: Server) {
    let c = srv
        .builder()
        .pool_size(3)
        .failure_limit(1)
        .retry_after(Duration::from_secs(600))
        .failure_policy(corecache_client::FailurePolicy::FailFast)
        .build();
    // Every pooled connection used (calls go round the slots).
    for i in 0..6 {
        c.set(format!("k{i}"), "v", MIN).await.unwrap();
    }
    srv.restart();
    c.set("a", "1", MIN).await.unwrap();
    assert_eq!(c.get("a").await.unwrap(), Some(b"1".to_vec()));
    assert_eq!(c.incr("a", 1).await.unwrap(), 2);
    assert_eq!(
        c.mget(&["a", "k0"]).await.unwrap(),
        vec![Some(b"2".to_vec()), None]
    );
    c.ping().await.unwrap();
    assert_eq!(c.get("k1").await.unwrap(), None, "a fresh server");
}
both!(survives_a_restart_, survives_a_restart);

/// TTLs at and past the edges: each value must be there right after the
/// store, with the TTL the server reports within two minutes below and one
/// second above what was asked (the servers' clocks tick in whole seconds
/// and may trail this test's `now` by one: memcached's timer event updates
/// `current_time` once a second, so an absolute exptime can read one second
/// longer than `cap` computed here — CI hit exactly that), capped at
/// 2038-01-19 (`i32::MAX`, the latest exptime both servers read as the
/// future). Before, `Duration::MAX` panicked and TTLs over ~12 years were
/// stored already expired.
async fn huge_and_edge_ttls(srv: Server) {
    let c = srv.client();
    let day = 86_400u64;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let cap = i32::MAX as u64 - now;
    let cases = [
        ("max", Duration::MAX, cap),
        ("u32max", Duration::from_secs(u32::MAX as u64), cap),
        ("100y", Duration::from_secs(100 * 365 * day), cap),
        ("30d", Duration::from_secs(30 * day), 30 * day),
        ("30d1s", Duration::from_secs(30 * day + 1), 30 * day + 1),
    ];
    for (key, ttl, want) in cases {
        c.set(key, "v", ttl).await.unwrap();
        assert_eq!(c.get(key).await.unwrap(), Some(b"v".to_vec()), "{key}");
        let got = c.ttl(key).await.unwrap().expect(key).as_secs();
        assert!(
            got <= want + 1 && got + 120 >= want,
            "{key}: ttl {got}, want {want}"
        );
        c.expire(key, ttl).await.unwrap();
        assert_eq!(
            c.get(key).await.unwrap(),
            Some(b"v".to_vec()),
            "{key} after expire"
        );
    }
}
both!(huge_and_edge_ttls_, huge_and_edge_ttls);
