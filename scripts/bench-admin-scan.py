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
