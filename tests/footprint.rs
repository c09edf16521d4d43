//! Footprint report: bytes of metadata per item and items kept at -m 256
//! with 15-byte keys and 100-byte values (memcached 1.6 keeps ~1.40 M),
//! with the hash index inside the budget.

use corecache::store::*;

#[test]
fn footprint_at_256_mib() {
    let cfg = StoreConfig {
        memory: 256 << 20,
        segment_size: 1 << 20,
        item_size_max: 1 << 20,
        eviction: Eviction::Merge,
        huge_pages: false,
        ..StoreConfig::default()
    };
    let mut s = Store::new(cfg, Clock::manual(1_700_000_000)).unwrap();
    let value = [b'v'; 100];
    for i in 0..4_000_000u32 {
        let key = format!("key:{i:011}");
        assert_eq!(key.len(), 15);
        let r = s.set(&SetArgs::new(SetMode::Set, key.as_bytes(), &value, 0, 0));
        assert!(matches!(r, SetOutcome::Stored { .. }));
    }
    let items = s.curr_items();
    let record = item::record_size(15, 100, &item::ItemMeta::default());
    let header = item::header_len(15, 100);
    let header_and_slot = header + 8;
    assert_eq!(record, 115 + header, "no padding");
    assert_eq!(header, 6, "a tiny value's header");
    let index_per_item = s.index_bytes() as f64 / items as f64;
    let used = s.segment_bytes_in_use() + s.index_bytes();
    println!(
        "items kept at -m 256: {items} ({:.2}x memcached's 1.40 M); metadata per item: {header_and_slot} bytes \
         (header {header} + slot 8); index memory per item incl. empty slots: {index_per_item:.1} bytes; \
         segments + index: {:.1} MiB",
        items as f64 / 1.40e6,
        used as f64 / (1 << 20) as f64,
    );
    assert!(header_and_slot <= 15);
    assert!(used <= 256 << 20, "the index is paid for with segments");
    assert!(items >= 2_015_000, "{items}");
    // Every kept item reads back exactly.
    for i in (0..4_000_000u32).step_by(997) {
        let key = format!("key:{i:011}");
        if let Some(f) = s.get(key.as_bytes()) {
            assert_eq!(f.item.value(), &value);
            assert_eq!(f.item.key(), key.as_bytes());
        }
    }
}

mod common;

/// An idle server's resident memory is its code and buffers, not its
/// `-m`: room reserved for the index to grow into (here for 32 M items)
/// must not be touched before items come. It was, once: the index's
/// buckets were allocated zeroed with an alignment for which the system
/// allocator zeroes by memset, and an idle `-m 1024` server was 330 MiB.
#[test]
fn idle_server_does_not_touch_reserved_memory() {
    for threads in ["1", "2"] {
        let srv = common::Server::start(&["-m", "1024", "-t", threads]);
        let r = common::exchange(&srv, b"set k 0 0 1\r\nv\r\nget k\r\n", b"END\r\n");
        assert_eq!(r, b"STORED\r\nVALUE k 0 1\r\nv\r\nEND\r\n");
        let rss = common::rss_kib(srv.child.id());
        assert!(
            rss < 64 * 1024,
            "-t {threads}: idle RSS {rss} KiB at -m 1024"
        );
    }
}
