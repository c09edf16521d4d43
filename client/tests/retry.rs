//! A connection that dies after the server ran a request but before its
//! reply arrived: only requests safe to run twice are sent again. A real
//! TCP forwarder in front of the real server injects the fault: on every
//! connection it forwards the second request, waits for the server's
//! reply, and closes the client's side without passing it on.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

use common::Server;
use corecache_client::{Client, Error};

const MIN: Duration = Duration::from_secs(60);

/// Starts the forwarder to `backend`; returns its port.
fn dropping_proxy(backend: String) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    thread::spawn(move || {
        for c in l.incoming() {
            let Ok(c) = c else { return };
            let backend = backend.clone();
            thread::spawn(move || {
                let _ = forward(c, &backend);
            });
        }
    });
    port
}

/// One request at a time (the test's calls are sequential, each a single
/// line or line and value sent in one write): reads it, forwards it, reads
/// the server's one-line reply; the second one is swallowed.
fn forward(mut c: TcpStream, backend: &str) -> std::io::Result<()> {
    let mut b = TcpStream::connect(backend)?;
    let mut buf = [0u8; 65536];
    for n in 1.. {
        let k = c.read(&mut buf)?;
        if k == 0 {
            return Ok(());
        }
        b.write_all(&buf[..k])?;
        let mut reply = Vec::new();
        while !reply.ends_with(b"\r\n") {
            let k = b.read(&mut buf)?;
            if k == 0 {
                return Ok(());
            }
            reply.extend_from_slice(&buf[..k]);
        }
        if n == 2 {
            // The server ran it; the client never hears.
            c.shutdown(Shutdown::Both)?;
            return Ok(());
        }
        c.write_all(&reply)?;
    }
    Ok(())
}

/// A client whose one connection goes through the forwarder, after one
/// answered request (so the connection counts as a reused one that died).
async fn faulty(port: u16) -> Client {
    let c = Client::builder()
        .node(corecache_client::Node::new("127.0.0.1", port))
        .pool_size(1)
        .timeout(Duration::from_secs(5))
        .build();
    c.ping().await.unwrap();
    c
}

fn is_connection(e: &Error) -> bool {
    matches!(e, Error::Connection { .. })
}

async fn only_safe_requests_are_sent_twice(srv: Server) {
    let port = dropping_proxy(srv.addr());
    let direct = srv.client();

    // add: ran once (the value is ours), reported as unknown, not as "was
    // there" (a second add would say NS).
    let c = faulty(port).await;
    let r = c.add("add", "ours", MIN).await;
    assert!(matches!(&r, Err(e) if is_connection(e)), "add: {r:?}");
    assert_eq!(direct.get("add").await.unwrap(), Some(b"ours".to_vec()));

    // cas: stored once; a second run would say EX.
    direct.set("cas", "old", MIN).await.unwrap();
    let item = direct.gets("cas").await.unwrap().unwrap();
    let c = faulty(port).await;
    let r = c.cas("cas", "new", MIN, item.cas).await;
    assert!(matches!(&r, Err(e) if is_connection(e)), "cas: {r:?}");
    assert_eq!(direct.get("cas").await.unwrap(), Some(b"new".to_vec()));

    // delete: deleted once; a second run would say NF.
    direct.set("del", "v", MIN).await.unwrap();
    let c = faulty(port).await;
    let r = c.delete("del").await;
    assert!(matches!(&r, Err(e) if is_connection(e)), "delete: {r:?}");
    assert_eq!(direct.get("del").await.unwrap(), None);

    // get_or_load's mg … N made a placeholder; sent again it would find
    // its own (Z) and wait on itself.
    let c = Client::builder()
        .node(corecache_client::Node::new("127.0.0.1", port))
        .pool_size(1)
        .aside(corecache_client::AsideConfig {
            load_on_cache_error: false,
            ..Default::default()
        })
        .build();
    c.ping().await.unwrap();
    let r = c
        .get_or_load("gol", MIN, || async {
            Ok::<_, std::io::Error>(b"loaded".to_vec())
        })
        .await;
    assert!(
        matches!(&r, Err(e) if is_connection(e)),
        "get_or_load: {r:?}"
    );
    let raw = srv.raw(b"mg gol s v\r\n", b"\r\n");
    assert!(raw.starts_with(b"VA 0 s0"), "the placeholder: {raw:?}");

    // set is safe to run twice: sent again on a fresh connection, it
    // succeeds, and the node is not held responsible.
    let c = faulty(port).await;
    c.set("set", "v", MIN).await.unwrap();
    assert_eq!(direct.get("set").await.unwrap(), Some(b"v".to_vec()));
    // So is a plain get.
    let c = faulty(port).await;
    assert_eq!(c.get("set").await.unwrap(), Some(b"v".to_vec()));
}
both!(
    only_safe_requests_are_sent_twice_,
    only_safe_requests_are_sent_twice
);
