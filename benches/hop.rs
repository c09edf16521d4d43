//! The cross-shard hop: one request to another worker and its reply back,
//! over the SPSC queue pair, with the other worker polling (the wake-up of
//! a sleeping worker is an io_uring MSG_RING and is not included).
//! Run: cargo bench --bench hop

use corecache::engine::hop::{Job, Mesh, Msg};
use criterion::{criterion_group, criterion_main, Criterion};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

fn bench(c: &mut Criterion) {
    let mesh = Arc::new(Mesh::new(2, 1024));
    let stop = Arc::new(AtomicBool::new(false));
    let (m2, s2) = (mesh.clone(), stop.clone());
    let owner = std::thread::spawn(move || {
        while !s2.load(Ordering::Relaxed) {
            if let Some(Msg::Job { conn, seq, job, .. }) = m2.queue(0, 1).pop() {
                let bytes = match job {
                    Job::GetKeys { keys, .. } => keys,
                    Job::Raw { bytes, .. } => bytes,
                    Job::ResetStats
                    | Job::Conns
                    | Job::Flush { .. }
                    | Job::FlushPrefix { .. }
                    | Job::MemLimit { .. }
                    | Job::Dump { .. } => Vec::new(),
                };
                let refs = Default::default();
                let mut r = Msg::Reply {
                    conn,
                    seq,
                    bytes,
                    refs,
                };
                while let Err(back) = m2.queue(1, 0).push(r) {
                    r = back;
                }
            }
        }
    });
    let mut seq = 0;
    c.bench_function("hop_round_trip", |b| {
        b.iter(|| {
            seq += 1;
            let job = Job::GetKeys {
                keys: b"key:00000000042".to_vec(),
                seqs: vec![seq],
                cas: false,
                touch: None,
            };
            let mut m = Msg::Job {
                from: 0,
                conn: 7,
                seq,
                cfd: -1,
                job,
            };
            while let Err(back) = mesh.queue(0, 1).push(m) {
                m = back;
            }
            loop {
                if let Some(Msg::Reply { seq: s, .. }) = mesh.queue(1, 0).pop() {
                    assert_eq!(s, seq);
                    break;
                }
                std::hint::spin_loop();
            }
        })
    });
    stop.store(true, Ordering::Relaxed);
    owner.join().unwrap();
}

criterion_group!(benches, bench);
criterion_main!(benches);
