//! Parse and execute arbitrary requests against one small shard, so the
//! executors and the store see hostile input too: no panic, and the store's
//! accounting stays within its memory. The engine's prefetch pass runs over
//! the same bytes first, as it does before a batch.
#![no_main]
use corecache::engine::prefetch::{Prefetcher, PREFETCH_MAX};
use corecache::engine::route::route_hasher;
use corecache::exec::{binary as exec_binary, text as exec_text, Shard};
use corecache::protocol::Proto;
use corecache::protocol::{binary, text, Parse};
use corecache::store::{Clock, Eviction, Store, StoreConfig};
use libfuzzer_sys::fuzz_target;
use std::cell::RefCell;

thread_local! {
    static SHARD: RefCell<Shard> = RefCell::new(Shard::new(
        Store::new(
            StoreConfig {
                memory: 1 << 20,
                segment_size: 64 << 10,
                item_size_max: 64 << 10,
                eviction: Eviction::Merge,
                huge_pages: false,
                ..StoreConfig::default()
            },
            Clock::manual(1_700_000_000),
        )
        .unwrap(),
    ));
}

fuzz_target!(|data: &[u8]| {
    SHARD.with(|sh| {
        let mut sh = sh.borrow_mut();
        if let Some(&first) = data.first() {
            let route = route_hasher();
            let p = Prefetcher { store: &sh.store, route: &route, shards: 2, me: 0, item_max: 64 << 10, views: None };
            let mut hashes = Vec::new();
            p.buckets(Proto::detect(first), data, &mut hashes);
            assert!(hashes.len() <= PREFETCH_MAX);
            p.items(&hashes);
        }
        let mut out = Vec::new();
        let mut buf = data;
        let is_binary = data.first() == Some(&binary::REQ_MAGIC);
        while !buf.is_empty() {
            let used = if is_binary {
                match binary::parse(buf, 64 << 10) {
                    Parse::Done(Ok(r), used) | Parse::Skip(Ok(r), used, _) => {
                        exec_binary::exec(&mut sh, &r, &mut out);
                        used
                    }
                    Parse::Done(Err(_), used) => used,
                    _ => break,
                }
            } else {
                match text::parse(buf, 64 << 10) {
                    Parse::Done(r, used) | Parse::Skip(r, used, _) => {
                        exec_text::exec(&mut sh, &r, &mut out);
                        used
                    }
                    _ => break,
                }
            };
            buf = &buf[used..];
            sh.store.clock_mut().advance(1);
            out.clear();
        }
        assert!(sh.store.bytes() <= sh.store.memory_bytes());
    });
});
