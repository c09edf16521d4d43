"""python-binary-memcached (binary protocol) against corecache."""
import bmemcached
import pytest


@pytest.fixture
def bc(server):
    c = bmemcached.Client([server.addr()])
    c.flush_all()
    yield c
    c.disconnect_all()


def test_set_get_delete(bc):
    assert bc.set("k", "v")
    assert bc.get("k") == "v"
    assert bc.delete("k")
    assert bc.get("k") is None


def test_add_replace(bc):
    assert bc.add("a", "1")
    assert not bc.add("a", "2")
    assert bc.replace("a", "3")
    assert not bc.replace("nokey", "3")
    assert bc.get("a") == "3"


def test_cas(bc):
    bc.set("c", "1")
    v, cas = bc.gets("c")
    assert v == "1"
    assert bc.cas("c", "2", cas)
    assert not bc.cas("c", "3", cas)
    assert bc.get("c") == "2"


def test_incr_decr(bc):
    bc.set("n", 10)
    assert bc.incr("n", 5) == 15
    assert bc.decr("n", 100) == 0


def test_multi(bc):
    data = {f"bk{i}": f"v{i}" for i in range(50)}
    bc.set_multi(data)
    assert bc.get_multi(list(data) + ["nope"]) == data
    bc.delete_multi(list(data)[:10])
    assert bc.get("bk0") is None


def test_expiry_and_types(bc):
    bc.set("t", {"a": [1, 2]}, time=100)
    assert bc.get("t") == {"a": [1, 2]}
    # Binary exptimes are unsigned 32-bit: -1 goes out as 0xFFFFFFFF, an
    # absolute time in 2106, so the item lives (memcached 1.6.18 keeps it).
    bc.set("later", "x", time=-1)
    assert bc.get("later") == "x"
    bc.set("i", 42)
    assert bc.get("i") == 42


def test_stats_and_flush(bc):
    st = bc.stats()
    (srv,) = st.values()
    assert "curr_items" in srv
    bc.set("f", "x")
    bc.flush_all()
    assert bc.get("f") is None
