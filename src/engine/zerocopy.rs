//! The send side of zero-copy replies (see `exec::value_ref`): one
//! sendmsg whose iovecs alternate between a connection's output buffer and
//! the segment memory of the large values spliced into it.

use crate::exec::value_ref::Refs;

/// Iovecs handed to one sendmsg, at most (the kernel's UIO_MAXIOV);
/// a longer output simply takes more sends.
const IOV_MAX: usize = 1024;

/// A sendmsg header and its iovecs, kept at a fixed heap address while the
/// kernel reads them.
pub struct MsgBuf {
    hdr: Box<libc::msghdr>,
    iov: Vec<libc::iovec>,
}

impl Default for MsgBuf {
    fn default() -> Self {
        // SAFETY: msghdr is plain old data; all-zero is a valid empty header.
        let hdr: libc::msghdr = unsafe { std::mem::zeroed() };
        MsgBuf {
            hdr: Box::new(hdr),
            iov: Vec::new(),
        }
    }
}

impl MsgBuf {
    /// Points the header at `bytes` with `refs` spliced in, skipping the
    /// first `skip` bytes of that stream (already sent).
    pub fn build(&mut self, bytes: &[u8], refs: &Refs, mut skip: usize) -> *const libc::msghdr {
        let iov = &mut self.iov;
        iov.clear();
        let mut push = |p: *const u8, n: usize| {
            if skip >= n {
                skip -= n;
                return;
            }
            if iov.len() < IOV_MAX {
                iov.push(libc::iovec {
                    iov_base: p.wrapping_add(skip) as *mut libc::c_void,
                    iov_len: n - skip,
                });
            }
            skip = 0;
        };
        let mut pos = 0;
        for r in &refs.list {
            push(bytes[pos..r.at].as_ptr(), r.at - pos);
            push(r.ptr, r.len);
            pos = r.at;
        }
        push(bytes[pos..].as_ptr(), bytes.len() - pos);
        self.hdr.msg_iov = self.iov.as_mut_ptr();
        self.hdr.msg_iovlen = self.iov.len() as _;
        &*self.hdr
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::value_ref::ValueRef;

    fn gather(m: &MsgBuf) -> Vec<u8> {
        let mut v = Vec::new();
        for io in &m.iov {
            // SAFETY: every iovec points into the live buffers of the test.
            v.extend_from_slice(unsafe {
                std::slice::from_raw_parts(io.iov_base as *const u8, io.iov_len)
            });
        }
        v
    }

    #[test]
    fn iovecs_splice_values_and_skip_what_was_sent() {
        let bytes = b"VALUE a 0 3\r\n\r\nVALUE b 0 2\r\n\r\nEND\r\n";
        let (va, vb) = (b"xyz".to_vec(), b"pq".to_vec());
        let mut refs = Refs::default();
        refs.push(ValueRef {
            at: 13,
            ptr: va.as_ptr(),
            len: 3,
            seg: 0,
            shard: 0,
        });
        refs.push(ValueRef {
            at: 28,
            ptr: vb.as_ptr(),
            len: 2,
            seg: 0,
            shard: 0,
        });
        let whole = b"VALUE a 0 3\r\nxyz\r\nVALUE b 0 2\r\npq\r\nEND\r\n".to_vec();
        let mut m = MsgBuf::default();
        for skip in 0..=whole.len() {
            m.build(bytes, &refs, skip);
            assert_eq!(gather(&m), &whole[skip..], "skip {skip}");
        }
    }
}
