//! Parser micro-benchmarks: a get, a 100-byte set, a 10-key multiget and a
//! binary get. Run: cargo bench --bench protocol

use corecache::protocol::{binary, text};
use criterion::{black_box, criterion_group, criterion_main, Criterion};

fn bench(c: &mut Criterion) {
    let get = b"get key:00000000042\r\n".to_vec();
    let mut set = b"set key:00000000042 0 0 100\r\n".to_vec();
    set.extend_from_slice(&[b'v'; 100]);
    set.extend_from_slice(b"\r\n");
    let mut mget = b"get".to_vec();
    for i in 0..10 {
        mget.extend_from_slice(format!(" key:{i:011}").as_bytes());
    }
    mget.extend_from_slice(b"\r\n");
    let mut bget = vec![0x80, 0x00, 0, 15, 0, 0, 0, 0, 0, 0, 0, 15];
    bget.extend_from_slice(&[0; 12]);
    bget.extend_from_slice(b"key:00000000042");
    c.bench_function("text_get", |b| {
        b.iter(|| {
            black_box(matches!(
                text::parse(black_box(&get), 1 << 20),
                corecache::protocol::Parse::Done(..)
            ))
        })
    });
    c.bench_function("text_set_100b", |b| {
        b.iter(|| {
            black_box(matches!(
                text::parse(black_box(&set), 1 << 20),
                corecache::protocol::Parse::Done(..)
            ))
        })
    });
    c.bench_function("text_multiget_10", |b| {
        b.iter(|| match text::parse(black_box(&mget), 1 << 20) {
            corecache::protocol::Parse::Done(text::Request::Get { keys, .. }, _) => {
                black_box(text::tokens(keys).count())
            }
            _ => 0,
        })
    });
    c.bench_function("binary_get", |b| {
        b.iter(|| {
            black_box(matches!(
                binary::parse(black_box(&bget), 1 << 20),
                corecache::protocol::Parse::Done(Ok(_), _)
            ))
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
