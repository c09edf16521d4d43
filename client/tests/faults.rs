//! Peers that misbehave: a server that stops reading, one that sends a
//! reply this client cannot parse. The client must fail the calls, never
//! panic, hang or hold what a dead connection held.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::Duration;

use corecache_client::{Client, Node};

/// A server in its own process (so this process's descriptors are the
/// client's alone) that accepts connections, keeps them, and reads
/// nothing. Returns it and its port.
fn deaf_server() -> (Child, u16) {
    let script = [
        "import socket",
        "s = socket.socket()",
        "s.bind(('127.0.0.1', 0))",
        "s.listen(1000)",
        "print(s.getsockname()[1], flush=True)",
        "held = []",
        "while True:",
        "    c, _ = s.accept()",
        "    held.append(c)",
    ]
    .join("\n");
    let mut child = Command::new("python3")
        .args(["-c", &script])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (child, line.trim().parse().unwrap())
}

fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// A request that times out kills its connection; when the peer reads
/// nothing, the connection's writer sat in its write for ever, holding
/// the socket, its buffer and every queued request (a breaker measured
/// one descriptor and some 14 MB more a round, without bound).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_killed_while_writing_are_let_go() {
    let (mut srv, port) = deaf_server();
    let client = Client::builder()
        .node(Node::new("127.0.0.1", port))
        .pool_size(1)
        .timeout(Duration::from_millis(200))
        .failure_limit(1000)
        .build();
    let value = vec![b'v'; 1 << 20];
    let round = |client: Client, value: Vec<u8>| async move {
        let mut tasks = Vec::new();
        for i in 0..16 {
            let (c, v) = (client.clone(), value.clone());
            tasks.push(tokio::spawn(async move {
                c.set(format!("k{i}"), &v, Duration::from_secs(60)).await
            }));
        }
        for t in tasks {
            assert!(
                t.await.unwrap().is_err(),
                "a peer that reads nothing stored it"
            );
        }
    };
    // A first round opens what stays open (the runtime's own descriptors).
    round(client.clone(), value.clone()).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = open_descriptors();
    for _ in 0..20 {
        round(client.clone(), value.clone()).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let after = open_descriptors();
    let _ = srv.kill();
    let _ = srv.wait();
    assert!(
        after <= before + 2,
        "descriptors {before} -> {after} after 20 rounds of killed connections"
    );
}

/// A reply flag token that starts inside a multi-byte character panicked
/// the reader, and the connection, never marked broken, was handed out
/// again and again. Now the call fails, and the next one gets a fresh
/// connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_garbled_reply_fails_the_call_and_the_next_gets_a_fresh_connection() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    thread::spawn(move || {
        for (n, c) in l.incoming().enumerate() {
            let Ok(mut c) = c else { return };
            thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let mut first = true;
                while let Ok(k) = c.read(&mut buf) {
                    if k == 0 {
                        return;
                    }
                    // Every request here is one `mn`; the first
                    // connection's first answer is garbage.
                    let reply: &[u8] = if n == 0 && first {
                        "MN \u{e9}\r\n".as_bytes()
                    } else {
                        b"MN\r\n"
                    };
                    first = false;
                    if c.write_all(reply).is_err() {
                        return;
                    }
                }
            });
        }
    });
    let client = Client::builder()
        .node(Node::new("127.0.0.1", port))
        .pool_size(1)
        .timeout(Duration::from_secs(5))
        .failure_limit(1000)
        .build();
    assert!(client.ping().await.is_err(), "garbage is not a reply");
    for _ in 0..3 {
        client.ping().await.expect("a fresh connection answers");
    }
}

/// A fake node answering `EN` to everything and `MN` to `mn`; with
/// `stall_first`, its first connection never answers and its second
/// answers each request 150 ms late.
async fn fake_node(stall_first: bool) -> u16 {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let n = Arc::new(AtomicUsize::new(0));
    tokio::spawn(async move {
        loop {
            let (s, _) = l.accept().await.unwrap();
            let idx = n.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let (r, mut w) = s.into_split();
                let mut r = tokio::io::BufReader::new(r);
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    if stall_first && idx == 0 {
                        continue;
                    }
                    if stall_first && idx == 1 {
                        tokio::time::sleep(Duration::from_millis(150)).await;
                    }
                    let reply: &[u8] = if line.starts_with("mn") {
                        b"MN\r\n"
                    } else {
                        b"EN\r\n"
                    };
                    if w.write_all(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

/// A node marked down while another of its connections still had a
/// request in flight: that request's late success cleared the down mark
/// without putting the node back in the ring, so nothing ever revived it
/// and this client placed its keys elsewhere for good (a breaker's find).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_success_does_not_keep_a_node_out_of_the_ring() {
    let (pa, pb) = (fake_node(false).await, fake_node(true).await);
    let client = Client::builder()
        .node(Node::new("127.0.0.1", pa))
        .node(Node::new("127.0.0.1", pb))
        .pool_size(2)
        .timeout(Duration::from_millis(200))
        .failure_limit(1)
        .retry_after(Duration::from_millis(500))
        .build();
    let b = format!("127.0.0.1:{pb}");
    let key = (0..)
        .map(|i| format!("k{i}"))
        .find(|k| client.node_for_key(k).as_deref() == Some(b.as_str()))
        .unwrap();
    // Slot 0 stalls: timeout, B marked down. Slot 1 answers after that.
    let (c0, k0) = (client.clone(), key.clone());
    let first = tokio::spawn(async move { c0.get(&k0).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (c1, k1) = (client.clone(), key.clone());
    let second = tokio::spawn(async move { c1.get(&k1).await });
    assert!(
        first.await.unwrap().is_err(),
        "the stalled request timed out"
    );
    let _ = second.await.unwrap();
    // Past the retry time, B is back: revived on trial by the next call.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let _ = client.get("any").await;
        if client.node_for_key(&key).as_deref() == Some(b.as_str()) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{b} answers but stays out of the ring"
        );
    }
}

/// This process's peak virtual memory (`VmPeak`), in bytes.
fn vm_peak() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmPeak:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<usize>()
        .unwrap()
        * 1024
}

/// A reply line promising a value far larger than what follows (a faulty
/// server or proxy) made the client allocate the whole promise, 1 GiB,
/// before reading a byte of it: where memory is not overcommitted that
/// aborts the process. Now the call fails having allocated about what
/// came.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_promised_but_not_sent_costs_what_came() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { return };
            thread::spawn(move || {
                let mut buf = [0u8; 4096];
                if matches!(c.read(&mut buf), Ok(k) if k > 0) {
                    let _ = c.write_all(b"VA 1000000000\r\n");
                    let _ = c.write_all(&[b'x'; 100_000]);
                }
                // Closing ends the value early.
            });
        }
    });
    let client = Client::builder()
        .node(Node::new("127.0.0.1", port))
        .pool_size(1)
        .timeout(Duration::from_secs(5))
        .build();
    let before = vm_peak();
    assert!(client.get("k").await.is_err(), "a cut value is an error");
    let grew = vm_peak() - before;
    assert!(grew < 256 << 20, "peak virtual memory grew by {grew} bytes");
}
