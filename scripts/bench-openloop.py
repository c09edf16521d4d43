#!/usr/bin/env python3
"""Open-loop tail latency, corecache against memcached (and pogocache), for
issue 23.

Drives every server with the open-loop generator `benches/openloop.rs`
(requests leave on a fixed schedule and each latency counts from the time
the request was due, so a stall counts against every request it delays).
For each `-t` and each op (GET, SET) separately:

1. peak: each server's closed-loop peak (`openloop --peak`, the same
   connections), memcached's median peak sets the offered rates;
2. open loop at 25/50/75/90 % of memcached's peak, the same offered rate for
   every server ("at equal load"). Within a round the servers run one after
   the other at each rate (order rotated every round), so they see the same
   spells of host noise; every run gets a freshly started server, filled
   with all keys before the generator starts.

Pinning is scripts/bench.py's: `taskset`, server on --server-cpus, the
generator on --client-cpus; for -t 2 both get CPUs 0,1 on a 2-core host
(as the -t 2 tables in docs/PERFORMANCE.md). No CPU quota by default: a CFS
quota throttles the server for the rest of each 100 ms period once spent,
which would make the tail measure the quota (--cpu-budget F caps each
server at F of a core anyway, as bench.py does).

The table gives medians over the rounds of p50/p99/p99.9/p99.99/max (µs),
the achieved rate, and `generator_late_max_us`, how far the generator's
sender fell behind its own schedule (its lateness adds to every request it
delays, so a row flagged `gen` may show the generator, not the server).

    scripts/bench-openloop.py --pogocache /tmp/pogocache/pogocache

pogocache is built locally for comparison only; never commit it.
"""
import argparse
import glob
import json
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REF = "memcached"
OURS = "corecache"


def free_port():
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            p = s.getsockname()[1]
        if p not in (11211, 11212):
            return p


def find_generator():
    """The built `openloop` bench binary (`cargo bench --bench openloop
    --no-run` prints it): the newest target/release/deps/openloop-*."""
    c = [p for p in glob.glob(os.path.join(ROOT, "target/release/deps/openloop-*"))
         if os.access(p, os.X_OK) and not p.endswith(".d")]
    if not c:
        sys.exit("no target/release/deps/openloop-*: run `cargo bench --bench openloop --no-run`")
    return max(c, key=os.path.getmtime)


def expand_cpus(spec):
    out = []
    for part in spec.split(","):
        a, _, b = part.partition("-")
        out += list(range(int(a), int(b or a) + 1))
    return out


def cpu_ticks(cpus):
    """(steal, total) jiffies of the given CPUs, from /proc/stat."""
    want = {f"cpu{c}" for c in cpus}
    steal = total = 0
    with open("/proc/stat") as f:
        for line in f:
            p = line.split()
            if p[0] in want:
                v = [int(x) for x in p[1:]]
                steal += v[7] if len(v) > 7 else 0
                total += sum(v[:8])
    return steal, total


def busy_secs():
    """CPU seconds all CPUs spent on anything (not idle, iowait, steal)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (v[0] + v[1] + v[2] + v[5] + v[6]) / os.sysconf("SC_CLK_TCK")


def server_secs(pid):
    """CPU seconds of all the server's threads (scheduler's accounting)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except OSError:
            pass
    return total / 1e9


def children_secs():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


class Cgroup:
    """CPU quota (fraction of one core), cgroup v2 or v1, as in bench.py."""

    def __init__(self, name, fraction):
        self.path = None
        if fraction is None:
            return
        v2 = os.path.exists("/sys/fs/cgroup/cgroup.controllers")
        self.path = f"/sys/fs/cgroup/{name}" if v2 else f"/sys/fs/cgroup/cpu/{name}"
        os.makedirs(self.path, exist_ok=True)
        quota, period = int(100000 * fraction), 100000
        if v2:
            open(f"{self.path}/cpu.max", "w").write(f"{quota} {period}")
        else:
            open(f"{self.path}/cpu.cfs_period_us", "w").write(str(period))
            open(f"{self.path}/cpu.cfs_quota_us", "w").write(str(quota))

    def add(self, pid):
        if self.path:
            open(f"{self.path}/cgroup.procs", "w").write(str(pid))

    def remove(self):
        if self.path:
            try:
                os.rmdir(self.path)
            except OSError:
                pass


def server_cmd(args, kind, port, threads):
    m = str(args.memory)
    if kind == OURS:
        # the default configuration, admin port (and its histograms) on,
        # moved off 11212 so runs never clash
        return [args.bin, "-p", str(port), "-t", str(threads), "-m", m, "-u", "root",
                "--admin", f"127.0.0.1:{free_port()}"] + args.corecache_args.split()
    if kind == REF:
        return [args.memcached, "-p", str(port), "-t", str(threads), "-m", m, "-U", "0", "-u", "root"]
    if kind == "pogocache":
        return [args.pogocache, "-h", "127.0.0.1", "-p", str(port), "-t", str(threads), "-m", m]
    raise ValueError(kind)


class Server:
    def __init__(self, args, kind, threads, cpus):
        self.port = free_port()
        self.cmd = ["taskset", "-c", cpus] + server_cmd(args, kind, self.port, threads)
        self.cg = Cgroup(f"ccopenloop_{kind}_{os.getpid()}", args.cpu_budget)
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.cg.add(self.proc.pid)
        deadline = time.time() + 15
        while time.time() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{kind} did not start: {' '.join(self.cmd)}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.cg.remove()


def generate(args, port, op, client_cpus, rate=None, secs=None):
    cmd = ["taskset", "-c", client_cpus, args.generator, "--port", str(port), "--op", op,
           "--conns", str(args.conns), "--keys", str(args.keys), "--value", str(args.value_size),
           "--warmup", str(args.warmup), "--secs", str(secs)]
    cmd += ["--peak"] if rate is None else ["--rate", str(int(rate))]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=secs + args.warmup + 60)
    if out.returncode != 0:
        raise RuntimeError(f"generator failed ({out.returncode}): {' '.join(cmd)}\n{out.stderr[-2000:]}")
    line = [l for l in out.stdout.splitlines() if l.startswith("{")][-1]
    return json.loads(line), cmd


def fill(args, port):
    """Stores every key the generator asks for, in the generator's format
    (`key:%08d`, the same value), with replies: the generator's own --fill
    uses `noreply`, which pogocache answers anyway (STORED), so its check
    of the reply stream fails there."""
    value = bytes(ord("a") + i % 26 for i in range(args.value_size))
    # A cache smaller than the keys (--memory) evicts while it is filled,
    # and a server may then refuse a set now and then (memcached answers
    # this when no item at its LRU tail can be taken); a fill can take
    # that. (A run of 1 M keys into -m 64 stopped on one such reply; which
    # server sent it was not recorded.)
    allowed = (b"STORED", b"SERVER_ERROR out of memory storing object")
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        for lo in range(0, args.keys, 1000):
            n = min(1000, args.keys - lo)
            s.sendall(b"".join(b"set key:%08d 0 0 %d\r\n%s\r\n" % (i, args.value_size, value) for i in range(lo, lo + n)))
            got = b""
            while got.count(b"\r\n") < n:
                chunk = s.recv(65536)
                if not chunk:
                    raise RuntimeError("fill: connection closed")
                got += chunk
            lines = got.split(b"\r\n")[:n]
            bad = [l for l in lines if l not in allowed]
            if bad or got.count(b"\r\n") != n:
                raise RuntimeError(f"fill: unexpected reply {bad[:1]!r} in {got[:80]!r}")


def one_run(args, kind, threads, op, rate=None, secs=None):
    scpus, ccpus = args.cpus[threads]
    sv = Server(args, kind, threads, scpus)
    try:
        fill(args, sv.port)
        cpus = sorted(set(expand_cpus(scpus)) | set(expand_cpus(ccpus)))
        st0 = cpu_ticks(cpus)
        b0, s0, g0, w0 = busy_secs(), server_secs(sv.proc.pid), children_secs(), time.time()
        r, gcmd = generate(args, sv.port, op, ccpus, rate, secs)
        b1, s1, g1, w1 = busy_secs(), server_secs(sv.proc.pid), children_secs(), time.time()
        st1 = cpu_ticks(cpus)
        r["steal"] = (st1[0] - st0[0]) / max(1, st1[1] - st0[1])
        # CPU the rest of the host used meanwhile (other jobs), in cores
        r["other_cores"] = max(0.0, (b1 - b0) - (s1 - s0) - (g1 - g0)) / (w1 - w0)
        r["server_cores"] = (s1 - s0) / (w1 - w0)
        r["server_cmd"] = " ".join(sv.cmd)
        r["generator_cmd"] = " ".join(gcmd)
        if sv.proc.poll() is not None:
            raise RuntimeError(f"{kind} exited during the run")
        return r
    finally:
        sv.stop()


HICCUP = """
import sys, time
end = time.perf_counter_ns() + int(float(sys.argv[1]) * 1e9)
prev = time.perf_counter_ns(); mx = n100 = n1000 = 0
while prev < end:
    now = time.perf_counter_ns(); g = now - prev; prev = now
    if g > 100000:
        n100 += 1
        if g > 1000000:
            n1000 += 1
        mx = max(mx, g)
print(mx // 1000, n100, n1000)
"""


def hiccups(secs, cpus):
    """The host's own stalls: a spinning loop pinned to each CPU notes every
    gap between two clock reads (nothing else of ours runs meanwhile). A
    gap is time the CPU was taken away: another task, an interrupt, the
    hypervisor. Returns {cpu: (max gap µs, gaps > 100 µs, gaps > 1 ms)}."""
    procs = {c: subprocess.Popen(["taskset", "-c", str(c), sys.executable, "-c", HICCUP, str(secs)],
                                 stdout=subprocess.PIPE, text=True) for c in cpus}
    return {c: tuple(int(x) for x in p.communicate()[0].split()) for c, p in procs.items()}


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(ROOT, "target/release/corecache"))
    ap.add_argument("--memcached", default="/usr/bin/memcached")
    ap.add_argument("--pogocache", default=None, help="path of a locally built pogocache (optional)")
    ap.add_argument("--generator", default=None, help="the openloop bench binary (default: newest target/release/deps/openloop-*)")
    ap.add_argument("--threads", default="1,2", help="server -t values, comma separated")
    ap.add_argument("--ops", default="get,set")
    ap.add_argument("--fractions", default="25,50,75,90", help="percent of memcached's peak")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--secs", type=float, default=10, help="measured seconds per open-loop run")
    ap.add_argument("--warmup", type=float, default=1, help="unmeasured seconds before each run's measurement")
    ap.add_argument("--peak-rounds", type=int, default=1)
    ap.add_argument("--peak-secs", type=float, default=4)
    ap.add_argument("--conns", type=int, default=20)
    ap.add_argument("--keys", type=int, default=100000)
    ap.add_argument("--value-size", type=int, default=100)
    ap.add_argument("--memory", type=int, default=1024, help="-m for every server (MB)")
    ap.add_argument("--corecache-args", default="")
    ap.add_argument("--server-cpus", default="0", help="taskset CPUs of the server at -t 1")
    ap.add_argument("--client-cpus", default="1", help="taskset CPUs of the generator at -t 1")
    ap.add_argument("--server-cpus-t2", default="0,1", help="server CPUs at -t 2 and above")
    ap.add_argument("--client-cpus-t2", default="0,1", help="generator CPUs at -t 2 and above")
    ap.add_argument("--cpu-budget", type=float, default=None, help="cap each server at this fraction of one core (off by default)")
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "benchmarks"))
    ap.add_argument("--tag", default="openloop")
    ap.add_argument("--hiccup-secs", type=float, default=5, help="seconds of host-stall measurement before and after (0: none)")
    ap.add_argument("--report-from", default=None, metavar="JSONL",
                    help="only print the report of an earlier (possibly interrupted) run's OUT/TAG.jsonl")
    ap.add_argument("--ref-peak", action="append", default=[], metavar="T:OP=OPS",
                    help="use this memcached peak (e.g. 1:get=50000) for the offered rates instead of the measured median")
    args = ap.parse_args()
    # a TERM (or INT, ignored in background jobs otherwise) stops the run
    # and, through the finally blocks, the server it has running
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if args.report_from:
        return report_from(args)
    args.generator = args.generator or find_generator()
    kinds = [OURS, REF] + (["pogocache"] if args.pogocache else [])
    threads_list = [int(t) for t in args.threads.split(",")]
    ops = args.ops.split(",")
    fractions = [int(f) for f in args.fractions.split(",")]
    args.cpus = {t: (args.server_cpus, args.client_cpus) if t == 1 else (args.server_cpus_t2, args.client_cpus_t2)
                 for t in threads_list}
    t_start = time.time()
    os.makedirs(args.out, exist_ok=True)
    log = open(os.path.join(args.out, f"{args.tag}.jsonl"), "w")

    def note(obj):
        log.write(json.dumps(obj) + "\n")
        log.flush()

    note({"args": {k: v for k, v in vars(args).items() if k != "cpus"}, "cpus": {str(t): c for t, c in args.cpus.items()},
          "start": time.strftime("%Y-%m-%d %H:%M %Z")})
    all_cpus = sorted(set(c for sc, cc in args.cpus.values() for c in expand_cpus(sc) + expand_cpus(cc)))
    if args.hiccup_secs:
        h = hiccups(args.hiccup_secs, all_cpus)
        note({"hiccups_before": h})
        print(f"host stalls before: {h}", file=sys.stderr)

    def order(i):
        k = i % len(kinds)
        return kinds[k:] + kinds[:k]

    # 1. peaks
    peaks = {}  # (threads, op, kind) -> [ops/s]
    peak_cores = {}  # (threads, op, kind) -> [server CPU in cores]
    for pr in range(args.peak_rounds):
        for t in threads_list:
            for op in ops:
                for kind in order(pr):
                    r = one_run(args, kind, t, op, None, args.peak_secs)
                    peaks.setdefault((t, op, kind), []).append(r["peak_ops"])
                    peak_cores.setdefault((t, op, kind), []).append(r["server_cores"])
                    note({"peak": [t, op, kind], "r": r})
                    print(f"peak  -t {t} {op} {kind:10} {r['peak_ops']:>9.0f} ops/s  other {r['other_cores']:.2f} cores", file=sys.stderr)
    ref = {(t, op): med(peaks[(t, op, REF)]) for t in threads_list for op in ops}
    for spec in args.ref_peak:
        k, _, v = spec.partition("=")
        t, _, op = k.partition(":")
        ref[(int(t), op)] = float(v)
    args.ref_used = ref
    rates = {(t, op): {f: ref[(t, op)] * f / 100 for f in fractions} for t in threads_list for op in ops}

    # 2. open loop at equal offered load
    runs = {}  # (threads, op, fraction, kind) -> [result]
    for rnd in range(args.rounds):
        for t in threads_list:
            for op in ops:
                for fi, f in enumerate(fractions):
                    for kind in order(rnd + fi):
                        r = one_run(args, kind, t, op, rates[(t, op)][f], args.secs)
                        runs.setdefault((t, op, f, kind), []).append(r)
                        note({"run": [t, op, f, kind], "round": rnd + 1, "r": r})
                        print(f"round {rnd + 1} -t {t} {op} {f:>2}% {kind:10} offered {r['offered']:>7.0f} "
                              f"got {r['measured'] / args.secs:>7.0f}/s  p99.9 {r['p999_us']:>6} p99.99 {r['p9999_us']:>6} "
                              f"max {r['max_us']:>6} µs  gen late {r['generator_late_max_us']:>5} µs  other {r['other_cores']:.2f} cores",
                              file=sys.stderr)
    if args.hiccup_secs:
        h = hiccups(args.hiccup_secs, all_cpus)
        note({"hiccups_after": h})
        print(f"host stalls after: {h}", file=sys.stderr)
    elapsed = time.time() - t_start
    note({"elapsed": elapsed, "rates": {f"{t}:{op}": v for (t, op), v in rates.items()}, "ref": {f"{t}:{op}": v for (t, op), v in ref.items()}})
    log.close()
    report_from(args, os.path.join(args.out, f"{args.tag}.jsonl"))


def report_from(args, path=None):
    """Rebuilds the tables from a run's JSONL log (also an interrupted run's:
    cells then have fewer rounds, and cells never run are left out)."""
    path = path or args.report_from
    peaks, peak_cores, runs, hic, elapsed, ref = {}, {}, {}, {}, None, {}
    with open(path) as f:
        for line in f:
            o = json.loads(line)
            if "args" in o:
                saved = o["args"]
                cpus = {int(t): tuple(c) for t, c in o["cpus"].items()}
                start = o["start"]
            elif "peak" in o:
                t, op, k = o["peak"]
                peaks.setdefault((t, op, k), []).append(o["r"]["peak_ops"])
                peak_cores.setdefault((t, op, k), []).append(o["r"]["server_cores"])
            elif "run" in o:
                t, op, fr, k = o["run"]
                runs.setdefault((t, op, fr, k), []).append(o["r"])
            elif "elapsed" in o:
                elapsed = o["elapsed"]
            for w in ("hiccups_before", "hiccups_after"):
                if w in o:
                    hic[w] = o[w]
    a = argparse.Namespace(**saved)
    a.cpus, a.start, a.hiccups, a.out, a.tag = cpus, start, hic, args.out, args.tag
    kinds = [OURS, REF] + (["pogocache"] if a.pogocache else [])
    threads_list = [int(t) for t in a.threads.split(",")]
    ops = a.ops.split(",")
    fractions = [int(x) for x in a.fractions.split(",")]
    for t in threads_list:
        for op in ops:
            ref[(t, op)] = med(peaks.get((t, op, REF), []))
    for spec in a.ref_peak:
        k, _, v = spec.partition("=")
        t, _, op = k.partition(":")
        ref[(int(t), op)] = float(v)
    a.ref_used = ref
    rates = {(t, op): {fr: ref[(t, op)] * fr / 100 for fr in fractions} for t in threads_list for op in ops}
    report(a, kinds, threads_list, ops, fractions, peaks, peak_cores, rates, runs, elapsed)


def report(args, kinds, threads_list, ops, fractions, peaks, peak_cores, rates, runs, elapsed):
    fields = ("p50_us", "p99_us", "p999_us", "p9999_us", "max_us", "generator_late_max_us", "steal", "other_cores", "server_cores")
    L = []
    budget = f"each server capped at {args.cpu_budget:g} core" if args.cpu_budget else "no CPU quota"
    pin = "; ".join(f"-t {t}: server on CPU {args.cpus[t][0]}, generator on CPU {args.cpus[t][1]}" for t in threads_list)
    L += [f"# Open-loop tail latency, {', '.join(kinds)}",
          "",
          f"Started {args.start}; {args.rounds} rounds x {args.secs:g} s measured (+{args.warmup:g} s warm-up) per cell, "
          f"{args.conns} connections, {args.keys} keys, {args.value_size}-byte values, -m {args.memory}, {budget}; {pin}. "
          + (f"Wall time {elapsed / 60:.1f} min. " if elapsed else "Interrupted run: cells have the rounds they got. ")
          + f"Largest steal seen in a run: {max(r['steal'] for rs in runs.values() for r in rs) * 100:.1f} %.",
          "",
          "Host stalls (a spinning loop on each CPU, nothing else of ours running; CPU: longest gap µs, gaps > 100 µs, "
          "gaps > 1 ms, in " + f"{args.hiccup_secs:g} s): " + "; ".join(
              f"{w.split('_')[1]}: " + ", ".join(f"CPU {c} {v[0]}/{v[1]}/{v[2]}" for c, v in h.items())
              for w, h in args.hiccups.items()) + ".",
          "",
          "Medians over the rounds, latencies in µs from each request's due time. Offered rate = the % of memcached's "
          "closed-loop peak, the same for every server. `late` = generator_late_max_us (median). `srv` = the server's CPU use, in cores (median). `other` = CPU the rest of the host (other jobs) used during the run, in cores (median; from /proc/stat minus the server's and the generator's own CPU). Flags: `gen` the generator "
          "itself fell behind by at least half the row's p99.99; `short` fewer than 99 % of the expected replies measured "
          "(the server fell behind). Target (issue 23, corecache rows at 50 and 75 %): p99.9 and p99.99 each <= 0.7x "
          "memcached's and <= pogocache's.",
          "",
          "## Peaks (closed loop, one request in flight per connection)",
          "",
          "Median, then each run's ops/s @ the server's CPU use in cores during it (a server well under its CPUs "
          "was not the bottleneck: the generator or the host was).",
          "",
          "| -t | op | " + " | ".join(kinds) + " | rates are % of |",
          "| --- | --- | " + " | ".join("---:" for _ in kinds) + " | ---: |"]
    for t in threads_list:
        for op in ops:
            L.append(f"| {t} | {op} | " + " | ".join(
                f"{med(peaks[(t, op, k)]):.0f} (" + ", ".join(f"{x:.0f} @ {c:.2f}" for x, c in zip(peaks[(t, op, k)], peak_cores[(t, op, k)])) + ")"
                for k in kinds) + f" | {args.ref_used[(t, op)]:.0f} |")
    L += ["", "## Open loop at equal offered load", "",
          "| -t | op | load | offered/s | server | achieved/s | p50 | p99 | p99.9 | p99.99 | max | late | srv | other | p99.9 / mc | p99.99 / mc | target | flags |",
          "| --- | --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"]
    summary = {}
    verdicts = []
    for t in threads_list:
        for op in ops:
            for f in fractions:
                if any((t, op, f, k) not in runs for k in kinds):
                    continue
                m = {}
                for k in kinds:
                    rs = runs[(t, op, f, k)]
                    m[k] = {x: med([r[x] for r in rs]) for x in fields}
                    m[k]["achieved"] = med([r["measured"] / args.secs for r in rs])
                    m[k]["short"] = any(r["measured"] < 0.99 * r["expected"] for r in rs)
                    m[k]["rounds_p999"] = [r["p999_us"] for r in rs]
                    m[k]["rounds_p9999"] = [r["p9999_us"] for r in rs]
                    m[k]["n"] = len(rs)
                summary[f"t{t}-{op}-{f}"] = m
                mc = m[REF]
                for k in kinds:
                    x = m[k]
                    flags = []
                    if x["generator_late_max_us"] >= 0.5 * x["p9999_us"]:
                        flags.append("gen")
                    if x["short"]:
                        flags.append("short")
                    target = ""
                    if k == OURS and f in (50, 75):
                        ok = x["p999_us"] <= 0.7 * mc["p999_us"] and x["p9999_us"] <= 0.7 * mc["p9999_us"]
                        if "pogocache" in m:
                            ok = ok and x["p999_us"] <= m["pogocache"]["p999_us"] and x["p9999_us"] <= m["pogocache"]["p9999_us"]
                        target = "met" if ok else "NOT met"
                        verdicts.append((t, op, f, target))
                    r999 = f"{x['p999_us'] / mc['p999_us']:.2f}" if k != REF else "-"
                    r9999 = f"{x['p9999_us'] / mc['p9999_us']:.2f}" if k != REF else "-"
                    L.append(f"| {t} | {op} | {f} % | {rates[(t, op)][f]:.0f} | {k} | {x['achieved']:.0f} | {x['p50_us']:.0f} | "
                             f"{x['p99_us']:.0f} | {x['p999_us']:.0f} | {x['p9999_us']:.0f} | {x['max_us']:.0f} | "
                             f"{x['generator_late_max_us']:.0f} | {x['server_cores']:.2f} | {x['other_cores']:.2f} | {r999} | {r9999} | {target} | {' '.join(flags)} |")
    L += ["", "Per-round p99.9 / p99.99 (µs), in round order:", ""]
    for key, m in summary.items():
        L.append(f"- {key}: " + "; ".join(
            f"{k} {'/'.join(str(v) for v in m[k]['rounds_p999'])} | {'/'.join(str(v) for v in m[k]['rounds_p9999'])}" for k in kinds))
    L += ["", "Target at 50 and 75 %: " + "; ".join(f"-t {t} {op} {f} %: {v}" for t, op, f, v in verdicts) + ".",
          "", "Commands (last run of each server, -t and op, at the highest load):", ""]
    f = fractions[-1]
    for t in threads_list:
        for op in ops:
            for k in kinds:
                if (t, op, f, k) not in runs:
                    continue
                r = runs[(t, op, f, k)][-1]
                L.append(f"- `{r['server_cmd']}` ; `{r['generator_cmd']}`")
    text = "\n".join(L)
    print(text)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, f"{args.tag}.md"), "w") as fh:
        fh.write(text + "\n")


if __name__ == "__main__":
    main()
