"""tools/corecache-warm: after a node joins a ketama ring, copy exactly the
keys that move from their old owners to the new node, so a client on the
new ring hits where it hit on the old one. Keys are listed with
`lru_crawler metadump all` where the server has it (memcached) or given as a
file (--keys), which is how corecache is warmed until it lists keys."""
import base64
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pylibmc
import pytest

from topology import WARM, Cluster, Node, Ring, Server, Twemproxy, fixed_ports, kind, report  # noqa: F401

MODES = {
    "ketama": ({"ketama": True}, [], dict(flavour="libmemcached", hash="one_at_a_time", weighted=False)),
    "ketama_weighted": ({"ketama_weighted": True}, ["--weighted"], dict(flavour="libmemcached", hash="md5", weighted=True)),
}
FAR = 40 * 86400  # past memcached's 30-day limit: an absolute exptime


def warm(*args, check=True, timeout=300):
    out = subprocess.run([sys.executable, WARM, *args], capture_output=True, text=True, timeout=timeout)
    if check:
        assert out.returncode == 0, out.stderr
    return out


def key_source(kind, tmp_path, keys):
    """memcached lists its keys itself; corecache does not answer
    lru_crawler yet, so the application's key list is given."""
    if kind == "memcached":
        return []
    path = tmp_path / "keys.txt"
    path.write_text("".join(k + "\n" for k in keys))
    return ["--keys", str(path)]


def mg(node, key):
    """(flags, remaining ttl, value) straight from one node, or None."""
    reply = node.request(b"mg " + base64.b64encode(key.encode()) + b" b f t v\r\n", until=b"\r\n")
    if reply.startswith(b"EN"):
        return None
    while reply.count(b"\r\n") < 2:
        reply += node.request(b"", until=b"\r\n")
    head, value = reply.split(b"\r\n")[:2]
    toks = dict((t[:1], t[1:]) for t in head.split(b" ")[2:])
    return int(toks[b"f"]), int(toks[b"t"]), value


def fill_varied(client, keys):
    """Values of several pylibmc types (so several client flags) and three
    kinds of expiry: none, relative, and absolute past 30 days."""
    now = int(time.time())
    for i, k in enumerate(keys):
        value = [k, i, k.encode() * 3, {"id": i}][i % 4]
        exp = [0, 3600, now + FAR][i % 3]
        assert client.set(k, value, time=exp)


def hits(client, keys):
    got = {}
    for i in range(0, len(keys), 500):
        got.update(client.get_multi(keys[i : i + 500]))
    return got


@pytest.mark.parametrize("mode", sorted(MODES))
def test_warm_after_adding_a_node_keeps_the_hit_ratio(kind, mode, tmp_path):
    behaviors, flags, model = MODES[mode]
    cluster = Cluster(kind, 3, ports=fixed_ports(4))
    try:
        stored = [f"acct:{i}" for i in range(6000)]
        keys = stored + [f"absent:{i}" for i in range(1500)]
        old_client = pylibmc.Client(cluster.addrs(), behaviors=behaviors)
        fill_varied(old_client, stored)
        old_got = hits(old_client, keys)
        assert len(old_got) == len(stored)
        old_addrs = cluster.addrs()
        new_node = cluster.add()
        new_client = pylibmc.Client(cluster.addrs(), behaviors=behaviors)
        cold = len(hits(new_client, keys))

        old_ring = Ring([Server.parse(a) for a in old_addrs], **model)
        new_ring = Ring([Server.parse(a) for a in cluster.addrs()], **model)
        moved = [k for k in stored if old_ring.owner(k).addr() != new_ring.owner(k).addr()]
        # a client on the new ring already wrote one moved key: add mode keeps it
        fresh = moved[0]
        assert new_client.set(fresh, "newer")
        before = {k: mg(cluster.nodes[old_ring.index_of(k)], k) for k in moved}

        ring_args = flags + sum((["--old", a] for a in old_addrs), []) + sum((["--new", a] for a in cluster.addrs()), [])
        # a key list names absent keys too (they move on paper, and are gone)
        listed = stored if kind == "memcached" else keys
        planned = [k for k in listed if old_ring.owner(k).addr() != new_ring.owner(k).addr()]
        plan = warm(*ring_args, *key_source(kind, tmp_path, keys), "--dry-run").stdout
        assert plan.strip().splitlines()[-1] == f"total: {len(planned)}"
        t0 = time.time()
        out = warm(*ring_args, *key_source(kind, tmp_path, keys), "--rate", "0")
        gone = len(planned) - len(moved)
        assert f"copied={len(moved) - 1} present=1 gone={gone} expiring=0 errors=0" in out.stderr, out.stderr
        elapsed = time.time() - t0

        new_got = hits(new_client, keys)
        ratio_old = len(old_got) / len(keys)
        ratio_new = len(new_got) / len(keys)
        assert new_got[fresh] == "newer"
        del new_got[fresh], old_got[fresh]
        assert new_got == old_got
        for k in moved[1:]:
            flags_, ttl, value = mg(new_node, k)
            f0, t0_, v0 = mg(cluster.nodes[old_ring.index_of(k)], k)  # the old copy, now
            assert (flags_, value) == (f0, v0), k
            # TTLs are whole seconds read from one node's clock and written
            # against another's; memcached's clock is a whole-second counter
            # ticked once a second from its own start, so two nodes may
            # disagree by up to 2 s
            assert (ttl == -1) == (t0_ == -1) and abs(ttl - t0_) <= 2, (k, ttl, t0_)
        assert any(t > 30 * 86400 for _, t, _ in before.values())  # absolute exptimes were carried
        report(f"warm[{kind},{mode}]", moved=len(moved), old_hit_ratio=round(ratio_old, 4),
               new_ring_before_warm=round(cold / len(keys), 4), new_ring_after_warm=round(ratio_new, 4),
               seconds=round(elapsed, 2))
        assert ratio_new >= 0.99 * ratio_old
        assert cold < 0.9 * len(stored)
    finally:
        cluster.close()


def test_warm_through_twemproxy_configs(kind, tmp_path):
    """The rings are read from the twemproxy configs themselves (named
    servers, fnv1a_64, hash_tag); the new proxy hits where the old did."""
    cluster = Cluster(kind, 3)
    names = ["cache-1", "cache-2", "cache-3", "cache-4"]
    old_proxy = Twemproxy(cluster.nodes, names=names[:3], hash_tag="{}")
    new_proxy = None
    try:
        import pymemcache

        stored = [f"{{user{i % 700}}}:item:{i}" for i in range(5000)]
        keys = stored + [f"nothing:{i}" for i in range(1000)]
        old = pymemcache.Client(old_proxy.addr(), default_noreply=False)
        for i in range(0, len(stored), 100):
            assert old.set_many({k: k for k in stored[i : i + 100]}, expire=3600) == []
        old_hits = sum(len(old.get_many(keys[i : i + 100])) for i in range(0, len(keys), 100))
        cluster.add()
        new_proxy = Twemproxy(cluster.nodes, names=names, hash_tag="{}")
        new = pymemcache.Client(new_proxy.addr(), default_noreply=False)
        cold = sum(len(new.get_many(keys[i : i + 100])) for i in range(0, len(keys), 100))
        out = warm("--old-twemproxy", old_proxy.conf, "--new-twemproxy", new_proxy.conf,
                   *key_source(kind, tmp_path, keys), "--rate", "0")
        copied = int(re.search(r"copied=(\d+)", out.stderr).group(1))
        new_hits = sum(len(new.get_many(keys[i : i + 100])) for i in range(0, len(keys), 100))
        report(f"warm-twemproxy[{kind}]", copied=copied, old_hits=old_hits, cold=cold, after_warm=new_hits)
        assert new_hits >= 0.99 * old_hits
        assert cold < 0.9 * old_hits
        # hash_tag: all keys of one {userN} live on one node, before and after
        for node in cluster.nodes:
            present = node.keys_present(stored)
            tags = {k.split("}")[0] for k in present}
            assert present == {k for k in stored if k.split("}")[0] in tags}
        assert copied > 0
    finally:
        if new_proxy:
            new_proxy.stop()
        old_proxy.stop()
        cluster.close()


def ring_clients(cluster):
    """pylibmc ketama clients of the old ring (the first three nodes) and of
    the grown one (all four)."""
    behaviors = MODES["ketama"][0]
    return (pylibmc.Client(cluster.addrs()[:3], behaviors=behaviors),
            pylibmc.Client(cluster.addrs(), behaviors=behaviors))


def grown_ring(kind, tmp_path, n_keys=3000, new_node_args=()):
    """Three nodes filled through a libmemcached ring, a fourth added (with
    `new_node_args`); returns (cluster, ring arguments, key source
    arguments, moved keys)."""
    cluster = Cluster(kind, 3)
    keys = [f"doc:{i}" for i in range(n_keys)]
    fill_varied(pylibmc.Client(cluster.addrs(), behaviors={"ketama": True}), keys)
    old_addrs = cluster.addrs()
    cluster.add(new_node_args)
    model = MODES["ketama"][2]
    old_ring = Ring([Server.parse(a) for a in old_addrs], **model)
    new_ring = Ring([Server.parse(a) for a in cluster.addrs()], **model)
    moved = [k for k in keys if old_ring.owner(k).addr() != new_ring.owner(k).addr()]
    args = sum((["--old", a] for a in old_addrs), []) + sum((["--new", a] for a in cluster.addrs()), [])
    return cluster, args, key_source(kind, tmp_path, keys), moved


def test_warm_is_rate_limited_and_shows_progress(kind, tmp_path):
    cluster, ring_args, source, moved = grown_ring(kind, tmp_path, 2000)
    try:
        # Slow enough that the copy outlasts a progress interval (1 s) twice
        # over: ~440 moved keys at 400/s once finished before the first.
        rate, batch = 150, 50
        t0 = time.monotonic()
        out = warm(*ring_args, *source, "--rate", str(rate), "--batch", str(batch))
        elapsed = time.monotonic() - t0
        # a lower bound only: the pacing waits before every batch after the first
        assert elapsed >= (len(moved) - batch) / rate
        lines = [line for line in out.stderr.splitlines() if re.match(r"warm: \d+/\d+ \(", line)]
        assert len(lines) >= 2, out.stderr
        done = [int(re.match(r"warm: (\d+)/", line).group(1)) for line in lines]
        assert done == sorted(done) and done[-1] == len(moved)
        assert f"copied={len(moved)} " in out.stderr
    finally:
        cluster.close()


def test_warm_resumes_after_sigterm(kind, tmp_path):
    """SIGTERM mid-copy saves the position and exits 143; the same command
    with the same --state resumes there and copies the rest."""
    cluster, ring_args, source, moved = grown_ring(kind, tmp_path, 3000)
    state = tmp_path / "warm.state"
    try:
        argv = [sys.executable, WARM, *ring_args, *source, "--rate", "300", "--batch", "20", "--state", str(state)]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 60
        while time.time() < deadline:
            if state.exists() and '"done": 0,' not in state.read_text():
                break
            time.sleep(0.05)
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 128 + signal.SIGTERM, err
        stopped = int(re.search(r"stopped at (\d+) of (\d+)", err).group(1))
        assert 0 < stopped < len(moved)

        out = warm(*ring_args, *source, "--rate", "0", "--state", str(state))
        assert f"resuming at {stopped} of {len(moved)}" in out.stderr
        counts = dict(re.findall(r"(\w+)=(\d+)", out.stderr.splitlines()[-1]))
        # counts carry over the interrupted run: every moved key copied once
        assert counts["copied"] == str(len(moved)) and counts["errors"] == "0", out.stderr
        assert cluster.nodes[3].keys_present(moved) == set(moved)

        # the state belongs to this ring change only
        other = warm("--old", ring_args[1], "--new", ring_args[1], "--new", ring_args[-1], *source,
                     "--state", str(state), check=False)
        assert other.returncode != 0 and "another ring change" in other.stderr
    finally:
        cluster.close()


def test_warm_lists_corecache_keys_by_metadump(tmp_path):
    """Without --keys the warmer lists the old owners' keys with
    `lru_crawler metadump all`, which corecache now answers: every key
    that moves reaches the new node."""
    cluster, ring_args, _, moved = grown_ring("corecache", tmp_path, 500)
    try:
        out = warm(*ring_args, "--rate", "0", check=False)
        assert out.returncode == 0, out.stderr
        assert cluster.nodes[3].keys_present(moved) == set(moved)
    finally:
        cluster.close()


def test_warm_warns_when_a_listing_falls_short_of_curr_items(tmp_path):
    """memcached's metadump is best effort (it skips items it cannot lock
    under load, and flushed items not reclaimed yet): the warm compares
    each node's listing with its curr_items and warns. Flushed items are
    the deterministic case: curr_items counts them until they are
    reclaimed, which the LRU maintainer (off here) would do at any time."""
    cluster = Cluster("memcached", 0)
    try:
        for _ in range(2):
            cluster.nodes.append(Node("memcached", 32, None, ["-o", "no_lru_maintainer"]))
        old_addrs = cluster.addrs()
        client = pylibmc.Client(old_addrs, behaviors=MODES["ketama"][0])
        for i in range(2000):
            assert client.set(f"item:{i}", "v")
        cluster.add()
        args = sum((["--old", a] for a in old_addrs), []) + sum((["--new", a] for a in cluster.addrs()), [])
        out = warm(*args, "--dry-run")
        assert "warning" not in out.stderr, out.stderr
        flushed = cluster.nodes[0]
        assert flushed.request(b"flush_all\r\n", until=b"\r\n") == b"OK\r\n"
        out = warm(*args, "--dry-run")
        assert f"warning: {flushed.addr()} listed 0 keys but holds " in out.stderr, out.stderr
        assert f"warning: {cluster.nodes[1].addr()}" not in out.stderr, out.stderr
    finally:
        cluster.close()


@pytest.mark.parametrize("kind", ["corecache", "memcached"])
def test_warm_says_when_a_node_refuses_to_list_keys(kind):
    """-X disables lru_crawler metadump on both servers ("ERROR metadump not
    allowed"): the tool exits 3 with a message naming the node and --keys,
    not a traceback, in a dry run and in a real one."""
    src = Node(kind)
    src.stop()
    src.argv = lambda base=src.argv: base() + ["-X"]
    src.start()
    try:
        for extra in (["--dry-run"], ["--quiet"]):
            out = warm("--old", src.addr(), "--new", src.addr(), "--new", "127.0.0.1:1", *extra, check=False)
            assert out.returncode == 3, out.stderr
            assert "Traceback" not in out.stderr, out.stderr
            assert f"{src.addr()}: answers 'ERROR metadump not allowed'" in out.stderr, out.stderr
            assert "--keys FILE" in out.stderr
    finally:
        src.stop()


def raw(node, data):
    """One request on a fresh connection, read up to and including MN."""
    return node.request(data + b"mn\r\n", until=b"MN\r\n")


def moving(old_ring, new_ring, candidates, n):
    """The first `n` of `candidates` (bytes) whose owner changes."""
    out = [k for k in candidates if old_ring.owner(k).addr() != new_ring.owner(k).addr()]
    assert len(out) >= n, (len(out), n)
    return out[:n]


def test_warm_copies_long_and_odd_keys_and_skips_only_the_bad_ones(kind, tmp_path):
    """Keys of 187-250 bytes (whose base64 form would be over 250 and
    refused), a key with a space (only storable as a binary key), a key no
    form of which fits, and a value the new node refuses (over its -I):
    the two bad ones are counted as errors and skipped, every other key is
    copied, and each copy is stored under the same key form as on its old
    owner (memcached marks keys written with `b` as binary: `mg key k`
    would show the base64 form)."""
    cluster = Cluster(kind, 3)
    try:
        new_node = Node(kind)
        new_node.stop()
        if kind == "memcached":
            new_node.argv = lambda base=new_node.argv: base() + ["-I", "2048", "-o", "slab_chunk_max=1024"]
        else:
            new_node.argv = lambda base=new_node.argv: base() + ["-I", "2048"]
        new_node.start()
        old_addrs = cluster.addrs()
        cluster.nodes.append(new_node)
        model = MODES["ketama"][2]
        old_ring = Ring([Server.parse(a) for a in old_addrs], **model)
        new_ring = Ring([Server.parse(a) for a in cluster.addrs()], **model)

        long_keys = [(b"long:%d:" % i).ljust(187 + i % 64, b"x") for i in range(400)]
        assert {len(k) for k in long_keys} == set(range(187, 251))
        plain = [b"plain:%d" % i for i in range(400)]
        spaced = moving(old_ring, new_ring, [b"sp ace:%d" % i for i in range(100)], 3)
        unsendable = moving(old_ring, new_ring, [(b"no fit %d " % i).ljust(250, b"z") for i in range(100)], 1)[0]
        big = moving(old_ring, new_ring, plain, 1)[0]
        for k in long_keys + plain:
            value = b"v" * 3000 if k == big else b"value of " + k
            owner = cluster.nodes[old_ring.index_of(k)]
            assert raw(owner, b"ms %s %d F7 T0\r\n%s\r\n" % (k, len(value), value)) == b"HD\r\nMN\r\n"
        for k in spaced:
            owner = cluster.nodes[old_ring.index_of(k)]
            req = b"ms %s 5 b F3 T0\r\nspace\r\n" % base64.b64encode(k)
            assert raw(owner, req) == b"HD\r\nMN\r\n"
        all_keys = long_keys + plain + spaced + [unsendable]
        keys_file = tmp_path / "keys.bin"
        keys_file.write_bytes(b"".join(k + b"\n" for k in all_keys))
        moved = [k for k in all_keys if old_ring.owner(k).addr() != new_ring.owner(k).addr()]
        moved_long = [k for k in long_keys if k in moved]
        assert len(moved_long) > 20

        args = sum((["--old", a] for a in old_addrs), []) + sum((["--new", a] for a in cluster.addrs()), [])
        out = warm(*args, "--keys", str(keys_file), "--rate", "0", "--batch", "50", "--state",
                   str(tmp_path / "st"), check=False)
        assert out.returncode == 1, out.stderr  # errors were counted
        assert f"copied={len(moved) - 2} present=0 gone=0 expiring=0 errors=2" in out.stderr, out.stderr
        assert "object too large" in out.stderr and "exceeds 250" in out.stderr, out.stderr

        def head(node, k):
            """mg with the key returned, as a client would see it."""
            if b" " in k:
                return raw(node, b"mg %s b k f v\r\n" % base64.b64encode(k))
            return raw(node, b"mg %s k f v\r\n" % k)

        for k in moved:
            if k == unsendable:  # no server can hold it under any form
                continue
            if k == big:
                assert head(new_node, k).startswith(b"EN ")
                continue
            old_reply = head(cluster.nodes[old_ring.index_of(k)], k)
            assert old_reply.startswith(b"VA "), (k, old_reply)
            assert head(new_node, k) == old_reply, k
        report(f"warm-long-keys[{kind}]", moved=len(moved), long_moved=len(moved_long))
    finally:
        cluster.close()


def test_sync_pass_carries_deletes_and_keeps_fresh_writes(kind, tmp_path):
    """Step 6 of the procedure: after the copy, clients on the old ring
    delete some moved keys and overwrite others; the --overwrite re-run with
    the same --state makes the new node answer as the old ring does: the
    overwritten values replaced, the deleted keys deleted (from the earlier
    pass's plan: memcached no longer lists them), except a key a client of
    the new ring wrote to the new node after the copy, which is kept."""
    cluster, ring_args, source, moved = grown_ring(kind, tmp_path, 3000)
    state = str(tmp_path / "warm.state")
    try:
        old_client, new_client = ring_clients(cluster)
        warm(*ring_args, *source, "--rate", "0", "--state", state)
        assert len(hits(new_client, moved)) == len(moved)

        deleted, rewritten = moved[0::3], moved[1::3]
        for k in deleted:
            assert old_client.delete(k)
        for k in rewritten:
            assert old_client.set(k, "rewritten " + k)
        fresh = deleted[0]  # a client already on the new ring writes it anew
        assert new_client.set(fresh, "fresh")

        out = warm(*ring_args, *source, "--rate", "0", "--overwrite", "--state", state)
        assert "sync pass 2" in out.stderr, out.stderr
        assert f"deleted={len(deleted) - 1} kept=1" in out.stderr, out.stderr
        now_old = hits(old_client, moved)
        now_new = hits(new_client, moved)
        stale = [k for k in deleted if k in now_new and k != fresh]
        report(f"warm-sync-deletes[{kind}]", moved=len(moved), deleted_on_old=len(deleted),
               stale_on_new=len(stale))
        assert stale == []
        assert now_new.pop(fresh) == "fresh"
        assert now_new == now_old
    finally:
        cluster.close()


def test_sync_pass_never_deletes_on_a_node_without_cas(kind, tmp_path):
    """A new node started with -C (CAS disabled) answers every ms with c0,
    and `md <key> C0` matches any item: the sync pass must not delete on
    it. Clients of the new ring write the moved keys there, their old
    owners delete them; every client value stays, counted unverified."""
    cluster, ring_args, source, moved = grown_ring(kind, tmp_path, 2000, ["-C"])
    state = str(tmp_path / "warm.state")
    try:
        old_client, new_client = ring_clients(cluster)
        warm(*ring_args, *source, "--rate", "0", "--state", state)
        for k in moved:
            assert new_client.set(k, "client " + k)
            assert old_client.delete(k)
        out = warm(*ring_args, *source, "--rate", "0", "--overwrite", "--state", state)
        # c0 on every ms, from memcached -C and, since it honours -C,
        # corecache -C alike
        assert f"deleted=0 kept=0 unverified={len(moved)}" in out.stderr, out.stderr
        assert "CAS disabled" in out.stderr, out.stderr
        got = hits(new_client, moved)
        assert got == {k: "client " + k for k in moved}
    finally:
        cluster.close()


def test_items_with_the_largest_exptime_are_carried(kind, tmp_path):
    """Items stored with the absolute exptime 2147483647 (INT32_MAX, the
    largest both servers keep): now + the remaining TTL, read in whole
    seconds, can come out one past it, which both servers store as already
    expired; the copy must be there on the new node, with its TTL."""
    cluster = Cluster(kind, 2)
    try:
        old_addrs = cluster.addrs()
        keys = [f"forever:{i}" for i in range(1500)]
        old_client = pylibmc.Client(old_addrs, behaviors=MODES["ketama"][0])
        for k in keys:
            assert old_client.set(k, k, time=2**31 - 1)
        cluster.add()
        model = MODES["ketama"][2]
        old_ring = Ring([Server.parse(a) for a in old_addrs], **model)
        new_ring = Ring([Server.parse(a) for a in cluster.addrs()], **model)
        moved = [k for k in keys if old_ring.owner(k).addr() != new_ring.owner(k).addr()]
        assert moved
        args = sum((["--old", a] for a in old_addrs), []) + sum((["--new", a] for a in cluster.addrs()), [])
        # several passes, so several sub-second offsets between the clocks
        for i in range(3):
            out = warm(*args, *key_source(kind, tmp_path, keys), "--rate", "0", "--overwrite")
            assert f"copied={len(moved)} " in out.stderr, out.stderr
            assert cluster.nodes[2].keys_present(moved) == set(moved), i
            time.sleep(0.35)
        _, ttl, _ = mg(cluster.nodes[2], moved[0])
        assert ttl > 30 * 86400
    finally:
        cluster.close()


CRASHING_WARM = """
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(sys.argv.pop(1)), "warm"))
from corecache_warm import warm as W, client as CL
crash = os.environ["CRASH"]
if crash == "after-plan-write":  # the new plan is on disk, the state not yet
    orig = W._write_atomic
    def write(path, text):
        orig(path, text)
        if ".plan" in os.path.basename(path):
            os._exit(137)
    W._write_atomic = write
else:  # after-ms:N: the N-th ms batch got its replies, nothing recorded yet
    n, seen = int(crash.split(":")[1]), [0]
    orig = CL.Conn.set_many
    def set_many(self, items, mode=b"E"):
        out = orig(self, items, mode)
        seen[0] += 1
        if seen[0] == n:
            os._exit(137)
        return out
    CL.Conn.set_many = set_many
from corecache_warm.__main__ import main
sys.exit(main())
"""


def crashing_warm(tmp_path, crash, *args):
    """The warm dying (os._exit, as kill -9 would) at a chosen point."""
    script = tmp_path / "crashing_warm.py"
    script.write_text(CRASHING_WARM)
    out = subprocess.run([sys.executable, str(script), WARM, *args], capture_output=True, text=True,
                         timeout=300, env={**os.environ, "CRASH": crash})
    assert out.returncode == 137, out.stderr
    return out


def test_a_crash_between_a_batch_and_its_records_still_carries_its_deletes(kind, tmp_path):
    """The warm dies right after an ms batch was stored, before its CAS
    records reach <state>.cas; the resumed run replays that batch (NS: the
    copies are there) and must recognise them as its own (same flags and
    value as the old owner's) so the sync pass deletes them once their old
    owner has; a client's different value there is still kept."""
    cluster, ring_args, source, moved = grown_ring(kind, tmp_path, 3000)
    state = str(tmp_path / "warm.state")
    try:
        args = [*ring_args, *source, "--rate", "0", "--batch", "20", "--state", state]
        crashing_warm(tmp_path, "after-ms:3", *args)
        warm(*args)
        old_client, new_client = ring_clients(cluster)
        fresh = moved[len(moved) // 2]
        assert new_client.set(fresh, "fresh")
        for k in moved:
            assert old_client.delete(k)
        out = warm(*args, "--overwrite")
        stale = sorted(set(hits(new_client, moved)) - {fresh})
        report(f"warm-crash-after-batch[{kind}]", moved=len(moved), stale_on_new=len(stale))
        assert stale == []
        assert f"deleted={len(moved) - 1} kept=1 unverified=0" in out.stderr, out.stderr
        assert hits(new_client, [fresh]) == {fresh: "fresh"}
    finally:
        cluster.close()


def test_a_torn_cas_record_makes_its_key_unknown(kind, tmp_path):
    """A crash mid-append leaves a torn last line in <state>.cas: it is
    dropped with a message, its key is never deleted (its CAS is not
    known), and records appended after it still read back."""
    cluster, ring_args, source, moved = grown_ring(kind, tmp_path, 2000)
    state = str(tmp_path / "warm.state")
    try:
        args = [*ring_args, *source, "--rate", "0", "--state", state]
        warm(*args)
        lines = open(state + ".cas", "rb").read().splitlines(keepends=True)
        torn_key = base64.b64decode(re.match(rb'\["[^"]*", "([^"]*)"', lines[-1]).group(1)).decode()
        with open(state + ".cas", "wb") as f:  # the last record cut inside its CAS number
            f.write(b"".join(lines[:-1]) + lines[-1][:-3])
        old_client, new_client = ring_clients(cluster)
        other = next(k for k in moved if k != torn_key)
        for k in (torn_key, other):
            assert old_client.delete(k)
        out = warm(*args, "--overwrite")
        assert "1 torn records dropped" in out.stderr, out.stderr
        assert "deleted=1 kept=0 unverified=1" in out.stderr, out.stderr
        assert set(hits(new_client, [torn_key, other])) == {torn_key}
        # pass 2 appended after the torn line; pass 3 reads those records
        assert old_client.delete(moved[-1] if moved[-1] not in (torn_key, other) else moved[0])
        out = warm(*args, "--overwrite")
        assert "1 torn records dropped" in out.stderr and "deleted=1 " in out.stderr, out.stderr
    finally:
        cluster.close()


def test_a_crash_between_the_new_plan_and_the_state_loses_nothing(kind, tmp_path):
    """The sync pass dies after writing its plan, before the state names
    it: the next run must still see the earlier pass complete and run the
    whole sync pass (deletes and rewrites), not resume the new plan at the
    old position."""
    cluster, ring_args, source, moved = grown_ring(kind, tmp_path, 3000)
    state = str(tmp_path / "warm.state")
    try:
        args = [*ring_args, *source, "--rate", "0", "--state", state]
        warm(*args)
        old_client, new_client = ring_clients(cluster)
        deleted, rewritten = moved[0::2], moved[1::2]
        for k in deleted:
            assert old_client.delete(k)
        for k in rewritten:
            assert old_client.set(k, "rewritten " + k)
        # keys written since: the new plan differs from the old one
        added = [f"since:{i}" for i in range(1000)]
        for k in added:
            assert old_client.set(k, "since " + k)
        if kind == "corecache":  # the key list names them
            with open(tmp_path / "keys.txt", "a") as f:
                f.write("".join(k + "\n" for k in added))
        crashing_warm(tmp_path, "after-plan-write", *args, "--overwrite")
        out = warm(*args, "--overwrite")
        assert "sync pass 2" in out.stderr, out.stderr
        assert f"deleted={len(deleted)} " in out.stderr, out.stderr
        assert hits(new_client, moved + added) == hits(old_client, moved + added)
    finally:
        cluster.close()


def test_state_files_are_locked_and_checked(tmp_path):
    """One run per --state (a second one is refused while the first holds
    <state>.lock); a corrupt state, a plan file cut at a line boundary and
    a state of another ring change each give a message naming the files,
    never a traceback."""
    import fcntl

    cluster, ring_args, source, moved = grown_ring("memcached", tmp_path, 1000)
    state = str(tmp_path / "warm.state")
    try:
        args = [*ring_args, *source, "--rate", "0", "--state", state]
        with open(state + ".lock", "a") as held:
            fcntl.flock(held.fileno(), fcntl.LOCK_EX)
            out = warm(*args, check=False)
        assert out.returncode == 1 and "another corecache-warm is running" in out.stderr, out.stderr
        assert not os.path.exists(state)
        warm(*args)

        plan = [p for p in os.listdir(tmp_path) if p.startswith("warm.state.plan.")]
        assert len(plan) == 1, plan
        plan_path = tmp_path / plan[0]
        whole = plan_path.read_bytes()
        plan_path.write_bytes(b"".join(whole.splitlines(keepends=True)[:-1]))  # one line short
        out = warm(*args, check=False)
        assert out.returncode == 1 and "truncated or changed" in out.stderr, out.stderr
        assert "Traceback" not in out.stderr
        plan_path.write_bytes(whole)

        saved = open(state).read()
        for bad in ("", "{", "[1, 2]", saved[: len(saved) // 2]):
            open(state, "w").write(bad)
            out = warm(*args, check=False)
            assert out.returncode == 1 and "cannot be read as a warm state" in out.stderr, (bad, out.stderr)
            assert "Traceback" not in out.stderr
        open(state, "w").write(saved)

        other = warm("--old", ring_args[1], "--new", ring_args[1], "--new", ring_args[-1], *source,
                     "--state", state, check=False)
        assert other.returncode == 1 and "another ring change" in other.stderr and ".cas" in other.stderr
        assert "Traceback" not in other.stderr
        out = warm(*args, "--overwrite")  # the files are still good
        assert "sync pass 2" in out.stderr, out.stderr
    finally:
        cluster.close()


def test_resume_after_the_new_node_restarted_copies_its_keys_again(kind, tmp_path):
    """kill -9 of the new node mid-copy: the warm fails naming that node;
    the node comes back empty on the same port; the resumed warm sees it
    restarted (pid, start time), says so and copies its keys from the
    start, so every moved key is there; the same after a complete pass."""
    cluster, ring_args, source, moved = grown_ring(kind, tmp_path, 3000)
    state = tmp_path / "warm.state"
    new_node = cluster.nodes[3]
    try:
        argv = [sys.executable, WARM, *ring_args, *source, "--rate", "300", "--batch", "20", "--state", str(state)]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 60
        while time.time() < deadline and not re.search(r'"done": [1-9]', state.read_text() if state.exists() else ""):
            time.sleep(0.05)
        new_node.kill()
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 1, err
        assert f"corecache-warm: {new_node.addr()}: " in err, err
        assert "Traceback" not in err
        new_node.start()

        out = warm(*ring_args, *source, "--rate", "0", "--state", str(state))
        assert f"{new_node.addr()} restarted since the last run" in out.stderr, out.stderr
        present = new_node.keys_present(moved)
        report(f"warm-dst-restart[{kind}]", moved=len(moved), present_after_resume=len(present))
        assert present == set(moved)

        new_node.kill()  # once more, after a complete pass
        new_node.start()
        out = warm(*ring_args, *source, "--rate", "0", "--state", str(state))
        assert "restarted since the last run" in out.stderr, out.stderr
        assert f"copied={len(moved)} " in out.stderr.splitlines()[-1], out.stderr
        assert new_node.keys_present(moved) == set(moved)
    finally:
        cluster.close()


def test_a_flushed_or_same_pid_restarted_node_is_seen_by_its_sentinel(kind, tmp_path):
    """A node that loses everything without a new pid or a lower uptime
    (a container's pid 1 back within a second; here flush_all, which the
    warm cannot tell from it) is seen by the warm's sentinel key: the
    resumed run copies its keys again, and the sync pass carries no
    deletes on it from the CAS numbers of copies that are gone."""
    cluster, ring_args, source, moved = grown_ring(kind, tmp_path, 3000)
    state = str(tmp_path / "warm.state")
    new_node = cluster.nodes[3]
    try:
        args = [*ring_args, *source, "--rate", "0", "--state", state]
        warm(*args)
        assert new_node.keys_present(moved) == set(moved)
        assert new_node.request(b"flush_all\r\n", until=b"\r\n") == b"OK\r\n"
        out = warm(*args)
        assert f"{new_node.addr()} restarted or was flushed since the last run" in out.stderr, out.stderr
        assert new_node.keys_present(moved) == set(moved)

        assert new_node.request(b"flush_all\r\n", until=b"\r\n") == b"OK\r\n"
        old_client, _ = ring_clients(cluster)
        for k in moved[::2]:
            assert old_client.delete(k)
        out = warm(*args, "--overwrite")
        assert f"{new_node.addr()} restarted or was flushed since the earlier pass" in out.stderr, out.stderr
        assert "deleted=0 " in out.stderr, out.stderr
        assert new_node.keys_present(moved) == set(moved[1::2])
    finally:
        cluster.close()


def present_bytes(node, keys):
    """The subset of `keys` (bytes) a node holds, asked with get."""
    found = set()
    for i in range(0, len(keys), 100):
        reply = node.request(b"get " + b" ".join(keys[i : i + 100]) + b"\r\n")
        for line in reply.split(b"\r\n"):
            if line.startswith(b"VALUE "):
                found.add(line.split(b" ")[1])
    return found


@pytest.mark.parametrize("hash_name", ["murmur", "jenkins", "hsieh", "crc16", "one_at_a_time", "crc32a"])
def test_twemproxy_key_hashes_place_keys_where_the_model_says(hash_name, tmp_path):
    """Keys of 1-45 bytes (every tail length of the 4- and 12-byte block
    hashes), some with bytes >= 0x80, set through a real nutcracker pool
    with `hash: <hash_name>`, are on exactly the node the warm tool's model
    names; then a fourth node joins and a warm from the two configs gives
    the new pool the old one's hits."""
    cluster = Cluster("memcached", 3)
    names = ["cache-1", "cache-2", "cache-3", "cache-4"]
    proxy = Twemproxy(cluster.nodes, names=names[:3], hash=hash_name)
    new_proxy = None
    try:
        keys = []
        for i in range(1800):
            k = (b"%d:" % i + b"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJ")[: 1 + i % 45]
            if i % 3 == 0:
                k = k[:-1] + b"\xc3\xa9\xff"[: 1 + i % 3] + k[-1:]  # high bytes, signed in C
            elif i % 3 == 1:
                k += b"\xe9"  # a high last byte (hsieh's 3-byte tail reads it signed)
            keys.append(k)
        keys = list(dict.fromkeys(keys))
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as s:
            s.sendall(b"".join(b"set %s 0 0 1\r\nx\r\n" % k for k in keys))
            got = b""
            while got.count(b"\r\n") < len(keys):
                got += s.recv(65536)
        assert got == b"STORED\r\n" * len(keys)
        ring = Ring([Server.parse(f"{n.addr()}:1 {names[i]}") for i, n in enumerate(cluster.nodes)],
                    flavour="twemproxy", hash=hash_name)
        wrong = 0
        for i, node in enumerate(cluster.nodes):
            expected = {k for k in keys if ring.index_of(k) == i}
            held = present_bytes(node, keys)
            wrong += len(held ^ expected)
            assert len(held) > len(keys) / 10, (i, len(held))
        report(f"twemproxy-hash[{hash_name}]", keys=len(keys), misplaced=wrong)
        assert wrong == 0

        cluster.add()
        new_proxy = Twemproxy(cluster.nodes, names=names, hash=hash_name)
        out = warm("--old-twemproxy", proxy.conf, "--new-twemproxy", new_proxy.conf, "--rate", "0")
        assert " errors=0 " in out.stderr + " ", out.stderr
        with socket.create_connection(("127.0.0.1", new_proxy.port), timeout=10) as s:
            for i in range(0, len(keys), 100):
                s.sendall(b"get " + b" ".join(keys[i : i + 100]) + b"\r\n")
            got = b""
            while got.count(b"END\r\n") < (len(keys) + 99) // 100:
                got += s.recv(65536)
        assert got.count(b"VALUE ") == len(keys)
    finally:
        if new_proxy:
            new_proxy.stop()
        proxy.stop()
        cluster.close()


@pytest.mark.parametrize("extra,message", [
    (["--hash-tag", "{}"], "--hash-tag is twemproxy's"),
    (["--flavour", "twemproxy", "--weighted"], "--weighted is libmemcached's"),
    (["--rate", "nan"], "--rate a number"),
    (["--rate", "inf"], "--rate a number"),
    (["--state", "/nonexistent-dir/warm.state"], "is not a writable directory"),
])
def test_warm_refuses_options_it_would_ignore(extra, message):
    """Refused with exit 2 before any node is asked (the nodes here do not
    exist: a listing would fail with exit 1 instead)."""
    out = warm("--old", "127.0.0.1:1", "--new", "127.0.0.1:1", "--new", "127.0.0.1:2", *extra, check=False)
    assert out.returncode == 2 and message in out.stderr, out.stderr


def test_warm_refuses_ring_options_beside_twemproxy_configs(tmp_path):
    conf = tmp_path / "a.yml"
    conf.write_text("p:\n  listen: 127.0.0.1:1\n  hash: md5\n  distribution: ketama\n  servers:\n   - 127.0.0.1:1:1\n")
    for extra in (["--hash", "murmur"], ["--weighted"], ["--hash-tag", "{}"]):
        out = warm("--old-twemproxy", str(conf), "--new-twemproxy", str(conf), *extra, check=False)
        assert out.returncode == 2 and "the pool's settings are used" in out.stderr, (extra, out.stderr)


def test_warm_stops_cleanly_during_listing_and_during_a_pacing_sleep(tmp_path):
    """SIGTERM while a node is slow to list (here a listener that never
    answers) exits 143 with a message, not a traceback; SIGINT during a
    500 s pacing wait exits 130 without waiting it out."""
    stalled = socket.socket()
    stalled.bind(("127.0.0.1", 0))
    stalled.listen(1)
    addr = "127.0.0.1:%d" % stalled.getsockname()[1]
    try:
        proc = subprocess.Popen([sys.executable, WARM, "--old", addr, "--new", addr, "--new", "127.0.0.1:1"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        conn, _ = stalled.accept()  # the warm connected and sent its metadump
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        conn.close()
        assert proc.returncode == 143, err
        assert "stopped while listing keys" in err and "Traceback" not in err, err
    finally:
        stalled.close()

    cluster, ring_args, source, moved = grown_ring("memcached", tmp_path, 500)
    try:
        state = tmp_path / "slow.state"
        proc = subprocess.Popen([sys.executable, WARM, *ring_args, *source, "--rate", "0.002", "--batch", "1",
                                 "--state", str(state)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 30
        while time.time() < deadline and '"done": 1' not in (state.read_text() if state.exists() else ""):
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)  # the next batch was due in 500 s
        assert proc.returncode == 130, err
        assert f"stopped at 1 of {len(moved)}" in err, err
    finally:
        cluster.close()


def test_a_server_listed_twice_is_listed_once():
    """`--old A --old A`: A's keys are listed and planned once."""
    a, b = Node("memcached"), Node("memcached")
    try:
        keys = [f"twice:{i}" for i in range(400)]
        for k in keys:
            assert a.request(f"set {k} 0 0 1\r\nx\r\n".encode(), until=b"\r\n") == b"STORED\r\n"
        model = MODES["ketama"][2]
        new_ring = Ring([Server.parse(x) for x in (a.addr(), a.addr(), b.addr())], **model)
        moving_ = [k for k in keys if new_ring.owner(k).addr() == b.addr()]
        out = warm("--old", a.addr(), "--old", a.addr(), "--new", a.addr(), "--new", a.addr(),
                   "--new", b.addr(), "--dry-run")
        assert out.stdout.strip().splitlines()[-1] == f"total: {len(moving_)}", out.stdout
        assert 0 < len(moving_) < len(keys)
    finally:
        a.stop()
        b.stop()
