"""Client-side ketama rings (libmemcached through pylibmc and
php-memcached) over corecache nodes and over memcached nodes: placement as
the ketama model says, a fourth node taking about a quarter of the keys, and
the libketama-compatible clients and twemproxy agreeing on every key."""
import json
import subprocess

import pylibmc
import pytest

from topology import Cluster, Ring, Server, Twemproxy, fixed_ports, kind, report  # noqa: F401

MODES = {
    # pylibmc behaviors -> the same ring in the model
    "ketama": ({"ketama": True}, dict(flavour="libmemcached", hash="one_at_a_time", weighted=False)),
    "ketama_weighted": ({"ketama_weighted": True}, dict(flavour="libmemcached", hash="md5", weighted=True)),
}


def ring_for(nodes, mode):
    return Ring([Server.parse(n.addr()) for n in nodes], **MODES[mode][1])


def fill(client, keys):
    for i in range(0, len(keys), 200):
        assert client.set_multi({k: k for k in keys[i : i + 200]}) == []


@pytest.mark.parametrize("mode", sorted(MODES))
def test_pylibmc_places_keys_as_the_model(kind, mode):
    cluster = Cluster(kind, 3)
    try:
        keys = [f"obj:{i}" for i in range(3000)]
        c = pylibmc.Client(cluster.addrs(), behaviors=MODES[mode][0])
        fill(c, keys)
        ring = ring_for(cluster.nodes, mode)
        for i, node in enumerate(cluster.nodes):
            expected = {k for k in keys if ring.index_of(k) == i}
            assert node.keys_present(keys) == expected
            assert len(expected) > 500
    finally:
        cluster.close()


@pytest.mark.parametrize("mode", sorted(MODES))
def test_fourth_node_takes_about_a_quarter(kind, mode):
    """Three nodes, then a fourth added to the client's list: the keys that
    now miss are exactly the ones whose owner became the new node, none
    moved between the old nodes, and their share is within 20 % of 1/4.
    Fixed ports: the share depends on the servers' names ("host:port"); the
    model gives 1-2 % of random port sets a share outside 20 % of 1/4 with
    these keys (docs/SCALE-OUT.md)."""
    cluster = Cluster(kind, 3, ports=fixed_ports(4))
    try:
        keys = [f"item:{i}" for i in range(8000)]
        before = pylibmc.Client(cluster.addrs(), behaviors=MODES[mode][0])
        fill(before, keys)
        assert len(before.get_multi(keys)) == len(keys)
        new_node = cluster.add()
        after = pylibmc.Client(cluster.addrs(), behaviors=MODES[mode][0])
        got = {}
        for i in range(0, len(keys), 500):
            got.update(after.get_multi(keys[i : i + 500]))
        missed = {k for k in keys if k not in got}
        assert all(got[k] == k for k in got)
        old_ring, new_ring = ring_for(cluster.nodes[:3], mode), ring_for(cluster.nodes, mode)
        moved = {k for k in keys if new_ring.owner(k).addr() != old_ring.owner(k).addr()}
        assert missed == moved
        assert all(new_ring.owner(k).addr() == new_node.addr() for k in moved)
        share = len(moved) / len(keys)
        report(f"moved-share[{kind},{mode}]", keys=len(keys), moved=len(moved), share=round(share, 4), ideal=0.25,
               deviation=f"{(share - 0.25) / 0.25:+.1%}")
        assert abs(share - 0.25) <= 0.25 * 0.20, share
        # the old owners still hold the moved keys: what a warm copies from
        held = set()
        for n in cluster.nodes[:3]:
            held |= n.keys_present(sorted(moved))
        assert held == moved
    finally:
        cluster.close()


PHP_SET = r"""
$m = new Memcached();
$m->setOption(Memcached::OPT_LIBKETAMA_COMPATIBLE, true);
$servers = json_decode($argv[1], true);
foreach ($servers as $s) { $m->addServer($s[0], $s[1]); }
$n = 0;
foreach (json_decode($argv[2], true) as $k) { if ($m->set($k, $k)) { $n++; } }
echo json_encode(["stored" => $n]);
"""


def php(script, *args):
    out = subprocess.run(["php", "-r", script, "--", *args], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_libketama_clients_and_twemproxy_agree(kind):
    """pylibmc with ketama_weighted, php-memcached with
    OPT_LIBKETAMA_COMPATIBLE and twemproxy with `hash: md5` put every key on
    the same node: a Python service, a PHP one and a proxy share one cache."""
    import pymemcache

    cluster = Cluster(kind, 3)
    proxy = Twemproxy(cluster.nodes, hash="md5")
    try:
        ring = ring_for(cluster.nodes, "ketama_weighted")
        py_keys = [f"py:{i}" for i in range(1000)]
        php_keys = [f"php:{i}" for i in range(1000)]
        tw_keys = [f"tw:{i}" for i in range(1000)]
        fill(pylibmc.Client(cluster.addrs(), behaviors={"ketama_weighted": True}), py_keys)
        servers = json.dumps([["127.0.0.1", n.port] for n in cluster.nodes])
        assert php(PHP_SET, servers, json.dumps(php_keys)) == {"stored": len(php_keys)}
        tw = pymemcache.Client(proxy.addr(), default_noreply=False)
        for i in range(0, len(tw_keys), 100):
            assert tw.set_many({k: k for k in tw_keys[i : i + 100]}) == []
        keys = py_keys + php_keys + tw_keys
        for i, node in enumerate(cluster.nodes):
            assert node.keys_present(keys) == {k for k in keys if ring.index_of(k) == i}
        # and each client reads what the others wrote
        assert len(pylibmc.Client(cluster.addrs(), behaviors={"ketama_weighted": True}).get_multi(keys)) == len(keys)
        hits = sum(len(tw.get_many(keys[i : i + 100])) for i in range(0, len(keys), 100))
        assert hits == len(keys)
    finally:
        proxy.stop()
        cluster.close()
