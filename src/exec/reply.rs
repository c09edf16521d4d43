//! Pieces every reply renderer uses: numbers, lines, and values (copied,
//! or spliced by reference when large).

use super::shard::Shard;
use super::value_ref::ValueRef;

/// Appends a decimal number without going through `format!`.
#[inline]
pub fn push_num(out: &mut Vec<u8>, n: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// Appends `s` and "\r\n".
#[inline]
pub fn push_line(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Appends a stored value to a reply: by reference when it is at least
/// `sh.zc_min` bytes (set while the reply can carry references, see
/// value_ref.rs) and the store allows another pin, else by copy.
pub fn push_value(sh: &mut Shard, out: &mut Vec<u8>, v: &[u8]) {
    if v.len() >= sh.zc_min && sh.store.may_pin() {
        let seg = sh.store.pin(v);
        sh.zc_refs.push(ValueRef {
            at: out.len(),
            ptr: v.as_ptr(),
            len: v.len(),
            seg,
            shard: sh.id,
        });
    } else {
        out.extend_from_slice(v);
    }
}
