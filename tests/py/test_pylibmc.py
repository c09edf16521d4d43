"""pylibmc (libmemcached) in text and binary modes, and ketama hashing
across three corecache instances."""
import pylibmc
import pytest

from conftest import Server


@pytest.fixture(params=[False, True], ids=["text", "binary"])
def lc(server, request):
    c = pylibmc.Client([server.addr()], binary=request.param, behaviors={"cas": True})
    c.flush_all()
    yield c
    c.disconnect_all()


def test_basic(lc):
    lc.set("k", "v")
    assert lc.get("k") == "v"
    lc.set_multi({"a": 1, "b": 2, "c": 3})
    assert lc.get_multi(["a", "b", "c", "d"]) == {"a": 1, "b": 2, "c": 3}
    assert lc.delete("k")
    assert lc.get("k") is None


def test_cas_incr_decr(lc):
    lc.set("n", 5)
    assert lc.incr("n", 10) == 15
    assert lc.decr("n", 20) == 0
    lc.set("c", "x")
    v, cas = lc.gets("c")
    assert lc.cas("c", "y", cas)
    assert not lc.cas("c", "z", cas)
    assert lc.get("c") == "y"


def test_append_prepend(lc):
    lc.set("s", "mid")
    lc.append("s", "-end")
    lc.prepend("s", "start-")
    assert lc.get("s") == "start-mid-end"


def test_ketama_across_three_instances():
    servers = [Server("-t", "1", "-m", "16") for _ in range(3)]
    try:
        addrs = [s.addr() for s in servers]
        c = pylibmc.Client(addrs, behaviors={"ketama": True})
        data = {f"ring{i}": f"v{i}" for i in range(300)}
        c.set_multi(data)
        assert c.get_multi(list(data)) == data
        # every instance got a share of the keys
        counts = []
        for a in addrs:
            single = pylibmc.Client([a])
            counts.append(len(single.get_multi(list(data))))
        assert sum(counts) == 300
        assert all(n > 30 for n in counts), counts
    finally:
        for s in servers:
            s.stop()


def test_connection_churn(server):
    """Hundreds of short connections, each with a flush broadcast to the
    other worker, as libmemcached opens and quits them: every one must be
    served. (A stale socket operation landing on a reused descriptor shows
    up here as a connection closed before its first reply.)"""
    for i in range(300):
        for binary in (False, True):
            c = pylibmc.Client([server.addr()], binary=binary)
            c.flush_all()
            c.set("churn", i)
            assert c.get("churn") == i
            c.disconnect_all()
