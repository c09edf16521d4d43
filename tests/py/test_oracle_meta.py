"""Meta protocol, memcached as the oracle (issue 15): CAS compares, quiet
mode, opaque and key echoes, oversized values. Same layout as
test_oracle_text: a currently differing member is xfail(strict=True)."""
import pytest

from oracle import TIMEOUT


def xfail(reason):
    return pytest.mark.xfail(strict=True, reason="issue 15: " + reason)


def case(id, *cmds, marks=()):
    return pytest.param(cmds, id=id, marks=marks)


def run(pair, cmds):
    out = pair.same(lambda c: [c.text(x) for x in cmds])
    assert TIMEOUT not in b"".join(out), out
    return out


# --- CAS: C0 never matches; a compare is exact in ms, md, ma. ---

CAS_ZERO = [
    case("ms_C0_missing", b"ms k 1 C0\r\nx\r\n", b"mg k v\r\n"),
    case("ms_C0_present", b"ms k 1\r\na\r\n", b"ms k 1 C0\r\nx\r\n", b"mg k v\r\n"),
    case("md_C0_missing", b"md k C0\r\n"),
    case("md_C0_present", b"ms k 1\r\na\r\n", b"md k C0\r\n", b"mg k v\r\n"),
    case("ma_C0_present", b"ms n 1\r\n1\r\n", b"ma n C0 v\r\n", b"mg n v\r\n"),
    case("ma_C0_missing", b"ma n C0 v\r\n", b"ma n C0 N0 J3 v\r\n"),
    case("ms_C0_quiet", b"ms k 1\r\na\r\n", b"ms k 1 C0 q\r\nx\r\n", b"md k C0 q\r\n", b"mg k v\r\n"),
    case("ms_modes_C0", b"ms k 1\r\na\r\n", b"ms k 1 C0 MA\r\nx\r\n", b"ms k 1 C0 MP\r\nx\r\n", b"ms k 1 C0 MR\r\nx\r\n",
         b"ms z 1 C0 ME\r\nx\r\n", b"mg k v\r\n", b"mg z v\r\n"),
]


@pytest.mark.parametrize("cmds", CAS_ZERO)
def test_meta_cas_zero(pair, cmds):
    run(pair, cmds)


# --- A nonzero C by mode (memcached's do_store_item): set and replace
# become CAS stores; add ignores the C (stores when missing, NS when
# present); append and prepend compare it only with an item that exists
# (NS when missing). Only CAS stores count in cas_*. ---

def cas_stats(c):
    st = c.stats()
    return {k: st[k] for k in ("cas_hits", "cas_badval", "cas_misses", "cmd_set")}


CAS_BY_MODE = [
    case("add_missing", b"ms z 1 ME C5\r\nx\r\n", b"mg z v\r\n"),
    case("add_present", b"ms k 1\r\na\r\n", b"ms k 1 ME C5\r\nx\r\n", b"mg k v\r\n"),
    case("append_missing", b"ms z 1 MA C5\r\nx\r\n", b"ms z 1 MP C5 q\r\nx\r\n", b"mg z v\r\n"),
    case("append_mismatch", b"ms k 1\r\na\r\n", b"ms k 1 MA C5\r\nx\r\n", b"ms k 1 MP C5\r\nx\r\n",
         b"mg k v\r\n"),
    case("replace_missing", b"ms z 1 MR C5\r\nx\r\n", b"mg z v\r\n"),
]


@pytest.mark.parametrize("cmds", CAS_BY_MODE)
def test_meta_cas_by_mode(pair, cmds):
    def script(c):
        before = cas_stats(c)
        out = [c.text(x) for x in cmds]
        after = cas_stats(c)
        return out, {k: int(after[k]) - int(before[k]) for k in after}
    out = pair.same(script)
    assert TIMEOUT not in b"".join(out[0]), out


# md's counting (process_mdelete_command): an EX is a delete miss, marking
# stale (I) counts nothing; binary's EEXISTS counts nothing.
MD_COUNTS = [
    case("md_invalidate", b"ms k 1\r\na\r\n", b"md k I\r\n", b"md k I T30 q\r\n", b"mg k v\r\n"),
    case("md_cas_mismatch", b"ms k 1\r\na\r\n", b"md k C5\r\n", b"md k C0 q\r\n", b"md k I C5\r\n",
         b"md k\r\n", b"md k\r\n"),
]


@pytest.mark.parametrize("cmds", MD_COUNTS)
def test_meta_delete_counts(pair, cmds):
    def script(c):
        keys = ("delete_hits", "delete_misses")
        before = c.stats()
        out = [c.text(x) for x in cmds]
        after = c.stats()
        return out, {k: int(after[k]) - int(before[k]) for k in keys}
    pair.same(script)


# A key stored base64 (ms ... b) is echoed base64 with b by every later
# mg hit and me, however the request names it (memcached's
# ITEM_KEY_BINARY); a plain-stored key echoes raw even to a b request; a
# miss echoes as requested; an append, arithmetic result or vivified item
# is plain. me also gives memcached's item size and slab class.
KEY_ECHO = [
    case("plain_item_b_request", b"ms test 1\r\nx\r\n", b"mg dGVzdA== b k v\r\n", b"mg test k v\r\n"),
    case("binary_item", b"ms YWJj 1 b\r\ny\r\n", b"mg abc k v\r\n", b"mg YWJj b k v\r\n", b"mg abc k O1 v c\r\n",
         b"me abc\r\n", b"me YWJj b\r\n", b"mg abc k T30\r\n", b"mg abc k s\r\n"),
    case("binary_kept_by_invalidate", b"ms YWJj 1 b\r\ny\r\n", b"md YWJj b I\r\n", b"mg abc k v\r\n",
         b"ms YWJj 1 b MA\r\nz\r\n", b"mg abc k v\r\n"),
    case("arith_vivify_miss", b"ms bnVt 1 b\r\n5\r\n", b"ma bnVt b\r\n", b"mg num k v\r\n",
         b"mg dml2 b N30 k\r\n", b"mg viv k\r\n", b"mg bWlzcw== b k\r\n"),
    case("restored_plain", b"ms dGVzdA== 1 b k\r\nw\r\n", b"mg test k\r\n", b"ms test 1\r\nq\r\n",
         b"mg test k\r\n"),
    case("me_sizes", b"ms fl 5 F7\r\nhello\r\n", b"me fl\r\n", b"set big 0 0 3000\r\n" + b"x" * 3000 + b"\r\n",
         b"me big\r\n"),
]


@pytest.mark.parametrize("cmds", KEY_ECHO)
def test_meta_key_echo_follows_the_item(pair, cmds):
    import re
    out = pair.same(lambda c: [re.sub(rb" (la|cas|exp)=\S+", b"", c.text(x)) for x in cmds])
    assert TIMEOUT not in b"".join(out), out


def test_meta_cas_by_mode_matching(pair):
    """Append and add with the item's own CAS: append stores, add still NS."""
    def script(c):
        out = [c.text(b"ms k 1\r\na\r\n")]
        u = c.cas_of(b"k")
        out.append(c.text(b"ms k 1 MA C%d\r\nb\r\n" % u))
        out.append(c.text(b"ms k 1 ME C%d\r\nc\r\n" % c.cas_of(b"k")))
        out.append(c.text(b"mg k v\r\n"))
        return out
    pair.same(script)


def cas_compare_script(c):
    out = [c.text(b"ms k 1 c\r\na\r\n")]
    u = c.cas_of(b"k")
    for cmd in [b"ms k 1 C%d c\r\nb\r\n" % (u + 1), b"ms k 1 C%d c\r\nb\r\n" % u, b"ms k 1 C%d\r\nc\r\n" % u,
                b"mg k v c\r\n", b"md k C%d\r\n" % u]:
        out.append(c.text(cmd))
    v = c.cas_of(b"k")
    out.append(c.text(b"md k C%d q\r\n" % v))
    out.append(c.text(b"mg k v\r\n"))
    out.append(c.text(b"ma n N0 J10 c\r\n"))
    w = c.cas_of(b"n")
    for cmd in [b"ma n C%d v\r\n" % (w + 7), b"ma n C%d v c\r\n" % w, b"ma n C%d v\r\n" % w, b"ma z C%d\r\n" % w]:
        out.append(c.text(cmd))
    return out


def test_meta_cas_compare(pair):
    pair.same(cas_compare_script)


# ms's c returns the stored CAS, and c0 when nothing was stored (EX, NF,
# NS); md and ma return no c on EX.
MS_RETURN_CAS = [
    case("ms_ex_nf_ns", b"ms k 1\r\na\r\n", b"ms k 1 C1 c\r\nb\r\n", b"ms k 1 c C1\r\nb\r\n", b"ms k 1 C1 c k O5\r\nb\r\n",
         b"ms z 1 C1 c\r\nb\r\n", b"ms k 1 ME c\r\nb\r\n", b"ms z 1 MR c\r\nb\r\n", b"ms z 1 MA c q\r\nb\r\n"),
    case("md_ma_ex", b"ms k 1\r\n1\r\n", b"md k C1 c\r\n", b"ma k C1 c\r\n", b"ms k 1 c\r\n2\r\n"),
]


@pytest.mark.parametrize("cmds", MS_RETURN_CAS)
def test_meta_return_cas_on_failure(pair, cmds):
    run(pair, cmds)


def test_meta_invalidate_with_stale_cas(pair):
    def script(c):
        out = [c.text(b"ms k 1\r\na\r\n")]
        u = c.cas_of(b"k")
        out.append(c.text(b"md k I T30\r\n"))
        out.append(c.text(b"mg k v c\r\n"))
        out.append(c.text(b"ms k 1 I C%d\r\nb\r\n" % (u - 1)))
        out.append(c.text(b"mg k v c\r\n"))
        return out
    pair.same(script)


def test_meta_invalidate_bumps_the_cas(pair):
    # memcached's md ... I marks stale, drops the win token *and* gives a new
    # CAS: a writer, or a second invalidation, holding the old CAS gets EX;
    # with I, the old CAS still lands, as stale. Also with a new TTL (T), and
    # for md I C<cas> given back by a client that won the recache.
    def script(c):
        out = [c.text(b"ms k 1 T0\r\na\r\n")]
        u = c.cas_of(b"k")
        out.append(c.text(b"md k I\r\n"))
        v = c.cas_of(b"k")
        out.append(v != u)
        out.append(c.text(b"md k I C%d\r\n" % u))
        out.append(c.text(b"ms k 1 C%d\r\nb\r\n" % u))
        out.append(c.text(b"mg k v\r\n"))
        out.append(c.text(b"md k I T60 C%d\r\n" % v))
        w = c.cas_of(b"k")
        out.append(w != v)
        out.append(c.text(b"mg k t v\r\n"))
        out.append(c.text(b"ms k 1 I C%d\r\nb\r\n" % v))
        out.append(c.text(b"mg k v\r\n"))
        return out
    pair.same(script)


# --- Quiet: q hides HD (and EN for mg), never NF/NS/EX or errors. ---

QUIET = [
    case("md_miss_opaque", b"md x q O1\r\n"),
    case("ma_miss_opaque", b"ma x q O1\r\n"),
    case("md_ma_miss_key", b"md x q k\r\n", b"ma x q k v\r\n"),
    case("mg_miss_hit", b"mg x q v O1\r\n", b"ms k 1 q\r\na\r\n", b"mg k q v O2\r\n", b"mg k q O3\r\n", b"mg k q k\r\n"),
    case("md_hit", b"ms k 1\r\na\r\n", b"md k q O1\r\n", b"mg k v\r\n"),
    case("ms_not_stored", b"ms k 1\r\na\r\n", b"ms k 1 q ME O1\r\nb\r\n", b"ms z 1 q MR O2\r\nb\r\n", b"ms z 1 q MA\r\nb\r\n"),
    case("ms_exists", b"ms k 1\r\na\r\n", b"ms k 1 q C1 O1\r\nb\r\n", b"md k q C1 O2\r\n"),
    case("ma_hit", b"ms n 1\r\n1\r\n", b"ma n q\r\n", b"ma n q v\r\n", b"ma n q O1 t\r\n", b"mg n v\r\n"),
    case("ma_non_numeric", b"ms n 1\r\nx\r\n", b"ma n q O1\r\n"),
    # q hides ma's success only for an item that was there: one N created
    # is answered (VA or HD); then it exists and is hidden.
    case("ma_create_quiet", b"ma x N0 J9 v q\r\n", b"mn\r\n", b"ma x v q\r\n", b"ma y N0 J9 q O3\r\n",
         b"ma y q\r\n", b"ma z q\r\n", b"mn\r\n"),
    case("errors", b"mg k q zz\r\n", b"ms k q\r\n", b"ms k 1 q Fx\r\na\r\n", b"ma n q Dx\r\n"),
    case("mn_flushes", b"mg a q v\r\n", b"mg b q v\r\n", b"mn\r\n"),
    case("base64_key", b"ms Zm9v 1 b q\r\na\r\n", b"mg Zm9v b k v\r\n", b"mg foo v\r\n", b"md Zm9v b q k\r\n", b"md Zm9v b q k\r\n"),
    # memcached's META_KEY: `k<base64> b` wherever k and b stand; b alone
    # echoes nothing.
    case("base64_key_flag_order", b"ms Zm9v 1 b\r\na\r\n", b"mg Zm9v k b v O1 c\r\n", b"mg Zm9v v b k\r\n", b"mg Zm9v b v\r\n",
         b"mg YmFy b k\r\n", b"ma Zm9v b k\r\n", b"ms Zm9v 1 b k O2\r\nb\r\n", b"ms Zm9v 1 k b O2 ME\r\nb\r\n",
         b"md Zm9v O3 k b\r\n", b"md Zm9v b k\r\n"),
]


@pytest.mark.parametrize("cmds", QUIET)
def test_meta_quiet(pair, cmds):
    run(pair, cmds)


# --- Echoes and flags that every meta reply carries. ---

ECHO = [
    case("opaque_and_key", b"ms k 1 O9 k\r\na\r\n", b"mg k O8 k v s f\r\n", b"mg z O7 k v\r\n", b"md k O6 k\r\n", b"md k O5 k\r\n"),
    case("ma_forms", b"ma n\r\n", b"ma n N0 J5\r\n", b"ma n v\r\n", b"ma n MD D3 v\r\n", b"ma n M- D9 v\r\n", b"ma n MI D2 v t\r\n"),
    case("mg_flags", b"ms k 1 F7 T0\r\na\r\n", b"mg k s f t v h l\r\n", b"mg k h\r\n", b"mg k\r\n"),
    case("opaque_too_long", b"mg k O" + b"1" * 33 + b"\r\n"),
    case("duplicate_flag", b"mg k v v\r\n", b"ms k 1 T1 T2\r\na\r\n"),
    case("bad_flag", b"mg k !\r\n", b"md k zz\r\n", b"ma n Q\r\n"),
    case("me", b"ms k 1\r\na\r\n", b"me z\r\n"),
    case("too_many_tokens", b"mg k " + b" ".join(b"O%d" % i for i in range(30)) + b"\r\n"),
    case("no_key", b"mg\r\n", b"ms\r\n", b"md\r\n", b"ma\r\n", b"me\r\n"),
    case("key_too_long", b"mg " + b"k" * 251 + b" v\r\n"),
    # memcached's mg applies T (and N on an item it creates) where it
    # stands in the line: t and R before it see the expiry from before.
    case("mg_t_before_T", b"ms k 1\r\nx\r\n", b"mg k t T30 v\r\n", b"mg k T40 t\r\n", b"mg k t T0 s\r\n",
         b"mg k T0 t\r\n"),
    case("mg_R_before_T", b"ms r 1 T100\r\nx\r\n", b"mg r R30 T10 c\r\n", b"mg r T10 R30 c\r\n", b"mg r s\r\n"),
    case("ma_t_T_N_order", b"set k 0 0 1\r\n5\r\n", b"ma k t T30\r\n", b"ma k T40 t\r\n", b"ma c1 N30 T60 t\r\n",
         b"ma c2 T60 N30 t\r\n", b"ma c3 N30 t T60\r\n", b"ma c4 t N30 v\r\n", b"mg c1 s\r\n"),
    case("mg_N_and_T_created", b"mg n1 N30 t T60\r\n", b"mg n2 t N30\r\n", b"mg n3 T60 N30 t\r\n",
         b"mg n4 T60 t N30 s\r\n"),
]


# --- Item flags across arithmetic: in place (the number still fits) the
# item keeps them; outgrown, memcached links a new item without them. ---

ARITH_FLAGS = [
    case("incr_does_not_fetch", b"set n 0 0 1\r\n5\r\n", b"incr n 1\r\n", b"mg n v h\r\n", b"mg n v h\r\n"),
    case("ma_does_not_fetch", b"ms n 1\r\n5\r\n", b"ma n v\r\n", b"ma n\r\n", b"mg n v h\r\n"),
    case("incr_in_place_keeps_hit", b"set n 0 0 1\r\n5\r\n", b"get n\r\n", b"incr n 1\r\n", b"mg n v h\r\n"),
    case("incr_outgrown_is_new", b"set n 0 0 2\r\n15\r\n", b"get n\r\n", b"incr n 100\r\n", b"mg n v h\r\n"),
    case("ma_outgrown_is_new", b"ms n 1\r\n9\r\n", b"mg n v\r\n", b"ma n v\r\n", b"mg n v h\r\n"),
    case("decr_in_place_keeps_hit", b"set n 0 0 2\r\n10\r\n", b"mg n v\r\n", b"decr n 1\r\n", b"mg n v h\r\n"),
    case("ma_on_stale_in_place", b"ms n 1 T60\r\n5\r\n", b"md n I T30\r\n", b"ma n v\r\n", b"mg n v\r\n",
         b"mg n v\r\n"),
    case("ma_on_stale_outgrown", b"ms n 1 T60\r\n9\r\n", b"md n I T30\r\n", b"ma n v\r\n", b"mg n v\r\n"),
]


@pytest.mark.parametrize("cmds", ARITH_FLAGS)
def test_meta_arith_item_flags(pair, cmds):
    run(pair, cmds)


@pytest.mark.parametrize("cmds", ECHO)
def test_meta_replies(pair, cmds):
    run(pair, cmds)


# --- Flags later than memcached 1.6.18 (`x`, `E`): refused in every meta
# --- command, as any unknown flag; ms's data block is dropped with it.

LATER_FLAGS = [
    case("mg_x", b"ms k 1\r\na\r\n", b"mg k x\r\n", b"mg k v x\r\n", b"mg z O1 x\r\n", b"mg k v\r\n"),
    case("md_x", b"ms k 1\r\na\r\n", b"md k x\r\n", b"md k x q\r\n", b"md k O1 x\r\n", b"mg k v f\r\n"),
    case("ms_x", b"ms k 1 x\r\nb\r\n", b"ms k 1 q x\r\nb\r\n", b"mg k v\r\n"),
    case("ma_x", b"ms n 1\r\n5\r\n", b"ma n x\r\n", b"ma n x q\r\n", b"mg n v\r\n"),
    case("ms_E", b"ms k 1 E5\r\na\r\n", b"mg k c v\r\n"),
    case("mg_E_vivify", b"mg k N30 E7 c\r\n", b"mg k c\r\n"),
    case("ma_E", b"ma n N0 J1 E9 c\r\n", b"mg n c v\r\n"),
    case("md_E", b"ms k 1\r\na\r\n", b"md k E3\r\n", b"mg k v\r\n"),
]


@pytest.mark.parametrize("cmds", LATER_FLAGS)
def test_meta_later_flags_refused(pair, cmds):
    run(pair, cmds)


# --- cmd_meta: memcached 1.6.18 counts only the `me` commands that reach
# --- the lookup, none of mg/ms/md/ma/mn.

CMD_META = [
    case("me_hit_miss", b"set k 0 0 1\r\n1\r\n", b"me k\r\n", b"me z\r\n"),
    # A key stored with `b`: memcached echoes it base64 (ITEM_KEY_BINARY).
    case("me_b64", b"ms aw== 1 b\r\n1\r\n", b"me aw== b\r\n", b"me !!!! b\r\n"),
    case("me_errors", b"me\r\n", b"me " + b"k" * 251 + b"\r\n"),
    case("others", b"ms k 1\r\na\r\n", b"mg k v\r\n", b"mg z\r\n", b"ma k\r\n", b"md k\r\n", b"mn\r\n",
         b"mg\r\n", b"mg k Q\r\n"),
]


@pytest.mark.parametrize("cmds", CMD_META)
def test_cmd_meta_counts(pair, cmds):
    def script(c):
        before = int(c.stats()["cmd_meta"])
        out = [c.text(x) for x in cmds]
        # Normalise me's line: values such as size and cls differ by nature.
        out = [o.split(b" exp=")[0] if o.startswith(b"ME ") else o for o in out]
        return out, int(c.stats()["cmd_meta"]) - before
    pair.same(script)


# --- Too many tokens: memcached's MFLAG_MAX_OPT_LENGTH (20, with the
# command, key and a final empty token), mg's wording apart. ---

def flags(n, f=b"v"):
    return b" ".join([f] * n)


TOO_MANY = [
    case("mg_17_18", b"mg k " + flags(17) + b"\r\n", b"mg k " + flags(18) + b"\r\n", b"mg k " + flags(30) + b"\r\n"),
    case("ms_16_17", b"ms k 1 " + flags(16, b"T1") + b"\r\nx\r\n", b"ms k 1 " + flags(17, b"T1") + b"\r\nx\r\n",
         b"mg k v\r\n"),
    case("md_17_18", b"md k " + flags(17, b"q") + b"\r\n", b"md k " + flags(18, b"q") + b"\r\n"),
    case("ma_17_18", b"ma k " + flags(17) + b"\r\n", b"ma k " + flags(18) + b"\r\n"),
    case("me_many", b"me k " + flags(18) + b"\r\n", b"mn " + flags(18) + b"\r\n"),
    # A key that is not base64 under `b`: md and ma say it as any flag error.
    case("b_bad_key", b"md r6_x b\r\n", b"ma r6_x b\r\n", b"mg r6_x b v\r\n", b"ms r6_x 1 b\r\nx\r\n",
         b"md r6_x b q\r\n", b"ma r6_x q b\r\n", b"mn\r\n"),
    # me reads only a `b` right after the key (1.6.18's process_meta_command).
    case("me_ignores_flags", b"set k 0 0 1\r\n1\r\n", b"ms aw== 1 b\r\n1\r\n", b"me z x\r\n", b"me z v v\r\n",
         b"me z q b\r\n", b"me !!!! b x\r\n", b"me aw== bb\r\n", b"me z O123456789012345678901234567890123\r\n",
         b"me !!!! b\r\n", b"me !!!! x b\r\n"),
]


# --- A mode flag memcached does not know, in ms and ma: its error line
# (run with the cases above). ---

FLAG_ERRORS = TOO_MANY + [
    case("ms_bad_modes", b"ms k 1 MX\r\nx\r\n", b"ms k 1 Mz q\r\nx\r\n", b"ms k 1 M\r\nx\r\n",
         b"ms k 1 MSS\r\nx\r\n", b"mg k v\r\n"),
    case("ma_bad_modes", b"set n 0 0 1\r\n5\r\n", b"ma n Mx\r\n", b"ma n MI v\r\n", b"ma n Mz q\r\n",
         b"ma n M\r\n", b"mn\r\n", b"mg n v\r\n"),
    # Lower case is unknown too (a breaker found these stored, appended
    # and incremented here).
    case("ms_lower_modes", b"ms k 1 Ms\r\nx\r\n", b"ms k 1 Ma\r\ny\r\n", b"ms k 1 Me\r\nz\r\n",
         b"ms k 1 Mp\r\nw\r\n", b"ms k 1 Mr\r\nv\r\n", b"mg k v\r\n"),
    case("ma_lower_modes", b"set n 0 0 1\r\n5\r\n", b"ma n Mi v\r\n", b"ma n Md v\r\n", b"mg n v\r\n"),
    case("ms_too_large_lower_mode", b"ms k 2000000 Ma\r\n" + b"x" * 2000000 + b"\r\n", b"mg k v\r\n"),
    case("ms_too_large_bad_mode", b"ms k 2000000 MX q\r\n" + b"x" * 2000000 + b"\r\n", b"mn\r\n"),
    # The key is decoded before the item is sized: its error wins over
    # "too large" (a breaker found it answered too large here).
    case("ms_too_large_bad_b64_key", b"ms !!!! 2000000 b\r\n" + b"x" * 2000000 + b"\r\n",
         b"ms !!!! 2000000 b q\r\n" + b"x" * 2000000 + b"\r\n", b"mn\r\n"),
]


@pytest.mark.parametrize("cmds", FLAG_ERRORS)
def test_bad_flags_and_modes(pair, cmds):
    run(pair, cmds)
