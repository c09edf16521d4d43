"""Starts the real corecache binary on free ports for the client suites."""
import os
import signal
import socket
import subprocess
import tempfile
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARY = os.environ.get("CORECACHE_BIN", os.path.join(ROOT, "target", "release", "corecache"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# As root, corecache (like memcached) needs -u; "-u root" keeps the suite's
# privileges and is ignored when it does not run as root.
class Server:
    def __init__(self, *args):
        self.port = free_port()
        # stderr to a file, never an undrained pipe: the audit trail logs
        # every flush_all at the default level, and a full pipe would block
        # the worker that writes it.
        self.err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([BINARY, "-p", str(self.port), "-u", "root", *args], stdout=subprocess.DEVNULL, stderr=self.err)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    self.err.seek(0)
                    raise RuntimeError(self.err.read().decode())
                time.sleep(0.05)
        raise RuntimeError("corecache did not start")

    def addr(self):
        return f"127.0.0.1:{self.port}"

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=10)
        assert code == 0, f"corecache exited {code}"

    def raw(self, data, expect_close=False, timeout=2.0):
        """Sends bytes on a fresh connection, returns what came back."""
        s = socket.create_connection(("127.0.0.1", self.port))
        s.settimeout(timeout)
        s.sendall(data)
        out = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
                if not expect_close and out.endswith(b"\r\n") and len(out) > 0:
                    s.settimeout(0.3)
        except socket.timeout:
            pass
        s.close()
        return out


@pytest.fixture(scope="module")
def server():
    srv = Server("-t", "2", "-m", "64")
    yield srv
    srv.stop()


# memcached as the oracle (tests/py/oracle.py): both servers side by side.
from oracle import Pair  # noqa: E402


@pytest.fixture(scope="module")
def oracle_pair():
    """memcached and corecache, both `-t 2 -m 64`, for one test module."""
    p = Pair("-t", "2", "-m", "64")
    yield p
    p.stop()


@pytest.fixture
def pair(oracle_pair):
    """The module's pair, flushed before each test."""
    oracle_pair.flush()
    return oracle_pair


@pytest.fixture
def make_pair():
    """Starts pairs with a test's own arguments; stops them afterwards."""
    made = []

    def make(*args, **kw):
        p = Pair(*args, **kw)
        made.append(p)
        return p

    yield make
    for p in made:
        p.stop()


@pytest.fixture(scope="module")
def matrix():
    """memcached and corecache for one client's module of the matrix."""
    p = Pair("-t", "2", "-m", "64")
    yield p
    p.stop()
