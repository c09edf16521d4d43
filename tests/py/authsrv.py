"""Servers with authentication (-Y / -S) for tests/py/test_auth*.py.

oracle.Proc proves a server is its own by an unauthenticated `stats`,
which -Y refuses; these log in first (ASCII auth) and then ask.
"""
import os
import select
import signal
import socket
import struct
import subprocess
import time

from oracle import CORECACHE, MEMCACHED, free_port


def ascii_login(user, password):
    data = f"{user} {password}".encode()
    return b"set auth 0 0 %d\r\n%s\r\n" % (len(data), data)


# Waits for a known reply are long (10 s): they end as soon as it comes,
# and a loaded machine can hold a reply back for seconds.
def recv_until(sock, end, timeout=10.0):
    sock.settimeout(timeout)
    out = b""
    try:
        while not out.endswith(end):
            chunk = sock.recv(65536)
            if not chunk:
                return out + b"<closed>"
            out += chunk
    except socket.timeout:
        return out + b"<timeout>"
    return out


class AuthProc:
    """corecache or memcached with `args` (which include -Y or -S), on a
    free port, known to be up once a logged-in `stats` shows its pid."""

    def __init__(self, kind, args, user, password, env=None):
        self.kind = kind
        self._err = b""
        for _ in range(5):
            self.port = free_port()
            exe = CORECACHE if kind == "corecache" else MEMCACHED
            argv = [exe, "-u", "root", "-l", "127.0.0.1", "-U", "0", "-p", str(self.port), *args]
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.PIPE, env={**os.environ, **(env or {})})
            if self._up(user, password):
                return
            self.kill()
        raise RuntimeError(f"{kind} did not start")

    def _up(self, user, password):
        want = f"STAT pid {self.proc.pid}\r\n".encode()
        deadline = time.time() + 10
        while time.time() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace")
                if "already in use" in err or "failed to listen" in err:
                    return False
                raise RuntimeError(f"{self.kind} exited {self.proc.returncode}: {err}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    if user is None:
                        return True
                    s.sendall(ascii_login(user, password))
                    if recv_until(s, b"\r\n") != b"STORED\r\n":
                        return False
                    s.sendall(b"stats\r\n")
                    return want in recv_until(s, b"END\r\n")
            except OSError:
                time.sleep(0.05)
        return False

    def addr(self):
        return f"127.0.0.1:{self.port}"

    def connect(self):
        return socket.create_connection(("127.0.0.1", self.port), timeout=3)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            code = self.proc.wait(timeout=10)
            assert code == 0, f"{self.kind} exited {code}"

    def wait_stderr(self, text, timeout=15):
        """Waits until it has logged `text` (read from its stderr as it
        comes, kept for stderr_text); False if it did not within `timeout`
        seconds."""
        deadline = time.time() + timeout
        fd = self.proc.stderr.fileno()
        while text.encode() not in self._err:
            left = deadline - time.time()
            if left <= 0:
                return False
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    return False
                self._err += chunk
        return True

    def stderr_text(self):
        """What it logged (audit lines), once stopped."""
        return (self._err + self.proc.stderr.read()).decode(errors="replace")


def exchange(sock, data, wait=0.3, until=None, first=3.0):
    """Sends `data`, returns everything that arrives until the server goes
    quiet for `wait` seconds after its first bytes, or for `first` seconds
    if it sends none (or until the reply ends with `until`); `<closed>`
    marks a close. A reply's start waits on the scheduler, which a loaded
    machine can delay past `wait`; once the server writes, a reply's lines
    come in one write. Prefer `until` where the reply is known."""
    sock.sendall(data)
    sock.settimeout(first if until is None else 10)
    out = b""
    try:
        while until is None or not out.endswith(until):
            chunk = sock.recv(65536)
            if not chunk:
                return out + b"<closed>"
            out += chunk
            if until is None:
                sock.settimeout(wait)
        return out
    except socket.timeout:
        return out
    except ConnectionResetError:
        return out + b"<closed>"


def bin_req(opcode, key=b"", value=b"", extras=b"", opaque=0, cas=0):
    return struct.pack(">BBHBBHIIQ", 0x80, opcode, len(key), len(extras), 0, 0,
                       len(key) + len(value) + len(extras), opaque, cas) + extras + key + value


def bin_read(sock, timeout=10.0):
    """One binary response as (opcode, status, key, value); None if the
    connection closed or went quiet."""
    sock.settimeout(timeout)

    def need(n):
        b = b""
        while len(b) < n:
            try:
                c = sock.recv(n - len(b))
            except (socket.timeout, ConnectionResetError):
                return None
            if not c:
                return None
            b += c
        return b

    h = need(24)
    if h is None:
        return None
    _, op, kl, el, _, st, bl, _, _ = struct.unpack(">BBHBBHIIQ", h)
    body = need(bl) if bl else b""
    if body is None:
        return None
    return (op, st, body[el:el + kl], body[el + kl:])
