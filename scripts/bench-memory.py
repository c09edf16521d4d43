#!/usr/bin/env python3
"""Memory efficiency, corecache vs memcached, same host, same run.

1. Fill: at -m 256, insert 4 M distinct items (15-byte keys, 100-byte
   values); report items kept, RSS, and RSS / limit.
2. Hit ratio under memory pressure: a cache-aside client reads zipf(0.99)
   keys over a key space larger than memory, with mixed value sizes and
   mixed TTLs, and fills misses; report the hit ratio of the second half.

Usage: scripts/bench-memory.py [--items 4000000] [--requests 2000000]
"""
import argparse
import bisect
import os
import random
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Extra corecache flags, e.g. CORECACHE_ARGS="-o eviction=fifo".
EXTRA = os.environ.get("CORECACHE_ARGS", "").split()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(kind, mem, port):
    if kind == "corecache":
        cmd = [os.path.join(ROOT, "target/release/corecache"), "-p", str(port), "-t", "1", "-m", str(mem), "-u", "nobody"] + EXTRA
    else:
        cmd = ["memcached", "-p", str(port), "-t", "1", "-m", str(mem), "-U", "0", "-u", "nobody"]
    p = subprocess.Popen(["taskset", "-c", "0"] + cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            return p, socket.create_connection(("127.0.0.1", port)), " ".join(cmd)
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(kind)


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def read_until(s, end):
    buf = b""
    while not buf.endswith(end):
        chunk = s.recv(1 << 20)
        if not chunk:
            raise RuntimeError("closed")
        buf += chunk
    return buf


def stats(s):
    s.sendall(b"stats\r\n")
    out = {}
    for line in read_until(s, b"END\r\n").decode().splitlines():
        parts = line.split(" ")
        if len(parts) == 3:
            out[parts[1]] = parts[2]
    return out


def fill(s, n):
    value = b"v" * 100
    batch = []
    for i in range(n):
        batch.append(b"set key:%011d 0 0 100 noreply\r\n%s\r\n" % (i, value))
        if len(batch) == 2000:
            s.sendall(b"".join(batch))
            batch = []
    s.sendall(b"".join(batch) + b"mn\r\nversion\r\n")
    read_until(s, b"\r\n")


def zipf_sampler(n, alpha, rng):
    cdf, total = [], 0.0
    for k in range(1, n + 1):
        total += 1.0 / (k ** alpha)
        cdf.append(total)
    return lambda: bisect.bisect_left(cdf, rng.random() * total)


def hit_ratio(s, requests, keyspace, seed):
    rng = random.Random(seed)
    sample = zipf_sampler(keyspace, 0.99, rng)
    ttls = [0, 0, 60, 300, 3600]
    hits = gets = 0
    half = requests // 2
    done = 0
    while done < requests:
        keys = [sample() for _ in range(500)]
        s.sendall(b"".join(b"get z:%d\r\n" % k for k in keys))
        buf = b""
        ends = 0
        while ends < len(keys):
            buf += s.recv(1 << 20)
            ends = buf.count(b"END\r\n")
        replies = buf.split(b"END\r\n")[: len(keys)]
        fills = []
        for k, r in zip(keys, replies):
            hit = r.startswith(b"VALUE")
            if done >= half:
                gets += 1
                hits += hit
            if not hit:
                size = 100 + (k * 2654435761 % 900)
                fills.append(b"set z:%d 0 %d %d noreply\r\n%s\r\n" % (k, ttls[k % len(ttls)], size, b"x" * size))
            done += 1
        if fills:
            s.sendall(b"".join(fills))
    return hits / max(1, gets)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--items", type=int, default=4_000_000)
    ap.add_argument("--requests", type=int, default=2_000_000)
    ap.add_argument("--keyspace", type=int, default=1_000_000)
    ap.add_argument("--pressure-mb", type=int, default=64)
    args = ap.parse_args()
    rows = []
    for kind in ("corecache", "memcached"):
        port = free_port()
        p, s, cmd = start(kind, 256, port)
        try:
            t0 = time.time()
            fill(s, args.items)
            st = stats(s)
            rss = rss_mib(p.pid)
            rows.append((kind, int(st["curr_items"]), rss, rss / 256, time.time() - t0, cmd))
        finally:
            p.kill()
            p.wait()
    hit = {}
    for kind in ("corecache", "memcached"):
        port = free_port()
        p, s, cmd = start(kind, args.pressure_mb, port)
        try:
            ratio = hit_ratio(s, args.requests, args.keyspace, 7)
            st = stats(s)
            hit[kind] = (ratio, cmd, int(st["curr_items"]), int(st["bytes"]))
        finally:
            p.kill()
            p.wait()
    ours, theirs = rows[0][1], rows[1][1]
    print(f"# Memory: {args.items} distinct items, 15-byte keys, 100-byte values, -m 256 -t 1\n")
    print("| server | items kept | RSS MiB | RSS / limit | items ratio |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for kind, items, rss, ratio, secs, cmd in rows:
        print(f"| {kind} | {items} | {rss:.0f} | {ratio:.2f} | {items / theirs:.2f} |")
    print(f"\n# Hit ratio: zipf 0.99 over {args.keyspace} keys, values 100-999 bytes, TTLs 0/60/300/3600 s, "
          f"-m {args.pressure_mb}, cache-aside, second half of {args.requests} gets\n")
    print("| server | hit ratio | items held at the end | bytes of live items |")
    print("| --- | ---: | ---: | ---: |")
    for kind in ("corecache", "memcached"):
        print(f"| {kind} | {hit[kind][0]:.4f} | {hit[kind][2]} | {hit[kind][3]} |")
    print("\nCommands:")
    for kind, *_rest, cmd in rows:
        print(f"- {kind}: `{cmd}` (fill), `{hit[kind][1]}` (hit ratio)")


if __name__ == "__main__":
    main()
