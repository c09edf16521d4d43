"""`-o worker_ports`: one corecache with two workers, listed in a client's
ketama ring (pylibmc) or a twemproxy pool as two servers, its worker ports.
Each key lands where the ketama model says, and no request crosses between
workers (`cross_shard_sent` stays 0). The oracle is the same ring over two
memcached processes on the same ports: the same keys on the same nodes."""
import re
import signal
import socket
import subprocess

import pylibmc
import pytest

from topology import BINARY, MEMCACHED, Ring, Server, Twemproxy, fixed_ports, wait_port

MODES = {
    "ketama": ({"ketama": True}, dict(flavour="libmemcached", hash="one_at_a_time", weighted=False)),
    "ketama_weighted": ({"ketama_weighted": True}, dict(flavour="libmemcached", hash="md5", weighted=True)),
}


class Port:
    """One server address of the ring: a worker port or a memcached."""

    def __init__(self, port):
        self.port = port

    def addr(self):
        return f"127.0.0.1:{self.port}"

    def request(self, data, until=b"END\r\n"):
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(data)
            out = b""
            while not out.endswith(until):
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
            return out

    def keys_present(self, keys):
        present = set()
        keys = list(keys)
        for i in range(0, len(keys), 100):
            reply = self.request(("get " + " ".join(keys[i : i + 100]) + "\r\n").encode())
            present |= {m.decode() for m in re.findall(rb"^VALUE (\S+) ", reply, re.M)}
        return present


class Procs:
    """Processes started for one test, stopped with SIGTERM (exit 0)."""

    def __init__(self):
        self.procs = []

    def start(self, argv, port, what):
        p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.procs.append(p)
        wait_port(port, p, what)

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                assert p.wait(timeout=10) == 0
        self.procs = []


def corecache(procs, ports):
    """corecache -t 2 on ports[0], its worker ports ports[1] and ports[2]."""
    procs.start([BINARY, "-u", "root", "-p", str(ports[0]), "-t", "2", "-m", "32", "-o", "worker_ports"],
                ports[0], "corecache")
    for p in ports[1:]:
        wait_port(p, procs.procs[-1], "corecache worker port")
    return [Port(p) for p in ports[1:]]


def memcacheds(procs, ports):
    for p in ports:
        procs.start([MEMCACHED, "-u", "root", "-l", "127.0.0.1", "-p", str(p), "-U", "0", "-m", "16"], p, "memcached")
    return [Port(p) for p in ports]


def stats(port, group=""):
    reply = Port(port).request(f"stats {group}\r\n".encode()).decode()
    return dict(re.findall(r"^STAT (\S+) (.*?)\r$", reply, re.M))


@pytest.mark.parametrize("mode", sorted(MODES))
def test_pylibmc_ring_over_worker_ports_never_crosses_workers(mode):
    ports = fixed_ports(3)
    keys = [f"obj:{i}" for i in range(3000)]
    procs = Procs()
    held = {}
    try:
        for kind in ["corecache", "memcached"]:
            nodes = corecache(procs, ports) if kind == "corecache" else memcacheds(procs, ports[1:])
            c = pylibmc.Client([n.addr() for n in nodes], behaviors=MODES[mode][0])
            for i in range(0, len(keys), 200):
                assert c.set_multi({k: k for k in keys[i : i + 200]}) == []
            got = {}
            for i in range(0, len(keys), 300):
                got.update(c.get_multi(keys[i : i + 300]))
            assert got == {k: k for k in keys}
            ring = Ring([Server.parse(n.addr()) for n in nodes], **MODES[mode][1])
            held[kind] = [n.keys_present(keys) for n in nodes]
            for i, present in enumerate(held[kind]):
                assert present == {k for k in keys if ring.index_of(k) == i}
                assert len(present) > 900
            if kind == "corecache":
                st = stats(ports[0])
                assert st["cross_shard_sent"] == "0"
                per_port = stats(ports[0], "ports")
                for w, p in enumerate(ports[1:]):
                    assert per_port[f"{p}:worker"] == str(w)
                    assert int(per_port[f"{p}:cmds"]) >= len(held[kind][w])
            procs.stop()
        assert held["corecache"] == held["memcached"]
    finally:
        procs.stop()


def test_twemproxy_pool_over_worker_ports_never_crosses_workers():
    """The docs/SCALE-OUT.md pool: one corecache, its two worker ports as
    two servers (named, so the ring does not depend on the ports)."""
    ports = fixed_ports(3)
    procs = Procs()
    proxy = None
    try:
        nodes = corecache(procs, ports)
        proxy = Twemproxy(nodes, names=["w0", "w1"], hash="md5")
        keys = [f"user:{i}" for i in range(1000)]
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as s:
            buf = b""
            for k in keys:
                s.sendall(f"set {k} 7 0 {len(k)}\r\n{k}\r\n".encode())
                while b"\r\n" not in buf:
                    buf += s.recv(4096)
                line, buf = buf.split(b"\r\n", 1)
                assert line == b"STORED", k
            for i in range(0, len(keys), 100):
                s.sendall(("get " + " ".join(keys[i : i + 100]) + "\r\n").encode())
                while not buf.endswith(b"END\r\n"):
                    buf += s.recv(65536)
                want = "".join(f"VALUE {k} 7 {len(k)}\r\n{k}\r\n" for k in keys[i : i + 100]) + "END\r\n"
                assert buf.decode() == want
                buf = b""
        a, b = (n.keys_present(keys) for n in nodes)
        assert a | b == set(keys) and not a & b
        assert len(a) > 300 and len(b) > 300
        assert stats(ports[0])["cross_shard_sent"] == "0"
    finally:
        if proxy:
            proxy.stop()
        procs.stop()
