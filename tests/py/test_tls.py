"""TLS (-Z) with real clients on real sockets: pymemcache with an
ssl.SSLContext, openssl s_client, raw ssl sockets; Debian's memcached -Z
side by side where its behaviour is observable.

Certificates are made here with openssl: a CA, a server certificate for
127.0.0.1, client certificates (CN=alice, signed by the CA, and one from
another CA).
"""
import os
import signal
import socket
import ssl
import subprocess
import tempfile
import time

import pytest
from pymemcache.client.base import Client

from oracle import CORECACHE, MEMCACHED, free_port

OPENSSL = "openssl"


def run(*args, cwd):
    subprocess.run(args, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def make_cert(d, name, cn, ca, ext):
    run(OPENSSL, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}", cwd=d)
    with open(os.path.join(d, f"{name}.ext"), "w") as f:
        f.write(ext)
    run(OPENSSL, "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
        "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext", cwd=d)


def make_ca(d, name, cn):
    run(OPENSSL, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2", "-subj", f"/CN={cn}", cwd=d)


SERVER_EXT = "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
CLIENT_EXT = "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n"


@pytest.fixture(scope="module")
def certs():
    d = tempfile.mkdtemp(prefix="corecache-tls-")
    make_ca(d, "ca", "corecache test CA")
    make_ca(d, "other", "another CA")
    make_cert(d, "server", "server one", "ca", SERVER_EXT)
    make_cert(d, "server2", "server two", "ca", SERVER_EXT)
    make_cert(d, "alice", "alice", "ca", CLIENT_EXT)
    make_cert(d, "mallory", "alice", "other", CLIENT_EXT)
    return lambda name: os.path.join(d, name)


class TlsServer:
    """corecache or memcached with -Z on a TLS port and a notls port,
    up once a plaintext `stats` on the notls port shows its own pid."""

    def __init__(self, kind, certs, *extra, ssl_opts="", chain="server", login=b""):
        self.kind = kind
        # With -Y, the plaintext probe logs in first (ASCII auth).
        self.login = login
        exe = CORECACHE if kind == "corecache" else MEMCACHED
        opts = f"ssl_chain_cert={certs(chain + '.pem')},ssl_key={certs(chain + '.key')}"
        if ssl_opts:
            opts += "," + ssl_opts
        for _ in range(5):
            self.port, self.plain = free_port(), free_port()
            self.err = tempfile.TemporaryFile()
            argv = [exe, "-u", "root", "-U", "0", "-p", str(self.port), "-Z", "-o", opts,
                    "-l", f"127.0.0.1,notls:127.0.0.1:{self.plain}", *extra]
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=self.err)
            if self._up():
                return
            self.stop()
        raise RuntimeError(f"{kind} did not start")

    def _up(self):
        want = f"STAT pid {self.proc.pid}\r\n".encode()
        deadline = time.time() + 10
        while time.time() < deadline:
            if self.proc.poll() is not None:
                self.err.seek(0)
                err = self.err.read().decode(errors="replace")
                if "in use" in err or "failed to listen" in err:
                    return False
                raise RuntimeError(f"{self.kind} exited {self.proc.returncode}: {err}")
            try:
                with socket.create_connection(("127.0.0.1", self.plain), timeout=1) as s:
                    s.settimeout(2)
                    s.sendall(self.login + b"stats\r\n")
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

    def stats(self, group=""):
        with socket.create_connection(("127.0.0.1", self.plain), timeout=3) as s:
            s.sendall(self.login + f"stats {group}\r\n".encode())
            return dict(l.split(" ", 2)[1:] for l in recv_until(s, b"END\r\n").decode().splitlines()
                        if l.startswith("STAT "))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def recv_until(s, end, timeout=5.0):
    s.settimeout(timeout)
    # A bytearray: TLS reads return a record (16 KiB) at most, and
    # appending to bytes would copy everything read so far each time.
    out = bytearray()
    while not out.endswith(end):
        chunk = s.recv(1 << 20)
        if not chunk:
            break
        out += chunk
    return bytes(out)


def context(certs, client=None, version=None):
    ctx = ssl.create_default_context(cafile=certs("ca.pem"))
    if client:
        ctx.load_cert_chain(certs(client + ".pem"), certs(client + ".key"))
    if version:
        ctx.minimum_version = ctx.maximum_version = version
    return ctx


def tls_connect(port, ctx):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    return ctx.wrap_socket(s, server_hostname="127.0.0.1")


def exchange(port, ctx, data, end=b"END\r\n"):
    with tls_connect(port, ctx) as s:
        s.sendall(data)
        return recv_until(s, end)


def raw_plain(port, data):
    """Sends plaintext; returns (bytes received, how the connection ended)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=3)
    s.sendall(data)
    out = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out, "closed"
            out += chunk
    except ConnectionResetError:
        return out, "closed"
    except socket.timeout:
        return out, "open"
    finally:
        s.close()


@pytest.fixture
def servers(request):
    made = []

    def start(*args, **kw):
        s = TlsServer(*args, **kw)
        made.append(s)
        return s

    yield start
    for s in made:
        code = s.stop()
        if s.kind == "corecache":
            assert code == 0, f"corecache exited {code}"


def test_pymemcache_over_tls(certs, servers):
    srv = servers("corecache", certs, "-t", "2")
    c = Client(("127.0.0.1", srv.port), tls_context=context(certs), timeout=5)
    c.set("k", b"v" * 100)
    assert c.get("k") == b"v" * 100
    for i in range(50):
        c.set(f"key{i}", str(i).encode())
    got = c.get_many([f"key{i}" for i in range(50)])
    assert got == {f"key{i}": str(i).encode() for i in range(50)}
    assert c.incr("key7", 5) == 12
    c.close()
    # The notls listener serves the same cache in plaintext.
    plain = Client(("127.0.0.1", srv.plain), timeout=5)
    assert plain.get("key7") == b"12"
    st = srv.stats()
    assert int(st["ssl_new_sessions"]) >= 1
    assert srv.stats("settings")["ssl_enabled"] == "yes"


@pytest.mark.parametrize("version,name", [(ssl.TLSVersion.TLSv1_2, "TLSv1.2"),
                                          (ssl.TLSVersion.TLSv1_3, "TLSv1.3")])
def test_tls_1_2_and_1_3(certs, servers, version, name):
    srv = servers("corecache", certs)
    with tls_connect(srv.port, context(certs, version=version)) as s:
        assert s.version() == name
        s.sendall(b"set a 0 0 2\r\nhi\r\nget a\r\n")
        assert recv_until(s, b"END\r\n") == b"STORED\r\nVALUE a 0 2\r\nhi\r\nEND\r\n"


def test_min_version_1_3_refuses_1_2(certs, servers):
    srv = servers("corecache", certs, ssl_opts="ssl_min_version=tlsv1.3")
    with pytest.raises(ssl.SSLError):
        tls_connect(srv.port, context(certs, version=ssl.TLSVersion.TLSv1_2))
    with tls_connect(srv.port, context(certs)) as s:
        assert s.version() == "TLSv1.3"


def test_openssl_s_client_speaks_text(certs, servers):
    srv = servers("corecache", certs, "-t", "2")
    script = b"set sc 5 0 5\r\nhello\r\nget sc\r\nversion\r\nquit\r\n"
    for proto in ("-tls1_2", "-tls1_3"):
        out = subprocess.run([OPENSSL, "s_client", "-connect", f"127.0.0.1:{srv.port}", "-quiet",
                              "-verify_return_error", "-CAfile", certs("ca.pem"), proto],
                             input=script, capture_output=True, timeout=20)
        assert b"STORED\r\nVALUE sc 5 5\r\nhello\r\nEND\r\nVERSION " in out.stdout, (proto, out)


def test_plain_client_on_tls_port_is_closed_like_memcached(certs, servers):
    seen = {}
    for kind in ("memcached", "corecache"):
        srv = servers(kind, certs)
        seen[kind] = [raw_plain(srv.port, data) for data in
                      (b"get a\r\n", b"version\r\n", b"\x80\x0b" + b"\0" * 22)]
        # Unharmed: TLS clients are served afterwards.
        assert exchange(srv.port, context(certs), b"version\r\n", b"\r\n").startswith(b"VERSION ")
        if kind == "corecache":
            assert int(srv.stats()["ssl_handshake_errors"]) == 3
    assert seen["corecache"] == seen["memcached"] == [(b"", "closed")] * 3


def test_tls_client_on_notls_port_fails_cleanly_like_memcached(certs, servers):
    for kind in ("memcached", "corecache"):
        srv = servers(kind, certs)
        with pytest.raises(ssl.SSLError):
            tls_connect(srv.plain, context(certs))
        assert raw_plain(srv.plain, b"version\r\n")[0].startswith(b"VERSION "), kind
        assert exchange(srv.port, context(certs), b"version\r\n", b"\r\n").startswith(b"VERSION ")


def handshake_refused(port, ctx):
    """Whether the server refuses a client: at the handshake (TLS 1.2) or,
    as TLS 1.3 clients finish first, at the first read."""
    try:
        with tls_connect(port, ctx) as s:
            s.sendall(b"version\r\n")
            return recv_until(s, b"\r\n") == b""
    except (ssl.SSLError, ConnectionError):
        return True


@pytest.mark.parametrize("mode", ["2", "3"])
def test_verify_modes_2_and_3_require_a_client_certificate(certs, servers, mode):
    for kind in ("memcached", "corecache"):
        srv = servers(kind, certs, ssl_opts=f"ssl_ca_cert={certs('ca.pem')},ssl_verify_mode={mode}")
        assert handshake_refused(srv.port, context(certs)), kind
        assert handshake_refused(srv.port, context(certs, client="mallory")), kind
        c = Client(("127.0.0.1", srv.port), tls_context=context(certs, client="alice"), timeout=5)
        c.set("m", b"x")
        assert c.get("m") == b"x", kind
        c.close()


def test_verify_mode_1_asks_but_serves_clients_without_one(certs, servers):
    for kind in ("memcached", "corecache"):
        srv = servers(kind, certs, ssl_opts=f"ssl_ca_cert={certs('ca.pem')},ssl_verify_mode=1")
        for ctx in (context(certs), context(certs, client="alice")):
            assert exchange(srv.port, ctx, b"version\r\n", b"\r\n").startswith(b"VERSION "), kind
        assert handshake_refused(srv.port, context(certs, client="mallory")), kind


LOGIN = b"set x 0 0 13\r\nalice alicepw\r\n"


def test_certificate_cn_names_the_user(certs, servers, tmp_path):
    users = tmp_path / "users"
    users.write_text("alice:alicepw\n")
    acl = tmp_path / "acl"
    acl.write_text("alice read=pub: write=pub:\n")
    srv = servers("corecache", certs, "-Y", str(users), "-o", f"acl_file={acl}", login=LOGIN,
                  ssl_opts=f"ssl_ca_cert={certs('ca.pem')},ssl_verify_mode=1,ssl_user_from_cert")
    alice = context(certs, client="alice")
    with tls_connect(srv.port, alice) as s:
        s.sendall(b"set pub:a 0 0 1\r\n1\r\nget pub:a\r\nget secret\r\nrefresh_certs\r\n")
        # No read right on "secret", no admin right for refresh_certs.
        want = b"STORED\r\nVALUE pub:a 0 1\r\n1\r\nEND\r\n" + b"CLIENT_ERROR unauthenticated\r\n" * 2
        assert recv_until(s, want) == want
    # Without a certificate the password is still needed.
    with tls_connect(srv.port, context(certs)) as s:
        s.sendall(b"get pub:a\r\n")
        assert recv_until(s, b"\r\n") == b"CLIENT_ERROR unauthenticated\r\n"
        s.sendall(b"set x 0 0 13\r\nalice alicepw\r\nget pub:a\r\n")
        assert recv_until(s, b"END\r\n") == b"STORED\r\nVALUE pub:a 0 1\r\n1\r\nEND\r\n"


def test_certificate_cn_names_no_user_without_the_option(certs, servers, tmp_path):
    users = tmp_path / "users"
    users.write_text("alice:alicepw\n")
    srv = servers("corecache", certs, "-Y", str(users), login=LOGIN,
                  ssl_opts=f"ssl_ca_cert={certs('ca.pem')},ssl_verify_mode=2")
    with tls_connect(srv.port, context(certs, client="alice")) as s:
        s.sendall(b"get a\r\n")
        assert recv_until(s, b"\r\n") == b"CLIENT_ERROR unauthenticated\r\n"


def test_large_values_and_pipelined_multigets_with_two_workers(certs, servers):
    srv = servers("corecache", certs, "-t", "2", "-m", "128")
    ctx = context(certs)
    sizes = [1, 100, 5000, 40_000, 300_000, 1_000_000]
    keys = [f"big{i}" for i in range(24)]
    vals = {k: bytes([65 + i % 26]) * sizes[i % len(sizes)] for i, k in enumerate(keys)}
    with tls_connect(srv.port, ctx) as s:
        s.sendall(b"".join(b"set %s 0 0 %d\r\n%s\r\n" % (k.encode(), len(v), v) for k, v in vals.items()))
        assert recv_until(s, b"STORED\r\n" * len(keys), timeout=30) == b"STORED\r\n" * len(keys)
        # 20 pipelined multi-gets over keys on both shards, in one write.
        line = b"get " + b" ".join(k.encode() for k in keys) + b"\r\n"
        s.sendall(line * 20)
        one = b"".join(b"VALUE %s 0 %d\r\n%s\r\n" % (k.encode(), len(v), v) for k, v in vals.items()) + b"END\r\n"
        want = one * 20
        s.settimeout(30)
        got = bytearray()
        while len(got) < len(want):
            chunk = s.recv(1 << 20)
            assert chunk, "closed early"
            got += chunk
        assert got == want
    # Another TLS client and a plain one were not disturbed.
    assert exchange(srv.port, ctx, b"get big1\r\n") == b"VALUE big1 0 100\r\n" + vals["big1"] + b"\r\nEND\r\n"
    assert raw_plain(srv.plain, b"get big0\r\n")[0] == b"VALUE big0 0 1\r\nA\r\nEND\r\n"


def test_sighup_reloads_the_certificate(certs, servers, tmp_path):
    import shutil
    for f in ("pem", "key"):
        shutil.copy(certs(f"server.{f}"), tmp_path / f"live.{f}")
    srv = servers("corecache", lambda n: str(tmp_path / n) if n.startswith("live") else certs(n),
                  chain="live")
    ctx = context(certs)

    def subject():
        with tls_connect(srv.port, ctx) as s:
            return dict(x[0] for x in s.getpeercert()["subject"])["commonName"]

    assert subject() == "server one"
    kept = tls_connect(srv.port, ctx)
    for f in ("pem", "key"):
        shutil.copy(certs(f"server2.{f}"), tmp_path / f"live.{f}")
    srv.proc.send_signal(signal.SIGHUP)
    # The reload runs when the server's signal thread gets a CPU: up to
    # 15 s on a loaded machine.
    deadline = time.time() + 15
    while subject() != "server two":
        assert time.time() < deadline, "new certificate not in use"
        time.sleep(0.1)
    # A connection made before the reload goes on.
    kept.sendall(b"version\r\n")
    assert recv_until(kept, b"\r\n").startswith(b"VERSION ")
    kept.close()
    # A broken file leaves the certificate in force.
    (tmp_path / "live.key").write_text("not a key\n")
    srv.proc.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    assert subject() == "server two"
    assert srv.proc.poll() is None


def test_bad_certificate_files_stop_the_start(certs, tmp_path):
    bad = tmp_path / "bad.pem"
    bad.write_text("nothing\n")
    for opts in (f"ssl_chain_cert={bad}", f"ssl_chain_cert={certs('server.pem')},ssl_key={bad}",
                 f"ssl_chain_cert={certs('server.pem')},ssl_key={certs('alice.key')}"):
        p = subprocess.run([CORECACHE, "-u", "root", "-p", str(free_port()), "-Z", "-o", opts],
                           capture_output=True, timeout=10)
        assert p.returncode != 0 and b"TLS" in p.stderr, (opts, p)


def test_stalled_handshakes_block_nobody(certs, servers):
    """The handshake is records in and out on the worker's ring: clients
    that stop half-way through theirs hold no thread (-t 1: one worker)."""
    srv = servers("corecache", certs, "-t", "1")
    stalled = []
    for _ in range(8):
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=3)
        s.sendall(b"\x16\x03\x01")  # the start of a ClientHello record, then nothing
        stalled.append(s)
    # Clients that send a whole ClientHello, read the server's flight, and
    # then never answer it.
    for _ in range(4):
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = context(certs).wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
        with pytest.raises(ssl.SSLWantReadError):
            obj.do_handshake()
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=3)
        s.sendall(outgoing.read())
        assert s.recv(65536)[:1] == b"\x16", "the server's handshake flight"
        stalled.append(s)
    assert exchange(srv.port, context(certs), b"set s 0 0 1\r\n1\r\nget s\r\n") == \
        b"STORED\r\nVALUE s 0 1\r\n1\r\nEND\r\n"
    assert int(srv.stats()["curr_connections"]) >= len(stalled)
    for s in stalled:
        s.close()


def test_many_tls_clients_at_once(certs, servers):
    import threading
    srv = servers("corecache", certs, "-t", "2")
    errors = []

    def client(n):
        try:
            c = Client(("127.0.0.1", srv.port), tls_context=context(certs), timeout=10)
            for i in range(30):
                k = f"c{n}-{i}"
                c.set(k, k.encode() * (1 + i * 50))
                assert c.get(k) == k.encode() * (1 + i * 50)
            c.close()
        except Exception as e:  # collected: an assert in a thread is lost
            errors.append(repr(e))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert int(srv.stats()["ssl_new_sessions"]) >= 24


def test_refresh_certs_without_tls_is_refused_like_memcached(make_pair):
    pair = make_pair("-t", "1")
    # An error goes out even with noreply.
    assert pair.same(lambda c: c.text(b"refresh_certs\r\nrefresh_certs noreply\r\n")) == \
        b"Error TLS not enabled\r\n" * 2


def test_refresh_certs_reloads_like_sighup(certs, servers, tmp_path):
    import shutil
    for f in ("pem", "key"):
        shutil.copy(certs(f"server.{f}"), tmp_path / f"live.{f}")
    files = lambda n: str(tmp_path / n) if n.startswith("live") else certs(n)  # noqa: E731
    mc = servers("memcached", files, chain="live")
    cc = servers("corecache", files, chain="live")
    ctx = context(certs)

    def subject(srv):
        with tls_connect(srv.port, ctx) as s:
            return dict(x[0] for x in s.getpeercert()["subject"])["commonName"]

    def refresh(srv, tls):
        """What `refresh_certs` and a silent one answer before `version`'s reply."""
        s = socket.create_connection(("127.0.0.1", srv.port if tls else srv.plain), timeout=5)
        with ctx.wrap_socket(s, server_hostname="127.0.0.1") if tls else s as s:
            s.sendall(b"refresh_certs\r\nrefresh_certs noreply\r\nversion\r\n")
            out = bytearray()
            while b"VERSION " not in out or not out.endswith(b"\r\n"):
                chunk = s.recv(65536)
                assert chunk, "closed"
                out += chunk
        return bytes(out).split(b"VERSION ")[0]

    assert subject(mc) == subject(cc) == "server one"
    for f in ("pem", "key"):
        shutil.copy(certs(f"server2.{f}"), tmp_path / f"live.{f}")
    # Over the notls port and over TLS itself; noreply is silent.
    assert refresh(mc, False) == refresh(cc, False) == b"OK\r\n"
    assert refresh(mc, True) == refresh(cc, True) == b"OK\r\n"
    assert subject(mc) == subject(cc) == "server two"
    # A broken key: an error line (the wording is each server's own),
    # and the certificate in force stays.
    (tmp_path / "live.key").write_text("garbage\n")
    for srv in (mc, cc):
        assert refresh(srv, False).startswith(b"Error loading the "), srv.kind
        assert subject(srv) == "server two"
