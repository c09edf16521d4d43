"""Introspection against memcached (issue 15): the same items stored in
both, then `lru_crawler metadump`, `stats cachedump`, `stats items` and
`stats slabs` must list the same keys in the same size classes with the
same metadata (times compared as offsets from now, CAS only as present)."""
import re
import time
from urllib.parse import unquote_to_bytes

import pytest

# Keys needing URL encoding, flags 0 and not, no TTL, a relative and an
# absolute one, values from 1 byte to 200 KB (classes 1 to 36), one read.
ITEMS = [
    (b"plain", 0, 0, 1),
    (b"pct%20key", 5, 100, 10),
    (b"slash/and:colon", 7, 0, 100),
    (b"utf8-\xc3\xa9", 0, 3000, 1000),
    (b"big", 1, 0, 5000),
    (b"bigger", 0, 0, 200_000),
    (b"abs", 0, int(time.time()) + 5000, 300),
] + [(b"many:%d" % i, i, 0, 50 + i * 7) for i in range(40)]
EXPTIME = {key: exp for key, _, exp, _ in ITEMS}


def seed(c):
    for key, flags, exp, size in ITEMS:
        assert c.text(b"set %s %d %d %d\r\n%s\r\n" % (key, flags, exp, size, b"v" * size)) == b"STORED\r\n"
    assert c.text(b"get plain\r\n").startswith(b"VALUE plain")


# memcached ends these lines with a bare \n (END with \r\n).
LINE = re.compile(rb"key=(\S+) exp=(-?\d+) la=(\d+) cas=(\d+) fetch=(yes|no) cls=(\d+) size=(\d+)\n")


def metadump(c, arg=b"all"):
    out = c.lines_until(b"lru_crawler metadump " + arg + b"\r\n")
    now = int(time.time())
    rows = set()
    body = out[: -len(b"END\r\n")]
    for m in LINE.finditer(body):
        key, exp, la, cas, fetch, cls, size = m.groups()
        exp = int(exp)
        # Expiry as the exptime it was stored with, once the seconds left
        # are within 30 s of what that exptime leaves now: the servers
        # stored a moment apart, their whole-second clocks lag time() by
        # up to a second or two, and a loaded machine adds seconds more.
        # (10 s buckets of the seconds left put a boundary at 5 s past a
        # relative TTL, and anywhere for an absolute one.)
        given = EXPTIME.get(unquote_to_bytes(key))
        if exp == -1 or given is None:
            rel = exp if exp == -1 else ("unknown", exp - now)
        else:
            left = given - now if given > 30 * 86400 else given
            assert abs(exp - now - left) <= 30, (key, exp - now, left)
            rel = given
        assert abs(int(la) - now) < 30 and int(cas) > 0
        rows.add((key, rel, fetch, int(cls), int(size)))
    assert len(LINE.findall(body)) == body.count(b"\n"), body[:300]
    return sorted(rows)


@pytest.fixture
def seeded(make_pair):
    p = make_pair("-t", "2", "-m", "64")
    for srv in p.servers():
        with srv.connect() as c:
            seed(c)
    return p


def test_metadump_all_lists_the_same_items(seeded):
    mc = seeded.same(lambda c: metadump(c))
    assert len(mc) == len(ITEMS)


@pytest.mark.parametrize("arg", [b"hash", b"1,3", b"36"])
def test_metadump_by_hash_and_classes(seeded, arg):
    seeded.same(lambda c: metadump(c, arg))


def cachedump(c):
    items = c.stats(b"items")
    classes = sorted({int(k.split(":")[1]) for k in items})
    out = {}
    for cls in classes:
        r = c.lines_until(b"stats cachedump %d 0\r\n" % cls)
        out[cls] = sorted(re.findall(rb"ITEM (\S+) \[(\d+) b; \d+ s\]", r))
    return out


def test_cachedump_lists_each_class(seeded):
    # memcached lists only items its LRU maintainer has moved to COLD:
    # ask until it has them all, as memcdump's users do (for up to 15 s: the
    # maintainer thread is slower to get to them on a loaded machine).
    for _ in range(150):
        mc, cc = seeded.run(cachedump)
        if sum(len(v) for v in mc.values()) == len(ITEMS):
            break
        time.sleep(0.1)
    assert cc == mc


def test_cachedump_limit_and_errors(seeded):
    def script(c):
        one = c.lines_until(b"stats cachedump 1 1\r\n").count(b"ITEM ")
        return [one, c.text(b"stats cachedump 99 0\r\n"), c.text(b"stats cachedump\r\n")]
    mc, cc = seeded.run(script)
    assert cc[1:] == mc[1:] and cc[0] == 1


def class_figures(c):
    items = c.stats(b"items")
    slabs = c.stats(b"slabs")
    fig = {}
    for k, v in items.items():
        m = re.fullmatch(r"items:(\d+):(number|evicted|outofmemory|reclaimed)", k)
        if m:
            fig[(int(m.group(1)), m.group(2))] = v
    for k, v in slabs.items():
        m = re.fullmatch(r"(\d+):(chunk_size|chunks_per_page|used_chunks|cmd_set|get_hits)", k)
        if m:
            fig[(int(m.group(1)), m.group(2))] = v
    return sorted(fig.items())


def test_class_figures_match(seeded):
    seeded.same(class_figures)


@pytest.mark.parametrize("line,reply", [
    (b"lru_crawler crawl all", b"OK\r\n"),
    (b"lru_crawler metadump nope", b"BADCLASS invalid class id\r\n"),
    (b"lru_crawler metadump 1 2", b"ERROR\r\n"),
    (b"lru_crawler crawl 1,x", None),
    (b"lru_crawler", b"ERROR\r\n"),
    (b"slabs automove 1", b"OK\r\n"),
    (b"slabs automove 9", b"ERROR\r\n"),
    (b"slabs reassign 1 2", None),
    (b"slabs reassign -1 4", None),
    (b"slabs reassign 0 4", None),
    # lru: accepted and changing nothing here, answered as memcached does
    (b"lru mode flat", b"OK\r\n"),
    (b"lru mode segmented extra", b"OK\r\n"),
    (b"lru mode bogus", b"ERROR\r\n"),
    (b"lru mode", b"ERROR\r\n"),
    (b"lru tune 20 20 0.1 2", b"OK\r\n"),
    (b"lru tune 50 40 0.1 2", None),
    (b"lru tune 20 20 0 2", None),
    (b"lru tune 20 20 0.1", b"ERROR\r\n"),
    (b"lru tune -1 20 1 1", None),
    (b"lru tune 4294967295 82 0.1 2", None),
    (b"lru temp_ttl -1", b"OK\r\n"),
    (b"lru temp_ttl x", b"ERROR\r\n"),
    (b"lru temp_ttl 99999999999999999999", None),
    (b"lru tune -0 20 0x10 nan(1)", b"OK\r\n"),
    (b"lru tune 20 20 1e400 2", b"ERROR\r\n"),
    (b"lru tune 20 20 1e-310 2", b"ERROR\r\n"),
    (b"lru temp_ttl \t5", b"OK\r\n"),
    (b"lru", b"ERROR\r\n"),
    (b"lru bogus", b"ERROR\r\n"),
    (b"lru mode flat noreply", b""),
    (b"lru mode bogus noreply", b""),
    (b"lru tune 50 40 0.1 2 noreply", b""),
])
def test_admin_lines(seeded, line, reply):
    mc = seeded.same(lambda c: c.text(line + b"\r\n"))
    assert reply is None or mc == reply


def test_metadump_does_not_interleave_pipelined_requests(seeded):
    cc = seeded.cc
    with cc.connect() as c:
        c.send(b"lru_crawler metadump all\r\nget plain\r\n")
        out = b""
        for _ in range(100):
            out += c.lines_until(b"")
            if out.count(b"END\r\n") >= 2 or out.endswith(b">"):
                break
    dump, rest = out.split(b"END\r\n", 1)
    assert dump.count(b"key=") == len(ITEMS) and rest == b"VALUE plain 0 1\r\nv\r\nEND\r\n"
