"""The few memcached requests the warmer sends, over a plain socket: key
listing with `lru_crawler metadump all`, and pipelined meta `mg`/`ms`/`md`
(memcached doc/protocol.txt, "Meta Get"/"Meta Set"/"Meta Delete" and
"lru_crawler metadump").

Keys go on the wire as they are whenever they are legal text-protocol keys
(1-250 bytes, no space or control byte), so they are stored exactly as a
client would store them; only a key that cannot be written that way is sent
base64-encoded with the `b` flag, and only if its encoding fits in 250
bytes. A key that fits neither way is never sent: memcached (and corecache)
answer an over-long key with CLIENT_ERROR *without* reading the value that
follows, so the value would be run as a command.

Every request of a pipeline carries an opaque `O<i>` and the pipeline ends
with `mn`, so a per-key error line (which carries no opaque) is tied to its
key and the batch goes on."""
import base64
import re
import socket
import time
import urllib.parse

KEY_MAX = 250  # KEY_MAX_LENGTH in memcached
_NOT_TEXT = re.compile(rb"[\x00-\x20\x7f]")


class ProtocolError(Exception):
    """A reply the warmer cannot use (the text says which and from where)."""


class Unsupported(ProtocolError):
    """The server does not know the request (it answered ERROR)."""


def wire_key(key):
    """(token, binary flag) to name `key` in a meta command, or None when no
    form of it is accepted (empty, or base64 over 250 bytes)."""
    if not key:
        return None
    if len(key) <= KEY_MAX and not _NOT_TEXT.search(key):
        return key, b""
    enc = base64.b64encode(key)
    if len(enc) <= KEY_MAX:
        return enc, b" b"
    return None


def key_error(key):
    """Why `key` cannot be sent at all, or None."""
    if wire_key(key) is not None:
        return None
    if not key:
        return "empty key"
    return f"key of {len(key)} bytes with space or control bytes: its base64 form exceeds {KEY_MAX} bytes"


def _is_error(line):
    return line.startswith((b"ERROR", b"CLIENT_ERROR", b"SERVER_ERROR"))


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
        try:
            self.sock.sendall(data)
        except OSError as e:
            raise ProtocolError(f"{self.where}: {e}") from e

    def _recv(self, n):
        try:
            chunk = self.sock.recv(n)
        except OSError as e:
            raise ProtocolError(f"{self.where}: {e}") from e
        if not chunk:
            raise ProtocolError(f"{self.where}: connection closed")
        return chunk

    def line(self, end=b"\r\n"):
        while True:
            i = self.buf.find(end)
            if i >= 0:
                out, self.buf = self.buf[:i], self.buf[i + len(end) :]
                return out.rstrip(b"\r")
            self.buf += self._recv(1 << 16)

    def exact(self, n):
        while len(self.buf) < n:
            self.buf += self._recv(max(1 << 16, n - len(self.buf)))
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def stats(self):
        """`stats` as {name: value (str)}."""
        self.send(b"stats\r\n")
        out = {}
        while True:
            line = self.line()
            if line == b"END":
                return out
            parts = line.decode(errors="replace").split(" ", 2)
            if parts[0] != "STAT" or len(parts) < 3:
                raise ProtocolError(f"{self.where}: stats: {line.decode(errors='replace')}")
            out[parts[1]] = parts[2]

    def identity(self):
        """Its pid, uptime and start time (`time` - `uptime`, wall clock:
        for messages only, an NTP step moves it)."""
        s = self.stats()
        try:
            return {"pid": int(s.get("pid", -1)), "uptime": int(s["uptime"]),
                    "started": int(s["time"]) - int(s["uptime"])}
        except (KeyError, ValueError) as e:
            raise ProtocolError(f"{self.where}: stats without time/uptime") from e

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

    def _pipeline(self, requests):
        """Sends the requests (each a list of byte strings: the command line
        without its opaque and CR LF, then an optional data block) with
        O0..On-1 and a closing mn; returns per request either
        (reply tokens, value or None) or an error string."""
        n = len(requests)
        out = [None] * n
        if not n:
            return out
        wire = []
        for i, (head, data) in enumerate(requests):
            wire.append(head + b" O%d\r\n" % i)
            if data is not None:
                wire.append(data + b"\r\n")
        wire.append(b"mn\r\n")
        self.send(b"".join(wire))
        i = 0  # the first request not answered yet: an error line is its reply
        while True:
            head = self.line()
            if head == b"MN":
                break
            if _is_error(head):
                if i < n:
                    out[i] = head.decode(errors="replace")
                    i += 1
                continue
            toks = head.split(b" ")
            value = self.exact(int(toks[1]) + 2)[:-2] if toks[0] == b"VA" else None
            op = next((t[1:] for t in toks[1:] if t[:1] == b"O"), b"")
            if not op.isdigit() or int(op) >= n:
                raise ProtocolError(f"{self.where}: reply out of step: {head.decode(errors='replace')}")
            j = int(op)
            for k in range(i, j):  # no reply at all: count it as failed
                out[k] = "no reply"
            out[j] = (toks, value)
            i = max(i, j + 1)
        for k in range(n):
            if out[k] is None:
                out[k] = "no reply"
        return out

    def _each(self, verb, items, key_of, request):
        """Pipelines one request per item whose key can be sent:
        request(item, wire_key) gives (line, value or None). Returns the
        output list, with the key errors and transport errors ("<verb>:
        why") filled in, and the (position, (tokens, value)) replies left
        for the caller to read."""
        reqs, index, out = [], [], []
        for item in items:
            w = wire_key(key_of(item))
            if w is None:
                out.append(key_error(key_of(item)))
                continue
            index.append(len(out))
            out.append(None)
            reqs.append(request(item, w))
        replies = []
        for pos, reply in zip(index, self._pipeline(reqs)):
            if isinstance(reply, str):
                out[pos] = f"{verb}: {reply}"
            else:
                replies.append((pos, reply))
        return out, replies

    def _meta_get(self, keys, flags, fields, unreadable_is_error):
        """mg <key> <flags> v for each key, pipelined. Per key: None for a
        miss, fields(tokens, value) for a hit (tokens: flag letter -> its
        bytes), or an error string (the server's error line, or why it was
        not asked). A hit whose tokens `fields` cannot read (ValueError) is
        an error string too if `unreadable_is_error`, else it raises."""
        out, replies = self._each("mg", keys, lambda k: k,
                                  lambda k, w: (b"mg " + w[0] + w[1] + b" " + flags + b" v", None))
        for pos, (toks, value) in replies:
            if toks[0] == b"EN":
                out[pos] = None
                continue
            if toks[0] == b"VA":
                try:
                    out[pos] = fields({tok[:1]: tok[1:] for tok in toks[2:]}, value)
                    continue
                except ValueError:
                    if not unreadable_is_error:
                        raise
            out[pos] = f"mg: {b' '.join(toks).decode(errors='replace')}"
        return out

    def get_many(self, keys):
        """mg <key> f t v for each key, pipelined. Returns, per key, None for
        a miss, (flags, remaining_ttl, value) (remaining_ttl -1: no expiry),
        or an error string (the server's error line, or why it was not
        asked)."""
        return self._meta_get(keys, b"f t", lambda t, value: (
            int(t.get(b"f", b"0")), int(t.get(b"t", b"-1")), value), False)

    def versions(self, keys):
        """mg <key> f c v for each key, pipelined: per key None (a miss),
        (flags, cas, value), or an error string."""
        return self._meta_get(keys, b"f c", lambda t, value: (
            int(t.get(b"f", b"0")), int(t.get(b"c", b"0")), value), True)

    def set_many(self, items, mode=b"E"):
        """ms for each (key, flags, exptime, value), pipelined; mode E is
        add (keep what the node already has), S is set. Returns one reply
        per item: ('stored', cas), 'exists' or an error string."""
        def request(item, w):
            _, flags, exptime, value = item
            return (b"ms %s %d%s F%d T%d M%s c" % (w[0], len(value), w[1], flags, exptime, mode), value)

        out, replies = self._each("ms", items, lambda i: i[0], request)
        for pos, (toks, _) in replies:
            if toks[0] == b"HD":
                cas = next((int(t[1:]) for t in toks[1:] if t[:1] == b"c" and t[1:].isdigit()), None)
                out[pos] = ("stored", cas)
            elif toks[0] == b"NS":
                out[pos] = "exists"
            else:
                out[pos] = f"ms: {b' '.join(toks).decode(errors='replace')}"
        return out

    def delete_many(self, items):
        """md for each (key, cas or None), pipelined; with a cas the delete
        only happens if the item is still that version. Returns per item
        'deleted', 'changed' (EX: written since), 'absent' (NF) or an error."""
        def request(item, w):
            _, cas = item
            return (b"md " + w[0] + w[1] + (b" C%d" % cas if cas is not None else b""), None)

        out, replies = self._each("md", items, lambda i: i[0], request)
        names = {b"HD": "deleted", b"EX": "changed", b"NF": "absent"}
        for pos, (toks, _) in replies:
            out[pos] = names.get(toks[0]) or f"md: {b' '.join(toks).decode(errors='replace')}"
        return out
