#!/usr/bin/env python3
"""Runs memtier_benchmark against corecache and memcached side by side.

Each server runs with the same thread count and memory, pinned with taskset
to its own CPUs, memtier pinned to the others; rounds alternate between the
servers and the table shows medians and ours/memcached ratios. With
--cpu-budget F each server runs in a cgroup capped at F of one core, so the
server, not memtier, is the bottleneck on a small host. With --concurrent
both servers run at the same time, each with its own memtier, so noise from
the host hits both alike. With --baseline-bin OLD --bin NEW the two servers
are two corecache builds instead ("before" and "after"), run the same way.
--peer NAME=CMD (repeatable) runs another server, e.g. pogocache, in the
same rounds; --worker-ports adds corecache with -o worker_ports, measured
with the clients split evenly over its worker ports (one memtier per port,
each over the whole key space: every port is a cache of its own), and then
every server's clients are split over as many memtiers (--memtiers), so
the client side is the same for all.
"""
import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

WORKLOADS = {
    "c50": ["--clients=50", "--threads=1"],
    "p16": ["--clients=4", "--threads=1", "--pipeline=16"],
    "c500": ["--clients=500", "--threads=1"],
    "binary": ["--clients=50", "--threads=1", "--protocol=memcache_binary"],
    "mget10_zipf": ["--clients=50", "--threads=1", "--multi-key-get=10", "--key-pattern=Z:Z"],
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def per_task(pid, name, read):
    """The sum over the server's threads of read(f), f each thread's
    /proc/PID/task/TID/NAME (threads gone meanwhile count nothing)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/{name}") as f:
                total += read(f)
        except OSError:
            pass
    return total


def cpu_ns(pid):
    """Nanoseconds on CPU of all the server's threads, from the scheduler's
    own accounting (/proc/PID/task/*/schedstat). utime+stime in /proc/PID/stat
    are sampled at the tick and were off by tens of percent for servers
    that sleep and wake thousands of times a second."""
    return per_task(pid, "schedstat", lambda f: int(f.read().split()[0]))


def sleeps(pid):
    """Times any of the server's threads went to sleep (voluntary context
    switches, /proc/PID/task/*/status): each is a wake-up to pay for later.
    Under the same CPU cap, corecache -t 2 slept 0.34 times a request at
    50 connections where memcached slept 0.10-0.15 (2026-12-04)."""
    def voluntary(f):
        return sum(int(line.split()[1]) for line in f if line.startswith("voluntary_ctxt_switches:"))
    return per_task(pid, "status", voluntary)


class Cgroup:
    """A CPU quota (fraction of one core) and/or a scheduling weight (times
    the default) for some processes (cgroup v2 if mounted as such, else v1)."""

    def __init__(self, name, fraction, weight=None):
        self.path = None
        if fraction is None and weight is None:
            return
        v2 = os.path.exists("/sys/fs/cgroup/cgroup.controllers")
        self.path = f"/sys/fs/cgroup/{name}" if v2 else f"/sys/fs/cgroup/cpu/{name}"
        os.makedirs(self.path, exist_ok=True)
        if fraction is not None:
            quota, period = int(100000 * fraction), 100000
            if v2:
                open(f"{self.path}/cpu.max", "w").write(f"{quota} {period}")
            else:
                open(f"{self.path}/cpu.cfs_period_us", "w").write(str(period))
                open(f"{self.path}/cpu.cfs_quota_us", "w").write(str(quota))
        if weight is not None:
            if v2:
                open(f"{self.path}/cpu.weight", "w").write(str(min(10000, max(1, round(100 * weight)))))
            else:
                open(f"{self.path}/cpu.shares", "w").write(str(max(2, round(1024 * weight))))

    def add(self, pid):
        if self.path:
            open(f"{self.path}/cgroup.procs", "w").write(str(pid))

    def remove(self):
        if self.path:
            try:
                os.rmdir(self.path)
            except OSError:
                pass


def start(kind, port, args, cg):
    cpus = args.server_cpus
    if kind in args.peers:
        cmd = args.peers[kind].format(port=port, threads=args.threads, memory=args.memory).split()
    elif kind == WP:
        cmd = [args.bin, "-p", str(port), "-t", str(args.threads), "-m", str(args.memory),
               "-c", "4096", "-u", "nobody", "-o", "worker_ports"] + args.corecache_args.split()
    elif kind in args.binaries:
        cmd = [args.binaries[kind], "-p", str(port), "-t", str(args.threads), "-m", str(args.memory),
               "-c", "4096", "-u", "nobody"] + args.corecache_args.split()
    else:
        cmd = ["memcached", "-p", str(port), "-t", str(args.threads), "-m", str(args.memory), "-U", "0", "-u", "nobody", "-c", "4096"]
    if args.tls and kind not in args.peers:
        # Both servers speak TLS on the port (memcached -Z, corecache -Z).
        d = args.tls
        cmd += ["-Z", "-o", f"ssl_chain_cert={d}/server.pem,ssl_key={d}/server.key"]
    full = ["taskset", "-c", cpus] + cmd
    p = subprocess.Popen(full, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cg.add(p.pid)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return p, full
        except OSError:
            time.sleep(0.05)
    p.kill()
    raise RuntimeError(f"{kind} did not start")


# The --worker-ports server's name in tables.
WP = "corecache-wp"


def split_clients(extra, parts):
    """memtier options with --clients divided over `parts` memtiers."""
    out = []
    for o in extra:
        if o.startswith("--clients="):
            o = f"--clients={max(1, int(o.split('=')[1]) // parts)}"
        out.append(o)
    return out


def memtier_cmd(args, port, extra, json_path):
    # later options win in memtier, so workload options can override the defaults
    return ["taskset", "-c", args.client_cpus, args.memtier, "-s", "127.0.0.1", "-p", str(port),
            "--protocol=memcache_text", f"--data-size={args.value_size}", f"--key-maximum={args.keys}",
            "--ratio=1:9", "--hide-histogram", f"--json-out-file={json_path}"] + tls_opts(args) + extra


def tls_opts(args):
    """memtier's TLS options with --tls (the client's CPU, not the
    server's, pays for verifying the certificate: skipped)."""
    return ["--tls", "--tls-skip-verify"] if args.tls else []


def memtier(args, port, extra, json_path):
    cmd = memtier_cmd(args, port, extra, json_path)
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, timeout=args.duration * 10 + 120)
    return cmd


def cpu_ticks(cpus):
    """(steal, total) jiffies of the given CPUs, from /proc/stat. Steal is
    time the hypervisor ran something else while this guest wanted the CPU:
    on a shared host it is charged to whatever was running, CPU quotas
    included, and it was the main source of round-to-round spread here."""
    want = {f"cpu{c}" for c in expand_cpus(cpus)}
    steal = total = 0
    with open("/proc/stat") as f:
        for line in f:
            p = line.split()
            if p[0] in want:
                v = [int(x) for x in p[1:]]
                steal += v[7] if len(v) > 7 else 0
                total += sum(v[:8])
    return steal, total


def expand_cpus(spec):
    out = []
    for part in spec.split(","):
        a, _, b = part.partition("-")
        out += list(range(int(a), int(b or a) + 1))
    return out


def parse(json_path):
    with open(json_path) as f:
        j = json.load(f)
    tot = j["ALL STATS"]["Totals"]
    pct = tot.get("Percentile Latencies", {})

    def p(name):
        for k, v in pct.items():
            if k.startswith(name):
                return float(v)
        return float("nan")

    return {"ops": float(tot["Ops/sec"]), "p50": p("p50"), "p99": p("p99.00") if "p99.00" in pct else p("p99"), "p999": p("p99.90")}


def cross_shard_share(port):
    """Share of requests for another worker's key (corecache stats): hopped
    to its owner, run on its borrowed shard, or read from its memory."""
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"stats\r\n")
        buf = b""
        while not buf.endswith(b"END\r\n"):
            buf += s.recv(65536)
    st = {}
    for line in buf.decode().splitlines():
        p = line.split(" ")
        if len(p) == 3:
            st[p[1]] = p[2]
    total = int(st.get("cmd_get", 0)) + int(st.get("cmd_set", 0)) + int(st.get("cmd_touch", 0))
    crossed = sum(int(st.get(k, 0)) for k in ("cross_shard_sent", "cross_shard_borrowed", "foreign_reads"))
    return crossed / max(1, total)


def port_free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


class Server:
    """One server started in its own cgroup, with the keys preloaded."""

    def __init__(self, args, kind):
        self.kind = kind
        self.port = free_port()
        while kind == WP and not all(port_free(self.port + 1 + i) for i in range(args.threads)):
            self.port = free_port()
        # Where each of the round's memtiers connects: the port, or the
        # worker ports in turn. Every server gets as many memtiers, so the
        # client side is the same for all.
        own = [self.port + 1 + i for i in range(args.threads)] if kind == WP else [self.port]
        self.ports = [own[i % len(own)] for i in range(args.memtiers)]
        self.cg = Cgroup(f"ccbench_{kind}_{os.getpid()}", args.cpu_budget, args.cgroup_weight)
        self.proc, self.cmd = start(kind, self.port, args, self.cg)
        self.dir = tempfile.TemporaryDirectory()
        try:
            for i, port in enumerate(dict.fromkeys(self.ports)):
                pre = os.path.join(self.dir.name, f"pre{i}.json")
                memtier(args, port, ["--ratio=1:0", "--key-pattern=P:P", f"--requests={args.keys // 50 + 1}", "--clients=50", "--threads=1"], pre)
        except BaseException:
            self.stop()
            raise

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.cg.remove()
        self.dir.cleanup()


def measure(args, servers, extra, rate=None):
    """Runs one memtier per server, all at the same time, and returns each
    server's figures."""
    limit = [f"--rate-limiting={rate}"] if rate else []
    runs = []
    for sv in servers:
        mine = []
        for i, port in enumerate(sv.ports):
            j = os.path.join(sv.dir.name, f"run{i}.json")
            part = split_clients(extra, len(sv.ports))
            # a rate limit is per connection: unchanged when clients are split
            mine.append((j, memtier_cmd(args, port, [f"--test-time={args.duration}"] + part + limit, j)))
        runs.append((sv, mine))
    t0 = [cpu_ns(sv.proc.pid) for sv in servers]
    z0 = [sleeps(sv.proc.pid) for sv in servers]
    st0 = cpu_ticks(args.server_cpus)
    procs = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for _, mine in runs for _, cmd in mine]
    for p in procs:
        args.client_cg.add(p.pid)
    for p in procs:
        if p.wait(timeout=args.duration * 10 + 120) != 0:
            raise RuntimeError("memtier failed")
    st1 = cpu_ticks(args.server_cpus)
    out = []
    for (sv, mine), c0, s0 in zip(runs, t0, z0):
        ns = cpu_ns(sv.proc.pid) - c0
        slept = sleeps(sv.proc.pid) - s0
        parts = [parse(j) for j, _ in mine]
        # ops add up; of the latencies, the worst memtier's (no averaging of percentiles)
        r = {"ops": sum(p["ops"] for p in parts)}
        for k in ("p50", "p99", "p999"):
            r[k] = max(p[k] for p in parts)
        plain = not args.tls
        r["crossed"] = cross_shard_share(sv.port) if plain and (sv.kind in args.binaries or sv.kind == WP) else float("nan")
        r["cpu_us_per_req"] = ns / 1e3 / max(1.0, r["ops"] * args.duration)
        r["sleeps_per_req"] = slept / max(1.0, r["ops"] * args.duration)
        r["steal"] = (st1[0] - st0[0]) / max(1, st1[1] - st0[1])
        r["server_cmd"] = " ".join(sv.cmd)
        r["memtier_cmd"] = " & ".join(" ".join(c) for _, c in mine)
        out.append(r)
    return out


def run_round(args, kinds, extra, rate=None):
    """One round: each server in turn, or with --concurrent both at once."""
    results = {}
    groups = [kinds] if args.concurrent else [[k] for k in kinds]
    for group in groups:
        servers = []
        try:
            for kind in group:
                servers.append(Server(args, kind))
            for sv, r in zip(servers, measure(args, servers, extra, rate)):
                results[sv.kind] = r
        finally:
            for sv in servers:
                sv.stop()
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--memtier", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--memory", type=int, default=1024)
    ap.add_argument("--keys", type=int, default=100000)
    ap.add_argument("--value-size", type=int, default=100)
    ap.add_argument("--server-cpus", default="0")
    ap.add_argument("--client-cpus", default="1")
    ap.add_argument("--cpu-budget", type=float, default=None, help="cap each server at this fraction of one core, e.g. 0.25")
    ap.add_argument("--corecache-args", default="", help="extra corecache flags, e.g. '-o prefault'")
    ap.add_argument("--bin", default=os.environ.get("CORECACHE_BIN", os.path.join(ROOT, "target/release/corecache")),
                    help="the corecache binary to measure (default: $CORECACHE_BIN, else this tree's release build)")
    ap.add_argument("--baseline-bin", default=None,
                    help="compare --bin (\"after\") with this corecache binary (\"before\") instead of memcached")
    ap.add_argument("--peer", action="append", default=[], metavar="NAME=CMD",
                    help="another server to run in the same rounds (repeatable), e.g. "
                    "'pogocache=/path/pogocache -h 127.0.0.1 -p {port} -t {threads}'; {port}, {threads} "
                    "and {memory} (MB) are filled in. Build such servers locally; never commit them")
    ap.add_argument("--worker-ports", action="store_true",
                    help="also run corecache with -o worker_ports, memtier's clients split evenly over its "
                    "worker ports (one memtier per port), as a ketama client would spread them")
    ap.add_argument("--memtiers", type=int, default=None,
                    help="memtier processes per server and round, the workload's clients split evenly over them "
                    "(default 1; with --worker-ports, one per worker, for every server alike)")
    ap.add_argument("--workloads", default=",".join(WORKLOADS) + ",rate_half")
    ap.add_argument("--tls", default=None, metavar="DIR",
                    help="run every corecache and memcached with -Z, certificate DIR/server.pem and key "
                    "DIR/server.key (readable by nobody), and memtier with --tls")
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "benchmarks"))
    ap.add_argument("--concurrent", action="store_true",
                    help="run both servers at the same time, each with its own memtier (and cgroup), "
                    "so host noise (steal) hits both alike. Unthrottled, the two memtiers then share "
                    "the client CPUs: each server sees about half the load, and the comparison is "
                    "CPU per request and tails at the same offered load")
    ap.add_argument("--cgroup-weight", type=float, default=None,
                    help="give the servers and the measuring memtiers this many times the default CPU weight, "
                    "so that on a host busy with other work the budget, not the other work, limits the servers")
    args = ap.parse_args()
    if args.memtiers is None:
        args.memtiers = args.threads if args.worker_ports else 1
    if args.worker_ports and args.memtiers % args.threads:
        sys.exit("--memtiers must be a multiple of --threads with --worker-ports (even spread over the ports)")
    args.client_cg = Cgroup(f"ccbench_clients_{os.getpid()}", None, args.cgroup_weight)
    try:
        run(args)
    finally:
        args.client_cg.remove()


def run(args):
    if args.baseline_bin:
        ours, ref = "after", "before"
        args.binaries = {ours: args.bin, ref: args.baseline_bin}
    else:
        ours, ref = "corecache", "memcached"
        args.binaries = {ours: args.bin}
    args.peers = {}
    for spec in args.peer:
        name, sep, cmd = spec.partition("=")
        if not sep or not cmd or name in (ours, ref, WP):
            sys.exit(f"--peer {spec!r}: want NAME=CMD with a new NAME")
        args.peers[name] = cmd
    # every server of a round: ours and the reference first, then the others;
    # ratios are against the reference
    extra_kinds = ([WP] if args.worker_ports else []) + list(args.peers)
    all_kinds = [ours, ref] + extra_kinds

    names = args.workloads.split(",")
    results = {}  # (workload, server) -> list of runs
    for rnd in range(args.rounds):
        for name in names:
            order = [ours, ref] + extra_kinds
            if rnd % 2:
                order.reverse()
            if name == "rate_half":
                # tails at equal offered load: half of the reference server's c50 peak
                peak = statistics.median(r["ops"] for r in results.get(("c50", ref), [{"ops": 20000}]))
                rate = max(1, int(peak / 2 / 50))
                rr = run_round(args, order, WORKLOADS["c50"], rate)
            else:
                rr = run_round(args, order, WORKLOADS[name])
            for kind in order:
                r = rr[kind]
                results.setdefault((name, kind), []).append(r)
                print(f"round {rnd + 1} {name:12} {kind:12} {r['ops']:>10.0f} ops/s  p99.9 {r['p999']:.3f} ms  cpu/req {r['cpu_us_per_req']:.2f} us  steal {r['steal'] * 100:.0f}%", file=sys.stderr)

    mode = f"cpu budget {args.cpu_budget:.2f} core" if args.cpu_budget else "unthrottled"
    how = "both servers at once in each round" if args.concurrent else "servers alternating"
    if args.cgroup_weight:
        how += f", servers and memtiers at {args.cgroup_weight:g}x the default CPU weight"
    vs = ", ".join([ref] + extra_kinds)
    lines = [f"# {ours} vs {vs}, {mode}, -t {args.threads}, {args.value_size}-byte values, {args.keys} keys, 1:9 set:get, medians of {args.rounds} rounds, {how}", "",
             "ops ratio and CPU/req ratio are ratios of the medians; *per round* is the median of the rounds' own ops ratios "
             "(each round's two runs are closest in time). Sleeps/req: times a server thread went to sleep (voluntary context switches) per request. Steal: share of the server CPUs' time the hypervisor took.", "",
             "| workload | server | ops/s | p50 ms | p99 ms | p99.9 ms | server CPU µs/req | sleeps/req | ops ratio | per round | CPU/req ratio | per round | steal | crossed shards |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    if args.baseline_bin:
        lines[1:1] = ["", f"{ours}: `{args.bin}`; {ref}: `{args.baseline_bin}`"]
    summary = {}
    for name in names:
        med = {}
        for kind in all_kinds:
            rs = results[(name, kind)]
            med[kind] = {k: statistics.median(r[k] for r in rs) for k in ("ops", "p50", "p99", "p999", "cpu_us_per_req", "sleeps_per_req", "crossed", "steal")}
            if kind != ref:
                pairs = list(zip(rs, results[(name, ref)]))
                med[kind]["round_ratios"] = [a["ops"] / b["ops"] for a, b in pairs]
                med[kind]["round_cpu_ratios"] = [a["cpu_us_per_req"] / b["cpu_us_per_req"] for a, b in pairs]
        summary[name] = med
        for kind in all_kinds:
            m = med[kind]
            other = kind != ref
            ratio = m["ops"] / med[ref]["ops"] if other else 1.0
            per_round = f"{statistics.median(m['round_ratios']):.3f}" if other else "-"
            cpu_round = f"{statistics.median(m['round_cpu_ratios']):.3f}" if other else "-"
            cratio = m["cpu_us_per_req"] / med[ref]["cpu_us_per_req"] if other else 1.0
            crossed = f"{m['crossed'] * 100:.0f}%" if kind in args.binaries or kind == WP else "-"
            lines.append(f"| {name} | {kind} | {m['ops']:.0f} | {m['p50']:.3f} | {m['p99']:.3f} | {m['p999']:.3f} | {m['cpu_us_per_req']:.2f} | {m['sleeps_per_req']:.3f} | {ratio:.3f} | {per_round} | {cratio:.3f} | {cpu_round} | {m['steal'] * 100:.0f}% | {crossed} |")
    for kind in [ours] + extra_kinds:
        for what, key in (("ops", "round_ratios"), ("CPU/req", "round_cpu_ratios")):
            lines += ["", f"Per-round {what} ratios, {kind}: " + "; ".join(
                f"{n} " + " ".join(f"{x:.3f}" for x in summary[n][kind][key]) for n in names)]
    lines += ["", "Commands (last round):", ""]
    for name in names:
        for kind in all_kinds:
            r = results[(name, kind)][-1]
            lines.append(f"- {name}/{kind}: `{r['server_cmd']}` ; `{r['memtier_cmd']}`")
    table = "\n".join(lines)
    print(table)
    os.makedirs(args.out, exist_ok=True)
    tag = f"cpu{round(args.cpu_budget * 100)}" if args.cpu_budget else "unthrottled"
    if args.concurrent:
        tag += "-concurrent"
    if args.cgroup_weight:
        tag += f"-weight{args.cgroup_weight:g}"
    if args.baseline_bin:
        tag = "baseline-" + tag
    if extra_kinds:
        tag += "-" + "-".join(extra_kinds)
    with open(os.path.join(args.out, f"memtier-{tag}-t{args.threads}.md"), "w") as f:
        f.write(table + "\n")
    with open(os.path.join(args.out, f"memtier-{tag}-t{args.threads}.json"), "w") as f:
        json.dump({n: v for n, v in summary.items()}, f, indent=1)
    plot(summary, os.path.join(args.out, f"memtier-{tag}-t{args.threads}.png"), mode, all_kinds)


def plot(summary, path, mode, kinds):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no chart written (pip install matplotlib)", file=sys.stderr)
        return
    names = list(summary)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    x = range(len(names))
    w = 0.8 / len(kinds)
    for i, kind in enumerate(kinds):
        axes[0].bar([p + i * w for p in x], [summary[n][kind]["ops"] for n in names], w, label=kind)
        axes[1].bar([p + i * w for p in x], [summary[n][kind]["p999"] for n in names], w, label=kind)
    for ax, title in zip(axes, ("throughput (ops/s)", "p99.9 latency (ms)")):
        ax.set_xticks([p + 0.4 - w / 2 for p in x])
        ax.set_xticklabels(names, rotation=20)
        ax.set_title(f"{title}, {mode}")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)


if __name__ == "__main__":
    main()
