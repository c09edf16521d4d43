//! A cache-aside product service in front of a real database (SQLite),
//! showing the stampede protection at work.
//!
//! Start a server, then run:
//!
//! ```text
//! cargo run --release -- -p 11311 &
//! cargo run --release -p corecache-client --example cache_aside_sqlite -- 127.0.0.1:11311
//! ```
//!
//! Each database read is counted (and made 200 ms slow, as a loaded
//! database is). The example exits non-zero if a count is not what the
//! protection promises.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use corecache_client::Json;
use corecache_client::{Client, Node, Typed};
use rusqlite::{params, Connection};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Product {
    id: i64,
    name: String,
    price_cents: i64,
}

/// The database: one SQLite connection, and a count of the reads that
/// reached it.
struct Db {
    conn: Mutex<Connection>,
    reads: AtomicUsize,
}

impl Db {
    fn open() -> rusqlite::Result<Db> {
        let conn = Connection::open_in_memory()?;
        conn.execute_batch(
            "CREATE TABLE product (id INTEGER PRIMARY KEY, name TEXT NOT NULL, price_cents INTEGER NOT NULL);",
        )?;
        for id in 1..=1000 {
            conn.execute(
                "INSERT INTO product VALUES (?1, ?2, ?3)",
                params![id, format!("product {id}"), 100 * id],
            )?;
        }
        Ok(Db {
            conn: Mutex::new(conn),
            reads: AtomicUsize::new(0),
        })
    }

    /// SELECT, made as slow as a busy database's.
    async fn load(
        self: &Arc<Db>,
        id: i64,
    ) -> Result<Product, Box<dyn std::error::Error + Send + Sync>> {
        let db = self.clone();
        let p = tokio::task::spawn_blocking(move || {
            db.reads.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(200));
            db.conn.lock().unwrap().query_row(
                "SELECT id, name, price_cents FROM product WHERE id = ?1",
                params![id],
                |r| {
                    Ok(Product {
                        id: r.get(0)?,
                        name: r.get(1)?,
                        price_cents: r.get(2)?,
                    })
                },
            )
        })
        .await??;
        Ok(p)
    }

    fn update_price(&self, id: i64, price_cents: i64) -> rusqlite::Result<usize> {
        self.conn.lock().unwrap().execute(
            "UPDATE product SET price_cents = ?1 WHERE id = ?2",
            params![price_cents, id],
        )
    }

    fn reads(&self) -> usize {
        self.reads.swap(0, Ordering::SeqCst)
    }
}

/// The service's read path: cache-aside with stampede protection.
async fn product(cache: &Typed<Json>, db: &Arc<Db>, id: i64) -> corecache_client::Result<Product> {
    cache
        .get_or_load(format!("product:{id}"), Duration::from_secs(300), || {
            db.load(id)
        })
        .await
}

/// The read path most clients allow: get, and on a miss load and set.
async fn naive_product(cache: &Typed<Json>, db: &Arc<Db>, id: i64) -> Product {
    let key = format!("naive:product:{id}");
    if let Some(p) = cache.get(&key).await.unwrap() {
        return p;
    }
    let p = db.load(id).await.unwrap();
    cache.set(&key, &p, Duration::from_secs(300)).await.unwrap();
    p
}

/// Runs `n` concurrent requests and returns how long they all took.
async fn burst<F, Fut>(n: usize, f: F) -> Duration
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let t = Instant::now();
    let tasks: Vec<_> = (0..n).map(|_| tokio::spawn(f())).collect();
    for task in tasks {
        task.await.unwrap();
    }
    t.elapsed()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:11211".into());
    run(&addr).await
}

/// The whole demonstration against the server at `addr`; errors if a
/// count is not what the protection promises.
pub async fn run(addr: &str) -> Result<(), Box<dyn std::error::Error>> {
    let node: Node = addr.parse()?;
    let cache = Client::builder().node(node).build().json();
    cache.client().ping().await?;
    let db = Arc::new(Db::open()?);
    let run = std::process::id();
    let id = i64::from(run % 1000) + 1;
    for k in [format!("product:{id}"), format!("naive:product:{id}")] {
        cache.client().delete(k).await?;
    }

    println!("500 concurrent requests for product {id}, cache cold:");
    let t = {
        let (cache, db) = (cache.clone(), db.clone());
        burst(500, move || {
            let (cache, db) = (cache.clone(), db.clone());
            async move {
                let p = product(&cache, &db, id).await.unwrap();
                assert_eq!(p.id, id);
            }
        })
        .await
    };
    let protected = db.reads();
    println!("  get_or_load: {protected} database read(s), {t:?}");

    let t = {
        let (cache, db) = (cache.clone(), db.clone());
        burst(500, move || {
            let (cache, db) = (cache.clone(), db.clone());
            async move {
                naive_product(&cache, &db, id).await;
            }
        })
        .await
    };
    let naive = db.reads();
    println!("  get, then load and set: {naive} database read(s), {t:?}");

    println!("price change, written through:");
    let new_price = 4242;
    cache
        .client()
        .write_through(
            format!("product:{id}"),
            serde_json::to_vec(&Product {
                price_cents: new_price,
                ..product(&cache, &db, id).await?
            })?,
            Duration::from_secs(300),
            || {
                let db = db.clone();
                async move { db.update_price(id, new_price).map(|_| ()) }
            },
        )
        .await?;
    let p = product(&cache, &db, id).await?;
    let after_write = db.reads();
    println!(
        "  read back {} cents, {after_write} database read(s)",
        p.price_cents
    );

    println!("invalidated, then 200 concurrent requests:");
    cache.client().invalidate(format!("product:{id}")).await?;
    {
        let (cache, db) = (cache.clone(), db.clone());
        burst(200, move || {
            let (cache, db) = (cache.clone(), db.clone());
            async move {
                let p = product(&cache, &db, id).await.unwrap();
                assert_eq!(p.price_cents, new_price);
            }
        })
        .await;
    }
    let revalidated = db.reads();
    println!(
        "  {revalidated} database read(s); the other callers were served the stale copy at once"
    );

    let want = (1, true, 0, 1);
    let got = (protected, naive > 1, after_write, revalidated);
    if got != want {
        return Err(format!(
            "reads (cold, naive stampedes, after write, revalidate): {got:?}, want {want:?}"
        )
        .into());
    }
    println!("ok");
    Ok(())
}
