#!/usr/bin/env python3
"""flush_all's cost, side by side with memcached (issue 17 A4).

For each -m: the flush_all round trip (median and p90 of 200, TCP_NODELAY)
on an empty cache and right after filling it with 100-byte values, then how
long until curr_items reads 0, and the get round trip (median, p99, max) of
a second client while the flushed items are being reclaimed.

    scripts/bench-flush.py [--memory 64,1024] [--fill-share 0.8]
"""
import argparse
import os
import socket
import statistics
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORECACHE = os.path.join(ROOT, "target/release/corecache")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def start(kind, mem):
    port = free_port()
    if kind == "memcached":
        argv = ["memcached", "-u", "root", "-U", "0", "-t", "2", "-m", str(mem), "-p", str(port), "-l", "127.0.0.1"]
    else:
        argv = [CORECACHE, "-u", "root", "-U", "0", "-t", "2", "-m", str(mem), "-p", str(port), "-l", "127.0.0.1"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            return proc, connect(port), port
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{kind} did not start")


def connect(port):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def rtt(s, req, end):
    t = time.perf_counter()
    s.sendall(req)
    buf = b""
    while not buf.endswith(end):
        buf += s.recv(65536)
    return time.perf_counter() - t


def stat(s, name):
    s.sendall(b"stats\r\n")
    buf = b""
    while not buf.endswith(b"END\r\n"):
        buf += s.recv(65536)
    for line in buf.split(b"\r\n"):
        parts = line.split()
        if len(parts) == 3 and parts[1] == name.encode():
            return int(parts[2])
    return None


def fill(s, n):
    batch = 20000
    for lo in range(0, n, batch):
        s.sendall(b"".join(b"set k%d 0 0 100 noreply\r\n%s\r\n" % (i, b"v" * 100) for i in range(lo, min(n, lo + batch))))
    rtt(s, b"mn\r\n", b"MN\r\n")


def q(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))]


def us(x):
    return f"{x * 1e6:.0f}"


def run(kind, mem, share):
    proc, s, port = start(kind, mem)
    try:
        empty = [rtt(s, b"flush_all\r\n", b"OK\r\n") for _ in range(200)]
        n = int(mem * (1 << 20) * share / 180)
        fill(s, n)
        items = stat(s, "curr_items")
        other = connect(port)
        full = rtt(s, b"flush_all\r\n", b"OK\r\n")
        t0 = time.perf_counter()
        gets = []
        while stat(s, "curr_items") and time.perf_counter() - t0 < 60:
            for i in range(50):
                gets.append(rtt(other, b"get x%d\r\n" % i, b"END\r\n"))
        drained = time.perf_counter() - t0
        print(f"| {kind} | {mem} | {us(statistics.median(empty))} ({us(q(empty, 0.9))}) | {items} | {us(full)} "
              f"| {drained:.2f} | {us(statistics.median(gets)) if gets else '-'} / {us(q(gets, 0.99)) if gets else '-'}"
              f" / {us(max(gets)) if gets else '-'} |", flush=True)
    finally:
        proc.kill()
        proc.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--memory", default="64,1024")
    ap.add_argument("--fill-share", type=float, default=0.8)
    a = ap.parse_args()
    print("| server | -m MB | empty flush_all µs median (p90) | items | full flush_all µs | s until curr_items 0 "
          "| get µs during: median / p99 / max |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for mem in [int(m) for m in a.memory.split(",")]:
        for kind in ["corecache", "memcached"]:
            run(kind, mem, a.fill_share)


if __name__ == "__main__":
    main()
