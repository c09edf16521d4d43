#!/usr/bin/env python3
"""Memory efficiency and hit ratio, corecache vs memcached, side by side.

Both servers run at once, with the same flags, and one deterministic
operation stream is replayed against both, batch by batch (the same batch
goes to corecache, then to memcached), so both see the same keys, sizes,
TTLs and wall-clock time.

fill   At -m 256 and each -t, insert 4 M distinct items (15-byte keys, 100-byte values);
       report items kept, RSS and RSS / -m.
hit    memtier-like load: zipf(0.99) keys, values uniform 50-1000 bytes,
       1:4 set:get (sets are independent of misses, as memtier's), under
       several TTL shapes, at each -m and -t asked for; report the hit ratio
       of the second half of the gets beside the ceiling (what a cache of
       unbounded memory would hit: the key was set before and its TTL
       has not run out), live items kept (the mean of
       --samples counts taken evenly through the second half, since one
       instant moves by a segment per shard), RSS.

TTL shapes:
  none      no TTL
  fixed     one of 60 / 300 / 3600 s per set
  short     uniform 5-60 s per set (jitter, short)
  long      uniform 30-3600 s per set (jitter, long: issue 14's workload)
  perkey    each key its own TTL, log-uniform 1 s - 30 days
  wide      every set its own TTL, log-uniform 1 s - 30 days
  mix1s     half no TTL, half 1 s

Value sizes (--values):
  uniform   50-1000 bytes, drawn for every set (the default)
  bimodal   each key its own size: 1 key in 20 large (16-64 KiB), the rest
            50-500 bytes; the large ones are 7/8 of the bytes written, so
            they turn a log over fast while memcached keeps each size in
            its own slab class
  twospace  two key spaces, each zipf: the keys of 50-200 B take 90 % of
            the operations, a space 1/16 as large of 16-64 KiB values the
            rest (each key its own size; the breakers' size mix, and
            examples/hitsim.rs's VALUES=twospace)

Usage: scripts/bench-memory.py [fill] [hit] [--mem 64,1024] [--threads 1,2]
                               [--shapes none,long,...] [--scale 1.0]
                               [--values uniform|bimodal|twospace]
"""
import argparse
import bisect
import itertools
import math
import os
import random
import selectors
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORECACHE = os.environ.get("CORECACHE_BIN", os.path.join(ROOT, "target/release/corecache"))
# Extra corecache flags, e.g. CORECACHE_ARGS="-o eviction=fifo".
EXTRA = os.environ.get("CORECACHE_ARGS", "").split()
SHAPES = ["none", "fixed", "short", "long", "perkey", "wide", "mix1s"]
MONTH = 30 * 86400


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, kind, mem, threads):
        self.kind = kind
        self.port = free_port()
        if kind == "corecache":
            # The admin port stays on (as by default, histograms and all)
            # but on a port of the kernel's choosing: the default 11212
            # would make a second run, or one beside a running server,
            # fail to start.
            cmd = [CORECACHE, "-u", "root", "-p", str(self.port), "-t", str(threads), "-m", str(mem),
                   "--admin", "127.0.0.1:0"] + EXTRA
        else:
            cmd = ["memcached", "-u", "root", "-p", str(self.port), "-t", str(threads), "-m", str(mem), "-U", "0"]
        self.cmd = " ".join(os.path.basename(c) if c == CORECACHE else c for c in cmd)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            try:
                self.sock = socket.create_connection(("127.0.0.1", self.port))
                self.sock.setblocking(False)
                break
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{kind} exited: {self.cmd}")
                time.sleep(0.05)
        else:
            raise RuntimeError(f"{kind} did not start")
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.sock, selectors.EVENT_READ | selectors.EVENT_WRITE)

    def exchange(self, payload, n_end):
        """Sends `payload` while reading replies until `n_end` END lines came back."""
        view = memoryview(payload)
        sent = 0
        buf = bytearray()
        ends = 0
        while sent < len(view) or ends < n_end:
            if sent == len(view):
                self.sel.modify(self.sock, selectors.EVENT_READ)
            for _, ev in self.sel.select():
                if ev & selectors.EVENT_WRITE and sent < len(view):
                    try:
                        sent += self.sock.send(view[sent:sent + (1 << 20)])
                    except BlockingIOError:
                        pass
                if ev & selectors.EVENT_READ:
                    try:
                        chunk = self.sock.recv(1 << 20)
                    except BlockingIOError:
                        continue
                    if not chunk:
                        raise RuntimeError(f"{self.kind} closed the connection")
                    buf += chunk
                    if buf.endswith(b"END\r\n"):
                        ends = buf.count(b"END\r\n")
        self.sel.modify(self.sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
        return buf

    def stats(self):
        out = {}
        for line in self.exchange(b"stats\r\n", 1).decode().splitlines():
            parts = line.split(" ")
            if len(parts) == 3:
                out[parts[1]] = parts[2]
        return out

    def live_items(self):
        """Items not yet expired, counted from `lru_crawler metadump all`
        on a connection of its own. memcached's curr_items also counts
        items that have expired and not been reclaimed yet (with 1 s TTLs
        written steadily, 13 k of its 73 k), so the table compares these."""
        with socket.create_connection(("127.0.0.1", self.port)) as sock:
            sock.settimeout(60)
            sock.sendall(b"lru_crawler metadump all\r\n")
            data = b""
            while not data.endswith((b"END\r\n", b"ERROR\r\n")):
                chunk = sock.recv(1 << 20)
                if not chunk:
                    break
                data += chunk
        now = time.time()
        live = 0
        for line in data.split(b"\n"):
            if line.startswith(b"key="):
                fields = dict(kv.split(b"=", 1) for kv in line.split(b" ") if b"=" in kv)
                exp = int(fields.get(b"exp", b"-1"))
                live += exp == -1 or exp > now
        return live

    def rss_mib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return 0.0

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def both(mem, threads):
    return [Server("corecache", mem, threads), Server("memcached", mem, threads)]


def fill(items, threads):
    """Distinct 100-byte items at -m 256 until well past the limit."""
    servers = both(256, threads)
    try:
        value = b"v" * 100
        batch = []
        for i in range(items):
            batch.append(b"set key:%011d 0 0 100 noreply\r\n%s\r\n" % (i, value))
            if len(batch) == 4000 or i == items - 1:
                payload = b"".join(batch) + b"get none\r\n"
                for s in servers:
                    s.exchange(payload, 1)
                batch = []
        # What a user would see a moment later: corecache gives back, once
        # a second, what huge pages brought of empty segments.
        time.sleep(3)
        rows = []
        for s in servers:
            st = s.stats()
            rss = s.rss_mib()
            rows.append((s.kind, int(st["curr_items"]), rss, rss / 256, st.get("hash_bytes", "-"), s.cmd))
        return rows
    finally:
        for s in servers:
            s.stop()


def log_uniform(rng, lo, hi):
    return int(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def ttl_fn(shape, rng):
    if shape == "none":
        return lambda k: 0
    if shape == "fixed":
        return lambda k: (60, 300, 3600)[rng.randrange(3)]
    if shape == "short":
        return lambda k: rng.randint(5, 60)
    if shape == "long":
        return lambda k: rng.randint(30, 3600)
    if shape == "perkey":
        return lambda k: log_uniform(random.Random(k * 0x9E3779B1), 1, MONTH)
    if shape == "wide":
        return lambda k: log_uniform(rng, 1, MONTH)
    if shape == "mix1s":
        return lambda k: (0, 1)[rng.randrange(2)]
    raise ValueError(shape)


def size_fn(values, rng, keyspace):
    if values == "uniform":
        sizes = range(50, 1001)
        return lambda k: rng.choice(sizes)
    if values == "bimodal":
        def per_key(k):
            r = random.Random(k * 0x9E3779B1 ^ 0x5BD1E995)
            return r.randint(16384, 65536) if r.random() < 0.05 else r.randint(50, 500)
        return per_key
    if values == "twospace":
        # Keys from `keyspace` on are the large space (see key_fn).
        def per_key(k):
            r = random.Random(k * 0x9E3779B1 ^ 0x5BD1E995)
            return r.randint(16384, 65536) if k >= keyspace else r.randint(50, 200)
        return per_key
    raise ValueError(values)


def key_fn(values, rng, keyspace):
    """A batch of `n` keys: zipf(0.99) ranks of one key space, or for
    `twospace` of two (the large space numbered after the small one)."""
    cdf = zipf_cdf(keyspace)
    ranks = range(keyspace)
    if values != "twospace":
        return lambda n: rng.choices(ranks, cum_weights=cdf, k=n)
    large = max(1, keyspace // 16)
    lcdf = zipf_cdf(large)
    lranks = range(keyspace, keyspace + large)

    def batch(n):
        n_small = sum(rng.random() < 0.9 for _ in range(n))
        keys = rng.choices(ranks, cum_weights=cdf, k=n_small)
        keys += rng.choices(lranks, cum_weights=lcdf, k=n - n_small)
        rng.shuffle(keys)
        return keys
    return batch


_CDF = {}


def zipf_cdf(n, alpha=0.99):
    if n not in _CDF:
        _CDF[n] = list(itertools.accumulate(1.0 / (k ** alpha) for k in range(1, n + 1)))
    return _CDF[n]


def hit(shape, mem, threads, ops, keyspace, values="uniform", seed=7, samples=4):
    rng = random.Random(seed)
    keys_of = key_fn(values, rng, keyspace)
    size_of = size_fn(values, rng, keyspace)
    ttl = ttl_fn(shape, rng)
    filler = b"x" * 65536
    servers = both(mem, threads)
    gets = [0, 0]
    hits = [0, 0]
    live = [[], []]
    # The ceiling: when each key written so far expires (inf: no TTL).
    expires = {}
    ceiling = 0
    # Live items are counted at `samples` points spread evenly over the
    # measured half, the last at its end.
    half = ops // 2
    sample_at = {half + (ops - half) * (j + 1) // samples // 1000 * 1000 for j in range(samples)}
    try:
        t0 = time.time()
        done = 0
        batch_ops = 1000
        while done < ops:
            keys = keys_of(batch_ops)
            kinds = rng.choices((0, 1, 1, 1, 1), k=batch_ops)
            parts = []
            n_get = 0
            n_could = 0
            now = time.time()
            for k, kind in zip(keys, kinds):
                if kind:
                    parts.append(b"get key:%d\r\n" % k)
                    n_get += 1
                    n_could += expires.get(k, 0) > now
                else:
                    size = size_of(k)
                    t = ttl(k)
                    expires[k] = now + t if t else math.inf
                    parts.append(b"set key:%d 0 %d %d noreply\r\n%s\r\n" % (k, t, size, filler[:size]))
            payload = b"".join(parts)
            measured = done >= ops // 2
            if measured:
                ceiling += n_could
            for i, s in enumerate(servers):
                reply = s.exchange(payload, n_get)
                if measured:
                    gets[i] += n_get
                    hits[i] += reply.count(b"VALUE ")
            done += batch_ops
            if done in sample_at or done >= ops:
                sample_at.discard(done)
                for i, s in enumerate(servers):
                    live[i].append(s.live_items())
        secs = time.time() - t0
        rows = []
        for i, s in enumerate(servers):
            st = s.stats()
            rows.append({
                "kind": s.kind,
                "hit": hits[i] / max(1, gets[i]),
                "ceiling": ceiling / max(1, gets[i]),
                "items": round(sum(live[i]) / len(live[i])),
                "items_range": (min(live[i]), max(live[i])),
                "curr_items": int(st["curr_items"]),
                "evictions": int(st.get("evictions", 0)),
                "reclaimed": int(st.get("reclaimed", 0)),
                "rss": s.rss_mib(),
                "cmd": s.cmd,
                "secs": secs,
            })
        return rows
    finally:
        for s in servers:
            s.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", nargs="*", default=["fill", "hit"])
    ap.add_argument("--items", type=int, default=4_000_000)
    ap.add_argument("--mem", default="64,1024")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--shapes", default=",".join(SHAPES))
    ap.add_argument("--scale", type=float, default=1.0,
                    help="operations per MiB of -m, in units of 40,000 (1.0 writes each -m over about 4 times)")
    ap.add_argument("--values", default="uniform", choices=["uniform", "bimodal", "twospace"],
                    help="value sizes: uniform 50-1000 B per set, bimodal per key, or two key spaces (see above)")
    ap.add_argument("--samples", type=int, default=4,
                    help="live-item counts averaged over the measured half (each takes a metadump)")
    ap.add_argument("--keys-per-mib", type=int, default=8000,
                    help="key space per MiB of -m (8000: about 4x what fits)")
    args = ap.parse_args()

    if "fill" in args.what:
        print(f"## Fill: {args.items} distinct items, 15-byte keys, 100-byte values, -m 256\n")
        print("| server | -t | items kept | RSS MiB | RSS / -m | items vs memcached | hash_bytes |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        sys.stdout.flush()
        for threads in [int(t) for t in args.threads.split(",")]:
            rows = fill(args.items, threads)
            theirs = rows[1][1]
            for kind, items, rss, ratio, hb, _ in rows:
                print(f"| {kind} | {threads} | {items} | {rss:.0f} | {ratio:.3f} | {items / theirs:.2f} | {hb} |")
            sys.stdout.flush()
        print("\nCommands: " + "; ".join(f"`{r[5]}`" for r in rows) + "\n")
        sys.stdout.flush()

    if "hit" in args.what:
        sizes = {"uniform": "values 50-1000 B", "bimodal": "values per key 50-500 B or (1 in 20) 16-64 KiB",
                 "twospace": "two key spaces: 90 % of operations to keys of 50-200 B, 10 % to 1/16 as many of 16-64 KiB"}
        print(f"## Hit ratio: zipf 0.99 keys, {sizes[args.values]}, 1:4 set:get, second half of the gets\n")
        print("| TTL shape | -m | -t | keys | ops | hit ceiling | hit corecache | hit memcached | diff "
              "| live items corecache (min-max) | live items memcached (min-max) | memcached curr_items "
              "| RSS/-m corecache | RSS/-m memcached | secs |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        sys.stdout.flush()
        for mem in [int(m) for m in args.mem.split(",")]:
            for threads in [int(t) for t in args.threads.split(",")]:
                for shape in args.shapes.split(","):
                    ops = int(mem * 40_000 * args.scale) // 1000 * 1000
                    keyspace = mem * args.keys_per_mib
                    c, m = hit(shape, mem, threads, ops, keyspace, args.values, samples=args.samples)
                    print(f"| {shape} | {mem} | {threads} | {keyspace} | {ops} | {c['ceiling']:.4f} | {c['hit']:.4f} | {m['hit']:.4f} "
                          f"| {c['hit'] - m['hit']:+.4f} | {c['items']} ({c['items_range'][0]}-{c['items_range'][1]}) "
                          f"| {m['items']} ({m['items_range'][0]}-{m['items_range'][1]}) | {m['curr_items']} "
                          f"| {c['rss'] / mem:.2f} | {m['rss'] / mem:.2f} | {c['secs']:.0f} |")
                    sys.stdout.flush()
        print(f"\nServers: `{CORECACHE} -p PORT -t T -m M {' '.join(EXTRA)}` and `memcached -u root -p PORT -t T -m M -U 0`"
              f" ({subprocess.run(['memcached', '-V'], capture_output=True, text=True).stdout.strip()}).")


if __name__ == "__main__":
    main()
