"""Start-up flags memcached validates though corecache has no use for them.

memcached is the oracle: each command line is given to both binaries; both
must refuse it with memcached's message, or both must start. (corecache
exits with 64, EX_USAGE, where memcached exits with 1: the systemd unit
keys on 64 to stop restarting a bad configuration.)
"""
import subprocess
import time

import pytest

from oracle import CORECACHE, MEMCACHED, free_port

CASES = [
    ["-R", "0"],
    ["-R", "20"],
    ["-n", "0"],
    ["-n", "48"],
    ["-f", "1"],
    ["-f", "1.25"],
    ["-o", "hashpower=11"],
    ["-o", "hashpower=99"],
    ["-o", "hashpower=16"],
    ["-o", "hashpower"],
    ["-o", "tail_repair_time=1"],
    ["-o", "tail_repair_time=20"],
    ["-o", ","],
    ["-o", "modern,"],
    ["-o", "modern,,lru_crawler"],
    ["-o", "slab_automove=3"],
    ["-o", "slab_automove"],
    ["-o", "slab_automove_ratio=2"],
    ["-o", "slab_automove_window=2"],
    ["-o", "hash_algorithm=md5"],
    ["-o", "hash_algorithm=xxh3"],
    ["-o", "hot_lru_pct=80"],
    ["-o", "warm_lru_pct=40"],
    ["-o", "lru_crawler_sleep=2000000"],
    ["-o", "lru_crawler_tocrawl=x"],
    ["-o", "slab_chunk_max=2048"],
    ["-o", "slab_chunk_max=2k"],
    ["-o", "slab_automove_window=3000"],
    ["-o", "worker_logbuf_size=8k"],
    ["-o", "temporary_ttl"],
    # Read as C reads numbers: atoi wraps at 32 bits, atof takes inf and
    # hex, safe_strtoul skips blanks and cuts to 32 bits.
    ["-o", "hashpower=99999999999"],
    ["-o", "slab_automove=4294967297"],
    ["-n", "4294967296"],
    ["-R", "-1"],
    ["-n", "-5"],
    ["-N", "-1"],
    ["-f", "inf"],
    ["-f", "0x10"],
    ["-o", "slab_automove_ratio=0x1p-1"],
    ["-o", "lru_crawler_tocrawl=4294967296"],
    ["-o", "lru_crawler_tocrawl=-0"],
    ["-o", "=5"],
    # memcached's checks once every option is read.
    ["-o", "hot_lru_pct=41"],
    ["-o", "hot_lru_pct=50,warm_lru_pct=30"],
    ["-o", "hashpower=12"],
    ["-o", "hashpower=13", "-t", "16"],
    ["-o", "slab_chunk_max=3000"],
    ["-o", "slab_chunk_max=16384"],
    ["-o", "slab_chunk_max=16384", "-I", "1k"],
    ["-o", "worker_logbuf_size=0"],
    ["-N", "5", "-t", "4"],
    # Each occurrence is checked, not only the last.
    ["-R", "0", "-R", "5"],
    ["-f", "1", "-f", "2"],
    ["-n", "0", "-n", "5"],
    ["-f", "1.25", "-f", "1"],
]


def outcomes(*argvs):
    """For each command line, run at once: ('started', '') if the server
    is still up after a second, else ('refused', its first line of
    output)."""
    procs = [subprocess.Popen(a, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for a in argvs]
    deadline = time.time() + 1.0
    while time.time() < deadline and any(p.poll() is None for p in procs):
        time.sleep(0.02)
    got = []
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()
            got.append(("started", ""))
            continue
        out = p.stdout.read()
        assert p.returncode != 0, out
        got.append(("refused", out.strip().splitlines()[0] if out.strip() else ""))
    return got


@pytest.mark.parametrize("args", CASES, ids=lambda a: " ".join(a))
def test_startup_refusals_as_memcached(args):
    mc, cc = outcomes(
        [MEMCACHED, "-u", "root", "-l", "127.0.0.1", "-U", "0", "-p", str(free_port()), *args],
        [CORECACHE, "-u", "root", "-l", "127.0.0.1", "-U", "0", "-p", str(free_port()),
         "--admin", "127.0.0.1:0", *args],
    )
    assert cc[0] == mc[0], (mc, cc)
    if mc[0] == "refused":
        assert mc[1] and mc[1] in cc[1], (mc, cc)
