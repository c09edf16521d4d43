"""meta-memcache (meta protocol) and aiomcache (text, asyncio), each
against memcached and corecache; the calls run in-process and what they
return is compared."""
import asyncio
import re

import aiomcache
import pytest
from meta_memcache import CacheClient, Key, LeasePolicy, ServerAddress, SetMode, StalePolicy, connection_pool_factory_builder

from matrix import kinds, same_as_memcached


def attempt(f):
    try:
        return f()
    except Exception as e:  # the client's own exception is the observation
        return f"raised {type(e).__name__}"


def meta_client(srv):
    return CacheClient.cache_client_from_servers(
        servers=[ServerAddress(host="127.0.0.1", port=srv.port)],
        # 10 s: a timeout is recorded as what the client saw, and a loaded
        # machine can hold one server's reply back for seconds.
        connection_pool_factory_fn=connection_pool_factory_builder(connection_timeout=10, recv_timeout=10),
    )


def meta_data(srv):
    c = meta_client(srv)
    ops = []

    def rec(name, f):
        ops.append([name, attempt(f)])

    rec("set", lambda: c.set("k", "v1", ttl=0))
    rec("get", lambda: c.get("k"))
    rec("add existing", lambda: c.set("k", "v2", ttl=0, set_mode=SetMode.ADD))
    rec("add new", lambda: c.set("k2", "a", ttl=0, set_mode=SetMode.ADD))
    rec("replace missing", lambda: c.set("nokey", "x", ttl=0, set_mode=SetMode.REPLACE))
    rec("append", lambda: c.set("k2", "b", ttl=0, set_mode=SetMode.APPEND))
    rec("get", lambda: c.get("k2"))
    value, cas = c.get_cas("k")
    rec("get_cas value", lambda: value)
    rec("set stale cas", lambda: c.set("k", "c1", ttl=0, cas_token=cas + 1000))
    rec("set current cas", lambda: c.set("k", "c2", ttl=0, cas_token=cas))
    rec("set reused cas", lambda: c.set("k", "c3", ttl=0, cas_token=cas))
    rec("set cas 0", lambda: c.set("k", "c4", ttl=0, cas_token=0))
    rec("get after cas", lambda: c.get("k"))
    rec("delete stale cas", lambda: c.delete("k", cas_token=cas))
    rec("delete cas 0", lambda: c.delete("k", cas_token=0))
    rec("get", lambda: c.get("k"))
    rec("delete", lambda: c.delete("k"))
    rec("delete again", lambda: c.delete("k"))
    rec("delta missing", lambda: c.delta("n", 1))
    rec("delta_initialize", lambda: c.delta_initialize("n", 1, initial_value=10, initial_ttl=0))
    rec("delta_and_get", lambda: c.delta_and_get("n", 5))
    rec("delta_and_get negative", lambda: c.delta_and_get("n", -100))
    rec("touch", lambda: c.touch("k2", 100))
    rec("touch missing", lambda: c.touch("nokey", 100))
    rec("get touch_ttl", lambda: c.get("k2", touch_ttl=200))
    rec("set no_reply", lambda: c.set("q", "quiet", ttl=0, no_reply=True))
    rec("get no_reply'd", lambda: c.get("q"))
    rec("delete no_reply missing", lambda: c.delete("nokey", no_reply=True))
    rec("multi_get", lambda: sorted((k.key, v) for k, v in c.multi_get(["k2", "q", "nokey"]).items()))
    rec("lease miss", lambda: c.get_or_lease("lease", LeasePolicy(miss_retries=1, miss_retry_wait=0.01, wait_backoff_factor=1, miss_max_retry_wait=0.01)))
    rec("refill", lambda: c.refill("lease", "filled", ttl=100))
    rec("get leased", lambda: c.get("lease"))
    rec("invalidate", lambda: c.invalidate("k2", stale_policy=StalePolicy(mark_stale_on_deletion_ttl=30)))
    rec("binary key", lambda: c.set(Key("bin\x01key"), "b", ttl=0) and c.get(Key("bin\x01key")))
    rec("typed", lambda: c.set("obj", {"a": [1, 2]}, ttl=0) and c.get("obj"))
    rec("big", lambda: c.set("big", "b" * 500000, ttl=0) and len(c.get("big")))
    return ops


def test_meta_memcache_data_calls_memcached(matrix):
    assert ["set", True] in same_as_memcached(matrix, "memcached", meta_data)


def test_meta_memcache_data_calls_corecache(matrix):
    same_as_memcached(matrix, "corecache", meta_data)


# --- aiomcache ---

def aio(srv, coro_fn):
    async def main():
        c = aiomcache.Client("127.0.0.1", srv.port, pool_size=2)
        try:
            return await coro_fn(c)
        finally:
            await c.close()
    return asyncio.run(main())


async def aio_attempt(coro):
    try:
        return await coro
    except Exception as e:
        return f"raised {type(e).__name__}"


def version_ok(v):
    m = re.match(rb"(\d+)\.(\d+)\.(\d+)", v or b"")
    return bool(m) and int(m.group(1)) >= 1


async def aio_version(c):
    return {"version_ok": version_ok(await c.version())}


async def aio_stats(c):
    await c.set(b"stat_key", b"v" * 100)
    out = {}
    for group in [None, b"settings", b"items", b"slabs"]:
        st = await aio_attempt(c.stats(group))
        name = (group or b"general").decode()
        if isinstance(st, dict):
            keys = [k.decode() for k in st]
            out[name] = {"nonempty": bool(keys),
                         "has": sorted(k for k in keys if re.fullmatch(r"pid|curr_items|maxbytes|item_size_max|items:\d+:number|\d+:chunk_size", k))}
            if group is None:
                out[name]["version_ok"] = version_ok(st.get(b"version"))
        else:
            out[name] = st
    return out


async def aio_data(c):
    ops = []

    async def rec(name, coro):
        ops.append([name, await aio_attempt(coro)])

    await rec("set", c.set(b"k", b"v1"))
    await rec("get", c.get(b"k"))
    await rec("add existing", c.add(b"k", b"v2"))
    await rec("replace", c.replace(b"k", b"v3"))
    await rec("replace missing", c.replace(b"nokey", b"x"))
    await rec("append", c.append(b"k", b"-end"))
    await rec("prepend", c.prepend(b"k", b"start-"))
    await rec("get", c.get(b"k"))
    value, cas = await c.gets(b"k")
    await rec("cas stale", c.cas(b"k", b"c1", cas + 1000))
    await rec("cas current", c.cas(b"k", b"c2", cas))
    await rec("cas reused", c.cas(b"k", b"c3", cas))
    # aiomcache drops a cas token of 0 from the line: ERROR, ClientException.
    await rec("cas zero", c.cas(b"k", b"c4", 0))
    await rec("get after cas", c.get(b"k"))
    await rec("set n", c.set(b"n", b"10"))
    await rec("incr", c.incr(b"n", 5))
    await rec("decr past 0", c.decr(b"n", 100))
    await rec("incr missing", c.incr(b"nokey", 1))
    await rec("touch", c.touch(b"k", 100))
    await rec("touch missing", c.touch(b"nokey", 100))
    await rec("multi_get", c.multi_get(b"k", b"nokey", b"n"))
    await rec("delete", c.delete(b"k"))
    await rec("delete again", c.delete(b"k"))
    await rec("set exptime -1", c.set(b"gone", b"x", exptime=-1))
    await rec("get expired", c.get(b"gone"))
    await rec("flush_all", c.flush_all())
    await rec("get flushed", c.get(b"n"))
    return [[n, list(v) if isinstance(v, tuple) else v] for n, v in ops]


@pytest.mark.parametrize("kind", kinds())
def test_aiomcache_version(matrix, kind):
    assert same_as_memcached(matrix, kind, lambda s: aio(s, aio_version))["version_ok"]


@pytest.mark.parametrize("kind", kinds())
def test_aiomcache_stats(matrix, kind):
    out = same_as_memcached(matrix, kind, lambda s: aio(s, aio_stats))
    assert out["general"]["version_ok"] and out["items"]["nonempty"]


@pytest.mark.parametrize("kind", kinds())
def test_aiomcache_data_calls(matrix, kind):
    out = same_as_memcached(matrix, kind, lambda s: aio(s, aio_data))
    assert ["incr", 15] in out
