"""Text protocol, memcached as the oracle: the same bytes to Debian's
memcached and to corecache, the replies compared (issue 15).

Each test is one class of behaviour with several members; a member that
corecache answers differently today is marked xfail(strict=True) with what
differs, so it turns into an error once fixed (then drop the marker).
"""
import time

import pytest

from oracle import TIMEOUT, Pair


def xfail(reason):
    return pytest.mark.xfail(strict=True, reason="issue 15: " + reason)


def lines(*cmds):
    """A script sending each command (with a trailing `mn`) in turn."""
    return lambda c: [c.text(x) for x in cmds]


def case(id, *cmds, marks=()):
    return pytest.param(cmds, id=id, marks=marks)


def run(pair, cmds):
    out = pair.same(lines(*cmds))
    assert TIMEOUT not in b"".join(out), out
    return out


# --- CAS: a unique of 0 never matches in text; every compare is exact. ---

def test_cas_unique_zero_missing_key(pair):
    out = run(pair, [b"cas k 0 0 1 0\r\nb\r\n", b"get k\r\n"])
    assert out[0] == b"NOT_FOUND\r\n"


def test_cas_unique_zero_present_key(pair):
    out = run(pair, [b"set k 0 0 1\r\na\r\n", b"cas k 0 0 1 0\r\nb\r\n", b"get k\r\n"])
    assert out[1] == b"EXISTS\r\n"


def test_cas_unique_zero_noreply_keeps_value(pair):
    run(pair, [b"set k 0 0 1\r\na\r\n", b"cas k 0 0 1 0 noreply\r\nb\r\n", b"cas z 0 0 1 0 noreply\r\nb\r\n", b"get k z\r\n"])


def cas_script(c):
    """Every outcome of a text `cas`: match, stale, off by one, missing."""
    out = [c.text(b"set k 5 0 1\r\na\r\n")]
    u = c.cas_of(b"k")
    out.append(c.text(b"cas k 6 0 1 %d\r\nb\r\n" % (u + 1)))
    out.append(c.text(b"cas k 6 0 1 %d\r\nb\r\n" % u))
    out.append(c.text(b"cas k 7 0 1 %d\r\nc\r\n" % u))  # stale now
    out.append(c.text(b"gets k\r\n"))
    v = c.cas_of(b"k")
    out.append(c.text(b"append k 0 0 1\r\nd\r\n"))
    out.append(c.text(b"cas k 0 0 1 %d\r\ne\r\n" % v))  # append changed it
    out.append(c.text(b"delete k\r\n"))
    out.append(c.text(b"cas k 0 0 1 %d\r\nf\r\n" % v))
    out.append(c.text(b"cas k 0 0 1 18446744073709551615\r\nf\r\n"))
    return out


def test_cas_compare_outcomes(pair):
    out = pair.same(cas_script)
    assert out[1:4] == [b"EXISTS\r\n", b"STORED\r\n", b"EXISTS\r\n"]


def test_cas_changes_on_every_mutation(pair):
    def script(c):
        seen = []
        c.text(b"set n 0 0 1\r\n1\r\n")
        for cmd in [b"incr n 1\r\n", b"decr n 1\r\n", b"append n 0 0 1\r\n0\r\n", b"prepend n 0 0 1\r\n1\r\n",
                    b"replace n 0 0 1\r\n2\r\n", b"touch n 100\r\n", b"gat 200 n\r\n", b"set n 0 0 1\r\n3\r\n"]:
            c.text(cmd)
            seen.append(c.text(b"gets n\r\n"))
        return seen
    pair.same(script)


# --- Expiry fields: negative = expired, > 30 days = absolute time. ---

NOW = int(time.time())

EXPIRY = [
    case("touch_minus1", b"set k 0 0 1\r\na\r\n", b"touch k -1\r\n", b"get k\r\n"),
    case("touch_minus1_missing", b"touch k -1\r\n"),
    case("gat_minus1", b"set k 0 0 1\r\na\r\n", b"gat -1 k\r\n", b"get k\r\n"),
    case("gats_minus1", b"set k 0 0 1\r\na\r\n", b"gats -1 k\r\n", b"gets k\r\n"),
    case("gat_minus1_multi", b"set a 0 0 1\r\na\r\n", b"set b 0 0 1\r\nb\r\n", b"gat -1 a b c\r\n", b"get a b\r\n"),
    case("set_minus1", b"set k 0 0 1\r\na\r\n", b"set k 0 -1 1\r\nb\r\n", b"get k\r\n"),
    case("add_after_expired", b"set k 0 -1 1\r\na\r\n", b"add k 0 0 1\r\nb\r\n", b"get k\r\n"),
    case("touch_absolute_past", b"set k 0 0 1\r\na\r\n", b"touch k 1000000000\r\n", b"get k\r\n"),
    case("touch_absolute_future", b"set k 0 0 1\r\na\r\n", b"touch k %d\r\n" % (NOW + 3600), b"get k\r\n"),
    case("touch_30_days", b"set k 0 0 1\r\na\r\n", b"touch k 2592000\r\n", b"get k\r\n"),
    case("set_30_days_plus_1", b"set k 0 2592001 1\r\na\r\n", b"get k\r\n"),
    case("set_absolute_past", b"set k 0 1000000000 1\r\na\r\n", b"get k\r\n"),
    case("set_absolute_future", b"set k 0 %d 1\r\na\r\n" % (NOW + 3600), b"get k\r\n"),
    case("gat_zero_clears_ttl", b"set k 0 100 1\r\na\r\n", b"gat 0 k\r\n", b"mg k t v\r\n"),
    case("touch_zero_clears_ttl", b"set k 0 100 1\r\na\r\n", b"touch k 0\r\n", b"mg k t\r\n"),
    case("meta_set_T_minus1", b"ms k 1 T-1\r\na\r\n", b"mg k v\r\n"),
    case("meta_get_T_minus1", b"set k 0 0 1\r\na\r\n", b"mg k v T-1\r\n", b"mg k v\r\n"),
    case("meta_arith_T_minus1", b"set n 0 0 1\r\n1\r\n", b"ma n T-1 v\r\n", b"mg n v\r\n"),
    case("meta_arith_vivify_N_minus1", b"ma n N-1 J5 v\r\n", b"mg n v\r\n"),
    case("meta_delete_I_T_minus1", b"set k 0 0 1\r\na\r\n", b"md k I T-1\r\n", b"mg k v c\r\n"),
    case("exptime_plus_sign", b"set k 0 +0 1\r\na\r\n", b"touch k +100\r\n", b"gat +0 k\r\n", b"mg k t\r\n"),
    case("exptime_not_a_number", b"set k 0 0 1\r\na\r\n", b"touch k 1x\r\n", b"gat x k\r\n", b"gat 1.5 k\r\n"),
    # process_get_command reads the exptime, then keys while there are any
    case("gat_without_keys", b"gat 100\r\n", b"gats 100 \r\n", b"gat x\r\n", b"gats -1\r\n", b"gat\r\n",
         b"gat 1x \r\n"),
] + [
    # safe_strtol: a 64-bit long kept to its low 32 bits, in every exptime
    # field; beyond 64 bits refused.
    case("exptime_wraps_%s" % e.decode(), b"set k 0 %s 1\r\na\r\n" % e, b"get k\r\n", b"set j 0 0 1\r\nb\r\n",
         b"touch j %s\r\n" % e, b"get j\r\n", b"set i 0 0 1\r\nc\r\n", b"gat %s i\r\n" % e, b"get i\r\n",
         b"ms m 1 T%s\r\nx\r\n" % e, b"mg m v\r\n", b"mg j v T%s\r\n" % e, b"mg j v\r\n",
         b"set f 0 0 1\r\nd\r\n", b"flush_all %s\r\n" % e, b"get f\r\n")
    for e in [b"4294967296", b"4294967295", b"2147483648", b"-2147483649", b"-99999999999", b"99999999999999999999"]
]


@pytest.mark.parametrize("cmds", EXPIRY)
def test_expiry(pair, cmds):
    run(pair, cmds)


# --- Numbers: memcached's safe_strto* (a sign, trailing whitespace). ---

NUMBERS = [
    case("incr_plus", b"set n 0 0 1\r\n5\r\n", b"incr n +1\r\n", b"decr n +2\r\n"),
    case("incr_plus_missing", b"incr k +1\r\n"),
    case("incr_minus_zero", b"set n 0 0 1\r\n5\r\n", b"incr n -0\r\n"),
    case("incr_minus", b"set n 0 0 1\r\n5\r\n", b"incr n -1\r\n", b"decr n -5\r\n"),
    case("incr_trailing_tab", b"set n 0 0 1\r\n5\r\n", b"incr n 1\t\r\n"),
    case("incr_max", b"set n 0 0 1\r\n5\r\n", b"incr n 18446744073709551615\r\n", b"incr n 18446744073709551616\r\n", b"incr n 1x\r\n"),
    case("incr_wraps", b"set n 0 0 20\r\n18446744073709551615\r\n", b"incr n 2\r\n", b"decr n 5\r\n", b"get n\r\n"),
    case("incr_non_numeric", b"set n 0 0 1\r\nx\r\n", b"incr n 1\r\n", b"set m 0 0 2\r\n 1\r\n", b"incr m 1\r\n"),
    case("incr_length_change", b"set n 0 0 2\r\n99\r\n", b"incr n 1\r\n", b"get n\r\n", b"decr n 91\r\n", b"get n\r\n"),
    case("flags_plus", b"set k +5 0 1\r\na\r\n", b"get k\r\n"),
    case("flags_minus_zero", b"set k -0 0 1\r\na\r\n", b"get k\r\n"),
    case("flags_max", b"set k 4294967295 0 1\r\na\r\n", b"get k\r\n"),
    # safe_strtoul keeps the low 32 bits of a 64-bit number: every field
    # it reads (flags in set and ms, verbosity, cache_memlimit).
    case("flags_wrap", b"set k 4294967297 0 1\r\na\r\n", b"get k\r\n",
         b"add j 18446744073709551615 0 1\r\nb\r\n", b"gets j\r\n",
         b"set i 18446744073709551616 0 1\r\nc\r\n", b"get i\r\n",
         b"ms m 1 F4294967296\r\nx\r\n", b"mg m f v\r\n",
         b"ms n 1 F18446744073709551615 I\r\ny\r\n", b"mg n f v\r\n"),
    case("u32_wrap_admin", b"verbosity 4294967297\r\n", b"verbosity 18446744073709551616\r\n",
         b"cache_memlimit 4294967360\r\n", b"cache_memlimit 4294967297\r\n", b"cache_memlimit 64\r\n"),
    case("length_plus", b"set k 0 0 +1\r\na\r\n", b"get k\r\n"),
    case("length_wraps", b"set k 0 0 4294967297\r\na\r\n", b"get k\r\n", b"ms m 4294967298\r\nxy\r\n", b"mg m v\r\n",
         b"set k 0 0 2147483648\r\n", b"set k 0 0 18446744073709551617\r\n"),
    case("cas_unique_plus", b"set k 0 0 1\r\na\r\n", b"cas k 0 0 1 +0\r\nb\r\n", b"cas z 0 0 1 +1\r\nb\r\n"),
    case("meta_numbers_plus", b"ms m 1 F+3 T+0\r\nx\r\n", b"mg m f v\r\n", b"ma n N0 J+7 D+2 v\r\n", b"ma n D+2 v\r\n"),
    case("verbosity_forms", b"verbosity 1\r\n", b"verbosity +1\r\n", b"verbosity x\r\n", b"verbosity\r\n"),
]


@pytest.mark.parametrize("cmds", NUMBERS)
def test_numbers(pair, cmds):
    run(pair, cmds)


# --- A NUL byte: memcached reads a command line up to its first NUL. ---

NUL = [
    case("get_stops_at_nul", b"set z 0 0 1\r\nz\r\n", b"get z\x00junk\r\n"),
    case("set_key_with_nul", b"set a\x00b 0 0 1\r\nx\r\n", b"get a\r\n"),
    case("set_line_nul_after_length", b"set y 0 0 1\x00xx\r\ny\r\n", b"get y\r\n"),
    case("delete_key_with_nul", b"set z 0 0 1\r\nz\r\n", b"delete z\x00zz\r\n", b"get z\r\n"),
    case("meta_get_key_with_nul", b"set z 0 0 1\r\nz\r\n", b"mg z\x00 v\r\n"),
    case("nul_only", b"\x00\r\n"),
    case("nul_in_command", b"ge\x00t z\r\n", b"mn\x00 x\r\n"),
]


@pytest.mark.parametrize("cmds", NUL)
def test_nul_byte(pair, cmds):
    run(pair, cmds)


# --- Quiet: noreply hides the reply of every text command. ---

NOREPLY = [
    case("storage", b"set k 0 0 1 noreply\r\na\r\n", b"add k 0 0 1 noreply\r\nb\r\n", b"replace k 0 0 1 noreply\r\nc\r\n",
         b"append k 0 0 1 noreply\r\nd\r\n", b"prepend k 0 0 1 noreply\r\ne\r\n", b"replace z 0 0 1 noreply\r\nc\r\n",
         b"append z 0 0 1 noreply\r\nd\r\n", b"get k z\r\n"),
    case("delete_incr_touch", b"set n 0 0 1 noreply\r\n1\r\n", b"incr n 5 noreply\r\n", b"decr n 1 noreply\r\n",
         b"incr z 1 noreply\r\n", b"touch n 100 noreply\r\n", b"touch z 100 noreply\r\n", b"get n\r\n",
         b"delete n noreply\r\n", b"delete n noreply\r\n", b"get n\r\n"),
    case("errors", b"set x 0 0 1 noreply\r\nx\r\n", b"incr x 1 noreply\r\n", b"incr x z noreply\r\n",
         b"touch x z noreply\r\n", b"set k 0 0 z noreply\r\n"),
    # memcached sets noreply from the last token before it checks the
    # rest (set_noreply_maybe), so every refusal after the token count
    # is silenced too.
    case("errors_storage", b"set k x 0 1 noreply\r\n", b"add k 0 x 1 noreply\r\n", b"replace k 0 0 -1 noreply\r\n",
         b"append " + b"k" * 251 + b" 0 0 1 noreply\r\n", b"prepend k 0 0 2147483647 noreply\r\n",
         b"cas k 0 0 1 x noreply\r\n", b"cas k 0 0 1 noreply\r\n", b"get k\r\n"),
    case("errors_key_too_long", b"incr " + b"x" * 251 + b" 1 noreply\r\n", b"decr " + b"x" * 251 + b" 1 noreply\r\n",
         b"touch " + b"x" * 251 + b" 1 noreply\r\n", b"delete " + b"x" * 251 + b" noreply\r\n", b"incr k noreply\r\n"),
    case("errors_delete_usage", b"delete x y noreply\r\n", b"delete x 0 x\r\n", b"delete x noreply x\r\n",
         b"delete x 0 noreply\r\n", b"delete x 0 noreply y\r\n"),
    case("errors_flush_memlimit", b"flush_all x noreply\r\n", b"flush_all x\r\n", b"flush_all 0 x\r\n", b"flush_all 0 0 0\r\n",
         b"cache_memlimit x noreply\r\n", b"cache_memlimit 1 noreply\r\n", b"cache_memlimit 2000000000 noreply\r\n",
         b"cache_memlimit noreply\r\n", b"cache_memlimit 100 x y\r\n"),
    case("errors_token_count", b"set k 0 0 1 x y\r\na\r\n", b"incr k 1 noreply x\r\n", b"touch k 1 2 3\r\n", b"incr k\r\n"),
    case("bad_chunk", b"set k 0 0 1 noreply\r\nabc\r\n"),
    case("bad_chunk_all_storage", b"add k 0 0 3 noreply\r\nabcde\r\n", b"cas k 0 0 1 1 noreply\r\nxyz\r\n",
         b"append k 0 0 1 noreply\r\nab\r\n", b"get k\r\n"),
    case("flush_verbosity", b"set k 0 0 1\r\na\r\n", b"flush_all noreply\r\n", b"verbosity 1 noreply\r\n", b"verbosity noreply\r\n", b"get k\r\n"),
    case("flush_delay_noreply", b"flush_all 0 noreply\r\n", b"flush_all 100 noreply\r\n", b"flush_all 0\r\n"),
]


@pytest.mark.parametrize("cmds", NOREPLY)
def test_noreply(pair, cmds):
    run(pair, cmds)


# --- A storage line memcached refuses: the data block is then read as
# --- the next command (memcached swallows it only for a too-large item).

BAD_STORAGE = [
    case("bad_flags", b"set k x 0 1\r\nget k\r\n"),
    case("negative_flags", b"set k -1 0 1\r\nget k\r\n"),
    case("bad_exptime", b"set k 0 x 1\r\ndelete k\r\n"),
    case("negative_length", b"set k 0 0 -1\r\nget k\r\n"),
    case("key_too_long", b"set " + b"k" * 251 + b" 0 0 1\r\nget k\r\n"),
    case("bad_cas_unique", b"cas k 0 0 1 x\r\nget k\r\n"),
    case("too_few_tokens", b"set k 0 0\r\nget k\r\n", b"cas k 0 0 1\r\nget k\r\n"),
    case("bad_data_chunk", b"set k 0 0 1\r\nabc\r\n", b"get k\r\n"),
    # every storage command, every refused field: the next line is a command
    case("add_bad_exptime", b"add k 0 x 1\r\nget k\r\n"),
    case("replace_bad_flags", b"replace k 1.5 0 1\r\ntouch k 1\r\n"),
    case("append_key_too_long", b"append " + b"k" * 251 + b" 0 0 1\r\nget k\r\n"),
    case("prepend_bad_length", b"prepend k 0 0 1x\r\nget k\r\n"),
    case("cas_negative_unique", b"cas k 0 0 1 -1\r\nget k\r\n"),
    case("length_over_int_max_minus_2", b"set k 0 0 2147483646\r\nget k\r\n"),
    case("bad_line_then_value_line", b"set k 0 x 1\r\na\r\n", b"get k\r\n"),
    case("too_many_tokens", b"set k 0 0 1 noreply x\r\na\r\n", b"cas k 0 0 1 1 noreply x\r\na\r\n"),
]


@pytest.mark.parametrize("cmds", BAD_STORAGE)
def test_bad_storage_line(pair, cmds):
    run(pair, cmds)


def test_version_parses_as_1_6(pair):
    mc, cc = pair.run(lambda c: c.text(b"version\r\n"))
    import re
    for reply in (mc, cc):
        m = re.fullmatch(rb"VERSION (\d+)\.(\d+)\.(\d+)(\S*)\r\n", reply)
        assert m, reply
        assert (int(m.group(1)), int(m.group(2))) >= (1, 6), reply


# --- The item size limit: memcached's -I bounds its whole item
# --- (items.c item_size_ok: a 48-byte header, 8 of CAS, the key and its
# --- NUL, 4 bytes of flags when not 0, the value and "\r\n"), so its
# --- largest value is some 70 bytes under 1 MiB, the same in every
# --- command that stores (a breaker's probe found corecache storing up to
# --- 1 MiB less its own smaller record header).
K = b"abcdefghij"  # 10 bytes
EDGE = (1 << 20) - 48 - 8 - (len(K) + 1) - 2  # largest value without flags


def store(line, n):
    return line % n + b"x" * n + b"\r\n"


SIZE_LIMIT = [
    case("set_at_edge", store(b"set abcdefghij 0 0 %d\r\n", EDGE), b"get abcdefghij\r\n"),
    case("set_past_edge", store(b"set abcdefghij 0 0 %d\r\n", EDGE + 1), b"get abcdefghij\r\n"),
    case("set_flags_at_edge", store(b"set abcdefghij 5 0 %d\r\n", EDGE - 4), b"get abcdefghij\r\n"),
    case("set_flags_past_edge", store(b"set abcdefghij 5 0 %d\r\n", EDGE - 3), b"get abcdefghij\r\n"),
    case("ms_past_edge", store(b"ms abcdefghij %d\r\n", EDGE + 1), b"ms abcdefghij %d\r\n" % 1 + b"y\r\n",
         store(b"ms abcdefghij %d\r\n", EDGE), b"mg abcdefghij s\r\n"),
    case("ms_flags_past_edge", store(b"ms abcdefghij %d F5\r\n", EDGE - 3),
         store(b"ms abcdefghij %d F5\r\n", EDGE - 4), b"mg abcdefghij s f\r\n"),
    # The base64 key counts by its decoded 10 bytes, not its 16 characters.
    case("ms_base64_key_at_edge", store(b"ms YWJjZGVmZ2hpag== %d b\r\n", EDGE), b"mg abcdefghij s\r\n"),
    case("ms_base64_key_past_edge", store(b"ms YWJjZGVmZ2hpag== %d b\r\n", EDGE + 1), b"mg abcdefghij s\r\n"),
    # append/prepend allocate the joined item, with the old item's flags.
    case("append_to_edge", store(b"set abcdefghij 0 0 %d\r\n", 1000), store(b"append abcdefghij 0 0 %d\r\n", EDGE - 1000),
         b"mg abcdefghij s\r\n"),
    case("append_past_edge", store(b"set abcdefghij 0 0 %d\r\n", 1000), store(b"append abcdefghij 0 0 %d\r\n", EDGE - 999),
         b"mg abcdefghij s\r\n"),
    case("prepend_past_edge_old_flags", store(b"set abcdefghij 5 0 %d\r\n", 1000),
         store(b"prepend abcdefghij 0 0 %d\r\n", EDGE - 1003), b"mg abcdefghij s f\r\n"),
]


@pytest.mark.parametrize("cmds", SIZE_LIMIT)
def test_item_size_limit(pair, cmds):
    run(pair, cmds)


# --- Small -m with the default -t: corecache's default of one worker per
# --- CPU gave each a shard too small for 1 MiB segments, and -I was
# --- lowered (to 512 KiB at -m 8 on 2 CPUs, to 256 KiB at the default
# --- -m 64 on 32): values memcached stores were refused. The default
# --- now runs fewer workers instead (config/resolve.rs default_threads).

@pytest.mark.parametrize("memory", ["8", "12"])
def test_default_threads_keep_the_item_size_at_small_memory(memory):
    p = Pair("-m", memory)
    try:
        for cmds in ([store(b"set abcdefghij 0 0 %d\r\n", EDGE), b"get abcdefghij\r\n"],
                     [store(b"ms abcdefghij %d\r\n", EDGE), b"mg abcdefghij s v\r\n"],
                     [store(b"set abcdefghij 0 0 %d\r\n", EDGE + 1)]):
            out = run(p, cmds)
        assert out[0].startswith(b"SERVER_ERROR object too large"), out
        settings = p.same(lambda c: [line for line in c.text(b"stats settings\r\n").split(b"\r\n")
                                     if line.startswith(b"STAT item_size_max ")])
        assert settings == [b"STAT item_size_max 1048576"], settings
    finally:
        p.stop()
