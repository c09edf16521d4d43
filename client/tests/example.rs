//! The SQLite cache-aside example, run against both servers: its own
//! checks (one database read per cold key and per revalidation, a stampede
//! on the naive path, none after a write-through) must hold.

mod common;

#[allow(dead_code)]
#[path = "../examples/cache_aside_sqlite.rs"]
mod example;

use common::{Kind, Server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_aside_sqlite_example() {
    for kind in [Kind::Corecache, Kind::Memcached] {
        let srv = Server::start(kind);
        if let Err(e) = example::run(&srv.addr()).await {
            panic!("{kind:?}: {e}");
        }
    }
}
