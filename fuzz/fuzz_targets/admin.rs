//! The admin command parsers (`lru_crawler`, `lru`, `slabs`, `stats cachedump`)
//! on any bytes: never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = corecache::protocol::admin::lru_crawler(data);
    let _ = corecache::protocol::admin::lru(data);
    let _ = corecache::protocol::admin::slabs(data);
    let _ = corecache::protocol::admin::cachedump(data);
});
