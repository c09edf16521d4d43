//! Text and meta parser tests, from memcached's doc/protocol.txt rules.

use super::*;
use crate::protocol::meta::{base64_decode, base64_encode, MetaCmd};
use crate::protocol::{Parse, Refusal, SetMode, StoreCmd};

const MAX: usize = 1 << 20;

fn done(buf: &[u8]) -> (Request<'_>, usize) {
    match parse(buf, MAX) {
        Parse::Done(r, n) => (r, n),
        other => panic!("{:?}: {other:?}", String::from_utf8_lossy(buf)),
    }
}

fn err(buf: &[u8]) -> &'static str {
    match done(buf).0 {
        Request::Error(e) => e,
        other => panic!("{other:?}"),
    }
}

#[test]
fn storage_commands() {
    let (r, n) = done(b"set k 5 10 3\r\nabc\r\nget k\r\n");
    assert_eq!(n, 19);
    let Request::Store(s) = r else { panic!() };
    assert_eq!(
        (s.mode, s.key, s.flags, s.exptime, s.value, s.cas, s.noreply),
        (SetMode::Set, &b"k"[..], 5, 10, &b"abc"[..], None, false)
    );
    let Request::Store(s) = done(b"cas k 0 0 1 99 noreply\r\nx\r\n").0 else {
        panic!()
    };
    assert_eq!((s.cas, s.noreply), (Some(99), true));
    for (cmd, mode) in [
        ("add", SetMode::Add),
        ("replace", SetMode::Replace),
        ("append", SetMode::Append),
        ("prepend", SetMode::Prepend),
    ] {
        let line = format!("{cmd} k 0 -1 1\r\nx\r\n");
        let Request::Store(s) = done(line.as_bytes()).0 else {
            panic!()
        };
        assert_eq!((s.mode, s.exptime), (mode, -1));
    }
    // flags are 32-bit unsigned
    assert_eq!(
        done(b"set k 4294967295 0 0\r\n\r\n").0,
        Request::Store(Storage {
            mode: SetMode::Set,
            key: b"k",
            flags: u32::MAX,
            exptime: 0,
            value: b"",
            cas: None,
            noreply: false
        })
    );
}

#[test]
fn incomplete_input_asks_for_more() {
    assert!(matches!(parse(b"get k", MAX), Parse::NeedMore(_)));
    assert!(matches!(
        parse(b"set k 0 0 10\r\nabc", MAX),
        Parse::NeedMore(9)
    ));
    assert!(matches!(parse(b"", MAX), Parse::NeedMore(_)));
}

#[test]
fn storage_errors() {
    assert_eq!(err(b"set k 0 0 -1\r\n"), BAD_FORMAT);
    assert_eq!(err(b"set k 0 0 x\r\n"), BAD_FORMAT);
    assert_eq!(err(b"set k 0 0\r\n"), ERROR);
    assert_eq!(err(b"cas k 0 0 1\r\n"), ERROR);
    // a refused line swallows no data block: the next line is a command
    // (memcached's process_update_command); noreply silences the refusal
    assert!(matches!(
        parse(b"set k x 0 1\r\n", MAX),
        Parse::Done(Request::Error(BAD_FORMAT), 13)
    ));
    assert!(matches!(
        parse(b"set k -1 0 1\r\n", MAX),
        Parse::Done(Request::Error(BAD_FORMAT), 14)
    ));
    assert!(matches!(
        parse(b"cas k 0 0 1 x noreply\r\n", MAX),
        Parse::Done(Request::Quiet(BAD_FORMAT), 23)
    ));
    let long = format!("set {} 0 0 1\r\nx\r\n", "k".repeat(251));
    assert!(matches!(
        parse(long.as_bytes(), MAX),
        Parse::Done(Request::Error(BAD_FORMAT), n) if n == 263
    ));
    assert_eq!(err(b"set k 0 0 1 x y\r\n"), ERROR);
    assert!(matches!(
        parse(b"set k 0 0 1 noreply\r\nabc\r\n", MAX),
        Parse::Done(Request::Quiet(BAD_CHUNK), 24)
    ));
    // too large: skipped without buffering, the command named
    assert!(matches!(
        parse(b"set k 0 0 2000000\r\n", MAX),
        Parse::Skip(
            Request::TooLarge(Oversized {
                refusal: Refusal::TooLarge,
                mode: SetMode::Set,
                cmd: StoreCmd::Plain,
                ..
            }),
            19,
            2_000_002
        )
    ));
    assert!(matches!(
        parse(b"append k 0 0 2000000\r\n", MAX),
        Parse::Skip(
            Request::TooLarge(Oversized {
                refusal: Refusal::TooLarge,
                mode: SetMode::Append,
                ..
            }),
            _,
            _
        )
    ));
    assert!(matches!(
        parse(b"cas k 0 0 2000000 5\r\n", MAX),
        Parse::Skip(
            Request::TooLarge(Oversized {
                refusal: Refusal::TooLarge,
                cmd: StoreCmd::Cas,
                ..
            }),
            _,
            _
        )
    ));
    // data not followed by \r\n
    assert!(matches!(
        parse(b"set k 0 0 1\r\nxyz\r\n", MAX),
        Parse::Done(Request::Error(BAD_CHUNK), 16)
    ));
}

#[test]
fn retrieval() {
    let Request::Get { keys, cas, touch } = done(b"gets a b  c\r\n").0 else {
        panic!()
    };
    assert_eq!(
        tokens(keys).collect::<Vec<_>>(),
        vec![&b"a"[..], b"b", b"c"]
    );
    assert!(cas && touch.is_none());
    let Request::Get { touch, cas, .. } = done(b"gat 100 a\r\n").0 else {
        panic!()
    };
    assert_eq!((touch, cas), (Some(100), false));
    assert_eq!(err(b"get\r\n"), ERROR);
    assert_eq!(err(b"gat abc k\r\n"), BAD_EXPTIME);
    // memcached answers a gat with an exptime and no keys with END.
    let Request::Get { keys, touch, .. } = done(b"gat 10\r\n").0 else {
        panic!()
    };
    assert_eq!((keys, touch), (&b""[..], Some(10)));
    assert_eq!(err(b"gats x\r\n"), BAD_EXPTIME);
    assert_eq!(err(b"gat\r\n"), ERROR);
    // bare \n line endings are accepted, as memcached does
    assert!(matches!(done(b"get a\n").0, Request::Get { .. }));
}

#[test]
fn other_commands_and_their_errors() {
    assert_eq!(
        done(b"delete k noreply\r\n").0,
        Request::Delete {
            key: b"k",
            noreply: true
        }
    );
    assert_eq!(
        done(b"delete k 0\r\n").0,
        Request::Delete {
            key: b"k",
            noreply: false
        }
    );
    assert!(err(b"delete a b c\r\n").starts_with("CLIENT_ERROR bad command line format"));
    assert_eq!(err(b"delete\r\n"), ERROR);
    assert_eq!(
        done(b"incr k 18446744073709551615\r\n").0,
        Request::Delta {
            key: b"k",
            incr: true,
            delta: u64::MAX,
            noreply: false
        }
    );
    assert_eq!(err(b"decr k -1\r\n"), BAD_DELTA);
    assert_eq!(err(b"incr k 18446744073709551616\r\n"), BAD_DELTA);
    assert_eq!(
        done(b"touch k -5 noreply\r\n").0,
        Request::Touch {
            key: b"k",
            exptime: -5,
            noreply: true
        }
    );
    assert_eq!(err(b"touch k x\r\n"), BAD_EXPTIME);
    assert_eq!(
        done(b"flush_all\r\n").0,
        Request::Flush {
            delay: 0,
            noreply: false
        }
    );
    assert_eq!(
        done(b"flush_all 10 noreply\r\n").0,
        Request::Flush {
            delay: 10,
            noreply: true
        }
    );
    assert_eq!(
        done(b"flush_all noreply\r\n").0,
        Request::Flush {
            delay: 0,
            noreply: true
        }
    );
    // process_flush_all_command's exptime check; what follows is ignored
    assert_eq!(err(b"flush_all x\r\n"), BAD_EXPTIME);
    assert_eq!(
        done(b"flush_all x noreply\r\n").0,
        Request::Quiet(BAD_EXPTIME)
    );
    assert_eq!(
        done(b"flush_all 5 x\r\n").0,
        Request::Flush {
            delay: 5,
            noreply: false
        }
    );
    assert_eq!(err(b"flush_all 0 0 0\r\n"), ERROR);
    assert_eq!(done(b"version\r\n").0, Request::Version);
    assert_eq!(done(b"version x\r\n").0, Request::Version);
    assert_eq!(done(b"version noreply\r\n").0, Request::Version);
    assert_eq!(done(b"quit\r\n").0, Request::Quit);
    assert_eq!(done(b"quit foo bar\r\n").0, Request::Quit);
    assert_eq!(
        done(b"verbosity 1\r\n").0,
        Request::Verbosity {
            level: Some(1),
            noreply: false
        }
    );
    assert_eq!(
        done(b"verbosity noreply\r\n").0,
        Request::Verbosity {
            level: None,
            noreply: true
        }
    );
    assert_eq!(err(b"verbosity\r\n"), ERROR);
    assert_eq!(
        done(b"stats settings\r\n").0,
        Request::Stats { arg: b" settings" }
    );
    assert_eq!(err(b"\r\n"), ERROR);
    assert_eq!(err(b"frobnicate\r\n"), ERROR);
    assert_eq!(
        done(b"cache_memlimit 64 noreply\r\n").0,
        Request::CacheMemlimit {
            mb: 64,
            noreply: true
        }
    );
    assert_eq!(
        err(b"cache_memlimit 7\r\n"),
        "MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m"
    );
    assert_eq!(
        err(b"cache_memlimit 1000000001\r\n"),
        "MEMLIMIT_ADJUST_FAILED input value is megabytes not bytes"
    );
    assert_eq!(err(b"cache_memlimit x\r\n"), ERROR);
    assert_eq!(
        done(b"shutdown graceful\r\n").0,
        Request::Shutdown {
            graceful: true,
            bad_mode: false
        }
    );
    assert_eq!(
        done(b"shutdown\r\n").0,
        Request::Shutdown {
            graceful: false,
            bad_mode: false
        }
    );
    assert_eq!(
        done(b"refresh_certs\r\n").0,
        Request::RefreshCerts { noreply: false }
    );
    assert_eq!(
        done(b"refresh_certs x noreply\r\n").0,
        Request::RefreshCerts { noreply: true }
    );
    // memcached: with -A, `CLIENT_ERROR invalid shutdown mode` (the
    // engine's reply; without -A, `ERROR: shutdown not enabled`).
    for bad in [
        &b"shutdown now please\r\n"[..],
        b"shutdown foo\r\n",
        b"shutdown graceful x\r\n",
    ] {
        assert_eq!(
            done(bad).0,
            Request::Shutdown {
                graceful: false,
                bad_mode: true
            },
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn closes_on_long_lines_and_http() {
    assert!(matches!(parse(&[b'x'; 2049], MAX), Parse::Close));
    let mut g = b"get ".to_vec();
    g.extend(std::iter::repeat_n(b'k', 5000));
    assert!(
        matches!(parse(&g, MAX), Parse::NeedMore(_)),
        "large multigets are legal"
    );
    assert!(matches!(parse(b"GET / HTTP/1.1\r\n", MAX), Parse::Close));
    assert!(matches!(parse(b"POST /x HTTP/1.0\r\n", MAX), Parse::Close));
}

#[test]
fn meta_commands() {
    let Request::Meta(m) = done(b"mg key v c f t Oabc q\r\n").0 else {
        panic!()
    };
    assert_eq!((m.cmd, m.key), (MetaCmd::Get, &b"key"[..]));
    assert!(m.f.value && m.f.quiet);
    assert_eq!(m.f.opaque, Some(&b"abc"[..]));
    let Request::Meta(m) = done(b"ms key 2 T60 F5 C99 MA I\r\nhi\r\n").0 else {
        panic!()
    };
    assert_eq!(
        (
            m.cmd,
            m.value,
            m.f.touch,
            m.f.client_flags,
            m.f.cas,
            m.f.mode,
            m.f.invalidate
        ),
        (
            MetaCmd::Set,
            &b"hi"[..],
            Some(60),
            Some(5),
            Some(99),
            Some(b'A'),
            true
        )
    );
    let Request::Meta(m) = done(b"ma n N0 J10 D5 MD\r\n").0 else {
        panic!()
    };
    assert_eq!(
        (m.f.vivify, m.f.initial, m.f.delta, m.f.mode),
        (Some(0), Some(10), Some(5), Some(b'D'))
    );
    assert!(matches!(done(b"mn\r\n").0, Request::Meta(m) if m.cmd == MetaCmd::Noop));
    assert_eq!(err(b"mg\r\n"), ERROR);
    assert_eq!(err(b"ms\r\n"), ERROR);
    assert_eq!(
        err(b"md k zz\r\n"),
        "CLIENT_ERROR invalid or duplicate flag"
    );
    assert_eq!(
        err(b"ma k D1 D2\r\n"),
        "CLIENT_ERROR invalid or duplicate flag"
    );
    assert_eq!(err(b"mg k Fx\r\n"), BAD_FORMAT);
    assert_eq!(
        err(b"mg k MSS\r\n"),
        "CLIENT_ERROR incorrect length for M token"
    );
    assert_eq!(err(b"mg k v v\r\n"), "CLIENT_ERROR duplicate flag");
    assert_eq!(err(b"mg k !\r\n"), "CLIENT_ERROR invalid flag");
    assert_eq!(
        err(b"mg k Tx\r\n"),
        "CLIENT_ERROR bad token in command line format"
    );
    let long = format!("mg k O{}\r\n", "o".repeat(33));
    assert_eq!(err(long.as_bytes()), "CLIENT_ERROR opaque token too long");
    assert!(matches!(
        parse(b"ms k 2\r\nhiX\r\n", MAX),
        Parse::Done(Request::Error(BAD_CHUNK), _)
    ));
    assert!(matches!(
        parse(b"ms k 5000000 T1\r\n", MAX),
        Parse::Skip(
            Request::TooLarge(Oversized {
                refusal: Refusal::TooLarge,
                cmd: StoreCmd::Meta,
                mode: SetMode::Set,
                ..
            }),
            _,
            5_000_002
        )
    ));
    assert!(matches!(
        parse(b"ms k 5000000 MA b\r\n", MAX),
        Parse::Skip(
            Request::TooLarge(Oversized {
                refusal: Refusal::TooLarge,
                mode: SetMode::Append,
                base64: true,
                ..
            }),
            _,
            _
        )
    ));
}

#[test]
fn base64_keys_roundtrip() {
    let mut out = Vec::new();
    base64_encode(b"\x00binary\xffkey", &mut out);
    let mut buf = [0u8; 256];
    assert_eq!(base64_decode(&out, &mut buf).unwrap(), b"\x00binary\xffkey");
    assert!(base64_decode(b"abc", &mut buf).is_none());
    assert!(base64_decode(b"a*==", &mut buf).is_none());
}

#[test]
fn parse_numbers_like_memcached() {
    assert_eq!(parse_i32(b"-2147483648"), Some(-2147483648));
    // safe_strtol: a 64-bit long kept to its low 32 bits.
    assert_eq!(parse_i32(b"2147483648"), Some(-2147483648));
    assert_eq!(parse_i32(b"4294967296"), Some(0));
    assert_eq!(parse_i32(b"4294967297"), Some(1));
    assert_eq!(parse_i32(b"-2147483649"), Some(2147483647));
    assert_eq!(parse_i32(b"-9223372036854775808"), Some(0));
    assert_eq!(parse_i32(b"9223372036854775808"), None);
    assert_eq!(parse_i32(b"99999999999999999999"), None);
    // safe_strtoul: a 64-bit unsigned long kept to its low 32 bits.
    assert_eq!(parse_u32(b"4294967296"), Some(0));
    assert_eq!(parse_u32(b"4294967297"), Some(1));
    assert_eq!(parse_u32(b"18446744073709551615"), Some(u32::MAX));
    assert_eq!(parse_u32(b"18446744073709551616"), None);
    assert_eq!(parse_u32(b"-1"), None);
    assert_eq!(parse_u64(b"12a"), None);
    assert_eq!(parse_u64(b""), None);
    // safe_strtoull: a sign, whitespace around, "-0", and only the minus
    // values that still read as non-negative.
    assert_eq!(parse_u64(b"+1"), Some(1));
    assert_eq!(parse_u64(b"-0"), Some(0));
    assert_eq!(parse_u64(b"-1"), None);
    assert_eq!(parse_u64(b"-18446744073709551615"), Some(1));
    assert_eq!(parse_u64(b"1\t"), Some(1));
    assert_eq!(parse_u64(b"1\tjunk"), Some(1));
    assert_eq!(parse_u64(b"\t7"), Some(7));
    assert_eq!(parse_u64(b"+"), None);
    assert_eq!(parse_u64(b"+-1"), None);
    assert_eq!(parse_u64(b"18446744073709551616"), None);
    assert_eq!(parse_u32(b"+5"), Some(5));
    assert_eq!(parse_u32(b"-0"), Some(0));
    assert_eq!(parse_i32(b"+0"), Some(0));
    assert_eq!(parse_i32(b"-1\t"), Some(-1));
    assert_eq!(parse_i32(b"--1"), None);
}

#[test]
fn a_nul_byte_ends_the_command_line() {
    // memcached reads the line as a C string.
    assert_eq!(
        done(b"get z\x00junk\r\n").0,
        Request::Get {
            keys: b" z",
            cas: false,
            touch: None
        }
    );
    assert_eq!(err(b"set a\x00b 0 0 1\r\n"), ERROR);
    assert!(matches!(
        done(b"set y 0 0 1\x00xx\r\ny\r\n"),
        (Request::Store(Storage { key: b"y", .. }), 19)
    ));
    assert_eq!(err(b"\x00\r\n"), ERROR);
}

#[test]
fn verbosity_checks_its_level_unless_noreply() {
    assert_eq!(err(b"verbosity x\r\n"), BAD_FORMAT);
    assert_eq!(
        done(b"verbosity +1\r\n").0,
        Request::Verbosity {
            level: Some(1),
            noreply: false
        }
    );
    assert_eq!(
        done(b"verbosity x noreply\r\n").0,
        Request::Verbosity {
            level: None,
            noreply: true
        }
    );
    assert_eq!(
        done(b"verbosity noreply\r\n").0,
        Request::Verbosity {
            level: None,
            noreply: true
        }
    );
}

#[test]
fn a_line_in_pieces_is_searched_once_and_memcached_s_length_rule_holds() {
    // A get line arriving 1,000 bytes at a time: each call starts where
    // the last stopped, and the whole line parses the same as at once.
    let mut line = b"get".to_vec();
    for i in 0..5000 {
        line.extend_from_slice(format!(" k{i}").as_bytes());
    }
    line.extend_from_slice(b"\r\n");
    let mut scanned = 0;
    for end in (1000..line.len()).step_by(1000) {
        assert!(matches!(
            parse_stream(&line[..end], MAX, &mut scanned, false),
            Parse::NeedMore(_)
        ));
        assert_eq!(scanned, end, "searched up to what arrived");
    }
    let Parse::Done(Request::Get { keys, .. }, used) =
        parse_stream(&line, MAX, &mut scanned, false)
    else {
        panic!()
    };
    assert_eq!((used, scanned), (line.len(), 0));
    assert_eq!(tokens(keys).count(), 5000);
    // Without a line end: over 2,048 bytes closes unless get/gets (after
    // at most 100 spaces); a full read waits up to 16 KiB; a whole line
    // under 16 KiB is served whatever its command.
    let gat = |n: usize| format!("gat 0 {}", "k ".repeat(n)).into_bytes();
    assert!(matches!(
        parse_stream(&gat(1100), MAX, &mut 0, false),
        Parse::Close
    ));
    assert!(matches!(
        parse_stream(&gat(1100), MAX, &mut 0, true),
        Parse::NeedMore(_)
    ));
    assert!(matches!(
        parse_stream(&gat(8200), MAX, &mut 0, true),
        Parse::Close
    ));
    let mut whole = gat(3000);
    whole.extend_from_slice(b"\r\n");
    assert!(matches!(
        parse(&whole, MAX),
        Parse::Done(Request::Get { .. }, _)
    ));
    let mut spaced = vec![b' '; 100];
    spaced.extend_from_slice(&line[..3000]);
    assert!(matches!(parse(&spaced, MAX), Parse::NeedMore(_)));
    spaced.insert(0, b' ');
    assert!(matches!(parse(&spaced, MAX), Parse::Close));
}
