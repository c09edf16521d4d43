//! Round trips of `get` and pipelined `mget` against real servers:
//! corecache (this workspace's release binary, `-t 1`) and Debian's
//! memcached (`-t 1`), both on loopback.
//!
//! `cargo bench -p corecache-client` (build the server first with
//! `cargo build --release`).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Duration;

use common::{Kind, Server};
use corecache_client::Client;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let servers = [
        Server::start(Kind::Corecache),
        Server::start(Kind::Memcached),
    ];
    let value = vec![b'v'; 100];
    let keys: Vec<String> = (0..100).map(|i| format!("bench:{i}")).collect();

    let mut g = c.benchmark_group("client");
    g.measurement_time(Duration::from_secs(5));
    for srv in &servers {
        let name = format!("{:?}", srv.kind).to_lowercase();
        let client: Client = rt.block_on(async {
            let client = srv.builder().pool_size(1).build();
            let pairs: Vec<(&String, &Vec<u8>)> = keys.iter().map(|k| (k, &value)).collect();
            client.mset(&pairs, Duration::ZERO).await.unwrap();
            client
        });

        g.throughput(Throughput::Elements(1));
        g.bench_function(BenchmarkId::new("get", &name), |b| {
            b.to_async(&rt).iter(|| async {
                let v = client.get("bench:7").await.unwrap();
                assert_eq!(v.map(|v| v.len()), Some(100));
            })
        });

        g.throughput(Throughput::Elements(100));
        g.bench_function(BenchmarkId::new("mget_100", &name), |b| {
            b.to_async(&rt).iter(|| async {
                let v = client.mget(&keys).await.unwrap();
                assert!(v.iter().all(Option::is_some));
            })
        });
        g.bench_function(BenchmarkId::new("get_100_sequential", &name), |b| {
            b.to_async(&rt).iter(|| async {
                for k in &keys {
                    assert!(client.get(k).await.unwrap().is_some());
                }
            })
        });
        g.bench_function(BenchmarkId::new("get_100_concurrent", &name), |b| {
            b.to_async(&rt).iter(|| async {
                let calls = keys.iter().map(|k| client.get(k));
                let got = futures_util::future::join_all(calls).await;
                assert!(got.iter().all(|r| matches!(r, Ok(Some(_)))));
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
