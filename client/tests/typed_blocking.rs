//! The serde layer and the blocking wrapper, against both servers.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{Kind, Server};
use corecache_client::{BlockingClient, Error};
use serde::{Deserialize, Serialize};

const MIN: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
    tags: Vec<String>,
}

fn ada() -> User {
    User {
        id: 1,
        name: "Ada".into(),
        tags: vec!["admin".into()],
    }
}

async fn typed_json(srv: Server) {
    let c = srv.client();
    let j = c.json();
    j.set("u:1", &ada(), MIN).await.unwrap();
    assert_eq!(j.get::<User>("u:1").await.unwrap(), Some(ada()));
    // JSON on the wire, readable by any other client.
    let raw = c.get("u:1").await.unwrap().unwrap();
    assert_eq!(raw, br#"{"id":1,"name":"Ada","tags":["admin"]}"#);
    assert_eq!(j.get::<User>("u:2").await.unwrap(), None);
    c.set("u:bad", "not json", MIN).await.unwrap();
    assert!(matches!(j.get::<User>("u:bad").await, Err(Error::Codec(_))));

    let pairs: Vec<(String, User)> = (0..20)
        .map(|i| (format!("u:{i}"), User { id: i, ..ada() }))
        .collect();
    j.mset(&pairs, MIN).await.unwrap();
    let got: Vec<Option<User>> = j.mget(&["u:3", "u:99", "u:19"]).await.unwrap();
    assert_eq!(got[0].as_ref().unwrap().id, 3);
    assert!(got[1].is_none());
    assert_eq!(got[2].as_ref().unwrap().id, 19);

    let loads = AtomicUsize::new(0);
    for _ in 0..3 {
        let u: User = j
            .get_or_load("u:100", MIN, || async {
                loads.fetch_add(1, Ordering::SeqCst);
                Ok::<_, std::io::Error>(User { id: 100, ..ada() })
            })
            .await
            .unwrap();
        assert_eq!(u.id, 100);
    }
    assert_eq!(loads.load(Ordering::SeqCst), 1);

    // A cached value of another shape is reloaded and overwritten.
    let u: User = j
        .get_or_load("u:bad", MIN, || async {
            loads.fetch_add(1, Ordering::SeqCst);
            Ok::<_, std::io::Error>(User { id: 7, ..ada() })
        })
        .await
        .unwrap();
    assert_eq!((u.id, loads.load(Ordering::SeqCst)), (7, 2));
    assert_eq!(j.get::<User>("u:bad").await.unwrap().unwrap().id, 7);

    // A loader error is a source error and caches nothing.
    let r: Result<User, _> = j
        .get_or_load("u:err", MIN, || async {
            Err(std::io::Error::other("db down"))
        })
        .await;
    assert!(matches!(r, Err(Error::Source(_))), "{r:?}");
    assert_eq!(c.get("u:err").await.unwrap(), None);
}
both!(typed_json_, typed_json);

fn blocking(kind: Kind) {
    let srv = Server::start(kind);
    let c = BlockingClient::new(srv.builder()).unwrap();
    c.set("b", "1", MIN).unwrap();
    assert_eq!(c.get("b").unwrap(), Some(b"1".to_vec()));
    assert_eq!(c.incr("b", 41).unwrap(), 42);
    assert_eq!(c.decr("b", 2).unwrap(), 40);
    assert!(c.add("b2", "x", MIN).unwrap());
    c.mset(&[("m1", "a"), ("m2", "b")], MIN).unwrap();
    assert_eq!(
        c.mget(&["m1", "m2", "m3"]).unwrap(),
        vec![Some(b"a".to_vec()), Some(b"b".to_vec()), None]
    );
    c.expire("m1", Duration::from_secs(30)).unwrap();
    assert!(c.ttl("m1").unwrap().unwrap() <= Duration::from_secs(30));
    assert!(c.invalidate("m1").unwrap());
    let loads = Arc::new(AtomicUsize::new(0));
    for _ in 0..2 {
        let l = loads.clone();
        let v = c
            .get_or_load("bl", MIN, move || {
                l.fetch_add(1, Ordering::SeqCst);
                Ok::<_, std::io::Error>(b"loaded".to_vec())
            })
            .unwrap();
        assert_eq!(v, b"loaded");
    }
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    c.write_through("wt", "v", MIN, || Ok::<_, std::io::Error>(()))
        .unwrap();
    assert_eq!(c.gets("wt").unwrap().unwrap().value, b"v");
    assert!(c.delete("wt").unwrap());
    // Threads share one blocking client.
    std::thread::scope(|s| {
        for t in 0..4 {
            let c = &c;
            s.spawn(move || {
                for i in 0..100 {
                    let k = format!("th{t}:{i}");
                    c.set(&k, &k, MIN).unwrap();
                    assert_eq!(c.get(&k).unwrap(), Some(k.into_bytes()));
                }
            });
        }
    });
}

#[test]
fn blocking_corecache() {
    blocking(Kind::Corecache);
}

#[test]
fn blocking_memcached() {
    blocking(Kind::Memcached);
}

#[cfg(feature = "msgpack")]
async fn typed_msgpack(srv: Server) {
    let c = srv.client();
    let m = c.typed(corecache_client::MsgPack);
    m.set("u:1", &ada(), MIN).await.unwrap();
    assert_eq!(m.get::<User>("u:1").await.unwrap(), Some(ada()));
    let raw = c.get("u:1").await.unwrap().unwrap();
    // A MessagePack map of three named fields (fixmap 0x83), not JSON.
    assert_eq!(raw[0], 0x83);
    // JSON bytes are not MessagePack of a User.
    c.json().set("u:j", &ada(), MIN).await.unwrap();
    assert!(matches!(m.get::<User>("u:j").await, Err(Error::Codec(_))));
}
#[cfg(feature = "msgpack")]
both!(typed_msgpack_, typed_msgpack);

/// The README's error plumbing: a node string parsed with `?`, and
/// `BlockingClient::new` with `?`, in a function returning this crate's
/// `Result` (a compile-time check), and a bad node string as
/// `Error::Config`.
fn build_with_question_marks(addr: &str) -> corecache_client::Result<BlockingClient> {
    let node: corecache_client::Node = addr.parse()?;
    let c = BlockingClient::new(corecache_client::Client::builder().node(node))?;
    Ok(c)
}

#[test]
fn parse_and_blocking_new_work_with_question_mark() {
    let srv = Server::start(Kind::Corecache);
    let c = build_with_question_marks(&srv.addr()).unwrap();
    c.set("q", "1", Duration::from_secs(60)).unwrap();
    assert_eq!(c.get("q").unwrap(), Some(b"1".to_vec()));
    let bad = build_with_question_marks("host:notaport");
    assert!(
        matches!(bad, Err(corecache_client::Error::Config(_))),
        "{bad:?}"
    );
}
