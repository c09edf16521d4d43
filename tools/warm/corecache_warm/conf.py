"""Reads a ring from twemproxy's YAML config: one pool's servers, hash,
hash_tag and distribution. Only the shape twemproxy's own configs use is
understood (pools at the top level, two-space keys, a `servers:` list);
anything else is refused with the line, rather than guessed."""
from .ketama import Ring, Server


def _value(raw):
    raw = raw.strip()
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "\"'":
        return raw[1:-1]
    return raw


def _strip_comment(line):
    out, quote = [], None
    for ch in line:
        if quote:
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            break
        out.append(ch)
    return "".join(out).rstrip()


def read_pools(path):
    """{pool name: {key: value, "servers": [line, ...]}}"""
    pools, pool, in_servers = {}, None, False
    with open(path) as f:
        for number, raw in enumerate(f, 1):
            line = _strip_comment(raw.rstrip("\n"))
            if not line.strip():
                continue
            indent = len(line) - len(line.lstrip())
            text = line.strip()
            if indent == 0:
                if not text.endswith(":"):
                    raise ValueError(f"{path}:{number}: expected a pool name, got {text!r}")
                pool = pools.setdefault(text[:-1].strip(), {"servers": []})
                in_servers = False
            elif pool is None:
                raise ValueError(f"{path}:{number}: a setting outside any pool")
            elif text.startswith("- "):
                if not in_servers:
                    raise ValueError(f"{path}:{number}: a list item outside servers:")
                pool["servers"].append(_value(text[2:]))
            else:
                key, sep, val = text.partition(":")
                if not sep:
                    raise ValueError(f"{path}:{number}: cannot read {text!r}")
                in_servers = key.strip() == "servers"
                if not in_servers:
                    pool[key.strip()] = _value(val)
    return pools


def ring_from_twemproxy(spec):
    """`spec` is FILE or FILE:POOL (the pool may be left out when the file
    has one)."""
    path, pool_name = spec, None
    if ":" in spec and not spec.endswith(".yml") and not spec.endswith(".yaml"):
        path, pool_name = spec.rsplit(":", 1)
    pools = read_pools(path)
    if pool_name is None:
        if len(pools) != 1:
            raise ValueError(f"{path} has pools {sorted(pools)}; name one as {path}:POOL")
        pool_name = next(iter(pools))
    if pool_name not in pools:
        raise ValueError(f"{path} has no pool {pool_name!r}")
    pool = pools[pool_name]
    dist = pool.get("distribution", "ketama")
    if dist != "ketama":
        raise ValueError(f"pool {pool_name!r} uses distribution {dist!r}; only ketama keeps keys in place")
    if not pool["servers"]:
        raise ValueError(f"pool {pool_name!r} lists no servers")
    servers = [Server.parse(s) for s in pool["servers"]]
    return Ring(servers, flavour="twemproxy", hash=pool.get("hash", "fnv1a_64"),
                hash_tag=pool.get("hash_tag") or None)
