"""libmemcached's tools (memcping, memcstat, memcdump, memcslap) and
Debian's memcached-tool (display, stats, settings, dump), each against
memcached and corecache; what each tool shows must be the same."""
import os
import re
import subprocess
import time

import pytest

from matrix import kinds, same_as_memcached
from oracle import ROOT

MEMCACHED_TOOL = "/usr/share/memcached/scripts/memcached-tool"

# The general stats that dashboards and these tools read (ANCHORS.md §4).
DASHBOARD_FIELDS = [
    "pid", "uptime", "time", "version", "pointer_size", "rusage_user", "rusage_system", "max_connections",
    "curr_connections", "total_connections", "rejected_connections", "cmd_get", "cmd_set", "cmd_flush",
    "cmd_touch", "cmd_meta", "get_hits", "get_misses", "get_expired", "get_flushed", "delete_hits",
    "delete_misses", "incr_hits", "incr_misses", "decr_hits", "decr_misses", "cas_hits", "cas_misses",
    "cas_badval", "touch_hits", "touch_misses", "store_too_large", "store_no_memory", "bytes_read",
    "bytes_written", "limit_maxbytes", "threads", "bytes", "curr_items", "total_items", "expired_unfetched",
    "evicted_unfetched", "evictions", "reclaimed",
]


def run(argv, timeout=30):
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"exit": "timeout", "out": "", "err": ""}
    return {"exit": r.returncode, "out": r.stdout, "err": r.stderr}


def servers(srv):
    return f"--servers=127.0.0.1:{srv.port}"


def seed(srv):
    """Two items of known sizes (memcached slab classes 1 and 13)."""
    with srv.connect() as c:
        c.text(b"set abc 5 0 3\r\nxyz\r\n")
        c.text(b"set big 7 0 5000\r\n" + b"x" * 5000 + b"\r\n")


@pytest.mark.parametrize("kind", kinds())
def test_memcping(matrix, kind):
    out = same_as_memcached(matrix, kind, lambda s: run(["memcping", servers(s)])["exit"])
    assert out == 0


def memcstat_general(srv):
    r = run(["memcstat", servers(srv)])
    names = set(re.findall(r"(?m)^\t(\w+): ", r["out"]))
    m = re.search(r"(?m)^\tversion: (\d+)\.(\d+)\.", r["out"])
    return {"exit": r["exit"], "fields": {f: f in names for f in DASHBOARD_FIELDS},
            "version_ok": bool(m) and int(m.group(1)) >= 1}


@pytest.mark.parametrize("kind", kinds())
def test_memcstat(matrix, kind):
    out = same_as_memcached(matrix, kind, memcstat_general)
    assert out["exit"] == 0 and out["version_ok"]


def memcstat_server_version(srv):
    r = run(["memcstat", "-S", servers(srv)])
    # memcstat prints the server versions on stderr.
    m = re.search(r" (\d+)\.(\d+)\.(\d+)$", (r["out"] + r["err"]).strip())
    return {"exit": r["exit"], "version_ok": bool(m) and 1 <= int(m.group(1)) < 255}


@pytest.mark.parametrize("kind", kinds())
def test_memcstat_server_version(matrix, kind):
    out = same_as_memcached(matrix, kind, memcstat_server_version)
    assert out["version_ok"]


def memcstat_items(srv):
    seed(srv)
    r = run(["memcstat", "--args=items", servers(srv)])
    return {"exit": r["exit"], "fields": sorted(set(re.findall(r"(?m)^\t(items:\d+:\w+): ", r["out"])))}


@pytest.mark.parametrize("kind", kinds())
def test_memcstat_items(matrix, kind):
    out = same_as_memcached(matrix, kind, memcstat_items)
    assert "items:1:number" in out["fields"]


def memcdump(srv):
    seed(srv)
    # memcached lists only its COLD LRU, which new items reach when its LRU
    # maintainer moves them: ask again for up to 15 s (the maintainer is
    # a thread of its own, later to run on a loaded machine).
    for _ in range(150):
        r = run(["memcdump", servers(srv)])
        keys = sorted(r["out"].split())
        if r["exit"] != 0 or keys == ["abc", "big"]:
            break
        time.sleep(0.1)
    return {"exit": r["exit"], "keys": keys}


@pytest.mark.parametrize("kind", kinds())
def test_memcdump(matrix, kind):
    out = same_as_memcached(matrix, kind, memcdump)
    assert out == {"exit": 0, "keys": ["abc", "big"]}


@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
@pytest.mark.parametrize("kind", kinds())
def test_memcslap_smoke(matrix, kind, binary):
    def slap(srv):
        out = {}
        for test in ["set", "get"]:
            argv = ["memcslap", servers(srv), "--concurrency=2", "--execute-number=200", f"--test={test}"]
            r = run(argv + (["--binary"] if binary else []), timeout=60)
            out[test] = {"exit": r["exit"], "ran": f"Time to {'read' if test == 'get' else 'set'}" in r["out"] or "Time to" in r["out"]}
        with srv.connect() as c:
            out["items_stored"] = int(c.stats()["curr_items"]) > 0
        return out
    out = same_as_memcached(matrix, kind, slap)
    assert out["set"] == {"exit": 0, "ran": True}


# --- memcached-tool (Debian's script) ---

def tool(srv, cmd, timeout=20):
    return run([MEMCACHED_TOOL, f"127.0.0.1:{srv.port}", cmd], timeout=timeout)


def tool_display(srv):
    seed(srv)
    r = tool(srv, "display")
    lines = r["out"].splitlines()
    rows = []
    for line in lines[1:]:
        f = line.split()
        # memcached keeps a class's pages after a flush: rows with items only.
        if len(f) >= 9 and f[4] != "0":
            rows.append({"class": f[0], "item_size": f[1], "count": f[4], "evicted": f[6], "oom": f[8]})
    return {"exit": r["exit"], "header": lines[0].split() if lines else [], "rows": rows}


@pytest.mark.parametrize("kind", kinds())
def test_memcached_tool_display(matrix, kind):
    out = same_as_memcached(matrix, kind, tool_display)
    assert len(out["rows"]) == 2


def tool_stats(srv):
    r = tool(srv, "stats")
    names = set(re.findall(r"(?m)^\s*(\w+)\s+\S", r["out"]))
    return {"exit": r["exit"], "fields": {f: f in names for f in DASHBOARD_FIELDS}}


@pytest.mark.parametrize("kind", kinds())
def test_memcached_tool_stats(matrix, kind):
    out = same_as_memcached(matrix, kind, tool_stats)
    assert out["exit"] == 0 and out["fields"]["curr_items"]


def own_settings():
    """corecache's own `stats settings` fields, read from where they are
    declared: the names after the "corecache's own." comment in
    src/engine/stats_settings.rs. Read, not copied, so a new own setting
    cannot fail this test while a misspelt memcached one still does."""
    src = open(os.path.join(ROOT, "src", "engine", "stats_settings.rs")).read()
    tail = src.split("// corecache's own.", 1)[1]
    names = set(re.findall(r'\(\s*"(\w+)",', tail))
    assert "eviction_policy" in names, "the own-settings marker moved"
    return names


OWN_SETTINGS = own_settings()


def tool_settings(srv):
    r = tool(srv, "settings")
    names = sorted(set(re.findall(r"(?m)^\s*(\w+)\s+\S", r["out"])) - OWN_SETTINGS)
    return {"exit": r["exit"], "fields": names}


@pytest.mark.parametrize("kind", kinds())
def test_memcached_tool_settings(matrix, kind):
    out = same_as_memcached(matrix, kind, tool_settings)
    assert "maxbytes" in out["fields"]


def tool_dump(srv):
    seed(srv)
    r = tool(srv, "dump")
    adds = sorted(re.findall(r"(?m)^add (\S+) (\d+) (\d+) (\d+)$", r["out"]))
    return {"exit": r["exit"], "adds": adds}


@pytest.mark.parametrize("kind", kinds())
def test_memcached_tool_dump(matrix, kind):
    out = same_as_memcached(matrix, kind, tool_dump)
    assert out["exit"] == 0 and [a[0] for a in out["adds"]] == ["abc", "big"]
