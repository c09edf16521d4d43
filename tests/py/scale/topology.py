"""Real servers and proxies for the scale-out topologies: corecache or
Debian's memcached nodes (the oracle) on free ports, twemproxy (nutcracker)
pools in front of them, and the ketama model from tools/warm.

Kept apart from tests/py/conftest.py on purpose: these helpers start many
processes, kill and restart them on the same port, and write proxy configs.
"""
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
BINARY = os.environ.get("CORECACHE_BIN", os.path.join(ROOT, "target", "release", "corecache"))
MEMCACHED = os.environ.get("MEMCACHED_BIN", "/usr/bin/memcached")
NUTCRACKER = os.environ.get("NUTCRACKER_BIN", "/usr/sbin/nutcracker")
WARM = os.path.join(ROOT, "tools", "corecache-warm")
sys.path.insert(0, os.path.join(ROOT, "tools", "warm"))

from corecache_warm.ketama import Ring, Server  # noqa: E402

KINDS = ["corecache", "memcached"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def fixed_ports(n, bases=range(21101, 22000, 100)):
    """The first block of `n` consecutive free ports among fixed blocks.
    A libmemcached ring hashes "host:port", so with random ports every run
    would measure a different ring; these blocks give the same rings on
    every host (and the same ring to corecache and to memcached)."""
    for base in bases:
        ports = list(range(base, base + n))
        if all(port_is_free(p) for p in ports):
            return ports
    raise RuntimeError("no fixed port block is free")


def wait_port(port, proc, what, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if proc.poll() is not None:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                raise RuntimeError(f"{what} exited {proc.returncode}: {err}")
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port}")


class Node:
    """One cache server, corecache or memcached, that can be killed and
    started again on the same port (empty, as a replaced host would be)."""

    def __init__(self, kind, memory_mb=32, port=None, extra=()):
        assert kind in KINDS, kind
        self.kind = kind
        self.extra = list(extra)
        self.memory_mb = memory_mb
        self.port = port or free_port()
        self.proc = None
        self.start()

    def argv(self):
        if self.kind == "corecache":
            return [BINARY, "-u", "root", "-p", str(self.port), "-t", "2", "-m", str(self.memory_mb), *self.extra]
        return [MEMCACHED, "-u", "root", "-l", "127.0.0.1", "-p", str(self.port), "-U", "0", "-m", str(self.memory_mb),
                *self.extra]

    def start(self):
        assert self.proc is None or self.proc.poll() is not None
        self.proc = subprocess.Popen(self.argv(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_port(self.port, self.proc, self.kind)

    def kill(self):
        """SIGKILL: the host is gone, nothing is flushed or closed politely."""
        self.proc.kill()
        self.proc.wait(timeout=10)

    def stop(self):
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        assert code == 0, f"{self.kind} exited {code}"

    def addr(self):
        return f"127.0.0.1:{self.port}"

    def request(self, data, until=b"END\r\n", timeout=5.0):
        """Sends bytes on a fresh connection and reads until the reply ends
        with `until`."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
            s.sendall(data)
            out = b""
            while not out.endswith(until):
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
            return out

    def keys_present(self, keys):
        """The subset of `keys` (str) this node holds, asked directly."""
        present = set()
        keys = list(keys)
        for i in range(0, len(keys), 100):
            batch = keys[i : i + 100]
            reply = self.request(("get " + " ".join(batch) + "\r\n").encode())
            for line in reply.split(b"\r\n"):
                if line.startswith(b"VALUE "):
                    present.add(line.split(b" ")[1].decode())
        return present


class Cluster:
    """`n` nodes of one kind (on `ports` when given; the ports past `n`
    are used by add()); stopped together."""

    def __init__(self, kind, n, memory_mb=32, ports=None):
        self.kind = kind
        self.nodes = []
        self.spare_ports = list(ports[n:]) if ports else []
        try:
            for i in range(n):
                self.nodes.append(Node(kind, memory_mb, ports[i] if ports else None))
        except Exception:
            self.close()
            raise

    def add(self, extra=()):
        port = self.spare_ports.pop(0) if self.spare_ports else None
        node = Node(self.kind, self.nodes[0].memory_mb if self.nodes else 32, port, extra)
        self.nodes.append(node)
        return node

    def addrs(self):
        return [n.addr() for n in self.nodes]

    def close(self):
        errors = []
        for n in self.nodes:
            try:
                n.stop()
            except Exception as e:  # keep stopping the others
                errors.append(e)
        if errors:
            raise errors[0]


def twemproxy_yaml(pool, listen_port, nodes, names=None, hash="fnv1a_64", eject=False,
                   retry_ms=30000, failure_limit=2, timeout_ms=400, hash_tag=None):
    """A nutcracker config with one ketama pool over `nodes`; `names` gives
    each server line a name, so the ring (and every count derived from it)
    does not depend on the ports the nodes happened to get."""
    lines = [
        f"{pool}:",
        f"  listen: 127.0.0.1:{listen_port}",
        f"  hash: {hash}",
        "  distribution: ketama",
        f"  timeout: {timeout_ms}",
        f"  auto_eject_hosts: {'true' if eject else 'false'}",
        f"  server_retry_timeout: {retry_ms}",
        f"  server_failure_limit: {failure_limit}",
        "  servers:",
    ]
    if hash_tag:
        lines.insert(3, f'  hash_tag: "{hash_tag}"')
    for i, n in enumerate(nodes):
        name = f" {names[i]}" if names else ""
        lines.append(f"   - {n.addr()}:1{name}")
    return "\n".join(lines) + "\n"


class Twemproxy:
    """nutcracker with one pool; `conf` holds the YAML it was started with."""

    def __init__(self, nodes, **kw):
        self.port = free_port()
        self.stats_port = free_port()
        self.dir = tempfile.mkdtemp(prefix="twem-")
        self.conf = os.path.join(self.dir, "nutcracker.yml")
        with open(self.conf, "w") as f:
            f.write(twemproxy_yaml("cache", self.port, nodes, **kw))
        self.proc = subprocess.Popen(
            [NUTCRACKER, "-c", self.conf, "-s", str(self.stats_port), "-a", "127.0.0.1",
             "-p", os.path.join(self.dir, "pid"), "-o", os.path.join(self.dir, "log"), "-v", "5"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_port(self.port, self.proc, "nutcracker")

    def addr(self):
        return f"127.0.0.1:{self.port}"

    def log(self):
        with open(os.path.join(self.dir, "log"), errors="replace") as f:
            return f.read()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(params=KINDS)
def kind(request):
    return request.param


def hit_count(client, keys, batch=100):
    """How many of `keys` a client (pylibmc or pymemcache) returns."""
    hits = 0
    keys = list(keys)
    for i in range(0, len(keys), batch):
        hits += len(client.get_multi(keys[i : i + batch]))
    return hits


def report(name, **figures):
    """Prints a figure line the test log keeps (pytest -s or -rA shows it)."""
    print(f"\nFIGURE {name}: " + ", ".join(f"{k}={v}" for k, v in figures.items()))
