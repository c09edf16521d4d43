#!/usr/bin/env python3
"""What the key browser costs the workers, measured in the real server.

Starts corecache (-t 2, admin port on), stores --keys keys with the
open-loop generator (benches/openloop.rs), then for --rounds rounds runs
the generator at --rate gets/s for --secs seconds, first alone, then with
one client walking the whole key space through `GET /api/keys` (limit=1000,
following the cursor) for as long as the load runs. Prints, per half
round, the browse pages served, the admin jobs the workers ran
(`stats` admin_jobs), their mean time (admin_job_us / admin_jobs), the
longest single job since start (admin_job_max_us), and the generator's
p50/p99/p99.9/max and how late it fell behind its own schedule (a large
lateness means the figures measured the host, not the server).

    cargo bench --bench openloop --no-run   # prints the generator's path
    scripts/bench-admin-stall.py --openloop target/release/deps/openloop-HASH
"""
import argparse
import json
import socket
import subprocess
import threading
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stats(port):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"stats\r\n")
    b = b""
    while not b.endswith(b"END\r\n"):
        b += s.recv(65536)
    s.close()
    return {l.split()[1]: l.split()[2] for l in b.decode().splitlines() if l.startswith("STAT")}


def walk(admin, stop, pages):
    cursor = ""
    while not stop.is_set():
        try:
            url = f"http://127.0.0.1:{admin}/api/keys?limit=1000&cursor={cursor}"
            with urllib.request.urlopen(url, timeout=10) as r:
                cursor = json.load(r).get("cursor") or ""
            pages[0] += 1
        except OSError:
            time.sleep(0.05)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/corecache")
    ap.add_argument("--openloop", required=True)
    ap.add_argument("--keys", type=int, default=200_000)
    ap.add_argument("--rate", type=int, default=20_000)
    ap.add_argument("--secs", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    port, admin = free_port(), free_port()
    srv = subprocess.Popen([a.bin, "-p", str(port), "-t", "2", "-m", "256", "-u", "root",
                            "--admin", f"127.0.0.1:{admin}"], stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    gen = [a.openloop, "--port", str(port), "--keys", str(a.keys)]
    try:
        subprocess.run(gen + ["--fill", "--secs", "1", "--rate", "1000"], capture_output=True, check=True)
        for rnd in range(a.rounds):
            for browse in (False, True):
                stop, pages = threading.Event(), [0]
                t = threading.Thread(target=walk, args=(admin, stop, pages))
                s0 = stats(port)
                if browse:
                    t.start()
                out = subprocess.run(gen + ["--rate", str(a.rate), "--conns", "20", "--op", "get",
                                            "--secs", str(a.secs)], capture_output=True, text=True).stdout
                stop.set()
                if browse:
                    t.join()
                s1 = stats(port)
                r = json.loads(out.strip().splitlines()[-1])
                jobs = int(s1["admin_jobs"]) - int(s0["admin_jobs"])
                us = int(s1["admin_job_us"]) - int(s0["admin_job_us"])
                print(f"round {rnd} browse={'yes' if browse else 'no '} pages={pages[0]} jobs={jobs} "
                      f"mean_job_us={us / max(jobs, 1):.1f} max_job_us={s1['admin_job_max_us']} "
                      f"p50={r.get('p50_us')} p99={r.get('p99_us')} p99.9={r.get('p999_us')} "
                      f"max={r.get('max_us')} generator_late_max_us={r.get('generator_late_max_us')}",
                      flush=True)
    finally:
        srv.kill()


if __name__ == "__main__":
    main()
