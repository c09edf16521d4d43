"""libmemcached replicas (MEMCACHED_BEHAVIOR_NUMBER_OF_REPLICAS, binary
protocol only) through pylibmc and php-memcached: each key is written to its
ketama owner and the next servers in the client's list, and reads go on
through the loss of a node. corecache nodes and memcached nodes alike."""
import json
import os
import subprocess

import pylibmc
import pytest

from topology import HERE, Cluster, Ring, Server, kind, report  # noqa: F401

N = 1000


def holders(ring, key, replicas):
    """libmemcached's replica placement: the owner, then the next indexes
    in the server list (not the next points on the ring)."""
    first = ring.index_of(key)
    return {(first + i) % len(ring.servers) for i in range(replicas + 1)}


def assert_placement(cluster, keys, replicas):
    ring = Ring([Server.parse(a) for a in cluster.addrs()], flavour="libmemcached", hash="md5", weighted=True)
    for i, node in enumerate(cluster.nodes):
        assert node.keys_present(keys) == {k for k in keys if i in holders(ring, k, replicas)}
    return ring


@pytest.mark.parametrize("replicas", [1, 2])
def test_pylibmc_replicas_answer_every_key_with_a_node_down(kind, replicas):
    cluster = Cluster(kind, 3)
    victim = cluster.nodes[1]
    try:
        behaviors = {"ketama_weighted": True, "num_replicas": replicas, "connect_timeout": 500}
        c = pylibmc.Client(cluster.addrs(), binary=True, behaviors=behaviors)
        keys = [f"rep:{i}" for i in range(N)]
        for k in keys:
            assert c.set(k, "v-" + k)
        # libmemcached sends replica writes quietly (SETQ) and leaves the
        # last ones in its output buffer until the connection is used again
        assert len(c.get_multi(keys)) == N
        ring = assert_placement(cluster, keys, replicas)

        victim.kill()
        # the first request routed to the dead node is how libmemcached
        # learns of it: an error or a miss for that one key
        probe = next(k for k in keys if ring.index_of(k) == 1)
        try:
            first = c.get(probe)
        except pylibmc.Error:
            first = "error"
        assert first in ("v-" + probe, None, "error")
        answered = sum(c.get(k) == "v-" + k for k in keys)
        multi = c.get_multi(keys)
        assert all(v == "v-" + k for k, v in multi.items())
        report(f"replicas-pylibmc[{kind},replicas={replicas}]", keys=N, answered_single_gets=answered,
               get_multi_returned=len(multi), first_probe="hit" if first == "v-" + probe else str(first))
        assert answered == N
    finally:
        victim.start()
        cluster.close()


def php_replicas(cluster, replicas, phase):
    servers = json.dumps([["127.0.0.1", n.port] for n in cluster.nodes])
    out = subprocess.run(["php", os.path.join(HERE, "php", "replicas.php"), servers, str(replicas), phase],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_php_memcached_replicas_answer_every_key_with_a_node_down(kind):
    cluster = Cluster(kind, 3)
    victim = cluster.nodes[1]
    try:
        assert php_replicas(cluster, 1, "set") == {"stored": N}
        assert_placement(cluster, [f"p:{i}" for i in range(N)], 1)
        victim.kill()
        rounds = php_replicas(cluster, 1, "get")
        report(f"replicas-php[{kind}]", keys=N, rounds=rounds)
        for r in rounds:
            assert r["ok"] == N, r
            assert r["miss"] == 0 and r["err"] == 0, r
    finally:
        victim.start()
        cluster.close()
