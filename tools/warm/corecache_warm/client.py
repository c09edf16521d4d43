"""The few memcached requests the warmer sends, over a plain socket: key
listing with `lru_crawler metadump all`, and pipelined meta `mg`/`ms` with
base64 keys so any key bytes survive (memcached doc/protocol.txt, "Meta
Debug"/"Meta Get"/"Meta Set" and "lru_crawler metadump")."""
import base64
import socket
import time
import urllib.parse


class ProtocolError(Exception):
    """A reply the warmer cannot use (the text says which and from where)."""


class Unsupported(ProtocolError):
    """The server does not know the request (it answered ERROR)."""


class Conn:
    def __init__(self, host, port, timeout=10.0):
        self.where = f"{host}:{port}"
        try:
            self.sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as e:
            raise ProtocolError(f"{self.where}: cannot connect: {e}") from e
        self.buf = b""

    def close(self):
        self.sock.close()

    def send(self, data):
        self.sock.sendall(data)

    def line(self, end=b"\r\n"):
        while True:
            i = self.buf.find(end)
            if i >= 0:
                out, self.buf = self.buf[:i], self.buf[i + len(end) :]
                return out.rstrip(b"\r")
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise ProtocolError(f"{self.where}: connection closed")
            self.buf += chunk

    def exact(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(max(1 << 16, n - len(self.buf)))
            if not chunk:
                raise ProtocolError(f"{self.where}: connection closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def metadump(self, busy_retries=50):
        """Yields every key (bytes) the server lists. Raises Unsupported when
        the server answers ERROR (no lru_crawler, or metadump disabled by
        -X). memcached ends each
        key line with a bare newline, and only END with CR LF."""
        for _ in range(busy_retries):
            self.send(b"lru_crawler metadump all\r\n")
            first = self.line(b"\n")
            if first.startswith(b"BUSY"):
                time.sleep(0.1)  # another crawl is running; memcached says so
                continue
            break
        else:
            raise ProtocolError(f"{self.where}: lru_crawler stayed busy")
        # Plain ERROR: no lru_crawler; "ERROR metadump not allowed": started
        # with -X (memcached and corecache alike). Either way, no listing.
        if first.startswith((b"ERROR", b"CLIENT_ERROR")):
            raise Unsupported(f"{self.where}: answers {first.decode(errors='replace')!r} to 'lru_crawler metadump all'")
        line = first
        while line != b"END":
            if line.startswith(b"key="):
                token = line.split(b" ", 1)[0][4:]
                yield urllib.parse.unquote_to_bytes(token)
            elif line.startswith((b"ERROR", b"SERVER_ERROR", b"CLIENT_ERROR")):
                raise ProtocolError(f"{self.where}: metadump: {line.decode(errors='replace')}")
            line = self.line(b"\n")

    def get_many(self, keys):
        """mg for each key, pipelined. Returns, per key, None for a miss or
        (flags, remaining_ttl, value); remaining_ttl -1 means no expiry."""
        req = b"".join(b"mg " + base64.b64encode(k) + b" b f t v\r\n" for k in keys)
        self.send(req)
        out = []
        for k in keys:
            head = self.line()
            if head == b"EN":
                out.append(None)
                continue
            parts = head.split(b" ")
            if parts[0] != b"VA":
                raise ProtocolError(f"{self.where}: mg {k!r}: {head.decode(errors='replace')}")
            flags, ttl = 0, -1
            for tok in parts[2:]:
                if tok[:1] == b"f":
                    flags = int(tok[1:])
                elif tok[:1] == b"t":
                    ttl = int(tok[1:])
            value = self.exact(int(parts[1]) + 2)[:-2]
            out.append((flags, ttl, value))
        return out

    def set_many(self, items, mode=b"E"):
        """ms for each (key, flags, exptime, value), pipelined; mode E is
        add (keep what the node already has), S is set. Returns one reply
        per item: 'stored', 'exists' or the error line."""
        req = []
        for key, flags, exptime, value in items:
            req.append(b"ms %s %d b F%d T%d M%s\r\n" % (base64.b64encode(key), len(value), flags, exptime, mode))
            req.append(value + b"\r\n")
        self.send(b"".join(req))
        out = []
        for _ in items:
            line = self.line()
            if line == b"HD":
                out.append("stored")
            elif line == b"NS":
                out.append("exists")
            else:
                out.append(line.decode(errors="replace"))
        return out
