//! Values come back whole in every reply shape, from this worker and from
//! the other one (`-t 2`: half the keys hop), at sizes either side of the
//! copy/reference thresholds (`exec::value_ref`: HOP_ZC_MIN 4 KiB across a
//! hop, ZC_MIN 32 KiB locally). A binary GET's reply *ends* with its value,
//! unlike text's `END`: a reference at the very end of a hopped reply was
//! once dropped, leaving the header and no value (found by memjs).

mod common;
use common::*;
use std::io::Write;
use std::net::TcpStream;

const SIZES: [usize; 5] = [100, 4095, 4096, 5000, 40_000];
const KEYS: usize = 8;

fn value(size: usize, k: usize) -> Vec<u8> {
    (0..size).map(|j| b'a' + ((j + k) % 26) as u8).collect()
}

fn store_all(srv: &Server) {
    let mut s = srv.connect();
    for &size in &SIZES {
        for k in 0..KEYS {
            let v = value(size, k);
            s.write_all(format!("set v{size}_{k} {k} 0 {size}\r\n").as_bytes())
                .unwrap();
            s.write_all(&v).unwrap();
            s.write_all(b"\r\n").unwrap();
            assert_eq!(read_until(&mut s, b"\r\n"), b"STORED\r\n");
        }
    }
}

#[test]
fn binary_get_getk_gat_and_quiet_gets_carry_the_whole_value() {
    let srv = Server::start(&["-t", "2", "-m", "64"]);
    store_all(&srv);
    let mut b = srv.connect();
    for &size in &SIZES {
        for k in 0..KEYS {
            let key = format!("v{size}_{k}");
            let want = value(size, k);
            // GET (0x00), GETK (0x0c), GAT (0x1d, exptime extra), then GETQ
            // (0x09) and GETKQ (0x0d) answered before a NOOP (0x0a).
            let mut reqs = bin(0x00, key.as_bytes(), &[], &[], 1);
            reqs.extend(bin(0x0c, key.as_bytes(), &[], &[], 2));
            reqs.extend(bin(0x1d, key.as_bytes(), &0u32.to_be_bytes(), &[], 3));
            reqs.extend(bin(0x09, key.as_bytes(), &[], &[], 4));
            reqs.extend(bin(0x0d, key.as_bytes(), &[], &[], 5));
            reqs.extend(bin(0x0a, &[], &[], &[], 6));
            b.write_all(&reqs).unwrap();
            for (op, opaque, with_key) in [
                (0x00, 1, false),
                (0x0c, 2, true),
                (0x1d, 3, false),
                (0x09, 4, false),
                (0x0d, 5, true),
            ] {
                let (o, status, q, rk, rv) = read_bin(&mut b);
                assert_eq!((o, status, q), (op, 0, opaque), "{key}");
                assert_eq!(rk, if with_key { key.as_bytes() } else { b"" });
                assert!(rv == want, "{key} opcode {op:#x}: {} bytes", rv.len());
            }
            assert_eq!(read_bin(&mut b).0, 0x0a, "{key}: NOOP last");
        }
    }
    assert_eq!(srv.stop(), 0);
}

#[test]
fn text_and_meta_gets_carry_the_whole_value() {
    let srv = Server::start(&["-t", "2", "-m", "64"]);
    store_all(&srv);
    let mut s: TcpStream = srv.connect();
    for &size in &SIZES {
        for k in 0..KEYS {
            let key = format!("v{size}_{k}");
            let v = value(size, k);
            let mut want = format!("VALUE {key} {k} {size}\r\n").into_bytes();
            want.extend_from_slice(&v);
            want.extend_from_slice(b"\r\nEND\r\n");
            s.write_all(format!("get {key}\r\n").as_bytes()).unwrap();
            assert!(read_until(&mut s, b"END\r\n") == want, "get {key}");
            let mut want = format!("VA {size} f{k}\r\n").into_bytes();
            want.extend_from_slice(&v);
            want.extend_from_slice(b"\r\nMN\r\n");
            s.write_all(format!("mg {key} v f\r\nmn\r\n").as_bytes())
                .unwrap();
            assert!(read_until(&mut s, b"MN\r\n") == want, "mg {key}");
        }
    }
    assert_eq!(srv.stop(), 0);
}
