"""Server-wide behaviour, memcached as the oracle (issue 15): counters in
`stats` after the same traffic, `stats reset` across workers,
`cache_memlimit`, `-F` (flush disabled), `-I` (oversized values in every
protocol), and which `stats` fields exist. Each test starts its own pair
so counters start from the same zero."""
import re
import time

import pytest

from oracle import (
    OP_ADD, OP_APPEND, OP_DECR, OP_PREPEND, OP_REPLACE, OP_FLUSH, OP_FLUSHQ, OP_GAT, OP_GET, OP_SETQ, OP_STAT, TIMEOUT, bin_delta, bin_request,
    bin_set, bin_touch,
)


def xfail(reason):
    return pytest.mark.xfail(strict=True, reason="issue 15: " + reason)


COUNTERS = [
    "cmd_get", "cmd_set", "cmd_flush", "cmd_touch", "cmd_meta", "get_hits", "get_misses", "get_expired", "get_flushed",
    "delete_misses", "delete_hits", "incr_misses", "incr_hits", "decr_misses", "decr_hits", "cas_misses",
    "cas_hits", "cas_badval", "touch_hits", "touch_misses", "store_too_large", "store_no_memory",
    "curr_items", "total_items",
]


def counters(c, names=COUNTERS):
    """The named counters, asked on a new text connection to c's server."""
    with c.server.connect() as t:
        st = t.stats()
    return {n: st.get(n) for n in names}


# Not `ma a` on this fetched key: memcached's do_add_delta rewrites in place
# only while it holds the sole reference (refcount 2), and here a released
# reply's reference sometimes still counts, so memcached links a new item
# (total_items + 1) in about one run of five. `ma` on a fresh key is in
# TOTAL_ITEMS below.
TRAFFIC = [
    b"set a 0 0 1\r\n1\r\n", b"get a b\r\n", b"gets a\r\n", b"add a 0 0 1\r\n2\r\n", b"add b 0 0 1\r\n2\r\n",
    b"replace c 0 0 1\r\n3\r\n", b"append a 0 0 1\r\n0\r\n", b"prepend z 0 0 1\r\n0\r\n", b"incr a 5\r\n",
    b"incr z 5\r\n", b"decr a 1\r\n", b"decr z 1\r\n", b"touch a 100\r\n", b"touch z 100\r\n",
    b"gat 100 a z\r\n", b"cas a 0 0 1 99999999\r\n9\r\n", b"cas z 0 0 1 99999999\r\n9\r\n", b"delete b\r\n", b"delete b\r\n",
    b"set e 0 -1 1\r\n1\r\n", b"get e\r\n", b"mg a v\r\n", b"mg z v\r\n", b"ms m 1\r\nx\r\n", b"md m\r\n",
    b"md m\r\n", b"ma z\r\n", b"mg a T30\r\n", b"mg z v T30\r\n", b"mg z T30\r\n", b"me a\r\n", b"me z\r\n",
]


def test_counters_after_traffic(make_pair):
    p = make_pair("-t", "2", "-m", "64")

    def script(c):
        for cmd in TRAFFIC:
            c.text(cmd)
        return counters(c)
    p.same(script)


def total_items_after(cmds, names):
    """`names` (total_items, curr_items) before and after `cmds` (text
    lines, or binary frames: bytes starting with the request magic 0x80)
    on a server that holds `a`=1."""
    def script(c):
        c.text(b"set a 0 0 1\r\n1\r\n")
        before = counters(c, names)
        for cmd in cmds:
            c.binary(cmd) if cmd[:1] == b"\x80" else c.text(cmd)
        return before, counters(c, names)
    return script


def items_case(id, *cmds, curr=True):
    """`curr=False`: memcached's curr_items still holds an expired item
    until its LRU crawler reclaims it, at a time of its own: not compared."""
    names = ["total_items", "curr_items"] if curr else ["total_items"]
    return pytest.param(cmds, names, id=id)


# memcached counts an item link (do_item_link): every store, an item made
# by a miss, and an incr/decr whose number outgrows the value; touch and
# an in-place incr/decr change an item without a link.
TOTAL_ITEMS = [
    items_case("touch", b"touch a 100\r\n"),
    items_case("touch_zero", b"touch a 0\r\n"),
    items_case("gat", b"gat 100 a\r\n"),
    items_case("gats_zero", b"gats 0 a\r\n"),
    items_case("mg_T", b"mg a T100\r\n"),
    items_case("mg_T_v", b"mg a T0 v\r\n"),
    items_case("incr", b"incr a 1\r\n"),
    items_case("decr", b"decr a 1\r\n"),
    items_case("incr_grows", b"incr a 9\r\n"),
    items_case("incr_grows_twice", b"incr a 99\r\n", b"incr a 900\r\n"),
    items_case("decr_shrinks", b"set a 0 0 2\r\n10\r\n", b"decr a 1\r\n", b"incr a 1\r\n"),
    items_case("ma", b"ma a\r\n"),
    items_case("ma_grows", b"ma a D10\r\n"),
    items_case("ma_decr", b"ma a MD\r\n"),
    items_case("append", b"append a 0 0 1\r\n0\r\n"),
    items_case("prepend", b"prepend a 0 0 1\r\n0\r\n"),
    items_case("set", b"set a 0 0 1\r\n2\r\n"),
    items_case("add_miss_and_hit", b"add b 0 0 1\r\n2\r\n", b"add a 0 0 1\r\n2\r\n"),
    items_case("replace", b"replace a 0 0 1\r\n2\r\n", b"replace z 0 0 1\r\n2\r\n"),
    items_case("cas", b"cas a 0 0 1 999999\r\n2\r\n", b"gets a\r\n"),
    items_case("ms_modes", b"ms a 1\r\n2\r\n", b"ms a 1 MA\r\n2\r\n", b"ms a 1 ME\r\n2\r\n", b"ms b 1 MR\r\n2\r\n"),
    items_case("incr_miss", b"incr z 1\r\n"),
    items_case("ma_autovivify", b"ma z N0 J1\r\n"),
    items_case("mg_autovivify", b"mg z N30\r\n"),
    items_case("md_invalidate", b"md a I T30\r\n", b"mg a v\r\n"),
    items_case("delete", b"delete a\r\n"),
    items_case("set_expired", b"set e 0 -1 1\r\n1\r\n", b"add a 0 -1 1\r\n1\r\n", b"ms m 1 T-1\r\nx\r\n", curr=False),
    items_case("touch_expired", b"touch a -1\r\n", curr=False),
    items_case("bin_touch_gat", bin_touch(b"a", 100), bin_touch(b"a", 0, op=OP_GAT)),
    items_case("bin_incr_in_place", bin_delta(b"a", 1), bin_delta(b"a", 1, op=OP_DECR)),
    items_case("bin_incr_grows", bin_delta(b"a", 10)),
    items_case("bin_incr_miss_creates", bin_delta(b"n", 1, initial=5)),
    items_case("bin_set_append", bin_set(b"a", b"2"), bin_request(OP_APPEND, b"a", value=b"3")),
]


@pytest.mark.parametrize("cmds,names", TOTAL_ITEMS)
def test_total_items(make_pair, cmds, names):
    p = make_pair("-t", "2", "-m", "64")
    p.same(total_items_after(cmds, names))


def per_command_counters(cmd):
    names = COUNTERS
    if b" -1 " in cmd:
        # memcached's curr_items still holds an expired item until its LRU
        # crawler reclaims it, at a time of its own: not compared.
        names = [n for n in COUNTERS if n != "curr_items"]

    def script(c):
        before = counters(c, names)
        c.text(cmd)
        after = counters(c, names)
        return {k: (before[k], after[k]) for k in before if before[k] != after[k]}
    return script


# Per command, where corecache still counts differently (none today).
COUNTER_DIFFERENCES = {}


def traffic_param(c):
    line = c.split(b"\r\n")[0]
    why = COUNTER_DIFFERENCES.get(line)
    return pytest.param(c, id=line.decode(), marks=xfail(why) if why else ())


@pytest.mark.parametrize("cmd", [traffic_param(c) for c in TRAFFIC])
def test_counters_per_command(make_pair, cmd):
    """Which counters one command moves, on a server that holds `a`=1."""
    p = make_pair("-t", "2", "-m", "64")

    def script(c):
        c.text(b"set a 0 0 1\r\n1\r\n")
        return per_command_counters(cmd)(c)
    p.same(script)


# --- An item found expired by any command's lookup counts in get_expired
# --- (memcached's do_item_get), whichever way it came to be expired: set
# --- with a past exptime (text, meta, binary), or touched to a past time.

EXPIRED_BY = {
    "set": b"set e 0 -1 1\r\n1\r\n",
    "set_absolute_past": b"set e 0 1000000000 1\r\n1\r\n",
    "ms": b"ms e 1 T-1\r\n1\r\n",
    "touch": b"set e 0 0 1\r\n1\r\ntouch e -1\r\n",
    "gat": b"set e 0 0 1\r\n1\r\ngat -1 e\r\n",
    "mg_T": b"set e 0 100 1\r\n1\r\nmg e T-1 v\r\n",
    "bin_set": bin_set(b"e", b"1", exptime=2592001),
    "bin_touch": bin_set(b"e", b"1") + bin_touch(b"e", 1000000000),
}
LOOKUPS = [b"get e\r\n", b"gets e x\r\n", b"gat 10 e\r\n", b"touch e 10\r\n", b"delete e\r\n", b"incr e 1\r\n",
           b"set e 0 0 1\r\n2\r\n", b"add e 0 0 1\r\n2\r\n", b"replace e 0 0 1\r\n2\r\n", b"append e 0 0 1\r\n2\r\n",
           b"mg e v\r\n", b"md e\r\n", b"ma e\r\n", b"me e\r\n"]


def expired_case(how, lookup):
    names = [n for n in COUNTERS if n != "curr_items"]

    def script(c):
        # Made and looked up at once: both servers' crawlers reclaim an
        # expired item at a time of their own (uncounted in get_expired).
        made = EXPIRED_BY[how]
        before = counters(c, names)
        if made[:1] == b"\x80":
            out = [c.binary(made), c.text(lookup)]
        else:
            out = [c.text(made + lookup)]
        after = counters(c, names)
        # How much each moved, not the values: a retry (same_despite_reclaim)
        # runs on the same servers, whose counts an earlier attempt may have
        # left apart.
        out.append({k: int(after[k]) - int(before[k]) for k in names if before[k] != after[k]})
        return out
    return script


def same_despite_reclaim(p, script, tries=3):
    """memcached's LRU maintainer can reclaim a just-expired or just-flushed
    item before the lookup (then uncounted in get_expired or get_flushed)
    even though both go in one write: seen once in about thirty runs for
    expiry and once in about fifteen CI runs for flush_all (memcached: no
    get_flushed, corecache: one). The oracle is nondeterministic there, so
    corecache must match it in one of `tries` runs, each on fresh keys'
    state; scripts report how much counters moved, not their values."""
    for attempt in range(tries):
        try:
            return p.same(script)
        except AssertionError:
            if attempt == tries - 1:
                raise


@pytest.mark.parametrize("how", list(EXPIRED_BY))
def test_get_expired_by_how(make_pair, how):
    p = make_pair("-t", "2", "-m", "64")
    same_despite_reclaim(p, expired_case(how, b"get e\r\n"))


@pytest.mark.parametrize("lookup", LOOKUPS, ids=[x.split(b"\r\n")[0].decode() for x in LOOKUPS])
def test_get_expired_by_lookup(make_pair, lookup):
    p = make_pair("-t", "2", "-m", "64")
    same_despite_reclaim(p, expired_case("set", lookup))


def test_get_flushed_after_flush_all(make_pair):
    p = make_pair("-t", "2", "-m", "64")

    def script(c):
        names = ["get_flushed", "get_misses", "get_expired"]
        before = counters(c, names)
        out = [c.text(b"set f 0 0 1\r\n1\r\nflush_all\r\nget f\r\n")]
        after = counters(c, names)
        out.append({k: int(after[k]) - int(before[k]) for k in names})
        return out
    same_despite_reclaim(p, script)


@pytest.mark.parametrize("lookup", LOOKUPS, ids=[x.split(b"\r\n")[0].decode() for x in LOOKUPS])
def test_get_flushed_by_lookup(make_pair, lookup):
    """Every command's lookup that meets a flushed item counts get_flushed
    (memcached's do_item_get) and answers as a miss."""
    p = make_pair("-t", "2", "-m", "64")
    names = [n for n in COUNTERS if n != "curr_items"]

    def script(c):
        before = counters(c, names)
        out = [c.text(b"set e 0 0 1\r\n1\r\nflush_all\r\n" + lookup)]
        after = counters(c, names)
        out.append({k: int(after[k]) - int(before[k]) for k in names if before[k] != after[k]})
        return out
    same_despite_reclaim(p, script)


@pytest.mark.parametrize("arg", [b"1", b"2", b"-1", b"1000000000", b"2592001"])
def test_flush_all_delay_takes_effect_as_memcached(make_pair, arg):
    """memcached applies `flush_all N` once realtime(N) - 1 is not in the
    future (1 at once, 2 a second on) and never for an absolute time
    before its start; asked in the same packet."""
    p = make_pair("-t", "2", "-m", "64")
    p.same(lambda c: c.text(b"set a 0 0 1\r\n1\r\nflush_all " + arg + b"\r\nget a\r\n"))


def test_flushed_items_are_reclaimed_soon(make_pair):
    """flush_all answers at once and the items go afterwards (memcached's LRU
    maintainer, corecache's sweep): curr_items and bytes reach 0, every
    item counted reclaimed, without any lookup."""
    p = make_pair("-t", "2", "-m", "64")

    def script(c):
        n = 3000
        assert c.text(b"".join(b"set k%d 0 0 10 noreply\r\n0123456789\r\n" % i for i in range(n))) == b""
        assert counters(c, ["curr_items"]) == {"curr_items": b"%d" % n}
        assert c.text(b"flush_all\r\n") == b"OK\r\n"
        deadline = time.time() + 10
        while time.time() < deadline:
            got = counters(c, ["curr_items", "bytes", "reclaimed"])
            if got["curr_items"] == b"0":
                break
            time.sleep(0.05)
        return [got, c.text(b"get k1 k2999\r\n")]
    out = p.same(script)
    assert out[0] == {"curr_items": b"0", "bytes": b"0", "reclaimed": b"3000"}, out


# Not curr_connections: a just-closed connection's close is seen by each server
# at a time of its own.
RESET_NAMES = COUNTERS + ["total_connections", "evictions", "reclaimed", "expired_unfetched",
                          "evicted_unfetched"]


@pytest.mark.parametrize("how", ["text", "binary"])
def test_stats_reset_reaches_every_worker(make_pair, how):
    """Every counter memcached's stats_reset zeroes (global, per thread and
    per slab class: total_items and total_connections included) is zeroed
    on every worker; the gauges (curr_items, curr_connections) stay."""
    p = make_pair("-t", "2", "-m", "64")

    def script(c):
        # Several connections, so both workers see traffic.
        conns = [c.server.connect() for _ in range(6)]
        for i, k in enumerate(conns):
            k.text(b"set k%d 0 0 1\r\n1\r\nget k%d nope\r\nincr k%d 1\r\ntouch k%d 10\r\nmg k%d v\r\n" % ((i,) * 5))
            k.text(b"cas k%d 0 0 1 1\r\n2\r\ndelete nope\r\ndecr nope 1\r\n" % i)
        if how == "text":
            out = [c.text(b"stats reset\r\n")]
        else:
            out = [c.server.connect().binary(bin_request(OP_STAT, b"reset"))]
        for k in conns:
            out.append(counters(k, RESET_NAMES))
        for k in conns:
            k.close()
        return out
    p.same(script)


def test_cache_memlimit(make_pair):
    p = make_pair("-t", "2", "-m", "64")

    def script(c):
        out = []
        for cmd in [b"cache_memlimit 128\r\n", b"cache_memlimit 32\r\n", b"cache_memlimit 7\r\n",
                    b"cache_memlimit x\r\n", b"cache_memlimit 96 noreply\r\n", b"cache_memlimit\r\n"]:
            out.append(c.text(cmd))
            out.append(c.stats().get("limit_maxbytes"))
            out.append(c.stats(b"settings").get("maxbytes"))
        return out
    p.same(script)


def test_cache_memlimit_below_what_the_index_has_grown_to(make_pair):
    """Lowered far below what the index has grown to (600 k small items on
    -m 1024), the limit is taken (memcached's hash table is outside its
    limit; corecache's index never shrinks, so its shards keep three
    segments) and writes go on; raised again, the cache fills again."""
    p = make_pair("-t", "2", "-m", "1024")

    def script(c):
        for b in range(0, 600_000, 5000):
            c.send(b"".join(b"set k%07d 0 0 10 noreply\r\n0123456789\r\n" % i
                            for i in range(b, b + 5000)))
        out = [c.stats().get("curr_items")]
        out.append(c.text(b"cache_memlimit 8\r\n"))
        out.append(c.stats().get("limit_maxbytes"))
        out.append(c.text(b"set after 0 0 1\r\nx\r\n"))
        out.append(c.text(b"get after\r\n"))
        out.append(c.text(b"cache_memlimit 1024\r\n"))
        out.append(c.stats().get("limit_maxbytes"))
        return out
    out = p.same(script)
    assert out[0] == b"600000", out
    assert out[1] == b"OK\r\n", out


def test_cache_memlimit_growth_holds_more(make_pair):
    """Grown past -m, the cache holds what -m could not: 30 MB of values
    on -m 16 raised to 96 all stay, in both (shrinking back evicts)."""
    p = make_pair("-t", "2", "-m", "16")
    value = b"v" * 10000

    def script(c):
        out = [c.text(b"cache_memlimit 96\r\n")]
        for i in range(3000):
            c.send(b"set k%d 0 0 %d noreply\r\n%s\r\n" % (i, len(value), value))
        hits = sum(c.text(b"get k%d\r\n" % i).startswith(b"VALUE") for i in range(3000))
        out.append(hits)
        out.append(c.stats().get("limit_maxbytes"))
        return out
    out = p.same(script)
    assert out[1] == 3000, out


# --- -F: flush disabled in every protocol; the data stays. ---

def test_flush_disabled(make_pair):
    p = make_pair("-t", "2", "-m", "64", "-F")

    def script(c):
        return [c.text(b"set k 0 0 1\r\na\r\n"), c.text(b"flush_all\r\n"), c.text(b"flush_all 0\r\n"),
                c.text(b"flush_all noreply\r\n"), c.text(b"get k\r\n"),
                c.server.connect().binary(bin_request(OP_FLUSH), bin_request(OP_FLUSHQ), bin_request(OP_GET, b"k")),
                c.text(b"get k\r\n"), counters(c, ["cmd_flush", "curr_items"])]
    out = p.same(script)
    assert out[4].startswith(b"VALUE k")


# --- -I: a value over the limit is refused in every protocol; a set
# --- (text, meta ms in set mode, binary SET) also removes the old value.

BIG = 4000
# memcached refuses an -I below its slab_chunk_max (512 KiB by default), so
# it is given a smaller one; it changes no reply.
SMALL_I = dict(args=("-t", "2", "-m", "64", "-I", "2k"), mc_args=("-o", "slab_chunk_max=1024"))


def oversize_text(cmds):
    def script(c):
        out = [c.text(b"set k 0 0 1\r\na\r\n")]
        for cmd in cmds:
            out.append(c.text(cmd))
        out.append(c.text(b"get k\r\n"))
        out.append(counters(c, ["store_too_large", "curr_items"]))
        return out
    return script


def store(cmd, n=BIG, extra=b""):
    return cmd + b" k 0 0 %d%s\r\n" % (n, extra) + b"x" * n + b"\r\n"


OVERSIZE_TEXT = [
    pytest.param([store(b"set")], id="set"),
    pytest.param([store(b"set", extra=b" noreply")], id="set_noreply"),
    pytest.param([store(b"add")], id="add"),
    pytest.param([store(b"replace")], id="replace"),
    pytest.param([store(b"append")], id="append"),
    pytest.param([store(b"prepend")], id="prepend"),
    pytest.param([b"cas k 0 0 %d 1\r\n" % BIG + b"x" * BIG + b"\r\n"], id="cas"),
    pytest.param([b"set k 0 0 1500\r\n" + b"y" * 1500 + b"\r\n", b"append k 0 0 1500\r\n" + b"z" * 1500 + b"\r\n"], id="append_grows_past"),
    pytest.param([b"ms k %d\r\n" % BIG + b"x" * BIG + b"\r\n"], id="ms"),
    pytest.param([b"ms k %d MA\r\n" % BIG + b"x" * BIG + b"\r\n"], id="ms_append"),
    pytest.param([b"ms k %d q O5\r\n" % BIG + b"x" * BIG + b"\r\n"], id="ms_quiet"),
    pytest.param([b"ms k %d ME\r\n" % BIG + b"x" * BIG + b"\r\n"], id="ms_add"),
]


@pytest.mark.parametrize("cmds", OVERSIZE_TEXT)
def test_oversize_text_and_meta(make_pair, cmds):
    p = make_pair(*SMALL_I["args"], mc_args=SMALL_I["mc_args"])
    out = p.same(oversize_text(cmds))
    assert TIMEOUT not in b"".join(x for x in out if isinstance(x, bytes))


# memcached's proto_bin counts no store_too_large (text and meta do); SET
# also removes the old value, ADD and APPEND keep it.
OVERSIZE_BIN = [
    pytest.param([bin_set(b"k", b"x" * BIG)], id="set"),
    pytest.param([bin_set(b"k", b"x" * BIG, op=OP_SETQ)], id="setq"),
    pytest.param([bin_set(b"k", b"x" * BIG, op=OP_ADD)], id="add"),
    pytest.param([bin_set(b"k", b"x" * BIG, op=OP_REPLACE)], id="replace"),
    pytest.param([bin_request(OP_APPEND, b"k", value=b"x" * BIG)], id="append"),
    pytest.param([bin_request(OP_PREPEND, b"k", value=b"x" * BIG)], id="prepend"),
    pytest.param([bin_set(b"k", b"x" * 100000)], id="set_100k"),
    pytest.param([bin_set(b"k", b"x" * 1500), bin_request(OP_APPEND, b"k", value=b"y" * 1500)], id="append_grows_past"),
]


@pytest.mark.parametrize("reqs", OVERSIZE_BIN)
def test_oversize_binary(make_pair, reqs):
    p = make_pair(*SMALL_I["args"], mc_args=SMALL_I["mc_args"])

    def script(c):
        return [c.binary(bin_set(b"k", b"a")), c.binary(*reqs), c.binary(bin_request(OP_GET, b"k")),
                counters(c, ["store_too_large", "curr_items"])]
    p.same(script)


# --- Which stats fields exist (values differ by nature; names must not). ---

def names_missing(p, group):
    def script(c):
        c.text(b"set k 0 0 100\r\n" + b"v" * 100 + b"\r\n")
        # conns: names start with the connection's descriptor.
        return sorted({re.sub(r"^\d+:", "N:", k) for k in c.stats(group)})
    mc, cc = p.run(script)
    return sorted(set(mc) - set(cc))


@pytest.mark.parametrize("group", [b"", b"settings", b"items", b"slabs", b"conns"],
                         ids=["general", "settings", "items", "slabs", "conns"])
def test_stats_field_names(make_pair, group):
    p = make_pair("-t", "2", "-m", "64")
    missing = names_missing(p, group)
    assert not missing, f"missing in corecache: {missing}"


def test_stats_sizes(make_pair):
    p = make_pair("-t", "2", "-m", "64")
    p.same(lambda c: c.lines_until(b"stats sizes\r\n"))


@pytest.mark.parametrize("enabled", [False, True])
def test_shutdown_with_a_bad_mode_as_memcached(make_pair, enabled):
    """`shutdown foo` and `shutdown graceful x`: with -A memcached answers
    CLIENT_ERROR invalid shutdown mode and serves on; without -A, ERROR:
    shutdown not enabled (corecache answered ERROR to both)."""
    p = make_pair("-t", "2", "-m", "64", *(["-A"] if enabled else []))
    p.same(lambda c: [c.text(b"shutdown foo\r\n"), c.text(b"shutdown graceful x\r\n"),
                      c.text(b"shutdown graceful x y\r\n")])
    # Both still serve.
    for srv in p.servers():
        assert srv.alive()
