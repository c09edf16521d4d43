//! Binary parser tests, from memcached's doc/protocol-binary.txt.

use super::binary::*;
use super::{Parse, Refusal};

fn header(opcode: u8, key_len: u16, extras: u8, body: u32, opaque: u32, cas: u64) -> Vec<u8> {
    let mut h = vec![REQ_MAGIC, opcode];
    h.extend_from_slice(&key_len.to_be_bytes());
    h.push(extras);
    h.push(0);
    h.extend_from_slice(&[0, 0]);
    h.extend_from_slice(&body.to_be_bytes());
    h.extend_from_slice(&opaque.to_be_bytes());
    h.extend_from_slice(&cas.to_be_bytes());
    h
}

#[test]
fn get_and_set_requests() {
    let mut b = header(op::GETK, 3, 0, 3, 0xdead_beef, 0);
    b.extend_from_slice(b"foo");
    let Parse::Done(Ok(r), n) = parse(&b, 1 << 20) else {
        panic!()
    };
    assert_eq!(
        (n, r.key, r.h.opaque, r.h.opcode),
        (27, &b"foo"[..], 0xdead_beef, op::GETK)
    );

    let mut s = header(op::SET, 1, 8, 8 + 1 + 5, 7, 42);
    s.extend_from_slice(&0xcafe_u32.to_be_bytes());
    s.extend_from_slice(&100u32.to_be_bytes());
    s.extend_from_slice(b"kvalue");
    let Parse::Done(Ok(r), _) = parse(&s, 1 << 20) else {
        panic!()
    };
    assert_eq!(
        (r.extra_u32(0), r.extra_u32(4), r.key, r.value, r.h.cas),
        (0xcafe, 100, &b"k"[..], &b"value"[..], 42)
    );
    // split anywhere: needs more
    for cut in 0..s.len() {
        assert!(
            matches!(parse(&s[..cut], 1 << 20), Parse::NeedMore(_)),
            "cut {cut}"
        );
    }
}

#[test]
fn malformed_requests() {
    // key length beyond the body: an unreadable frame (unknown command,
    // then closed), whatever the opcode, before its own checks
    for opcode in [op::GET, op::SET, 0x55] {
        assert!(matches!(
            parse(&header(opcode, 10, 0, 3, 0, 0), 1 << 20),
            Parse::Done(Err(Invalid::Frame(_)), 24)
        ));
        assert!(matches!(
            parse(&header(opcode, 1, 8, 4, 0, 0), 1 << 20),
            Parse::Done(Err(Invalid::Frame(_)), 24)
        ));
    }
    // wrong extras for the opcode
    let mut b = header(op::GET, 1, 4, 5, 0, 0);
    b.extend_from_slice(b"xxxxk");
    assert!(matches!(
        parse(&b, 1 << 20),
        Parse::Done(Err(Invalid::Args(_)), _)
    ));
    // get without a key
    assert!(matches!(
        parse(&header(op::GET, 0, 0, 0, 0, 0), 1 << 20),
        Parse::Done(Err(Invalid::Args(_)), _)
    ));
    // unknown opcode: unknown command, connection kept
    assert!(matches!(
        parse(&header(0x55, 0, 0, 0, 0, 0), 1 << 20),
        Parse::Done(Err(Invalid::Unknown(_)), 24)
    ));
    // SASL opcodes parse (without -S the engine answers "unknown
    // command", as memcached); a LIST_MECHS with a key, an AUTH without a
    // mechanism, a mechanism over 32 bytes or a body over 4 KiB are
    // invalid arguments.
    assert!(matches!(
        parse(&header(op::SASL_LIST_MECHS, 0, 0, 0, 0, 0), 1 << 20),
        Parse::Done(
            Ok(Request {
                cmd: Command {
                    kind: Kind::SaslList,
                    ..
                },
                ..
            }),
            24
        )
    ));
    let mut auth = header(op::SASL_AUTH, 5, 0, 14, 0, 0);
    auth.extend_from_slice(b"PLAIN\0alice\0pw");
    match parse(&auth, 1 << 20) {
        Parse::Done(Ok(r), 38) => {
            assert_eq!(
                (r.cmd.kind, r.key, r.value),
                (Kind::SaslAuth, &b"PLAIN"[..], &b"\0alice\0pw"[..])
            )
        }
        other => panic!("{other:?}"),
    }
    for (op, key_len, body) in [
        (op::SASL_LIST_MECHS, 1, 1),
        (op::SASL_AUTH, 0, 4),
        (op::SASL_AUTH, 33, 40),
        (op::SASL_STEP, 5, 5000),
    ] {
        let mut h = header(op, key_len, 0, body, 0, 0);
        h.resize(24 + body as usize, b'P');
        assert!(
            matches!(parse(&h, 1 << 20), Parse::Done(Err(Invalid::Args(_)), _)),
            "{op:#x} {key_len} {body}"
        );
    }
    // wrong magic closes
    let mut bad = header(op::GET, 0, 0, 0, 0, 0);
    bad[0] = 0x81;
    assert!(matches!(parse(&bad, 1 << 20), Parse::Close));
    // a body over the item limit: storage is skipped unbuffered, others invalid
    // (the key is read first: a refused SET still drops the old value)
    assert!(matches!(
        parse(&header(op::SET, 1, 8, 10_000_000, 0, 0), 1 << 20),
        Parse::NeedMore(9)
    ));
    let mut big = header(op::SET, 1, 8, 10_000_000, 0, 0);
    big.extend_from_slice(&[0; 8]);
    big.push(b'k');
    match parse(&big, 1 << 20) {
        Parse::Skip(Ok(r), 33, 9_999_991) => {
            assert_eq!(r.refused, Some(Refusal::TooLarge));
            assert_eq!(r.key, b"k");
            assert!(r.value.is_empty());
        }
        other => panic!("{other:?}"),
    }
    // an oversized APPEND is refused too (not stored empty)
    let mut big = header(op::APPENDQ, 2, 0, 5_000_000, 0, 0);
    big.extend_from_slice(b"ab");
    assert!(matches!(
        parse(&big, 1 << 20),
        Parse::Skip(
            Ok(Request {
                refused: Some(Refusal::TooLarge),
                key: b"ab",
                ..
            }),
            26,
            4_999_998
        )
    ));
    // an oversized storage body with no key, or bad extras, is invalid
    assert!(matches!(
        parse(&header(op::SET, 0, 8, 10_000_000, 0, 0), 1 << 20),
        Parse::Done(Err(Invalid::Args(_)), 24)
    ));
    assert!(matches!(
        parse(&header(op::SET, 1, 4, 10_000_000, 0, 0), 1 << 20),
        Parse::Done(Err(Invalid::Args(_)), 24)
    ));
    assert!(matches!(
        parse(&header(op::GET, 1, 0, 10_000_000, 0, 0), 1 << 20),
        Parse::Done(Err(Invalid::Args(_)), 24)
    ));
    // key over 250 bytes
    assert!(matches!(
        parse(&header(op::GET, 251, 0, 251, 0, 0), 1 << 20),
        Parse::Done(Err(Invalid::Args(_)), 24)
    ));
}

#[test]
fn response_layout() {
    let mut out = Vec::new();
    write_response(
        &mut out,
        op::GETK,
        status::OK,
        9,
        77,
        &[0, 0, 0, 1],
        b"key",
        b"val",
    );
    assert_eq!(out.len(), 24 + 4 + 3 + 3);
    assert_eq!(out[0], RES_MAGIC);
    assert_eq!(u16::from_be_bytes([out[2], out[3]]), 3);
    assert_eq!(out[4], 4);
    assert_eq!(u32::from_be_bytes(out[8..12].try_into().unwrap()), 10);
    assert_eq!(u32::from_be_bytes(out[12..16].try_into().unwrap()), 9);
    assert_eq!(u64::from_be_bytes(out[16..24].try_into().unwrap()), 77);
    assert_eq!(&out[24..], b"\x00\x00\x00\x01keyval");
}
