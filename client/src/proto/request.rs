//! Meta commands written as bytes. Pure: no I/O, no state.
//!
//! Syntax from memcached's `protocol.txt` (meta commands):
//! `<cm> <key> [<datalen>] <flag>*\r\n[<data>\r\n]`, flags as single
//! letters, some with a token glued on (`T30`, `C123`).

use crate::key::WireKey;

/// One meta command being written into a request buffer.
pub(crate) struct Cmd<'o> {
    out: &'o mut Vec<u8>,
}

impl<'o> Cmd<'o> {
    /// Starts `<name> <key>` (`mg`, `md`, `ma`, `me`).
    pub(crate) fn new(out: &'o mut Vec<u8>, name: &str, key: &WireKey) -> Cmd<'o> {
        out.extend_from_slice(name.as_bytes());
        out.push(b' ');
        out.extend_from_slice(key.bytes());
        let cmd = Cmd { out };
        if key.is_base64() {
            cmd.flag(b'b')
        } else {
            cmd
        }
    }

    /// Starts `ms <key> <datalen>`.
    pub(crate) fn set(out: &'o mut Vec<u8>, key: &WireKey, datalen: usize) -> Cmd<'o> {
        out.extend_from_slice(b"ms ");
        out.extend_from_slice(key.bytes());
        out.push(b' ');
        push_num(out, datalen as u64);
        let cmd = Cmd { out };
        if key.is_base64() {
            cmd.flag(b'b')
        } else {
            cmd
        }
    }

    /// Adds a flag without a token (`v`, `q`, `c`, ...).
    pub(crate) fn flag(self, f: u8) -> Cmd<'o> {
        self.out.push(b' ');
        self.out.push(f);
        self
    }

    /// Adds a flag with a numeric token (`T30`, `C123`, `O7`).
    pub(crate) fn num(self, f: u8, n: u64) -> Cmd<'o> {
        self.out.push(b' ');
        self.out.push(f);
        push_num(self.out, n);
        self
    }

    /// Adds a flag with a numeric token if there is one.
    pub(crate) fn opt(self, f: u8, n: Option<u64>) -> Cmd<'o> {
        match n {
            Some(n) => self.num(f, n),
            None => self,
        }
    }

    /// Adds a flag with a one-letter token (`MS`, `MI`).
    pub(crate) fn mode(self, f: u8, m: u8) -> Cmd<'o> {
        self.out.extend_from_slice(&[b' ', f, m]);
        self
    }

    /// Ends a command without data.
    pub(crate) fn end(self) {
        self.out.extend_from_slice(b"\r\n");
    }

    /// Ends `ms` with its data block.
    pub(crate) fn end_with(self, data: &[u8]) {
        self.out.extend_from_slice(b"\r\n");
        self.out.extend_from_slice(data);
        self.out.extend_from_slice(b"\r\n");
    }
}

/// Appends `mn\r\n`, the end-of-pipeline marker answered by `MN`.
pub(crate) fn noop(out: &mut Vec<u8>) {
    out.extend_from_slice(b"mn\r\n");
}

fn push_num(out: &mut Vec<u8>, n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut n = n;
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_meta_syntax() {
        let mut out = Vec::new();
        let k = WireKey::new(b"foo").unwrap();
        Cmd::new(&mut out, "mg", &k).flag(b'v').num(b'N', 30).end();
        Cmd::set(&mut out, &k, 2)
            .num(b'T', 0)
            .mode(b'M', b'E')
            .end_with(b"hi");
        noop(&mut out);
        assert_eq!(out, b"mg foo v N30\r\nms foo 2 T0 ME\r\nhi\r\nmn\r\n");
    }

    #[test]
    fn base64_keys_carry_b() {
        let mut out = Vec::new();
        let k = WireKey::new(b"a b").unwrap();
        Cmd::new(&mut out, "md", &k).flag(b'q').end();
        assert_eq!(out, b"md YSBi b q\r\n");
        out.clear();
        Cmd::set(&mut out, &k, 1)
            .opt(b'C', None)
            .opt(b'F', Some(u64::from(u32::MAX)))
            .end_with(b"x");
        assert_eq!(out, b"ms YSBi 1 b F4294967295\r\nx\r\n");
    }
}
