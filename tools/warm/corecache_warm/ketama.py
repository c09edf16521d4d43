"""Ketama consistent hashing exactly as libmemcached and twemproxy build it.

A ring maps a key (bytes) to one of its servers. Two flavours:

- `libmemcached`: the continuum of libmemcached's update_continuum()
  (libmemcached/hosts.cc). Unweighted (the default of
  MEMCACHED_BEHAVIOR_KETAMA): 100 points per server, each the key hash of
  "host:port-i" ("host-i" when the port is 11211). Weighted
  (MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED, or any weight > 1): 160 points per
  server scaled by weight, four per MD5 digest of the same string.
  The point names are the host as the client was given it (pylibmc:
  "127.0.0.1:11311" gives host "127.0.0.1").
- `twemproxy`: ketama_update() in twemproxy's src/hashkit/nc_ketama.c,
  always weighted, four points per MD5 digest of "<name>-i", where name is
  the server line's optional name, else "host:port" ("host" for 11211), as
  conf_add_server() in src/nc_conf.c sets it. The key hash is the pool's
  `hash:` (twemproxy's default is fnv1a_64), applied to the part of the key
  inside `hash_tag` when the pool sets one.

Both look a key up the same way: the first point whose value is >= the
key's hash, wrapping to the first point (ketama_dispatch()).
"""
import bisect
import hashlib
import math
import struct

from .hashes import HASHES

DEFAULT_PORT = 11211
POINTS_PER_SERVER = 100  # MEMCACHED_POINTS_PER_SERVER
POINTS_PER_SERVER_KETAMA = 160  # MEMCACHED_POINTS_PER_SERVER_KETAMA, twemproxy's too


class Server:
    """One ring member: where to connect and the name its points hash."""

    def __init__(self, host, port, weight=1, name=None):
        self.host = host
        self.port = int(port)
        self.weight = int(weight) if weight else 1
        self.name = name

    @classmethod
    def parse(cls, spec):
        """Parses "host:port[:weight] [name]" (twemproxy's server line; a
        leading "- " as in its YAML list is accepted)."""
        spec = spec.strip()
        if spec.startswith("- "):
            spec = spec[2:].strip()
        name = None
        if " " in spec:
            spec, name = spec.split(None, 1)
            name = name.strip() or None
        parts = spec.split(":")
        if len(parts) == 2:
            host, port, weight = parts[0], parts[1], 1
        elif len(parts) == 3:
            host, port, weight = parts
        else:
            raise ValueError(f"server {spec!r} is not host:port[:weight] [name]")
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"server {spec!r} has a bad port")
        if not str(weight).isdigit() or int(weight) == 0:
            raise ValueError(f"server {spec!r} has a bad weight (a positive integer)")
        return cls(host, int(port), int(weight), name)

    def addr(self):
        return f"{self.host}:{self.port}"

    def point_name(self):
        if self.name:
            return self.name
        return self.host if self.port == DEFAULT_PORT else f"{self.host}:{self.port}"

    def __repr__(self):
        return f"Server({self.addr()}, weight={self.weight}, name={self.name!r})"


def _f32(x):
    """Rounds to a C float, as both libraries compute pct in float."""
    return struct.unpack("f", struct.pack("f", x))[0]


def _digest_points(name):
    d = hashlib.md5(name).digest()
    return [int.from_bytes(d[4 * i : 4 * i + 4], "little") for i in range(4)]


class Ring:
    """A ketama continuum over `servers` (a list of Server)."""

    def __init__(self, servers, flavour="libmemcached", hash="md5", weighted=None, hash_tag=None):
        if flavour not in ("libmemcached", "twemproxy"):
            raise ValueError(f"unknown ring flavour {flavour!r}")
        if hash not in HASHES:
            raise ValueError(f"unknown hash {hash!r}; known: {', '.join(sorted(HASHES))}")
        if hash_tag is not None and len(hash_tag) != 2:
            raise ValueError("hash_tag is two characters, as twemproxy's")
        if not servers:
            raise ValueError("a ring needs at least one server")
        self.servers = list(servers)
        self.flavour = flavour
        self.key_hash = HASHES[hash]
        self.hash_tag = hash_tag.encode() if hash_tag else None
        if weighted is None:
            weighted = flavour == "twemproxy" or any(s.weight > 1 for s in servers)
        self.weighted = weighted or flavour == "twemproxy"
        points = []
        total = sum(s.weight for s in servers)
        n = len(servers)
        for index, s in enumerate(servers):
            name = s.point_name().encode()
            if self.weighted:
                pct = _f32(s.weight / total)
                per_server = int(math.floor(_f32(_f32(pct * POINTS_PER_SERVER_KETAMA / 4 * n) + 1e-10))) * 4
                for i in range(per_server // 4):
                    for value in _digest_points(name + b"-%d" % i):
                        points.append((value, index))
            else:
                for i in range(POINTS_PER_SERVER):
                    points.append((self.key_hash(name + b"-%d" % i), index))
        # qsort is not stable; equal values (one in ~10^7 pairs) are ordered
        # by index here, which may differ from the C library's order.
        points.sort()
        self._values = [p[0] for p in points]
        self._owners = [p[1] for p in points]

    def hash_key(self, key):
        if self.hash_tag:
            start = key.find(self.hash_tag[:1])
            if start >= 0:
                end = key.find(self.hash_tag[1:], start + 1)
                if end > start + 1:
                    key = key[start + 1 : end]
        return self.key_hash(key)

    def index_of(self, key):
        """Index in `servers` of the server that owns `key` (bytes or str)."""
        if isinstance(key, str):
            key = key.encode()
        i = bisect.bisect_left(self._values, self.hash_key(key))
        if i == len(self._values):
            i = 0
        return self._owners[i]

    def owner(self, key):
        return self.servers[self.index_of(key)]
