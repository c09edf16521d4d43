"""Key hash functions as libmemcached (libhashkit) and twemproxy compute them.

Every function takes the key as bytes and returns an unsigned 32-bit int.
Both C code bases read keys through `const char *`, so on x86 and ARM Linux
a byte >= 0x80 is sign-extended before it is mixed in; `_signed` reproduces
that, which matters for the FNV and one-at-a-time hashes of non-ASCII keys.
Sources: twemproxy src/hashkit/nc_{md5,fnv,one_at_a_time,crc32}.c,
libhashkit/{md5,fnv_32,fnv_64,one_at_a_time,crc32}.cc.
"""
import hashlib
import zlib

M32 = 0xFFFFFFFF
M64 = 0xFFFFFFFFFFFFFFFF


def _signed(b, mask):
    return b if b < 0x80 else (b - 0x100) & mask


def md5(key):
    """First four digest bytes, little endian (hashkit_md5, hash_md5)."""
    d = hashlib.md5(key).digest()
    return int.from_bytes(d[0:4], "little")


def fnv1_64(key):
    h = 0xCBF29CE484222325
    for b in key:
        h = (h * 0x100000001B3) & M64
        h ^= _signed(b, M64)
    return h & M32


def fnv1a_64(key):
    h = 0xCBF29CE484222325
    for b in key:
        h ^= _signed(b, M64)
        h = (h * 0x100000001B3) & M64
    return h & M32


def fnv1_32(key):
    h = 2166136261
    for b in key:
        h = (h * 16777619) & M32
        h ^= _signed(b, M32)
    return h


def fnv1a_32(key):
    h = 2166136261
    for b in key:
        h ^= _signed(b, M32)
        h = (h * 16777619) & M32
    return h


def one_at_a_time(key):
    h = 0
    for b in key:
        h = (h + _signed(b, M32)) & M32
        h = (h + (h << 10)) & M32
        h ^= h >> 6
    h = (h + (h << 3)) & M32
    h ^= h >> 11
    h = (h + (h << 15)) & M32
    return h


def crc32(key):
    """libmemcached's and twemproxy's `crc32`: 15 bits of the CRC."""
    return (zlib.crc32(key) >> 16) & 0x7FFF


def crc32a(key):
    """twemproxy's `crc32a`: the whole CRC-32."""
    return zlib.crc32(key) & M32


HASHES = {
    "md5": md5,
    "fnv1_64": fnv1_64,
    "fnv1a_64": fnv1a_64,
    "fnv1_32": fnv1_32,
    "fnv1a_32": fnv1a_32,
    "one_at_a_time": one_at_a_time,
    "crc32": crc32,
    "crc32a": crc32a,
}
