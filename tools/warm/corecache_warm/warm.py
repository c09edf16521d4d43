"""Plans and runs a warm: which keys move from which old owner to which new
owner, and the copy itself (rate-limited, checkpointed, with progress)."""
import base64
import hashlib
import json
import os
import signal
import sys
import time

from .client import Conn, ProtocolError

RELATIVE_TTL_MAX = 60 * 60 * 24 * 30  # memcached: exptimes above are absolute Unix times


def ring_fingerprint(old, new, source):
    """Identifies one ring change and key source, so a state file is only
    resumed for the change it was made for."""
    desc = {
        "rings": [
            [r.flavour, r.key_hash.__name__, r.weighted, (r.hash_tag or b"").decode(),
             [(s.host, s.port, s.weight, s.point_name()) for s in r.servers]]
            for r in (old, new)
        ],
        "source": source,
    }
    return hashlib.sha256(json.dumps(desc, sort_keys=True).encode()).hexdigest()


def moves_for(old, new, keys, src_addr=None):
    """Yields (src_addr, dst_addr, key) for each key whose owner changes.
    With `src_addr`, keys listed by that node that it does not own on the
    old ring (stale copies left by an earlier change) are skipped: only an
    owner's copy is the one clients have been reading."""
    for key in keys:
        s = old.owner(key).addr()
        if src_addr is not None and s != src_addr:
            continue
        d = new.owner(key).addr()
        if d != s:
            yield s, d, key


def build_plan(old, new, keys_file=None, log=print):
    """Every move of the ring change, sorted by source then destination.
    Keys come from `keys_file` (one per line) or from each old node's
    `lru_crawler metadump all`."""
    plan = []
    if keys_file is not None:
        f = sys.stdin.buffer if keys_file == "-" else open(keys_file, "rb")
        with f:
            keys = [line.rstrip(b"\r\n") for line in f if line.strip()]
        plan.extend(moves_for(old, new, keys))
    else:
        for s in old.servers:
            conn = Conn(s.host, s.port)
            try:
                listed = 0
                for m in moves_for(old, new, conn.metadump(), s.addr()):
                    plan.append(m)
                    listed += 1
            finally:
                conn.close()
            log(f"warm: {s.addr()}: {listed} of its keys move")
    plan.sort()
    return plan


class State:
    """The plan (written once, beside the state file as FILE.plan) and how
    far the copy got (FILE, small, replaced atomically after every batch:
    write, fsync, rename), so a stopped warm resumes where it stopped."""

    def __init__(self, path, fingerprint):
        self.path = path
        self.fingerprint = fingerprint
        self.plan = None
        self.done = 0
        self.counts = {"copied": 0, "present": 0, "gone": 0, "expiring": 0, "errors": 0}
        self._plan_saved = False

    def load(self):
        if not self.path or not os.path.exists(self.path):
            return False
        with open(self.path) as f:
            data = json.load(f)
        if data.get("fingerprint") != self.fingerprint:
            raise SystemExit(
                f"corecache-warm: {self.path} was written for another ring change or key source; "
                "remove it or pass another --state")
        with open(self.path + ".plan") as f:
            self.plan = [(s, d, base64.b64decode(k)) for s, d, k in (line.split() for line in f)]
        self.done = data["done"]
        self.counts = data["counts"]
        self._plan_saved = True
        return True

    def save(self):
        if not self.path:
            return
        if not self._plan_saved:
            _write_atomic(self.path + ".plan", "".join(
                f"{s} {d} {base64.b64encode(k).decode()}\n" for s, d, k in self.plan))
            self._plan_saved = True
        _write_atomic(self.path, json.dumps(
            {"fingerprint": self.fingerprint, "done": self.done, "counts": self.counts}))


def _write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def exptime_for(ttl, now):
    """The ms T value that gives an item `ttl` more seconds (mg's t: -1 no
    expiry). Past 30 days memcached reads T as an absolute Unix time."""
    if ttl < 0:
        return 0
    if ttl > RELATIVE_TTL_MAX:
        return int(now) + ttl
    return ttl


class Stop(Exception):
    pass


def run(old, new, state, rate=2000.0, batch=100, overwrite=False, progress_every=1.0,
        log=print, keys_file=None):
    """Copies every planned key not yet done. Returns the counts."""
    if not state.load():
        state.plan = build_plan(old, new, keys_file, log)
        state.save()
        resumed = False
    else:
        resumed = True
    plan, total = state.plan, len(state.plan)
    by_pair = {}
    for s, d, _ in plan:
        by_pair[(s, d)] = by_pair.get((s, d), 0) + 1
    log(f"warm: {total} keys move" + ("" if not by_pair else ": " + ", ".join(
        f"{s} -> {d}: {n}" for (s, d), n in sorted(by_pair.items()))))
    if resumed:
        log(f"warm: resuming at {state.done} of {total} from {state.path}")

    stop = {"signal": None}

    def on_signal(signum, _frame):
        stop["signal"] = signum

    old_handlers = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    conns = {}

    def conn(addr):
        if addr not in conns:
            host, port = addr.rsplit(":", 1)
            conns[addr] = Conn(host, int(port))
        return conns[addr]

    mode = b"S" if overwrite else b"E"
    start = time.monotonic()
    start_done = state.done
    last_report = start
    try:
        while state.done < total:
            if stop["signal"] is not None:
                raise Stop(stop["signal"])
            chunk = plan[state.done : state.done + batch]
            if rate > 0:
                # a steady pace, not bursts: the old owners keep serving
                due = start + (state.done - start_done) / rate
                now = time.monotonic()
                if due > now:
                    time.sleep(due - now)
            by_src = {}
            for s, d, k in chunk:
                by_src.setdefault(s, []).append((d, k))
            by_dst = {}
            now = time.time()
            for s, entries in by_src.items():
                got = conn(s).get_many([k for _, k in entries])
                for (d, k), item in zip(entries, got):
                    if item is None:
                        state.counts["gone"] += 1
                        continue
                    if isinstance(item, str):  # this key only: count it, go on
                        state.counts["errors"] += 1
                        log(f"warm: {s}: {_show(k)}: {item}")
                        continue
                    flags, ttl, value = item
                    if ttl == 0:
                        state.counts["expiring"] += 1  # T0 would make it immortal
                        continue
                    by_dst.setdefault(d, []).append((k, flags, exptime_for(ttl, now), value))
            for d, items in by_dst.items():
                for (k, _, _, _), reply in zip(items, conn(d).set_many(items, mode)):
                    if isinstance(reply, tuple):
                        state.counts["copied"] += 1
                    elif reply == "exists":
                        state.counts["present"] += 1
                    else:
                        state.counts["errors"] += 1
                        log(f"warm: {d}: {_show(k)}: {reply}")
            state.done += len(chunk)
            state.save()
            t = time.monotonic()
            if progress_every is not None and (t - last_report >= progress_every or state.done == total):
                last_report = t
                _progress(log, state, total, start, start_done, t)
    except Stop:
        state.save()
        log(f"warm: stopped at {state.done} of {total}; run again with the same --state to resume")
        raise
    except ProtocolError:
        state.save()
        raise
    finally:
        for c in conns.values():
            c.close()
        for sig, h in old_handlers.items():
            signal.signal(sig, h)
    return state.counts


def _show(key, limit=60):
    """A key for a log line: printable, and cut when long."""
    text = repr(key[:limit])[2:-1]
    return text + (f"... ({len(key)} bytes)" if len(key) > limit else "")


def _progress(log, state, total, start, start_done, now):
    elapsed = max(now - start, 1e-6)
    speed = (state.done - start_done) / elapsed
    left = total - state.done
    eta = left / speed if speed > 0 else 0
    c = state.counts
    pct = 100.0 * state.done / total if total else 100.0
    log(f"warm: {state.done}/{total} ({pct:.1f} %) copied={c['copied']} present={c['present']} "
        f"gone={c['gone']} expiring={c['expiring']} errors={c['errors']} {speed:.0f} keys/s eta {eta:.0f} s")
