"""Authorisation (-o acl_file): every administrative command and every
prefix rule refused for a user without the right, through text, meta and
binary; the data survives, refusals are counted (auth_denied) and
audited. memcached has no ACLs: these are corecache's own rules."""
import pytest

from authsrv import AuthProc, ascii_login, bin_read, bin_req, exchange

USERS = "ops:opspw\nweb:webpw\nro:ropw\nguest:guestpw\n"
ACL = """# user rules
ops admin read=* write=*
web read=app:,shared: write=app:
ro  read=*
"""
UNAUTH = b"CLIENT_ERROR unauthenticated\r\n"


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    d = tmp_path_factory.mktemp("acl")
    (d / "users").write_text(USERS)
    (d / "acl").write_text(ACL)
    s = AuthProc("corecache", ["-Y", str(d / "users"), "-S", "-A", "-t", "2",
                               "-o", f"acl_file={d / 'acl'}"], "ops", "opspw")
    yield s
    s.stop()
    audit = s.stderr_text()
    # Every refusal of an authenticated user is in the audit trail.
    assert 'action="denied"' in audit and 'user="web"' in audit and 'user="ro"' in audit


def text_as(srv, user, password):
    s = srv.connect()
    assert exchange(s, ascii_login(user, password), until=b"\r\n") == b"STORED\r\n"
    return s


def denied(srv):
    with text_as(srv, "ops", "opspw") as s:
        st = exchange(s, b"stats\r\n", until=b"END\r\n")
    return int(st.split(b"STAT auth_denied ")[1].split(b"\r\n")[0])


@pytest.fixture
def seeded(srv):
    """app:1, other:1 and shared:1 hold known values (set by ops)."""
    with text_as(srv, "ops", "opspw") as s:
        for k in (b"app:1", b"other:1", b"shared:1", b"n:1"):
            assert exchange(s, b"set %s 0 0 1\r\n5\r\n" % k, until=b"\r\n") == b"STORED\r\n"
    return srv


def survives(srv):
    """The keys no test user may write still hold what ops set."""
    with text_as(srv, "ops", "opspw") as s:
        out = exchange(s, b"get other:1 shared:1 n:1\r\n", until=b"END\r\n")
    assert out == b"".join(b"VALUE %s 0 1\r\n5\r\n" % k for k in (b"other:1", b"shared:1", b"n:1")) + b"END\r\n", out


ADMIN_TEXT = [
    b"flush_all\r\n",
    b"flush_all 10\r\n",
    b"cache_memlimit 8\r\n",
    b"verbosity 1\r\n",
    b"stats reset\r\n",
    b"stats detail dump\r\n",
    b"stats cachedump 1 1\r\n",
    b"watch\r\n",
    b"watch mutations\r\n",
    b"lru_crawler metadump all\r\n",
    b"lru_crawler metadump hash\r\n",
    b"lru_crawler crawl all\r\n",
    b"slabs automove 1\r\n",
    b"lru mode flat\r\n",
    b"shutdown\r\n",
    b"shutdown graceful\r\n",
]


@pytest.mark.parametrize("user", [("web", "webpw"), ("ro", "ropw"), ("guest", "guestpw")])
def test_admin_commands_refused_text(seeded, user):
    before = denied(seeded)
    with text_as(seeded, *user) as s:
        for cmd in ADMIN_TEXT:
            # Refused, and the connection goes on (mn answers).
            assert exchange(s, cmd + b"mn\r\n", until=b"MN\r\n") == UNAUTH + b"MN\r\n", cmd
        # noreply: refused without a reply (the client reads none).
        assert exchange(s, b"flush_all noreply\r\nmn\r\n", until=b"MN\r\n") == b"MN\r\n"
    assert denied(seeded) == before + len(ADMIN_TEXT) + 1
    survives(seeded)
    assert seeded.proc.poll() is None


def test_admin_commands_refused_binary(seeded):
    before = denied(seeded)
    cmds = [
        bin_req(0x08),                            # FLUSH
        bin_req(0x18),                            # FLUSHQ
        bin_req(0x08, extras=b"\0\0\0\x0a"),      # FLUSH with a delay
        bin_req(0x1B, extras=b"\0\0\0\x01"),      # VERBOSITY
        bin_req(0x10, b"reset"),                  # STAT reset
        bin_req(0x10, b"detail"),                 # STAT detail
        bin_req(0x10, b"detail dump"),            # STAT detail dump
        bin_req(0x10, b"detail on"),              # STAT detail on
    ]
    with seeded.connect() as s:
        s.sendall(bin_req(0x21, b"PLAIN", b"\0web\0webpw"))
        assert bin_read(s)[1] == 0
        for c in cmds:
            s.sendall(c)
            r = bin_read(s)
            assert r is not None and r[1:] == (0x20, b"", b"Auth failure."), c[:2]
        # Still open: a NOOP is answered.
        s.sendall(bin_req(0x0A))
        assert bin_read(s)[1] == 0
    assert denied(seeded) == before + len(cmds)
    survives(seeded)


def test_admin_user_may(seeded):
    with text_as(seeded, "ops", "opspw") as s:
        assert exchange(s, b"verbosity 1\r\n", until=b"\r\n") == b"OK\r\n"
        assert exchange(s, b"stats reset\r\n", until=b"\r\n") == b"RESET\r\n"
        assert exchange(s, b"flush_all\r\n", until=b"\r\n") == b"OK\r\n"
        assert exchange(s, b"get app:1\r\n", until=b"END\r\n") == b"END\r\n"


# (request, who may not, what the allowed user gets) for the prefix rules:
# web reads app: and shared:, writes app: only; ro reads everything,
# writes nothing; guest (no ACL line, no `*`) may do neither.
TEXT_KEYS = [
    (b"get other:1\r\n", ["web", "guest"]),
    (b"gets other:1\r\n", ["web", "guest"]),
    (b"get app:1 other:1\r\n", ["web", "guest"]),
    (b"set app:1 0 0 1\r\nX\r\n", ["ro", "guest"]),
    (b"set shared:1 0 0 1\r\nX\r\n", ["web", "ro", "guest"]),
    (b"add other:2 0 0 1\r\nX\r\n", ["web", "ro", "guest"]),
    (b"append app:1 0 0 1\r\nX\r\n", ["ro", "guest"]),
    (b"cas other:1 0 0 1 1\r\nX\r\n", ["web", "ro", "guest"]),
    (b"delete other:1\r\n", ["web", "ro", "guest"]),
    (b"incr n:1 1\r\n", ["web", "ro", "guest"]),
    (b"decr app:1 1\r\n", ["ro", "guest"]),
    (b"touch app:1 100\r\n", ["ro", "guest"]),
    (b"gat 100 shared:1\r\n", ["web", "ro", "guest"]),
]
META_KEYS = [
    (b"mg other:1 v\r\n", ["web", "guest"]),
    (b"mg b3RoZXI6MQ== b v\r\n", ["web", "guest"]),  # base64 of other:1
    (b"me other:1\r\n", ["web", "guest"]),
    (b"ms app:1 1\r\nX\r\n", ["ro", "guest"]),
    (b"ms other:1 1 q\r\nX\r\n", ["web", "ro", "guest"]),
    (b"md other:1\r\n", ["web", "ro", "guest"]),
    (b"md app:1 q\r\n", ["ro", "guest"]),
    (b"ma n:1\r\n", ["web", "ro", "guest"]),
    (b"mg app:1 T30 v\r\n", ["ro", "guest"]),
]
PASSWORDS = {"web": "webpw", "ro": "ropw", "guest": "guestpw"}


@pytest.mark.parametrize("req,refused", TEXT_KEYS + META_KEYS, ids=lambda v: v if isinstance(v, list) else v.split(b"\r")[0].decode())
def test_prefix_rules_text_and_meta(seeded, req, refused):
    for user in ("web", "ro", "guest"):
        with text_as(seeded, user, PASSWORDS[user]) as s:
            out = exchange(s, req + b"mn\r\n", until=b"MN\r\n")
        if user in refused:
            assert out == UNAUTH + b"MN\r\n", (user, out)
        else:
            assert out != UNAUTH + b"MN\r\n" and out.endswith(b"MN\r\n"), (user, out)
    survives(seeded)


def test_prefix_rules_binary(seeded):
    flags_exp = b"\0\0\0\0\0\0\0\0"
    cases = [
        (bin_req(0x00, b"other:1"), False),                          # GET
        (bin_req(0x0C, b"other:1"), False),                          # GETK
        (bin_req(0x00, b"app:1"), True),
        (bin_req(0x01, b"other:1", b"X", flags_exp), False),         # SET
        (bin_req(0x11, b"other:1", b"X", flags_exp), False),         # SETQ
        (bin_req(0x01, b"app:9", b"X", flags_exp), True),
        (bin_req(0x04, b"other:1"), False),                          # DELETE
        (bin_req(0x0E, b"shared:1", b"X"), False),                   # APPEND
        (bin_req(0x05, b"n:1", b"", b"\0" * 7 + b"\1" + b"\0" * 12), False),  # INCREMENT
        (bin_req(0x1C, b"other:1", b"", b"\0\0\0\x64"), False),      # TOUCH
        (bin_req(0x1D, b"shared:1", b"", b"\0\0\0\x64"), False),     # GAT: read and write
    ]
    with seeded.connect() as s:
        s.sendall(bin_req(0x21, b"PLAIN", b"\0web\0webpw"))
        assert bin_read(s)[1] == 0
        for req, ok in cases:
            s.sendall(req + bin_req(0x0A, opaque=7))
            r = bin_read(s)
            if ok:
                assert r[1] == 0, (req[:2], r)
                if r[0] != 0x0A:
                    assert bin_read(s)[0] == 0x0A
            else:
                assert r[1:] == (0x20, b"", b"Auth failure."), (req[:2], r)
                assert bin_read(s)[0] == 0x0A  # still open
    with text_as(seeded, "ops", "opspw") as s:
        assert exchange(s, b"delete app:9\r\n", until=b"\r\n") == b"DELETED\r\n"
    survives(seeded)


def test_guest_may_still_talk(seeded):
    """A user without rights authenticates and runs what touches no key."""
    with text_as(seeded, "guest", "guestpw") as s:
        assert exchange(s, b"version\r\n", until=b"\r\n").startswith(b"VERSION ")
        assert b"STAT auth_denied" in exchange(s, b"stats\r\n", until=b"END\r\n")
        assert exchange(s, b"mn\r\n", until=b"\r\n") == b"MN\r\n"
