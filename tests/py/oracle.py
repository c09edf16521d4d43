"""memcached as the oracle: Debian's memcached and corecache side by side.

A test writes one script (a function of a connection) and runs it against
both servers; the replies are compared after normalising only what must
differ between two servers: CAS values (mapped to the order they first
appear in, so "same CAS" and "new CAS" still compare), and in stats the
values of fields such as pid, uptime, time and version.
"""
import os
import re
import signal
import socket
import struct
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORECACHE = os.environ.get("CORECACHE_BIN", os.path.join(ROOT, "target", "release", "corecache"))
MEMCACHED = os.environ.get("MEMCACHED_BIN", "/usr/bin/memcached")

# Sentinels that end every exchange: the reply to them proves the whole
# reply before has arrived and the connection is still open.
TEXT_SENTINEL = b"mn\r\n"
TEXT_SENTINEL_REPLY = b"MN\r\n"
SENTINEL_OPAQUE = 0xC0FFEE01
CLOSED = b"<closed>"
TIMEOUT = b"<timeout>"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proc:
    """A memcached-compatible server on a free port of 127.0.0.1.

    It counts as started only once `stats` on its port reports its own pid:
    a port picked free can be taken by another test's server (corecache's
    listeners use SO_REUSEPORT) before this one binds it.
    """

    def __init__(self, name, argv_for_port):
        self.name = name
        for _ in range(5):
            self.port = free_port()
            self.err = tempfile.TemporaryFile()
            self.proc = subprocess.Popen(
                argv_for_port(self.port),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                # a file, not an undrained pipe: a full pipe would block
                # a server that logs (corecache's audit trail does).
                stderr=self.err,
            )
            if self._answers_as_itself():
                return
            self._kill()
        raise RuntimeError(f"{name} did not start on any of 5 ports")

    def _answers_as_itself(self):
        want = f"STAT pid {self.proc.pid}\r\n".encode()
        deadline = time.time() + 10
        while time.time() < deadline:
            if self.proc.poll() is not None:
                self.err.seek(0)
                err = self.err.read().decode(errors="replace")
                if "Address already in use" in err or "failed to listen" in err:
                    return False
                raise RuntimeError(f"{self.name} exited {self.proc.returncode}: {err}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.settimeout(2)
                    s.sendall(b"stats\r\n")
                    out = b""
                    while not out.endswith(b"END\r\n"):
                        chunk = s.recv(65536)
                        if not chunk:
                            break
                        out += chunk
                    return want in out
            except OSError:
                time.sleep(0.05)
        return False

    def addr(self):
        return f"127.0.0.1:{self.port}"

    def connect(self, timeout=3.0):
        return Conn(self, timeout)

    def alive(self):
        return self.proc.poll() is None

    def _kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)

    def stop(self):
        """SIGTERM; returns the exit code (memcached and corecache: 0)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._kill()
                return None
        return self.proc.returncode


def start_memcached(*args):
    # As root memcached refuses to start without -u; -U 0: no UDP.
    return Proc("memcached", lambda port: [MEMCACHED, "-u", "root", "-l", "127.0.0.1", "-U", "0", "-p", str(port), *args])


def start_corecache(*args):
    # Self-check of the tests themselves: ORACLE_SELF_CHECK=1 puts a second
    # memcached where corecache would be; with --runxfail every oracle test
    # must then pass (a test that fails there is wrong, not corecache).
    if os.environ.get("ORACLE_SELF_CHECK"):
        return start_memcached(*args)
    return Proc("corecache", lambda port: [CORECACHE, "-u", "root", "-l", "127.0.0.1", "-U", "0", "-p", str(port), *args])


class Conn:
    """One client connection, with exchanges that end on a sentinel."""

    def __init__(self, server, timeout):
        self.server = server
        self.sock = socket.create_connection(("127.0.0.1", server.port))
        self.sock.settimeout(timeout)
        self.buf = b""
        self.closed = False

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _fill(self):
        """Reads more; False once the peer closed or went quiet."""
        if self.closed:
            return False
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            return None
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.closed = True
            return False
        self.buf += chunk
        return True

    def send(self, data):
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            self.closed = True

    def text(self, data):
        """Sends text/meta bytes and `mn`; returns everything before `MN`.

        A reply that ends with the connection closed ends in CLOSED, one
        that never completes in TIMEOUT.
        """
        self.send(data + TEXT_SENTINEL)
        while True:
            i = self.buf.find(TEXT_SENTINEL_REPLY)
            if i >= 0 and (i == 0 or self.buf[i - 2 : i] == b"\r\n"):
                out, self.buf = self.buf[:i], self.buf[i + len(TEXT_SENTINEL_REPLY) :]
                return out
            got = self._fill()
            if got is None:
                out, self.buf = self.buf, b""
                return out + TIMEOUT
            if got is False:
                out, self.buf = self.buf, b""
                return out + CLOSED

    def lines_until(self, data, end=b"END\r\n"):
        """Sends `data`, returns the reply up to and including `end`."""
        self.send(data)
        while not self.buf.endswith(end):
            got = self._fill()
            if not got:
                out, self.buf = self.buf, b""
                return out + (TIMEOUT if got is None else CLOSED)
        out, self.buf = self.buf, b""
        return out

    def stats(self, group=b""):
        """`stats [group]` as a dict of name -> value (bytes)."""
        cmd = b"stats" + (b" " + group if group else b"") + b"\r\n"
        out = self.lines_until(cmd)
        return parse_stats(out)

    def cas_of(self, key):
        """The CAS unique of `key` from `gets`, or None on a miss."""
        out = self.text(b"gets " + key + b"\r\n")
        m = re.match(rb"VALUE \S+ \d+ \d+ (\d+)\r\n", out)
        return int(m.group(1)) if m else None

    def binary(self, *frames):
        """Sends binary request frames and a NOOP; returns the responses
        that came before the NOOP's (a list of Response), then CLOSED or
        TIMEOUT if the NOOP's never came."""
        self.send(b"".join(frames) + bin_request(OP_NOOP, opaque=SENTINEL_OPAQUE))
        out = []
        while True:
            while len(self.buf) < 24:
                got = self._fill()
                if not got:
                    self.buf = b""
                    return out + [TIMEOUT if got is None else CLOSED]
            magic, op, keylen, extlen, _dt, status, bodylen, opaque, cas = struct.unpack(">BBHBBHIIQ", self.buf[:24])
            while len(self.buf) < 24 + bodylen:
                got = self._fill()
                if not got:
                    self.buf = b""
                    return out + [TIMEOUT if got is None else CLOSED]
            body = self.buf[24 : 24 + bodylen]
            self.buf = self.buf[24 + bodylen :]
            if op == OP_NOOP and opaque == SENTINEL_OPAQUE:
                return out
            out.append(
                Response(magic, op, status, opaque, cas, body[:extlen], body[extlen : extlen + keylen], body[extlen + keylen :])
            )


def parse_stats(out):
    st = {}
    for line in out.split(b"\r\n"):
        if line.startswith(b"STAT "):
            parts = line.split(b" ", 2)
            st[parts[1].decode()] = parts[2] if len(parts) > 2 else b""
    return st


# Binary protocol (memcached doc/protocol-binary.txt).
OP_GET, OP_SET, OP_ADD, OP_REPLACE, OP_DELETE, OP_INCR, OP_DECR, OP_QUIT = range(8)
OP_FLUSH, OP_GETQ, OP_NOOP, OP_VERSION, OP_GETK, OP_GETKQ, OP_APPEND, OP_PREPEND = range(8, 16)
OP_STAT, OP_SETQ, OP_ADDQ, OP_REPLACEQ, OP_DELETEQ, OP_INCRQ, OP_DECRQ, OP_QUITQ = range(0x10, 0x18)
OP_FLUSHQ, OP_APPENDQ, OP_PREPENDQ = 0x18, 0x19, 0x1A
OP_TOUCH, OP_GAT, OP_GATQ, OP_GATK, OP_GATKQ = 0x1C, 0x1D, 0x1E, 0x23, 0x24


def bin_request(op, key=b"", extras=b"", value=b"", cas=0, opaque=0):
    hdr = struct.pack(">BBHBBHIIQ", 0x80, op, len(key), len(extras), 0, 0, len(extras) + len(key) + len(value), opaque, cas)
    return hdr + extras + key + value


def bin_set(key, value, flags=0, exptime=0, cas=0, op=OP_SET, opaque=0):
    return bin_request(op, key, struct.pack(">II", flags, exptime), value, cas, opaque)


def bin_touch(key, exptime, op=OP_TOUCH, opaque=0):
    return bin_request(op, key, struct.pack(">I", exptime), opaque=opaque)


def bin_delta(key, delta, initial=0, exptime=0, op=OP_INCR, cas=0, opaque=0):
    return bin_request(op, key, struct.pack(">QQI", delta, initial, exptime), cas=cas, opaque=opaque)


class Response:
    """One binary response; `cas` kept raw, normalised by Normaliser."""

    def __init__(self, magic, op, status, opaque, cas, extras, key, value):
        self.magic, self.op, self.status, self.opaque = magic, op, status, opaque
        self.cas, self.extras, self.key, self.value = cas, extras, key, value

    def tuple(self, norm):
        return (hex(self.op), hex(self.status), self.opaque, norm.cas(self.cas), self.extras, self.key, self.value)

    def __repr__(self):
        return f"Response(op={self.op:#x} status={self.status:#x} opaque={self.opaque} cas={self.cas} extras={self.extras!r} key={self.key!r} value={self.value!r})"


class Normaliser:
    """Maps each CAS value to `cas#N` in order of first appearance (0 stays
    0), so two servers' replies compare equal when their CAS values relate
    the same way."""

    def __init__(self):
        self.seen = {}

    def cas(self, v):
        if v == 0:
            return 0
        return self.seen.setdefault(v, f"cas#{len(self.seen) + 1}")

    def text(self, out):
        def value_line(m):
            return m.group(1) + str(self.cas(int(m.group(2)))).encode()

        out = re.sub(rb"(VALUE \S+ \d+ \d+ )(\d+)(?=\r\n)", value_line, out)

        def meta_line(m):
            toks = m.group(0).split(b" ")
            for i, t in enumerate(toks[1:], 1):
                if t[:1] == b"c" and t[1:].isdigit():
                    toks[i] = b"c" + str(self.cas(int(t[1:]))).encode()
            return b" ".join(toks)

        return re.sub(rb"(?m)^(?:HD|VA|EN|NF|NS|EX|ME)\b[^\r\n]*", meta_line, out)

    def any(self, x):
        if isinstance(x, bytes):
            return self.text(x)
        if isinstance(x, Response):
            return x.tuple(self)
        if isinstance(x, (list, tuple)):
            return type(x)(self.any(i) for i in x)
        if isinstance(x, dict):
            return {k: self.any(v) for k, v in x.items()}
        return x


class Pair:
    """memcached and corecache started with the same arguments."""

    def __init__(self, *args, mc_args=(), cc_args=()):
        self.args = args
        if os.environ.get("ORACLE_SELF_CHECK"):
            cc_args = mc_args
        self.mc = start_memcached(*args, *mc_args)
        try:
            self.cc = start_corecache(*args, *cc_args)
        except Exception:
            self.mc.stop()
            raise

    def servers(self):
        return (self.mc, self.cc)

    def run(self, script):
        """Runs `script(conn)` against each server on a fresh connection;
        returns (memcached's result, corecache's result), normalised."""
        results = []
        for srv in self.servers():
            with srv.connect() as c:
                results.append(Normaliser().any(script(c)))
        return tuple(results)

    def same(self, script):
        """Asserts corecache answers `script` as memcached does; returns
        memcached's (normalised) result."""
        mc, cc = self.run(script)
        assert cc == mc, f"\nmemcached: {mc!r}\ncorecache: {cc!r}"
        return mc

    def flush(self):
        for srv in self.servers():
            with srv.connect() as c:
                assert c.text(b"flush_all\r\n") == b"OK\r\n"

    def stop(self):
        codes = (self.mc.stop(), self.cc.stop())
        assert codes == (0, 0), f"exit codes memcached, corecache: {codes}"
