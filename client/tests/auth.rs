//! memcached's ASCII authentication (`-Y <authfile>`) through the client,
//! against the real corecache binary and against Debian's memcached (the
//! oracle for ASCII auth): right, wrong and missing credentials, per
//! client and per node, and servers that ask for none.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{stat, Kind, Probe, Server};
use corecache_client::{Client, Credentials, Error, FailurePolicy, Node};

const MIN: Duration = Duration::from_secs(60);
const USER: &str = "alice";
const PASSWORD: &str = "s3cret-pw";

/// A server of `kind` with `-Y` over a password file holding alice and bob.
fn auth_server(kind: Kind) -> Server {
    let file = common::temp_file(
        "users",
        format!("{USER}:{PASSWORD}\nbob:hunter2\n").as_bytes(),
    );
    Server::start_probed(
        kind,
        &["-Y", file.to_str().unwrap()],
        Probe {
            login: common::login(USER, PASSWORD),
            tls: false,
        },
    )
}

fn alice() -> Credentials {
    Credentials::new(USER, PASSWORD).unwrap()
}

async fn right_credentials(kind: Kind) {
    let srv = auth_server(kind);
    let c = srv.builder().credentials(alice()).pool_size(3).build();
    c.ping().await.unwrap();
    c.set("k", "v", MIN).await.unwrap();
    assert_eq!(c.get("k").await.unwrap(), Some(b"v".to_vec()));
    c.mset(&[("a", "1"), ("b", "2")], MIN).await.unwrap();
    assert_eq!(
        c.mget(&["a", "missing", "b"]).await.unwrap(),
        [Some(b"1".to_vec()), None, Some(b"2".to_vec())]
    );
    assert_eq!(c.incr("a", 41).await.unwrap(), 42);
    assert!(c.delete("k").await.unwrap());
    assert_eq!(c.get("k").await.unwrap(), None);

    // get_or_load: one load for many callers, then served from the cache.
    let loads = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (c, loads) = (c.clone(), loads.clone());
        tasks.push(tokio::spawn(async move {
            c.get_or_load("loaded", MIN, || async move {
                loads.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
                Ok::<_, std::io::Error>(b"from source".to_vec())
            })
            .await
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), b"from source");
    }
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    assert_eq!(
        c.get("loaded").await.unwrap(),
        Some(b"from source".to_vec())
    );

    // Every pooled connection logged in: the server counts one auth
    // command per connection (plus the harness's own probes).
    let stats = String::from_utf8(srv.raw(b"stats\r\n", b"END\r\n")).unwrap();
    let auth_cmds: u64 = stat(&stats, "auth_cmds");
    assert!(auth_cmds >= 3, "auth_cmds {auth_cmds}");
    assert_eq!(stat(&stats, "auth_errors"), 0);
    // The login set stored nothing.
    assert_eq!(c.get("auth").await.unwrap(), None);
}

async fn wrong_credentials(kind: Kind) {
    let srv = auth_server(kind);
    for (user, password) in [(USER, "wrong"), ("mallory", PASSWORD), ("bob", PASSWORD)] {
        // FailFast with a limit of 1: a transport failure would mark the
        // node down and turn the next call into NodeDown.
        let c = srv
            .builder()
            .credentials(Credentials::new(user, password).unwrap())
            .failure_policy(FailurePolicy::FailFast)
            .failure_limit(1)
            .build();
        for _ in 0..3 {
            match c.get("k").await {
                Err(e @ Error::Auth { .. }) => {
                    assert!(!e.is_transport());
                    let Error::Auth { node, message } = &e else {
                        unreachable!()
                    };
                    assert_eq!(node, &srv.addr());
                    assert_eq!(message, "authentication failure");
                }
                other => panic!("{user}/{password}: {other:?}"),
            }
        }
        assert!(matches!(
            c.set("k", "v", MIN).await,
            Err(Error::Auth { .. })
        ));
        assert!(matches!(c.mget(&["a", "b"]).await, Err(Error::Auth { .. })));
    }
    // Nothing was stored by the refused clients.
    let right = srv.builder().credentials(alice()).build();
    assert_eq!(right.get("k").await.unwrap(), None);
}

async fn no_credentials(kind: Kind) {
    let srv = auth_server(kind);
    let c = srv.client();
    // memcached's reply to a connection that has not logged in
    // (`CLIENT_ERROR unauthenticated`), typed.
    match c.get("k").await {
        Err(Error::Auth { node, message }) => {
            assert_eq!(node, srv.addr());
            assert_eq!(message, "unauthenticated");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        c.set("k", "v", MIN).await,
        Err(Error::Auth { .. })
    ));
    assert!(matches!(c.delete("k").await, Err(Error::Auth { .. })));
    assert!(matches!(c.ping().await, Err(Error::Auth { .. })));
    let right = srv.builder().credentials(alice()).build();
    assert_eq!(right.get("k").await.unwrap(), None);
}

/// A pipelined batch on a connection that has not logged in: corecache
/// answers every command, `mn` too, with `CLIENT_ERROR unauthenticated`,
/// and the batch fails at once. (memcached answers only the first command
/// of what arrives in one read, so there the batch ends at the timeout.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_without_credentials_fails_at_once_on_corecache() {
    let srv = auth_server(Kind::Corecache);
    let c = srv.client();
    let keys: Vec<String> = (0..50).map(|i| format!("k{i}")).collect();
    let r = tokio::time::timeout(Duration::from_secs(5), c.mget(&keys))
        .await
        .expect("mget answered before the timeout");
    assert!(matches!(r, Err(Error::Auth { .. })), "{r:?}");
    let r = tokio::time::timeout(Duration::from_secs(5), c.mset(&[("a", "1")], MIN))
        .await
        .expect("mset answered before the timeout");
    assert!(matches!(r, Err(Error::Auth { .. })), "{r:?}");
}

async fn node_credentials_win(kind: Kind) {
    let srv = auth_server(kind);
    let c = Client::builder()
        .node(srv.node().credentials(alice()))
        .credentials(Credentials::new(USER, "wrong").unwrap())
        .timeout(common::PATIENT)
        .build();
    c.set("k", "v", MIN).await.unwrap();
    assert_eq!(c.get("k").await.unwrap(), Some(b"v".to_vec()));
    let c = Client::builder()
        .node(
            srv.node()
                .credentials(Credentials::new(USER, "wrong").unwrap()),
        )
        .credentials(alice())
        .timeout(common::PATIENT)
        .build();
    assert!(matches!(c.get("k").await, Err(Error::Auth { .. })));
}

/// Against a server without `-Y` the client sends no login: the `set` it
/// would send stores the password as a value there.
async fn server_without_auth(srv: Server) {
    let c = srv.builder().credentials(alice()).build();
    c.set("k", "v", MIN).await.unwrap();
    assert_eq!(c.get("k").await.unwrap(), Some(b"v".to_vec()));
    assert_eq!(c.get("auth").await.unwrap(), None);
    let stats = String::from_utf8(srv.raw(b"stats\r\n", b"END\r\n")).unwrap();
    assert_eq!(stat(&stats, "cmd_set"), 1, "{stats}");
}
both!(server_without_auth_, server_without_auth);

/// No Debug output shows a password (or the user).
#[test]
fn debug_does_not_leak() {
    let node = Node::new("127.0.0.1", 1).credentials(alice());
    let builder = Client::builder().node(node.clone()).credentials(alice());
    let client = builder.clone().build();
    for text in [
        format!("{:?}", alice()),
        format!("{node:?}"),
        format!("{builder:?}"),
        format!("{client:?}"),
    ] {
        assert!(!text.contains(PASSWORD), "{text}");
        assert!(!text.contains(USER), "{text}");
    }
}

macro_rules! kinds {
    ($name:ident, $body:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn corecache() {
                super::$body(super::common::Kind::Corecache).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memcached() {
                super::$body(super::common::Kind::Memcached).await
            }
        }
    };
}
kinds!(right_credentials_, right_credentials);
kinds!(wrong_credentials_, wrong_credentials);
kinds!(no_credentials_, no_credentials);
kinds!(node_credentials_win_, node_credentials_win);
