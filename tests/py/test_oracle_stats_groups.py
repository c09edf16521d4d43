"""`stats conns`, `stats detail`, `-X`/`-D` and `stats settings` values
against memcached (issue 15): the same traffic on both, replies compared
after normalising only what differs by nature (descriptors, ports,
seconds, the order of lines memcached takes from its fds or hash
table)."""
import re
import time

import pytest

from oracle import OP_DELETE, OP_GAT, OP_GET, OP_SET, OP_STAT, OP_TOUCH, bin_request, bin_set, bin_touch

# --- stats conns: one block per listener and connection, with its state.


def conns_blocks(out, port):
    """The `stats conns` reply as a sorted list of blocks (field, value),
    descriptors dropped, addresses reduced to listener or client."""
    blocks = {}
    for line in out.split(b"\r\n"):
        m = re.match(rb"STAT (\d+):(\S+) (.*)", line)
        if not m:
            continue
        fd, field, value = m.groups()
        if field in (b"addr", b"listen_addr"):
            value = b"listener" if value.endswith(b":%d" % port) else b"client"
        if field == b"secs_since_last_cmd":
            value = b"n" if value.isdigit() else value
        blocks.setdefault(fd, []).append((field, value))
    return sorted(blocks.values())


def test_stats_conns_states(make_pair):
    p = make_pair("-t", "2", "-m", "64")

    def script(c):
        others = [c.server.connect() for _ in range(4)]
        for o in others:
            o.text(b"set k 0 0 1\r\n1\r\n")
        # One waits for a data block, one has half a command line.
        others[1].send(b"set p 0 0 10\r\nabc")
        others[2].send(b"get ab")
        # Each server takes the partial bytes in when its worker runs next:
        # asked until both show (a fixed 0.3 s once), at most 15 s.
        deadline = time.time() + 15
        while True:
            out = c.lines_until(b"stats conns\r\n")
            assert out.endswith(b"END\r\n")
            states = [dict(b)[b"state"] for b in conns_blocks(out, c.server.port)]
            if sorted(states) == STATES or time.time() > deadline:
                break
            time.sleep(0.05)
        for o in others:
            o.close()
        return conns_blocks(out, c.server.port)
    out = p.same(script)
    states = [dict(b)[b"state"] for b in out]
    assert sorted(states) == STATES, states


STATES = [b"conn_listening", b"conn_nread", b"conn_parse_cmd", b"conn_read", b"conn_read", b"conn_read"]


def test_stats_conns_binary_not_found(make_pair):
    p = make_pair("-t", "2", "-m", "64")
    out = p.same(lambda c: c.binary(bin_request(OP_STAT, b"conns"), bin_request(OP_GET, b"k")))
    assert out[0][1] == "0x1", out


# --- stats detail: per-prefix get/hit/set/del counts, on, off and reset.

DETAIL_TRAFFIC = [
    b"set a:1 0 0 1\r\n1\r\n", b"get a:1 a:2 b:1 nodelim\r\n", b"gets a:1\r\n", b"gat 100 a:1 c:9\r\n",
    b"gats 100 a:1\r\n", b"add a:1 0 0 1\r\n2\r\n", b"replace b:1 0 0 1\r\n2\r\n", b"append a:1 0 0 1\r\n3\r\n",
    b"prepend z:1 0 0 1\r\n3\r\n", b"cas a:1 0 0 1 1\r\n4\r\n", b"delete a:1\r\n", b"delete b:2\r\n",
    b"incr a:1 1\r\n", b"touch a:1 10\r\n", b"mg a:1 v\r\n", b"ms m:1 1\r\nx\r\n", b"md m:1\r\n", b":0 x\r\n",
    b"set :empty 0 0 1\r\n1\r\n", b"get :empty\r\n",
]
DETAIL_BINARY = [
    bin_set(b"d:1", b"v"), bin_request(OP_GET, b"d:1"), bin_request(OP_GET, b"d:2"),
    bin_touch(b"d:1", 100), bin_touch(b"d:1", 100, op=OP_GAT), bin_request(OP_DELETE, b"d:1"),
    bin_set(b"d:3", b"v", op=0x02), bin_request(0x0E, b"d:3", value=b"x"),
]


def detail_dump(c):
    out = c.lines_until(b"stats detail dump\r\n")
    lines = out.split(b"\r\n")
    assert lines[-2:] == [b"END", b""], out
    # memcached lists prefixes in its hash table's order.
    return sorted(lines[:-2])


def test_stats_detail(make_pair):
    p = make_pair("-t", "2", "-m", "64")

    def script(c):
        out = [detail_dump(c), c.text(b"stats detail on\r\n")]
        for cmd in DETAIL_TRAFFIC:
            out.append(c.text(cmd))
        with c.server.connect() as b:
            out.append(b.binary(*DETAIL_BINARY))
        out.append(detail_dump(c))
        out.append(c.text(b"stats detail off\r\nset a:9 0 0 1\r\n1\r\n"))
        out.append(detail_dump(c))
        out.append(c.text(b"stats detail\r\nstats detail bogus\r\n"))
        out.append(c.lines_until(b"stats reset\r\n", end=b"RESET\r\n"))
        out.append(detail_dump(c))
        return out
    out = p.same(script)
    assert any(b"PREFIX a get" in x for x in out[-6]), out


def sorted_dump(responses):
    """The `detailed` row's lines sorted (memcached's hash table order),
    and the statuses of the packets."""
    return [sorted(r.value.split(b"\r\n")) if r.key == b"detailed" else (r.op, r.status, r.key) for r in responses]


def test_stats_detail_binary(make_pair):
    """Binary STAT `detail on|off|dump`: the dump is one `detailed` row."""
    p = make_pair("-t", "2", "-m", "64")

    def script(c):
        out = [c.binary(bin_request(OP_STAT, b"detail on"))]
        out.append(c.binary(bin_set(b"x:1", b"1"), bin_request(OP_GET, b"x:1"), bin_request(OP_GET, b"y:1")))
        # A prefix that is not UTF-8 (its CAS is not compared: corecache's
        # are unique per key, not across shards).
        assert c.binary(bin_set(b"\xff\xfe:1", b"1"))[0].status == 0
        out.append(sorted_dump(c.binary(bin_request(OP_STAT, b"detail dump"))))
        out.append(c.binary(bin_request(OP_STAT, b"detail off"), bin_request(OP_GET, b"x:1")))
        out.append(sorted_dump(c.binary(bin_request(OP_STAT, b"detail dump"))))
        out.append(c.binary(bin_request(OP_STAT, b"detail nope")))
        return out
    out = p.same(script)
    assert b"PREFIX x get 1 hit 1 set 1 del 0" in out[2][0], out


def test_prefix_delimiter_flag(make_pair):
    """-D sets the delimiter and turns detail on from the start."""
    p = make_pair("-t", "2", "-m", "64", "-D", "/")

    def script(c):
        st = c.stats(b"settings")
        out = [st["stat_key_prefix"], st["detail_enabled"]]
        out.append(c.text(b"set a/1 0 0 1\r\n1\r\nset a:1 0 0 1\r\n1\r\nget a/1 b/2\r\n"))
        out.append(detail_dump(c))
        return out
    p.same(script)


# --- -X: no dumps; -W: no watch. memcached's words.

def test_dumps_disabled(make_pair):
    p = make_pair("-t", "2", "-m", "64", "-X")

    def script(c):
        out = [c.text(b"set k 0 0 1\r\n1\r\n")]
        for cmd in [b"stats cachedump 1 1\r\n", b"stats cachedump\r\n", b"lru_crawler metadump all\r\n",
                    b"lru_crawler metadump bogus\r\n", b"lru_crawler metadump\r\n", b"lru_crawler crawl all\r\n"]:
            out.append(c.text(cmd))
        out.append(c.stats(b"settings")["dump_enabled"])
        return out
    p.same(script)


def test_settings_values(make_pair):
    """Values with a meaning here, as memcached gives them for the same
    flags (oldest only as zero or not: store times differ by nature)."""
    p = make_pair("-t", "3", "-m", "80", "-c", "99", "-b", "77", "-I", "2m", "-o", "idle_timeout=30")
    names = ["maxbytes", "maxconns", "udpport", "verbosity", "evictions", "domain_socket", "umask",
             "shutdown_command", "growth_factor", "chunk_size", "num_threads", "num_threads_per_udp",
             "stat_key_prefix", "detail_enabled", "cas_enabled", "tcp_backlog", "binding_protocol",
             "auth_enabled_sasl", "auth_enabled_ascii", "item_size_max", "maxconns_fast", "flush_enabled",
             "dump_enabled", "idle_timeout", "ssl_enabled", "ssl_chain_cert", "ssl_key", "ssl_ca_cert",
             "ssl_min_version", "memory_file", "lru_crawler", "track_sizes"]

    def script(c):
        before = c.stats(b"settings")
        c.text(b"flush_all\r\n")
        after = c.stats(b"settings")
        return {n: before[n] for n in names}, before["oldest"] == b"0", after["oldest"] == b"0"
    p.same(script)
