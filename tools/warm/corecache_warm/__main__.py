"""corecache-warm: after a ketama ring changes (a node added, removed or
reweighted), copy exactly the keys whose owner changed from their old owner
to their new one, with flags, remaining TTL and value, through the ordinary
protocol, so clients on the new ring hit where they hit before."""
import argparse
import fcntl
import math
import os
import sys

from .client import ProtocolError, Unsupported
from .conf import ring_from_twemproxy
from .ketama import Ring, Server
from .warm import Signals, State, Stop, ring_fingerprint, run

EPILOG = """
rings:
  libmemcached (pylibmc, php-memcached, libmemcached's CLI tools):
    --old 10.0.0.1:11211 --old 10.0.0.2:11211 --new ... [--weighted] [--hash H]
    pylibmc behaviors {"ketama": True}: the defaults (unweighted, one_at_a_time);
    pylibmc {"ketama_weighted": True} or php-memcached OPT_LIBKETAMA_COMPATIBLE:
    --weighted (md5). A weight is written host:port:weight.
  twemproxy: --old-twemproxy old.yml[:POOL] --new-twemproxy new.yml[:POOL]
    (servers, hash and hash_tag are read from the pool), or --flavour twemproxy
    with --old/--new server lines "host:port:weight [name]".

keys: each old node's `lru_crawler metadump all`, or --keys FILE (one per line).
exit status: 0 done, 1 a node failed or a copy was refused, 2 bad arguments,
3 a node cannot list its keys, 130/143 stopped by SIGINT/SIGTERM (resumable).
"""


def parse_args(argv):
    p = argparse.ArgumentParser(prog="corecache-warm", description=__doc__, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--old", action="append", default=[], metavar="SERVER", help="a server of the ring before the change (repeat)")
    p.add_argument("--new", action="append", default=[], metavar="SERVER", help="a server of the ring after the change (repeat)")
    p.add_argument("--old-twemproxy", metavar="FILE[:POOL]", help="twemproxy config of the ring before")
    p.add_argument("--new-twemproxy", metavar="FILE[:POOL]", help="twemproxy config of the ring after")
    p.add_argument("--flavour", choices=["libmemcached", "twemproxy"], default="libmemcached")
    p.add_argument("--hash", help="key hash (default: libmemcached one_at_a_time, or md5 with --weighted; twemproxy fnv1a_64)")
    p.add_argument("--weighted", action="store_true", help="libmemcached KETAMA_WEIGHTED (libketama compatible)")
    p.add_argument("--hash-tag", metavar="XY", help="twemproxy hash_tag, e.g. {}")
    p.add_argument("--keys", metavar="FILE", help="take keys from FILE ('-' = stdin) instead of lru_crawler metadump")
    p.add_argument("--rate", type=float, default=2000.0, help="keys copied per second, 0 = no limit (default 2000)")
    p.add_argument("--batch", type=int, default=100, help="keys per pipelined round trip (default 100)")
    p.add_argument("--state", metavar="FILE", help="plan and progress; run again with it to resume")
    p.add_argument("--overwrite", action="store_true", help="ms set mode: replace values the new owner already has; with the --state of a "
                   "complete pass, a sync pass that also deletes the warm's own copies of keys "
                   "their old owner no longer has")
    p.add_argument("--dry-run", action="store_true", help="print how many keys move where, copy nothing")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    a = p.parse_args(argv)
    if a.batch < 1 or not a.rate >= 0 or math.isinf(a.rate):  # nan fails >= too
        p.error("--batch must be >= 1 and --rate a number >= 0")
    if a.old_twemproxy or a.new_twemproxy:
        for opt, given in (("--hash", a.hash), ("--weighted", a.weighted), ("--hash-tag", a.hash_tag),
                           ("--flavour", a.flavour != "libmemcached")):
            if given:
                p.error(f"{opt} does not apply with --old-twemproxy/--new-twemproxy: the pool's settings are used")
    elif a.flavour == "libmemcached" and a.hash_tag:
        p.error("--hash-tag is twemproxy's: give it with --flavour twemproxy")
    elif a.flavour == "twemproxy" and a.weighted:
        p.error("--weighted is libmemcached's: a twemproxy ring is always weighted")
    if a.state and not a.dry_run:
        d = os.path.dirname(os.path.abspath(a.state))
        if not os.path.isdir(d) or not os.access(d, os.W_OK):
            p.error(f"--state {a.state}: {d} is not a writable directory")
    return p, a


def rings(p, a):
    try:
        if a.old_twemproxy or a.new_twemproxy:
            if not (a.old_twemproxy and a.new_twemproxy) or a.old or a.new:
                p.error("give both --old-twemproxy and --new-twemproxy, and no --old/--new")
            return ring_from_twemproxy(a.old_twemproxy), ring_from_twemproxy(a.new_twemproxy)
        if not a.old or not a.new:
            p.error("give the ring before (--old ...) and after (--new ...)")
        if a.flavour == "twemproxy":
            h = a.hash or "fnv1a_64"
            kw = dict(flavour="twemproxy", hash=h, hash_tag=a.hash_tag)
        else:
            h = a.hash or ("md5" if a.weighted else "one_at_a_time")
            kw = dict(flavour="libmemcached", hash=h, weighted=True if a.weighted else None)
        old = Ring([Server.parse(s) for s in a.old], **kw)
        new = Ring([Server.parse(s) for s in a.new], **kw)
        return old, new
    except (ValueError, OSError) as e:
        p.error(str(e))


def main(argv=None):
    p, a = parse_args(sys.argv[1:] if argv is None else argv)
    old, new = rings(p, a)
    with Signals() as signals:
        try:
            return _main(a, old, new, signals)
        except Stop as e:
            return 128 + (e.args[0] if e.args else 2)


def _main(a, old, new, signals):
    log = (lambda _m: None) if a.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    source = {"keys": a.keys} if a.keys else {"metadump": True}
    if a.dry_run:
        from .warm import build_plan
        try:
            signals.listing = True
            plan = build_plan(old, new, a.keys, log)
            signals.listing = False
        except Unsupported as e:
            print(f"corecache-warm: {e}; give the keys with --keys FILE", file=sys.stderr)
            return 3
        except (ProtocolError, OSError) as e:
            print(f"corecache-warm: {e}", file=sys.stderr)
            return 1
        except Stop:
            print("corecache-warm: stopped while listing keys", file=sys.stderr)
            raise
        pairs = {}
        for s, d, _ in plan:
            pairs[(s, d)] = pairs.get((s, d), 0) + 1
        for (s, d), n in sorted(pairs.items()):
            print(f"{s} -> {d}: {n}")
        print(f"total: {len(plan)}")
        return 0
    lock = None
    if a.state:
        # one run per state: two would interleave their records and positions
        lock = open(a.state + ".lock", "a")
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            print(f"corecache-warm: another corecache-warm is running with --state {a.state} "
                  f"(it holds {a.state}.lock); wait for it or stop it", file=sys.stderr)
            return 1
    try:
        return _run_locked(a, old, new, signals, log, source)
    finally:
        if lock is not None:
            lock.close()


def _run_locked(a, old, new, signals, log, source):
    state = State(a.state, ring_fingerprint(old, new, source))
    try:
        counts = run(old, new, state, rate=a.rate, batch=a.batch, overwrite=a.overwrite,
                     progress_every=None if a.quiet else 1.0, log=log, keys_file=a.keys, signals=signals)
    except Unsupported as e:
        print(f"corecache-warm: {e}; give the keys with --keys FILE", file=sys.stderr)
        return 3
    except (ProtocolError, OSError) as e:
        print(f"corecache-warm: {e}" + (f"; progress kept in {a.state}" if a.state else ""), file=sys.stderr)
        return 1
    print("warm: done " + " ".join(f"{k}={v}" for k, v in counts.items()), file=sys.stderr)
    return 1 if counts["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
