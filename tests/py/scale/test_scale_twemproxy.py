"""Three nodes behind twemproxy (Debian's nutcracker) with a ketama pool:
data commands, multigets across nodes, and auto_eject_hosts failover when a
node is killed and when it comes back. Every test runs with corecache nodes
and with Debian's memcached nodes (the oracle) in the same topology."""
import re
import socket
import time

import pytest

from topology import Cluster, Ring, Server, Twemproxy, kind, report  # noqa: F401

NAMES = ["node-a", "node-b", "node-c"]


class TextConn:
    """A plain text-protocol connection that reads exactly one reply."""

    def __init__(self, addr, timeout=5.0):
        host, port = addr.rsplit(":", 1)
        self.addr = (host, int(port))
        self.timeout = timeout
        self.sock = None
        self.buf = b""

    def _connect(self):
        if self.sock is None:
            self.sock = socket.create_connection(self.addr, timeout=self.timeout)
            self.buf = b""

    def close(self):
        if self.sock:
            self.sock.close()
        self.sock = None

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def call(self, data, retrieval=False):
        """Sends one request; returns the reply bytes (for get/gets every
        VALUE block and the END line)."""
        self._connect()
        self.sock.sendall(data)
        out = b""
        while True:
            line = self._line()
            out += line + b"\r\n"
            if retrieval and line.startswith(b"VALUE "):
                n = int(line.split(b" ")[3])
                out += self._exact(n + 2)
                continue
            return out

    def get(self, key):
        """'hit', 'miss' or 'error' (a SERVER_ERROR reply or a dropped
        connection, which is how twemproxy reports a dead backend)."""
        try:
            reply = self.call(b"get " + key.encode() + b"\r\n", retrieval=True)
        except (ConnectionError, socket.timeout, OSError):
            self.close()
            return "error"
        if reply.startswith(b"VALUE "):
            return "hit"
        if reply == b"END\r\n":
            return "miss"
        return "error"


def run_script(addr):
    """The same data commands through the proxy; returns (request, reply)
    pairs with CAS uniques replaced by <cas> (each server numbers them its
    own way)."""
    c = TextConn(addr)
    out = []

    def do(req, retrieval=False):
        reply = c.call(req, retrieval)
        out.append((req, reply))
        return reply

    do(b"set alpha 5 0 3\r\nabc\r\n")
    do(b"get alpha\r\n", True)
    do(b"add alpha 0 0 1\r\nx\r\n")
    do(b"add beta 0 0 1\r\nx\r\n")
    do(b"replace gamma 0 0 1\r\ny\r\n")
    do(b"replace beta 7 0 2\r\nyy\r\n")
    do(b"append beta 0 0 2\r\nzz\r\n")
    do(b"prepend beta 0 0 2\r\nww\r\n")
    do(b"append missing 0 0 2\r\nzz\r\n")
    do(b"get beta\r\n", True)
    reply = do(b"gets alpha\r\n", True)
    cas = reply.split(b"\r\n")[0].split(b" ")[4]
    do(b"cas alpha 0 0 3 " + cas + b"\r\nnew\r\n")
    do(b"cas alpha 0 0 3 " + cas + b"\r\nold\r\n")
    do(b"cas nothere 0 0 1 1\r\nx\r\n")
    do(b"get alpha\r\n", True)
    do(b"set n 0 0 2\r\n10\r\n")
    do(b"incr n 5\r\n")
    do(b"decr n 20\r\n")
    do(b"incr alpha 1\r\n")
    do(b"incr nothere 1\r\n")
    do(b"delete beta\r\n")
    do(b"delete beta\r\n")
    do(b"touch alpha 100\r\n")
    do(b"touch nothere 100\r\n")
    do(b"set quiet 0 0 1 noreply\r\nq\r\nget quiet\r\n", True)
    keys = [f"multi:{i}" for i in range(40)]
    for i, k in enumerate(keys):
        if i % 4:
            do(f"set {k} {i} 0 {len(k)}\r\n{k}\r\n".encode())
    do(("get " + " ".join(keys) + "\r\n").encode(), True)
    do(("gets " + " ".join(keys[:10]) + "\r\n").encode(), True)
    big = b"x" * 300_000
    do(b"set big 0 0 %d\r\n" % len(big) + big + b"\r\n")
    do(b"get big\r\n", True)
    do(b"set huge 0 0 %d\r\n" % (2 << 20) + b"y" * (2 << 20) + b"\r\n")
    do(b"get huge\r\n", True)
    c.close()
    return [(re.sub(rb"^(cas alpha 0 0 3) \d+", rb"\1 <cas>", req[:80]),
             re.sub(rb"(VALUE \S+ \d+ \d+) \d+", rb"\1 <cas>", rep)) for req, rep in out]


def test_data_commands_match_memcached_through_twemproxy():
    """Every reply through twemproxy over corecache is byte for byte the
    reply through twemproxy over memcached (CAS numbers aside)."""
    results = {}
    for k in ("corecache", "memcached"):
        cluster = Cluster(k, 3)
        proxy = Twemproxy(cluster.nodes, names=NAMES)
        try:
            results[k] = run_script(proxy.addr())
        finally:
            proxy.stop()
            cluster.close()
    oracle = dict(results["memcached"])
    # memcached itself answered as the protocol says
    assert oracle[b"get alpha\r\n"] == b"VALUE alpha 0 3\r\nnew\r\nEND\r\n"  # cas wrote flags 0
    assert oracle[b"get beta\r\n"] == b"VALUE beta 7 6\r\nwwyyzz\r\nEND\r\n"
    assert oracle[b"incr n 5\r\n"] == b"15\r\n"
    assert oracle[b"get big\r\n"].startswith(b"VALUE big 0 300000\r\n")
    assert oracle[b"get huge\r\n"] == b"END\r\n"
    multi = [r for q, r in results["memcached"] if q.startswith(b"get multi:0")][0]
    assert multi.count(b"VALUE ") == 30
    for (q1, r1), (q2, r2) in zip(results["corecache"], results["memcached"]):
        assert q1 == q2
        assert r1 == r2, (q1, r1[:200], r2[:200])
    assert len(results["corecache"]) == len(results["memcached"])


@pytest.mark.parametrize("hash_name,named", [("fnv1a_64", True), ("md5", False)])
def test_keys_land_where_ketama_says_and_hit_ratio_equals_single_node(kind, hash_name, named):
    """Each node holds exactly the keys the ketama model assigns to it (so
    the model the warm tool uses is twemproxy's), every node gets a share,
    and the hit ratio of a fixed key set through the proxy (multigets across
    all nodes) equals one single node's for the same keys."""
    import pymemcache

    cluster = Cluster(kind, 3)
    single = Cluster(kind, 1)
    proxy = Twemproxy(cluster.nodes, hash=hash_name, names=NAMES if named else None)
    try:
        stored = [f"user:{i}:profile" for i in range(2400)] + [f"clé-{i}-ü" for i in range(200)]
        absent = [f"never:{i}" for i in range(650)]
        via_proxy = pymemcache.Client(proxy.addr(), allow_unicode_keys=True, encoding="utf-8", default_noreply=False)
        direct = pymemcache.Client(single.nodes[0].addr(), allow_unicode_keys=True, encoding="utf-8", default_noreply=False)
        for i in range(0, len(stored), 100):
            chunk = {k: k.upper().encode() for k in stored[i : i + 100]}
            assert via_proxy.set_many(chunk) == []
            assert direct.set_many(chunk) == []
        keys = stored + absent
        proxy_hits, single_hits = 0, 0
        for i in range(0, len(keys), 100):
            got = via_proxy.get_many(keys[i : i + 100])
            assert all(v == k.upper().encode() for k, v in got.items())
            proxy_hits += len(got)
            single_hits += len(direct.get_many(keys[i : i + 100]))
        assert proxy_hits == single_hits == len(stored)
        report(f"twemproxy-hit-ratio[{kind},{hash_name}]", proxy=proxy_hits / len(keys), single=single_hits / len(keys))

        servers = [Server.parse(n.addr() + ":1" + (f" {NAMES[i]}" if named else "")) for i, n in enumerate(cluster.nodes)]
        ring = Ring(servers, flavour="twemproxy", hash=hash_name)
        for i, node in enumerate(cluster.nodes):
            expected = {k for k in stored if ring.index_of(k) == i}
            assert node.keys_present(stored) == expected
            assert len(expected) > len(stored) / 6, (i, len(expected))
    finally:
        proxy.stop()
        single.close()
        cluster.close()


def read_all(conn, keys):
    counts = {"hit": 0, "miss": 0, "error": 0}
    per_key = {}
    for k in keys:
        r = conn.get(k)
        counts[r] += 1
        per_key[k] = r
    return counts, per_key


def test_auto_eject_failover_and_return(kind):
    """auto_eject_hosts: a killed node costs misses on exactly its own share
    of the keys (a few of them answered with an error before it is
    ejected), every other key still hits; writes during the outage go to the
    survivors; when the node comes back empty after server_retry_timeout,
    its share misses again and nothing else does."""
    cluster = Cluster(kind, 3)
    retry_ms = 2500
    proxy = Twemproxy(cluster.nodes, names=NAMES, eject=True, retry_ms=retry_ms, failure_limit=1)
    try:
        keys = [f"session:{i}" for i in range(1500)]
        conn = TextConn(proxy.addr())
        for k in keys:
            assert conn.call(f"set {k} 0 0 {len(k)}\r\n{k}\r\n".encode()) == b"STORED\r\n"
        servers = [Server.parse(f"{n.addr()}:1 {NAMES[i]}") for i, n in enumerate(cluster.nodes)]
        ring = Ring(servers, flavour="twemproxy", hash="fnv1a_64")
        victim = 1
        share = [k for k in keys if ring.index_of(k) == victim]
        others = [k for k in keys if ring.index_of(k) != victim]
        assert read_all(conn, keys)[0] == {"hit": len(keys), "miss": 0, "error": 0}

        cluster.nodes[victim].kill()
        outage, per_key = read_all(conn, keys)
        assert outage["hit"] == len(others), outage
        assert outage["miss"] + outage["error"] == len(share), outage
        assert all(per_key[k] == "hit" for k in others)
        assert outage["error"] <= 3, outage
        # the survivors take the victim's keys: an application refills them
        survivor_ring = Ring([s for i, s in enumerate(servers) if i != victim], flavour="twemproxy", hash="fnv1a_64")
        for k in share:
            assert conn.call(f"set {k} 0 0 {len(k)}\r\n{k}\r\n".encode()) == b"STORED\r\n"
        refilled = read_all(conn, keys)[0]
        assert refilled == {"hit": len(keys), "miss": 0, "error": 0}, refilled
        for i, node in enumerate(cluster.nodes):
            if i != victim:
                mine = {k for k in keys if ring.index_of(k) == i}
                moved_here = {k for k in share if survivor_ring.owner(k) is servers[i]}
                assert node.keys_present(keys) == mine | moved_here

        cluster.nodes[victim].start()  # same port, empty
        probe = share[0]
        deadline = time.time() + retry_ms / 1000 * 4 + 10
        while conn.get(probe) == "hit" and time.time() < deadline:
            time.sleep(0.2)  # still routed to a survivor's refilled copy
        back = read_all(conn, keys)[0]
        assert back == {"hit": len(others), "miss": len(share), "error": 0}, back
        report(f"twemproxy-outage[{kind}]", keys=len(keys), victim_share=len(share),
               outage_misses=outage["miss"], outage_errors=outage["error"],
               outage_hits=outage["hit"], misses_after_return=back["miss"])
        conn.close()
    finally:
        proxy.stop()
        cluster.close()
