"""Key hash functions as libmemcached (libhashkit) and twemproxy compute them.

Every function takes the key as bytes and returns an unsigned 32-bit int.
Both C code bases read keys through `const char *`, so on x86 and ARM Linux
a byte >= 0x80 is sign-extended before it is mixed in; `_signed` reproduces
that, which matters for the FNV and one-at-a-time hashes of non-ASCII keys.
Sources: twemproxy src/hashkit/nc_{md5,fnv,one_at_a_time,crc32,crc16,
murmur,jenkins,hsieh}.c, libhashkit/{md5,fnv_32,fnv_64,one_at_a_time,
crc32}.cc. twemproxy's `murmur` (MurmurHash2, seed 0xdeadbeef * length)
and `jenkins` (Bob Jenkins' lookup3 hashlittle, initval 13; not the
one-at-a-time hash) are the code libhashkit has under the same names, but
only their twemproxy use is tested here.
"""
import binascii
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


def crc16(key):
    """twemproxy's `crc16`: CRC-16/XMODEM's table, but the running value is
    a uint32_t shifted left without a mask, so bits above 16 stay."""
    crc = 0
    for b in key:
        crc = ((crc << 8) & M32) ^ _CRC16[((crc >> 8) ^ b) & 0xFF]
    return crc


_CRC16 = [binascii.crc_hqx(bytes([i]), 0) for i in range(256)]  # crc16tab: poly 0x1021


def murmur(key):
    """twemproxy's and libhashkit's `murmur` (MurmurHash2, 32 bits)."""
    m = 0x5BD1E995
    length = len(key)
    h = ((0xDEADBEEF * length) & M32) ^ length
    i = 0
    while length - i >= 4:
        k = int.from_bytes(key[i : i + 4], "little")
        k = (k * m) & M32
        k ^= k >> 24
        k = (k * m) & M32
        h = ((h * m) & M32) ^ k
        i += 4
    rest = length - i
    if rest == 3:
        h ^= key[i + 2] << 16
    if rest >= 2:
        h ^= key[i + 1] << 8
    if rest >= 1:
        h ^= key[i]
        h = (h * m) & M32
    h ^= h >> 13
    h = (h * m) & M32
    h ^= h >> 15
    return h


def _rot(x, k):
    return ((x << k) | (x >> (32 - k))) & M32


def jenkins(key):
    """twemproxy's `jenkins`: lookup3 hashlittle(), initval 13. Its word
    reads on aligned keys equal this byte-wise form on little-endian hosts."""
    length = len(key)
    a = b = c = (0xDEADBEEF + length + 13) & M32
    if length == 0:
        return c
    words = lambda j: [int.from_bytes(key[j + o : j + o + 4].ljust(4, b"\0"), "little") for o in (0, 4, 8)]
    i = 0
    while length - i > 12:
        x, y, z = words(i)
        a, b, c = (a + x) & M32, (b + y) & M32, (c + z) & M32
        a = (a - c) & M32; a ^= _rot(c, 4); c = (c + b) & M32  # noqa: E702
        b = (b - a) & M32; b ^= _rot(a, 6); a = (a + c) & M32  # noqa: E702
        c = (c - b) & M32; c ^= _rot(b, 8); b = (b + a) & M32  # noqa: E702
        a = (a - c) & M32; a ^= _rot(c, 16); c = (c + b) & M32  # noqa: E702
        b = (b - a) & M32; b ^= _rot(a, 19); a = (a + c) & M32  # noqa: E702
        c = (c - b) & M32; c ^= _rot(b, 4); b = (b + a) & M32  # noqa: E702
        i += 12
    x, y, z = words(i)  # the last 1-12 bytes, zero-padded (adding 0 is a no-op)
    a, b, c = (a + x) & M32, (b + y) & M32, (c + z) & M32
    c ^= b; c = (c - _rot(b, 14)) & M32  # noqa: E702
    a ^= c; a = (a - _rot(c, 11)) & M32  # noqa: E702
    b ^= a; b = (b - _rot(a, 25)) & M32  # noqa: E702
    c ^= b; c = (c - _rot(b, 16)) & M32  # noqa: E702
    a ^= c; a = (a - _rot(c, 4)) & M32  # noqa: E702
    b ^= a; b = (b - _rot(a, 14)) & M32  # noqa: E702
    c ^= b; c = (c - _rot(b, 24)) & M32  # noqa: E702
    return c


def hsieh(key):
    """twemproxy's `hsieh` (Paul Hsieh's SuperFastHash); on x86-64 and ARM
    get16bits reads bytes unsigned, but the 3-byte tail's last byte is read
    through `const char *` and sign-extended."""
    n = len(key)
    if n == 0:
        return 0
    h, i = 0, 0
    for _ in range(n >> 2):
        h = (h + (key[i] | key[i + 1] << 8)) & M32
        tmp = (((key[i + 2] | key[i + 3] << 8) << 11) ^ h) & M32
        h = ((h << 16) & M32) ^ tmp
        i += 4
        h = (h + (h >> 11)) & M32
    rest = n & 3
    if rest == 3:
        h = (h + (key[i] | key[i + 1] << 8)) & M32
        h ^= (h << 16) & M32
        h ^= (_signed(key[i + 2], M32) << 18) & M32
        h = (h + (h >> 11)) & M32
    elif rest == 2:
        h = (h + (key[i] | key[i + 1] << 8)) & M32
        h ^= (h << 11) & M32
        h = (h + (h >> 17)) & M32
    elif rest == 1:
        h = (h + key[i]) & M32
        h ^= (h << 10) & M32
        h = (h + (h >> 1)) & M32
    h ^= (h << 3) & M32
    h = (h + (h >> 5)) & M32
    h ^= (h << 4) & M32
    h = (h + (h >> 17)) & M32
    h ^= (h << 25) & M32
    h = (h + (h >> 6)) & M32
    return h


HASHES = {
    "md5": md5,
    "fnv1_64": fnv1_64,
    "fnv1a_64": fnv1a_64,
    "fnv1_32": fnv1_32,
    "fnv1a_32": fnv1a_32,
    "one_at_a_time": one_at_a_time,
    "crc32": crc32,
    "crc32a": crc32a,
    "crc16": crc16,
    "murmur": murmur,
    "jenkins": jenkins,
    "hsieh": hsieh,
}
