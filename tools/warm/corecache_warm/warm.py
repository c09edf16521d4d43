"""Plans and runs a warm: which keys move from which old owner to which new
owner, and the copy itself (rate-limited, checkpointed, with progress)."""
import base64
import hashlib
import json
import os
import re
import signal
import sys
import time

from .client import Conn, ProtocolError

RELATIVE_TTL_MAX = 60 * 60 * 24 * 30  # memcached: exptimes above are absolute Unix times
EXPTIME_MAX = 2**31 - 1  # the largest exptime memcached and corecache keep (rel_time_t)


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
        if key.startswith(SENTINEL_PREFIX):  # a warm's own marker on a node, not a client's key
            continue
        s = old.owner(key).addr()
        if src_addr is not None and s != src_addr:
            continue
        d = new.owner(key).addr()
        if d != s:
            yield s, d, key


def build_plan(old, new, keys_file=None, log=print):
    """Every move of the ring change, sorted by source then destination.
    Keys come from `keys_file` (one per line) or from each old node's
    `lru_crawler metadump all` (a server listed twice is listed once)."""
    plan = set()
    if keys_file is not None:
        f = sys.stdin.buffer if keys_file == "-" else open(keys_file, "rb")
        with f:
            keys = [line.rstrip(b"\r\n") for line in f if line.strip()]
        plan.update(moves_for(old, new, keys))
    else:
        seen = set()
        for s in old.servers:
            if s.addr() in seen:
                continue
            seen.add(s.addr())
            conn = Conn(s.host, s.port)
            try:
                listed, seen_keys = 0, [0]

                def counted(keys):
                    for k in keys:
                        seen_keys[0] += 1
                        yield k

                for m in moves_for(old, new, counted(conn.metadump()), s.addr()):
                    if m not in plan:
                        plan.add(m)
                        listed += 1
                items = _int(conn.stats().get("curr_items"))
            finally:
                conn.close()
            log(f"warm: {s.addr()}: {listed} of its keys move")
            if items is not None and seen_keys[0] < items:
                # memcached's crawler skips items it cannot lock (busy under
                # load), as well as expired and flushed items not reclaimed yet
                log(f"warm: warning: {s.addr()} listed {seen_keys[0]} keys but holds {items} items (curr_items): "
                    "the listing is best effort; keys it missed are not copied (a sync pass "
                    "lists again and takes the union)")
    return sorted(plan)


def _int(text):
    try:
        return int(text)
    except (TypeError, ValueError):
        return None


COUNTS = ("copied", "present", "gone", "expiring", "errors", "deleted", "kept", "unverified")


STATE_VERSION = 2


class StateError(SystemExit):
    """A state file that cannot be used (the text says which and why)."""

    def __init__(self, msg):
        super().__init__(f"corecache-warm: {msg}")


def _cas_line(dst, key, cas):
    return json.dumps([dst, base64.b64encode(key).decode(), cas]) + "\n"


_TORN = re.compile(r'^\["([^"]*)", "([^"]*)"')


class State:
    """One warm's plan and progress, kept in files beside FILE:

    - FILE: small JSON replaced atomically after every batch (write, fsync,
      rename): the pass number (1 = the copy, 2+ = --overwrite sync passes),
      how far the pass got, counts per destination, each destination's
      identity (pid, uptime) and the name, length and SHA-256 of the plan
      file;
    - FILE.plan.<hash>: the current pass's moves, written (atomically) when
      the pass starts, before FILE names it: a stop between the two leaves
      FILE with the plan it was made for, and the older plan file is
      removed only once FILE names the new one;
    - FILE.cas: one JSON record per line per copy the warm made
      (destination, key, the CAS the destination gave it; 0: no CAS),
      appended and fsynced after every batch, before FILE; a line that does
      not parse (torn by a crash) is dropped and makes its key unknown: a
      sync pass deletes a key on the new node only while the recorded copy
      is still there."""

    def __init__(self, path, fingerprint):
        self.path = path
        self.fingerprint = fingerprint
        self.plan = None
        self.done = 0
        self.pass_no = 1
        self.by_dst = {}
        self.ids = {}
        self.batch = 0
        self.sentinel = None
        self.cas = {}  # (dst, key) -> cas of the warm's own copy (0: unknown)
        self.replay = set()  # (dst, key) of the batch in flight when the last run stopped
        self.torn = 0
        self._cas_new = []
        self._plan_saved = False
        self._plan_file = None
        self._plan_sha = None

    @property
    def counts(self):
        total = dict.fromkeys(COUNTS, 0)
        for c in self.by_dst.values():
            for k in COUNTS:
                total[k] += c.get(k, 0)
        return total

    def count(self, dst, what, n=1):
        c = self.by_dst.setdefault(dst, dict.fromkeys(COUNTS, 0))
        c[what] = c.get(what, 0) + n

    def load(self):
        if not self.path or not os.path.exists(self.path):
            return False
        files = f"{self.path} (with its .plan.* and .cas files)"
        try:
            with open(self.path) as f:
                data = json.load(f)
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as e:
            raise StateError(f"{self.path} cannot be read as a warm state ({e}); "
                             f"remove {files} or pass another --state") from None
        if data.get("fingerprint") != self.fingerprint:
            raise StateError(f"{self.path} was written for another ring change or key source; "
                             f"remove {files} or pass another --state")
        if data.get("version") != STATE_VERSION:
            raise StateError(f"{self.path} was written by an older corecache-warm; "
                             f"remove {files} or pass another --state")
        try:
            plan_path = os.path.join(os.path.dirname(self.path), data["plan_file"])
            with open(plan_path, "rb") as f:
                raw = f.read()
            if hashlib.sha256(raw).hexdigest() != data["plan_sha"]:
                raise ValueError(f"{plan_path} is not the plan {self.path} was saved with "
                                 "(truncated or changed)")
            self.plan = [(s, d, base64.b64decode(k)) for s, d, k in (line.split() for line in raw.decode().splitlines())]
            if len(self.plan) != data["plan_len"]:
                raise ValueError(f"{plan_path} holds {len(self.plan)} moves, the state says {data['plan_len']}")
            self.done = int(data["done"])
            self.pass_no = int(data["pass"])
            self.by_dst = dict(data["by_dst"])
            self.ids = dict(data["ids"])
            self.batch = int(data.get("batch", 0))
            self.sentinel = data.get("sentinel")
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise StateError(f"{self.path}: {e}; remove {files} or pass another --state") from None
        self._plan_file, self._plan_sha = data["plan_file"], data["plan_sha"]
        # the batch that was in flight: written, maybe, without its .cas records
        self.replay = {(d, k) for _, d, k in self.plan[self.done : self.done + self.batch]}
        if os.path.exists(self.path + ".cas"):
            with open(self.path + ".cas", "rb") as f:
                for line in f.read().decode(errors="replace").splitlines():
                    try:
                        d, k, cas = json.loads(line)
                        self.cas[(d, base64.b64decode(k, validate=True))] = int(cas)
                    except (ValueError, TypeError):
                        # torn by a crash: its key, if it can be read, is unknown now
                        self.torn += 1
                        m = _TORN.match(line)
                        if m:
                            try:
                                self.cas[(m.group(1), base64.b64decode(m.group(2), validate=True))] = 0
                            except ValueError:
                                pass
        self._plan_saved = True
        return True

    def new_pass(self, plan, pass_no):
        self.plan, self.done, self.pass_no = plan, 0, pass_no
        self.by_dst = {}
        self.replay = set()
        self._plan_saved = False

    def recopy(self, dst):
        """`dst` restarted empty: its keys of this pass go to the end of what
        is left, its counts and the CAS of its copies are dropped."""
        head = self.plan[: self.done]
        mine = [e for e in head if e[1] == dst]
        self.plan = [e for e in head if e[1] != dst] + mine + self.plan[self.done :]
        self.done -= len(mine)
        self.by_dst.pop(dst, None)
        self._plan_saved = False
        self.drop_cas(dst)

    def drop_cas(self, dst):
        """Forgets the CAS of `dst`'s copies (it restarted: they are gone,
        and its new CAS numbers would collide with them)."""
        self.cas = {k: v for k, v in self.cas.items() if k[0] != dst}
        self.replay = {e for e in self.replay if e[0] != dst}
        if self.path and os.path.exists(self.path + ".cas"):
            _write_atomic(self.path + ".cas", "".join(_cas_line(d, k, c) for (d, k), c in self.cas.items()))

    def copied(self, dst, key, cas):
        """Records the CAS of the warm's copy. None or 0 (memcached -C
        answers c0: CAS disabled) is recorded as 0, "unknown": `md C0`
        matches any item, so such a copy is never deleted."""
        cas = cas or 0
        self.cas[(dst, key)] = cas
        self._cas_new.append(_cas_line(dst, key, cas))

    def save(self):
        if not self.path:
            return
        old_plan = None
        if not self._plan_saved:
            text = "".join(f"{s} {d} {base64.b64encode(k).decode()}\n" for s, d, k in self.plan).encode()
            sha = hashlib.sha256(text).hexdigest()
            name = f"{os.path.basename(self.path)}.plan.{sha[:16]}"
            _write_atomic(os.path.join(os.path.dirname(self.path), name), text)
            old_plan = self._plan_file if self._plan_file != name else None
            self._plan_file, self._plan_sha = name, sha
            self._plan_saved = True
        if self._cas_new:  # before the position: a replayed batch only repeats lines
            with open(self.path + ".cas", "ab+") as f:
                f.seek(0, os.SEEK_END)
                if f.tell():
                    f.seek(-1, os.SEEK_END)
                    if f.read(1) != b"\n":  # a torn last line stays a line of its own
                        f.write(b"\n")
                f.write("".join(self._cas_new).encode())
                f.flush()
                os.fsync(f.fileno())
            self._cas_new = []
        _write_atomic(self.path, json.dumps(
            {"version": STATE_VERSION, "fingerprint": self.fingerprint, "pass": self.pass_no,
             "done": self.done, "batch": self.batch, "plan_file": self._plan_file,
             "plan_sha": self._plan_sha, "plan_len": len(self.plan), "by_dst": self.by_dst,
             "ids": self.ids, "sentinel": self.sentinel}))
        if old_plan:  # FILE names the new plan now
            try:
                os.remove(os.path.join(os.path.dirname(self.path), old_plan))
            except FileNotFoundError:
                pass


def _write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "wb" if isinstance(text, bytes) else "w") as f:
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
        # whole seconds of two clocks: now + ttl can land one past an item
        # stored with the largest exptime, and both servers read an exptime
        # past INT32_MAX as already expired
        return min(int(now) + ttl, EXPTIME_MAX)
    return ttl


class Stop(Exception):
    pass


class Signals:
    """SIGINT/SIGTERM set a flag (checked between batches and during the
    pacing sleep) instead of raising in the middle of a reply; installed
    before the key listing, so a stop there is clean too."""

    def __init__(self):
        self.signum = None

    def __enter__(self):
        def on_signal(signum, _frame):
            self.signum = signum
            if self.listing:
                raise Stop(signum)

        self.listing = False
        self.old = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc):
        for sig, h in self.old.items():
            signal.signal(sig, h)

    def check(self):
        if self.signum is not None:
            raise Stop(self.signum)

    def sleep(self, seconds):
        end = time.monotonic() + seconds
        while True:
            self.check()
            left = end - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, 0.1))


SENTINEL_PREFIX = b"__corecache_warm:"


def restarted(before, now):
    """Whether two identities (Conn.identity) are surely two processes: a
    new pid, or an uptime that went back. Only a secondary signal (a
    container restarts with the same pid, 1): the sentinel key decides.
    No wall-clock difference is used: an NTP step would look like a
    restart."""
    return before["pid"] != now["pid"] or now.get("uptime", 0) < before.get("uptime", 0)


def _identities(dsts, connect):
    ids = {}
    for d in sorted(dsts):
        ids[d] = connect(d).identity()
    return ids


def _new_sentinel():
    return {"key": (SENTINEL_PREFIX + os.urandom(8).hex().encode()).decode(), "value": os.urandom(16).hex()}


def _sentinel_there(state, c):
    got = c.get_many([state.sentinel["key"].encode()])[0]
    if isinstance(got, str):
        raise ProtocolError(f"{c.where}: {got}")
    return got is not None and got[2] == state.sentinel["value"].encode()


def _put_sentinels(state, dsts, connect):
    """Writes this warm's sentinel key (no TTL) on each destination: gone
    later means the node restarted or was flushed since, so the copies
    and their CAS numbers are gone too."""
    key, value = state.sentinel["key"].encode(), state.sentinel["value"].encode()
    for d in sorted(dsts):
        c = connect(d)
        reply = c.set_many([(key, 0, 0, value)], b"S")[0]
        if not isinstance(reply, tuple):
            raise ProtocolError(f"{c.where}: cannot write the warm's sentinel key: {reply}")


def _lost_copies(state, d, before, ident, c):
    """Why `d` no longer holds what the warm gave it, or None."""
    if before is not None and restarted(before, ident):
        return "restarted", f"pid {before['pid']} uptime {before.get('uptime')} -> pid {ident['pid']} uptime {ident['uptime']}"
    if not _sentinel_there(state, c):
        return "restarted or was flushed", f"the warm's sentinel key {state.sentinel['key']} is gone"
    return None


def run(old, new, state, rate=2000.0, batch=100, overwrite=False, progress_every=1.0,
        log=print, keys_file=None, signals=None):
    """Copies every planned key not yet done. Returns the counts."""
    if signals is None:
        with Signals() as sig:
            return run(old, new, state, rate, batch, overwrite, progress_every, log, keys_file, sig)
    conns = {}

    def conn(addr):
        if addr not in conns:
            host, port = addr.rsplit(":", 1)
            conns[addr] = Conn(host, int(port))
        return conns[addr]

    try:
        return _run(old, new, state, rate, batch, overwrite, progress_every, log, keys_file, signals, conn)
    except Stop:
        if state.plan is not None:
            state.save()
            log(f"warm: stopped at {state.done} of {len(state.plan)}; run again with the same --state to resume")
        else:
            log("warm: stopped while listing keys; nothing copied")
        raise
    except ProtocolError:
        if state.plan is not None:
            state.save()
        raise
    finally:
        for c in conns.values():
            c.close()


def _listing(old, new, keys_file, log, signals):
    signals.listing = True
    try:
        return build_plan(old, new, keys_file, log)
    finally:
        signals.listing = False


def _run(old, new, state, rate, batch, overwrite, progress_every, log, keys_file, signals, conn):
    resumed = state.load()
    if state.torn:
        log(f"warm: {state.path}.cas: {state.torn} torn records dropped (a crash mid-write); "
            "their keys are never deleted by a sync pass")
    state.batch = batch
    if not resumed:
        state.new_pass(_listing(old, new, keys_file, log, signals), 1)
        state.ids = _identities({d for _, d, _ in state.plan}, conn)
        state.sentinel = _new_sentinel()
        state.save()
        _put_sentinels(state, state.ids, conn)
    elif state.done >= len(state.plan) and overwrite:
        # a sync pass: the keys listed now and every key of the earlier
        # passes, so keys deleted on their old owner since are seen too
        fresh = _listing(old, new, keys_file, log, signals)
        plan = sorted(set(fresh) | set(state.plan))
        log(f"warm: pass {state.pass_no} was complete; sync pass {state.pass_no + 1}: "
            f"{len(fresh)} keys move now, {len(plan) - len(fresh)} more from earlier passes")
        previous = dict(state.ids)
        state.new_pass(plan, state.pass_no + 1)
        state.ids = _identities({d for _, d, _ in plan}, conn)
        for d, ident in sorted(state.ids.items()):
            why = _lost_copies(state, d, previous.get(d), ident, conn(d)) if d in previous else None
            if why:
                log(f"warm: {d} {why[0]} since the earlier pass ({why[1]}); its copies are gone: "
                    "copying its keys again (no deletes are carried on it)")
                state.drop_cas(d)
        state.save()  # before the sentinels: a stop between finds them missing again
        _put_sentinels(state, state.ids, conn)
        resumed = False
    else:
        now_ids = _identities({d for _, d, _ in state.plan}, conn)
        for d, ident in sorted(now_ids.items()):
            why = _lost_copies(state, d, state.ids.get(d), ident, conn(d))
            if why:
                log(f"warm: {d} {why[0]} since the last run ({why[1]}): copying its keys again from the start")
                state.recopy(d)
        state.ids = now_ids
        state.save()  # before the sentinels: a stop between finds them missing again
        _put_sentinels(state, now_ids, conn)
    plan, total = state.plan, len(state.plan)
    by_pair = {}
    for s, d, _ in plan:
        by_pair[(s, d)] = by_pair.get((s, d), 0) + 1
    log(f"warm: {total} keys move" + ("" if not by_pair else ": " + ", ".join(
        f"{s} -> {d}: {n}" for (s, d), n in sorted(by_pair.items()))))
    if resumed:
        log(f"warm: resuming at {state.done} of {total} from {state.path}")
        if state.done >= total and not overwrite:
            log("warm: this pass is complete; --overwrite with the same --state runs a sync pass")

    mode = b"S" if overwrite else b"E"
    unverified = set()
    start = time.monotonic()
    start_done = state.done
    last_report = start
    while state.done < total:
        signals.check()
        chunk = plan[state.done : state.done + batch]
        if rate > 0:
            # a steady pace, not bursts: the old owners keep serving
            due = start + (state.done - start_done) / rate
            now = time.monotonic()
            if due > now:
                signals.sleep(due - now)
        by_src = {}
        for s, d, k in chunk:
            by_src.setdefault(s, []).append((d, k))
        by_dst, deletes = {}, {}
        now = time.time()
        for s, entries in by_src.items():
            got = conn(s).get_many([k for _, k in entries])
            for (d, k), item in zip(entries, got):
                if item is None:
                    state.count(d, "gone")
                    cas = state.cas.get((d, k))
                    if cas:  # the warm's own copy of a key since deleted
                        deletes.setdefault(d, []).append((k, cas))
                    elif cas == 0:  # copied, but the node gave no CAS: never deleted
                        state.count(d, "unverified")
                        unverified.add(d)
                    continue
                if isinstance(item, str):  # this key only: count it, go on
                    state.count(d, "errors")
                    log(f"warm: {s}: {_show(k)}: {item}")
                    continue
                flags, ttl, value = item
                if ttl == 0:
                    state.count(d, "expiring")  # T0 would make it immortal
                    continue
                by_dst.setdefault(d, []).append((k, flags, exptime_for(ttl, now), value))
        for d, items in by_dst.items():
            replayed = []
            for item, reply in zip(items, conn(d).set_many(items, mode)):
                k = item[0]
                if isinstance(reply, tuple):
                    state.count(d, "copied")
                    state.copied(d, k, reply[1])
                elif reply == "exists":
                    if (d, k) in state.replay:
                        replayed.append(item)
                    else:
                        state.count(d, "present")
                else:
                    state.count(d, "errors")
                    log(f"warm: {d}: {_show(k)}: {reply}")
            if replayed:
                # the batch in flight when the last run stopped: its copies
                # may be there without their .cas records; one holding
                # exactly the old owner's flags and value is the warm's copy
                for (k, flags, _, value), got in zip(replayed, conn(d).versions([i[0] for i in replayed])):
                    if isinstance(got, tuple) and got[0] == flags and got[2] == value:
                        state.count(d, "copied")
                        state.copied(d, k, got[1])
                    else:
                        state.count(d, "present")
        for d, items in deletes.items():
            for (k, _), reply in zip(items, conn(d).delete_many(items)):
                if reply == "deleted":
                    state.count(d, "deleted")
                    state.cas.pop((d, k), None)
                elif reply == "changed":
                    state.count(d, "kept")  # a client wrote it there since: its value stays
                elif reply != "absent":
                    state.count(d, "errors")
                    log(f"warm: {d}: {_show(k)}: {reply}")
        state.done += len(chunk)
        state.save()
        t = time.monotonic()
        if progress_every is not None and (t - last_report >= progress_every or state.done == total):
            last_report = t
            _progress(log, state, total, start, start_done, t)
    for d in sorted(unverified):
        log(f"warm: {d} gave its copies no CAS (CAS disabled, memcached -C): "
            f"{state.by_dst.get(d, {}).get('unverified', 0)} keys its old owner no longer has were "
            "left there (counted unverified): the warm cannot tell its copy from a client's write")
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
        f"gone={c['gone']} expiring={c['expiring']} errors={c['errors']} deleted={c['deleted']} "
        f"kept={c['kept']} unverified={c['unverified']} {speed:.0f} keys/s eta {eta:.0f} s")
