"""The client matrix: each client's version, stats and data calls run
against memcached and corecache (parametrised), and what the client
observed on corecache must equal what it observed on memcached.

A client is driven by a script under tests/clients/ that prints one JSON
object of observations (values that cannot be equal between two servers,
such as pids and version strings, are reduced to whether the client could
parse them). On the `memcached` parameter the script's own checks and the
run itself are what is tested; on `corecache` the observations are also
compared with memcached's, taken in the same test.
"""
import json
import os
import subprocess

import pytest

from oracle import ROOT

CLIENTS = os.path.join(ROOT, "tests", "clients")


def kinds(corecache_xfail=None):
    """The two parameters; the corecache one xfail(strict) when it differs
    today (issue 15)."""
    cc = pytest.param("corecache", marks=pytest.mark.xfail(strict=True, reason="issue 15: " + corecache_xfail)) if corecache_xfail else "corecache"
    return ["memcached", cc]


def run_json(argv, timeout=120, env=None):
    """Runs a client script; returns the JSON object on its last line."""
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=CLIENTS, env=env)
    assert r.returncode == 0, f"{argv} exited {r.returncode}\nstdout: {r.stdout[-2000:]}\nstderr: {r.stderr[-2000:]}"
    lines = [line for line in r.stdout.splitlines() if line.strip()]
    assert lines, f"{argv} printed nothing; stderr: {r.stderr[-2000:]}"
    return json.loads(lines[-1])


def same_as_memcached(pair, kind, observe):
    """`observe(server)` on memcached, and for kind == "corecache" also on
    corecache, each after a flush; asserts the two are equal."""
    pair.flush()
    mc = observe(pair.mc)
    if kind == "memcached":
        return mc
    pair.flush()
    cc = observe(pair.cc)
    assert cc == mc, f"\nmemcached: {json.dumps(mc, sort_keys=True)}\ncorecache: {json.dumps(cc, sort_keys=True)}"
    return cc
