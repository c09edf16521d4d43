//! Key hashes, bit for bit as libhashkit (libmemcached) computes them.
//!
//! libhashkit reads keys as C `char`, which is signed on x86-64: bytes of
//! 0x80 and above are sign-extended before they are mixed in, and so they
//! are here (a libmemcached built for a CPU with unsigned `char` places
//! such keys differently). Twemproxy's functions of the same names agree.

use md5::{Digest, Md5};

/// The function that turns a key (and, for unweighted ketama and modula,
/// a server's point names) into a 32-bit ring position. Names are
/// libmemcached's `MEMCACHED_HASH_*` and twemproxy's `hash:` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyHash {
    /// The first 4 bytes of the key's MD5, little-endian (`MD5`, twemproxy
    /// `md5`); what libmemcached's `KETAMA_WEIGHTED` and php-memcached's
    /// `OPT_LIBKETAMA_COMPATIBLE` select.
    Md5,
    /// Bob Jenkins' one-at-a-time (`DEFAULT`, twemproxy
    /// `one_at_a_time`): libmemcached's default.
    OneAtATime,
    /// `CRC`: CRC-32, high half, 15 bits (twemproxy `crc32a` differs).
    Crc32,
    /// `FNV1_32`.
    Fnv1_32,
    /// `FNV1A_32`.
    Fnv1a32,
    /// `FNV1_64`, truncated to 32 bits.
    Fnv1_64,
    /// `FNV1A_64`, truncated to 32 bits: twemproxy's default `fnv1a_64`.
    Fnv1a64,
}

const FNV_64_INIT: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_64_PRIME: u64 = 0x0000_0100_0000_01b3;
const FNV_32_INIT: u32 = 2_166_136_261;
const FNV_32_PRIME: u32 = 16_777_619;

/// A byte as libhashkit's `(uint32_t) key[x]` reads it from a signed char.
fn sext(b: u8) -> u32 {
    b as i8 as i32 as u32
}

impl KeyHash {
    /// Hashes `data` (a key, or a server point name).
    pub fn hash(self, data: &[u8]) -> u32 {
        match self {
            KeyHash::Md5 => md5_word(data, 0),
            KeyHash::OneAtATime => {
                let mut v: u32 = 0;
                for &b in data {
                    v = v.wrapping_add(sext(b));
                    v = v.wrapping_add(v << 10);
                    v ^= v >> 6;
                }
                v = v.wrapping_add(v << 3);
                v ^= v >> 11;
                v.wrapping_add(v << 15)
            }
            KeyHash::Crc32 => {
                let mut crc = u32::MAX;
                for &b in data {
                    crc = (crc >> 8) ^ CRC_TABLE[((crc ^ u32::from(b)) & 0xff) as usize];
                }
                ((!crc) >> 16) & 0x7fff
            }
            KeyHash::Fnv1_32 => data
                .iter()
                .fold(FNV_32_INIT, |h, &b| h.wrapping_mul(FNV_32_PRIME) ^ sext(b)),
            KeyHash::Fnv1a32 => data.iter().fold(FNV_32_INIT, |h, &b| {
                (h ^ sext(b)).wrapping_mul(FNV_32_PRIME)
            }),
            KeyHash::Fnv1_64 => {
                let h = data.iter().fold(FNV_64_INIT, |h, &b| {
                    h.wrapping_mul(FNV_64_PRIME) ^ (b as i8 as i64 as u64)
                });
                h as u32
            }
            KeyHash::Fnv1a64 => data.iter().fold(FNV_64_INIT as u32, |h, &b| {
                (h ^ sext(b)).wrapping_mul(FNV_64_PRIME as u32)
            }),
        }
    }
}

/// Word `alignment` (0..4) of the MD5 of `data`, little-endian: ketama's
/// point value (libmemcached `ketama_server_hash`, twemproxy
/// `ketama_hash`).
pub(crate) fn md5_word(data: &[u8], alignment: usize) -> u32 {
    let d = Md5::digest(data);
    let i = alignment * 4;
    u32::from_le_bytes([d[i], d[i + 1], d[i + 2], d[i + 3]])
}

/// The reflected CRC-32 table (polynomial 0xEDB88320), libhashkit's
/// `crc32tab`.
static CRC_TABLE: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_table_is_libhashkits() {
        assert_eq!(CRC_TABLE[1], 0x7707_3096);
        assert_eq!(CRC_TABLE[255], 0x2d02_ef8d);
    }

    #[test]
    fn md5_matches_ketama_vectors() {
        // libmemcached test/fixtures/ketama.hpp: hash1 of the first keys.
        assert_eq!(KeyHash::Md5.hash(b"SVa_]_V41)"), 443_691_461);
        assert_eq!(KeyHash::Md5.hash(b"*/Z;?V(.\\8"), 1_422_915_503);
    }
}
