//! Every Rust snippet of `README.md`, verbatim, so that they compile
//! (`tests/readme.rs` checks that each README snippet is found here, line
//! for line). `main` is the quick start; the other snippets are in
//! functions that set up what they use. Run against a server on
//! 127.0.0.1:11211: `cargo run -p corecache-client --example readme`.
#![allow(dead_code, unused_variables, clippy::needless_return)]

#[rustfmt::skip]
use std::time::Duration;
#[rustfmt::skip]
use corecache_client::{Client, Node};

#[rustfmt::skip]
#[tokio::main]
async fn main() -> corecache_client::Result<()> {
    let cache = Client::connect("127.0.0.1:11211").await?;
    cache.set("greeting", "hello", Duration::from_secs(60)).await?;
    assert_eq!(cache.get("greeting").await?, Some(b"hello".to_vec()));

    cache.set("visits", "0", Duration::ZERO).await?;       // zero: no expiry
    assert_eq!(cache.incr("visits", 1).await?, 1);
    cache.expire("greeting", Duration::from_secs(5)).await?;
    assert!(cache.ttl("greeting").await?.unwrap() <= Duration::from_secs(5));

    cache.mset(&[("a", "1"), ("b", "2")], Duration::from_secs(60)).await?;
    let vals = cache.mget(&["a", "b", "c"]).await?;          // in order, None = miss
    assert_eq!(vals[2], None);
    Ok(())
}

#[rustfmt::skip]
async fn typed_values(cache: &Client) -> corecache_client::Result<()> {
    #[derive(serde::Serialize, serde::Deserialize)]
    struct User { id: u64, name: String }

    let users = cache.json();                      // or cache.typed(MsgPack)
    users.set("user:1", &User { id: 1, name: "Ada".into() }, Duration::from_secs(300)).await?;
    let u: Option<User> = users.get("user:1").await?;
    Ok(())
}

#[rustfmt::skip]
#[derive(serde::Serialize, serde::Deserialize)]
struct User {
    id: u64,
    name: String,
}

/// A stand-in for the application's database.
#[rustfmt::skip]
struct Db;

#[rustfmt::skip]
impl Db {
    async fn fetch_user(&self, id: u64) -> Result<User, std::io::Error> {
        Ok(User { id, name: "Ada".into() })
    }

    async fn update_user(&self, _u: &User) -> Result<(), std::io::Error> {
        Ok(())
    }
}

#[rustfmt::skip]
async fn cache_aside(cache: &Client, db: &Db) -> corecache_client::Result<()> {
    let user: User = cache.json()
        .get_or_load("user:42", Duration::from_secs(300), || async {
            db.fetch_user(42).await                 // runs once, however many callers miss
        })
        .await?;
    Ok(())
}

#[rustfmt::skip]
async fn in_step(cache: &Client, db: &Db, u: User) -> corecache_client::Result<()> {
    let bytes = br#"{"id":42,"name":"Ada"}"#.to_vec();
    let ttl = Duration::from_secs(300);
    // Source first, then the cache; a failed source write leaves the cache alone.
    cache.write_through("user:42", &bytes, ttl, || async { db.update_user(&u).await }).await?;
    cache.invalidate("user:42").await?;        // md I: next get_or_load reloads, others served meanwhile
    cache.delete("user:42").await?;            // gone at once
    cache.invalidate_prefix("user:42:").await?; // every key under the prefix, on every node
    Ok(())
}

#[rustfmt::skip]
fn many_servers() -> corecache_client::Result<Client> {
    use corecache_client::{Client, Distribution, FailurePolicy, Node};

    let cache = Client::builder()
        .node(Node::new("10.0.0.1", 11211))
        .node("10.0.0.2:11211:2".parse()?)                  // weight 2
        .node(Node::new("10.0.0.3", 11212).worker_ports(8))  // 8 members: ports 11212..11219
        .distribution(Distribution::Ketama)                  // default
        .pool_size(2)                                        // pipelined connections per member
        .timeout(Duration::from_millis(500))
        .failure_limit(2)
        .retry_after(Duration::from_secs(2))
        .failure_policy(FailurePolicy::Failover)
        .build();
    Ok(cache)
}

#[rustfmt::skip]
#[cfg(feature = "tls")]
fn tls() -> corecache_client::Result<Client> {
    use corecache_client::{Client, Node, TlsConfig};

    let tls = TlsConfig::builder()
        .ca_file("/etc/corecache/ca.pem")?           // the CA that signed the servers
        // .client_cert_files("client.pem", "client.key")?  // servers with ssl_verify_mode 1-3
        // .server_name("cache.internal")?              // default: each node's host
        .build()?;
    let client = Client::builder()
        .node(Node::new("cache-1.internal", 11211))
        .tls(tls)
        .build();
    Ok(client)
}

#[rustfmt::skip]
fn auth() -> corecache_client::Result<Client> {
    use corecache_client::{Client, Credentials, Node};

    let client = Client::builder()
        .node(Node::new("10.0.0.1", 11211))
        .node(Node::new("10.0.0.2", 11211).credentials(Credentials::new("ops", "other-secret")?))
        .credentials(Credentials::new("web", "secret")?)   // for nodes without their own
        .build();
    Ok(client)
}

#[rustfmt::skip]
fn blocking() -> corecache_client::Result<()> {
    let cache = corecache_client::BlockingClient::new(Client::builder().node(Node::new("127.0.0.1", 11211)))?; // crate Result
    cache.set("k", "v", Duration::from_secs(60))?;
    let v = cache.get_or_load("k2", Duration::from_secs(60), || Ok::<_, std::io::Error>(b"x".to_vec()))?;
    Ok(())
}
