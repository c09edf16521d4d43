"""`-C` (CAS off), memcached as the oracle, text, meta and binary.

memcached's `-C` makes `ITEM_get_cas` read 0 for every item (memcached.h),
so every CAS a client sees is 0 and every unique it sends is compared with
0: text `cas` and meta set/replace with `C` fail (EXISTS / NOT_FOUND),
`md C0` matches, `ma`/`md` with a nonzero `C` and binary delete/incr with
a CAS fail, binary stores and meta append/prepend store as if no CAS was
sent. corecache used to warn that `-C` had no effect and kept real CAS
values. Both servers run `-C -t 2`, and each script runs over keys of both
workers, so reads served by the other worker (foreign reads) are covered.
The Normaliser keeps 0 as 0, so a nonzero CAS from either server shows.
"""
import pytest

from oracle import (
    OP_ADD, OP_APPEND, OP_DELETE, OP_GAT, OP_GET, OP_GETK, OP_PREPEND, OP_REPLACE, OP_SET,
    TIMEOUT, Pair, bin_delta, bin_request, bin_set,
)

# No flush_all between tests: with CAS off memcached's item_is_flushed
# judges by time alone, so it hides items stored in the same second as a
# flush. Each test uses its own keys instead.
@pytest.fixture(scope="module")
def pair():
    p = Pair("-C", "-t", "2", "-m", "64")
    yield p
    p.stop()


def keys(prefix):
    return [b"%s%d" % (prefix, i) for i in range(8)]


def each_key(prefix, cmds):
    """Runs the commands (with `%s` for the key) over 8 keys."""
    def script(c):
        out = []
        for k in keys(prefix):
            out.extend(c.text(x.replace(b"%s", k)) for x in cmds)
        return out
    return script


TEXT = [
    b"set %s 0 0 1\r\na\r\n",
    b"gets %s\r\n",
    b"gats 100 %s\r\n",
    b"cas %s 0 0 1 0\r\nb\r\n",
    b"cas %s 0 0 1 1\r\nb\r\n",
    b"cas %s 0 0 1 12345\r\nb\r\n",
    b"cas %s_missing 0 0 1 1\r\nb\r\n",
    b"append %s 0 0 1\r\nc\r\n",
    b"gets %s %s_missing\r\n",
    b"incr %s 1\r\n",
]


def test_text_cas_off(pair):
    out = pair.same(each_key(b"t", TEXT))
    joined = b"".join(out)
    assert TIMEOUT not in joined
    assert b"VALUE t0 0 1 0\r\n" in joined, joined


META = [
    b"ms %s 1 c\r\na\r\n",
    b"mg %s c v\r\n",
    b"mg %s c k s t\r\n",
    b"ms %s 1 C0 c\r\nb\r\n",
    b"ms %s 1 C7 c\r\nb\r\n",
    b"ms %s 1 MR C7\r\nb\r\n",
    b"ms %s 1 MA C7 c\r\nb\r\n",
    b"ms %s 1 MP C0\r\nz\r\n",
    b"ms %s 1 ME C7\r\nb\r\n",
    b"ms %s_new 1 ME C7 c\r\nb\r\n",
    b"mg %s v c\r\n",
    b"ms %s_n 1\r\n5\r\n",
    b"ma %s_n C7 v\r\n",
    b"ma %s_n C0 v c\r\n",
    b"md %s C7\r\n",
    b"md %s C0 q\r\n",
    b"mg %s v\r\n",
    b"ms %s 1 I\r\nw\r\n",
    b"md %s I C0 T30\r\n",
    b"mg %s c v\r\n",
    b"mg %s_viv c N30\r\n",
    b"mn\r\n",
]


def test_meta_cas_off(pair):
    out = pair.same(each_key(b"m", META))
    joined = b"".join(out)
    assert TIMEOUT not in joined
    assert b"VA 1 c0\r\n" in joined, joined


def binary_script(c):
    out = []
    for k in keys(b"b"):
        out.append(c.binary(bin_set(k, b"1")))
        got = c.binary(bin_request(OP_GET, k))
        out.append(got)
        out.append(c.binary(bin_request(OP_GETK, k)))
        out.append(c.binary(bin_request(OP_GAT, k, extras=b"\0\0\0\x64")))
        out.append(c.binary(bin_set(k, b"2", cas=5)))
        out.append(c.binary(bin_set(k + b"_a", b"3", cas=5, op=OP_ADD)))
        out.append(c.binary(bin_set(k + b"_r", b"4", cas=5, op=OP_REPLACE)))
        out.append(c.binary(bin_request(OP_APPEND, k, value=b"x", cas=9)))
        out.append(c.binary(bin_request(OP_PREPEND, k, value=b"y", cas=9)))
        out.append(c.binary(bin_request(OP_GET, k)))
        out.append(c.binary(bin_set(k + b"_n", b"7", op=OP_SET)))
        out.append(c.binary(bin_delta(k + b"_n", 1, cas=3)))
        out.append(c.binary(bin_delta(k + b"_n", 1)))
        out.append(c.binary(bin_request(OP_DELETE, k, cas=9)))
        out.append(c.binary(bin_request(OP_DELETE, k, cas=0)))
        out.append(c.binary(bin_request(OP_GET, k)))
    return out


def test_binary_cas_off(pair):
    out = pair.same(binary_script)
    assert repr(TIMEOUT) not in repr(out), out


def test_settings_and_dump_report_cas_off(pair):
    def script(c):
        for k in keys(b"d"):
            c.text(b"set %s 0 0 1\r\na\r\n" % k)
        settings = c.stats(b"settings")
        dump = c.lines_until(b"lru_crawler metadump all\r\n")
        cas = sorted(set(t for line in dump.split(b"\r\n") for t in line.split(b" ") if t.startswith(b"cas=")))
        return settings["cas_enabled"], cas
    mc, cc = pair.run(script)
    assert mc == cc == (b"no", [b"cas=0"]), (mc, cc)
