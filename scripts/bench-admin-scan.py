#!/usr/bin/env python3
"""Data-port throughput while the admin port serves key-browser scans.

Starts corecache (-t 2) on free ports, loads --keys keys, then runs
memtier_benchmark (text protocol, --pipeline 16, 4 clients, 1:10 set:get
over the loaded keys) for --seconds, first alone, then with --scanners
threads each walking the whole key space through `GET /api/keys`
(limit=1000, following the cursor, starting again at the end) for as long
as memtier runs. Prints memtier's ops/s for each round and the median of
--rounds rounds, and how many scan pages were served (200) and refused
(429) during the loaded rounds.

    scripts/bench-admin-scan.py --bin target/release/corecache

With --probe, the question is a client's latency instead: memtier runs as
the full load in both halves of a round, a probe client sends one `get` at
a time on its own connection and times each reply, and the second half
adds --scanners browses (use --scanners 1: the dashboard's one walk).
Prints the probe's p50/p99/p99.9 (microseconds, Python client included)
without and with the browse, per round and pooled.

    scripts/bench-admin-scan.py --probe --scanners 1
"""
import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load(port, keys):
    s = socket.create_connection(("127.0.0.1", port))
    batch = []
    for i in range(1, keys + 1):
        batch.append(b"set memtier-%d 0 0 32 noreply\r\n%s\r\n" % (i, b"x" * 32))
        if len(batch) == 1000:
            s.sendall(b"".join(batch))
            batch = []
    s.sendall(b"".join(batch) + b"version\r\n")
    buf = b""
    while not buf.endswith(b"\r\n"):
        buf += s.recv(4096)
    s.close()


def scanner(admin, stop, counts):
    cursor = ""
    while not stop.is_set():
        url = f"http://{admin}/api/keys?limit=1000&cursor={cursor}"
        try:
            with urllib.request.urlopen(url, timeout=30) as r:
                body = json.loads(r.read())
                cursor = body["cursor"] or ""
                counts["ok"] += 1
        except urllib.error.HTTPError as e:
            counts[str(e.code)] = counts.get(str(e.code), 0) + 1
            time.sleep(0.05)
        except OSError:
            counts["err"] = counts.get("err", 0) + 1
            time.sleep(0.05)


def probe(port, keys, stop, lat):
    """One get at a time on its own connection, each reply timed (µs)."""
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    i = 0
    while not stop.is_set():
        i = i * 1103515245 + 12345 & 0x7FFFFFFF
        req = b"get memtier-%d\r\n" % (1 + i % keys)
        t = time.perf_counter()
        s.sendall(req)
        buf = b""
        while not buf.endswith(b"END\r\n"):
            buf += s.recv(65536)
        lat.append((time.perf_counter() - t) * 1e6)
        time.sleep(0.0005)
    s.close()


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def probed(port, admin, a, scanners, counts):
    """A memtier run with the probe alongside (and `scanners` browses)."""
    stop, lat = threading.Event(), []
    ts = [threading.Thread(target=scanner, args=(admin, stop, counts)) for _ in range(scanners)]
    ts.append(threading.Thread(target=probe, args=(port, a.keys, stop, lat)))
    for t in ts:
        t.start()
    memtier(port, a.seconds, a.keys)
    stop.set()
    for t in ts:
        t.join()
    return lat


def memtier(port, seconds, keys):
    out = subprocess.run(
        ["memtier_benchmark", "-s", "127.0.0.1", "-p", str(port), "-P", "memcache_text",
         "--threads=1", "--clients=4", "--pipeline=16", f"--test-time={seconds}",
         "--ratio=1:10", f"--key-maximum={keys}", "--key-minimum=1",
         "--data-size=32", "--hide-histogram"],
        capture_output=True, text=True, check=True).stdout
    m = re.search(r"^Totals\s+([\d.]+)", out, re.M)
    return float(m.group(1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/corecache")
    ap.add_argument("--keys", type=int, default=200_000)
    ap.add_argument("--scanners", type=int, default=20)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--probe", action="store_true", help="a probe client's get latency")
    a = ap.parse_args()
    port, admin_port = free_port(), free_port()
    admin = f"127.0.0.1:{admin_port}"
    srv = subprocess.Popen([a.bin, "-p", str(port), "-t", "2", "-m", "256", "-u", "root",
                            "--admin", admin], stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port)).close()
                break
            except OSError:
                time.sleep(0.05)
        load(port, a.keys)
        if a.probe:
            quiet, browsed, counts = [], [], {"ok": 0}
            show = lambda xs: "p50 %.0f p99 %.0f p99.9 %.0f µs (%d gets)" % (
                pct(xs, .5), pct(xs, .99), pct(xs, .999), len(xs))
            for r in range(a.rounds):
                q = probed(port, admin, a, 0, counts)
                b = probed(port, admin, a, a.scanners, counts)
                quiet += q
                browsed += b
                print(f"round {r}: without browse {show(q)}; with {a.scanners} {show(b)}", flush=True)
            print(f"pooled: without browse {show(quiet)}; with {show(browsed)}; scan pages {counts}")
            return
        alone, loaded, counts = [], [], {"ok": 0}
        for r in range(a.rounds):
            alone.append(memtier(port, a.seconds, a.keys))
            stop = threading.Event()
            ts = [threading.Thread(target=scanner, args=(admin, stop, counts))
                  for _ in range(a.scanners)]
            for t in ts:
                t.start()
            time.sleep(0.5)
            loaded.append(memtier(port, a.seconds, a.keys))
            stop.set()
            for t in ts:
                t.join()
            print(f"round {r}: alone {alone[-1]:.0f} ops/s, with {a.scanners} scanners "
                  f"{loaded[-1]:.0f} ops/s", flush=True)
        ma, ml = statistics.median(alone), statistics.median(loaded)
        print(f"median: alone {ma:.0f} ops/s, with scans {ml:.0f} ops/s "
              f"({100 * (ml - ma) / ma:+.1f} %); scan pages {counts}")
    finally:
        srv.terminate()
        srv.wait()


if __name__ == "__main__":
    sys.exit(main())
