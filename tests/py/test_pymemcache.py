"""pymemcache (text protocol) against corecache: every command it offers."""
import pytest
from pymemcache.client.base import Client
from pymemcache.exceptions import MemcacheServerError


@pytest.fixture
def mc(server):
    c = Client(("127.0.0.1", server.port), default_noreply=False)
    c.flush_all()
    yield c
    c.close()


def test_set_get_delete(mc):
    assert mc.set("k", b"v1") is True
    assert mc.get("k") == b"v1"
    assert mc.delete("k") is True
    assert mc.get("k") is None
    assert mc.delete("k") is False


def test_noreply_commands_take_effect(server):
    c = Client(("127.0.0.1", server.port), default_noreply=True)
    c.set("nr", b"1")
    c.add("nr2", b"x")
    c.incr("nr", 5)
    assert c.get("nr") == b"6"
    assert c.get("nr2") == b"x"
    c.delete("nr", noreply=True)
    assert c.get("nr") is None


def test_add_replace_append_prepend(mc):
    assert mc.add("a", b"1") is True
    assert mc.add("a", b"2") is False
    assert mc.replace("a", b"3") is True
    assert mc.replace("missing", b"3") is False
    assert mc.append("a", b"4") is True
    assert mc.prepend("a", b"0") is True
    assert mc.get("a") == b"034"
    assert mc.append("missing", b"x") is False


def test_gets_cas_loop(mc):
    mc.set("c", b"0")
    for i in range(20):
        v, cas = mc.gets("c")
        assert mc.cas("c", str(int(v) + 1).encode(), cas) is True
        # the same cas token cannot be used twice
        assert mc.cas("c", b"bad", cas) is False
    assert mc.get("c") == b"20"
    assert mc.cas("nokey", b"x", 123) is None


def test_incr_decr(mc):
    mc.set("n", b"10")
    assert mc.incr("n", 5) == 15
    assert mc.decr("n", 100) == 0
    mc.set("big", b"18446744073709551615")
    assert mc.incr("big", 1) == 0
    assert mc.incr("nokey", 1) is None
    mc.set("txt", b"abc")
    with pytest.raises(Exception):
        mc.incr("txt", 1)


def test_touch_and_gat(mc):
    mc.set("t", b"v", expire=100)
    assert mc.touch("t", 1000) is True
    assert mc.touch("missing", 10) is False
    assert mc.raw_command(b"gat 0 t", b"END\r\n") == b"VALUE t 0 1\r\nv\r\n"
    gats = mc.raw_command(b"gats 50 t missing", b"END\r\n")
    assert gats.startswith(b"VALUE t 0 1 ") and gats.endswith(b"\r\nv\r\n"), gats


def test_multiget_100_keys(mc):
    data = {f"mk{i}": f"value-{i}".encode() for i in range(100)}
    mc.set_many(data)
    got = mc.get_many(list(data) + ["absent1", "absent2"])
    assert got == data


def test_large_values_near_and_over_limit(mc):
    near = b"x" * (1024 * 1024 - 512)
    assert mc.set("large", near) is True
    assert mc.get("large") == near
    with pytest.raises(MemcacheServerError) as e:
        mc.set("large", b"y" * (1024 * 1024 + 1))
    assert "object too large for cache" in str(e.value)
    # a refused set drops the old value, as memcached does
    assert mc.get("large") is None
    # the connection is still in sync
    assert mc.set("after", b"ok") is True
    assert mc.get("after") == b"ok"


def test_flags_and_expiry(mc):
    mc.set("exp", b"v", expire=-1)
    assert mc.get("exp") is None
    mc.raw_command(b"set flagged 12345 0 2\r\nhi", b"\r\n")
    assert mc.raw_command(b"get flagged", b"END\r\n") == b"VALUE flagged 12345 2\r\nhi\r\n"


def test_stats_and_version(mc):
    s = mc.stats()
    for k in (b"pid", b"uptime", b"curr_connections", b"cmd_get", b"get_hits", b"limit_maxbytes", b"threads", b"curr_items"):
        assert k in s
    assert s[b"threads"] == 2
    # The memcached release whose protocol corecache speaks, then its own.
    assert mc.version().startswith(b"1.6.") and b"-corecache-" in mc.version()
