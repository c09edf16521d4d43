#!/usr/bin/env bash
# Builds the Debian package (scripts/deb.sh) and checks it as a user would
# meet it: the files it holds, its conffile, the man page rendered by man,
# lintian (errors fail; every tag is printed), the unit verified by
# systemd-analyze, then a real install: the system user exists, the
# packaged conf starts the packaged binary as that user (readiness checked
# through NOTIFY_SOCKET), a changed conffile survives a reinstall, and a
# purge removes it. Run as root (CI is); no service is started by the
# install (policy-rc.d forbids it, and without systemd as PID 1 the
# maintainer scripts only enable the unit).
#
# Needs: cargo-deb, lintian, man-db, systemd (systemd-analyze), strace,
# python3.
set -euo pipefail
cd "$(dirname "$0")/.."
export LC_ALL=C # sort and comm must agree on order
[ "$(id -u)" -eq 0 ] || { echo "scripts/test-deb.sh installs a package: run it as root" >&2; exit 1; }

passed=0
failed=0
ok() { echo "ok: $*"; passed=$((passed + 1)); }
bad() { echo "FAILED: $*"; failed=$((failed + 1)); }
check() { # check DESCRIPTION COMMAND...
  local what=$1
  shift
  if "$@"; then ok "$what"; else bad "$what"; fi
}

deb=$(scripts/deb.sh | tail -n 1)
[ -f "$deb" ] || { echo "no package built ($deb)"; exit 1; }
echo "package: $deb"

contents=$(dpkg-deb --contents "$deb" | awk '{print $NF}')
for f in ./usr/bin/corecache ./etc/corecache.conf \
  ./usr/lib/systemd/system/corecache.service \
  ./usr/share/man/man1/corecache.1.gz \
  ./usr/share/corecache/prometheus/corecache-alerts.yml \
  ./usr/share/corecache/grafana/corecache.json \
  ./usr/share/corecache/tuning/sysctl-corecache.conf \
  ./usr/share/corecache/systemd/warm-restart.conf \
  ./usr/sbin/corecache-tune ./usr/share/man/man8/corecache-tune.8.gz \
  ./usr/share/doc/corecache/copyright; do
  check "contains $f" grep -qx -- "$f" <<<"$contents"
done
check "/etc/corecache.conf is a conffile" \
  sh -c "dpkg-deb -I '$deb' conffiles | grep -qx /etc/corecache.conf"
check "postinst creates the corecache system user" \
  sh -c "dpkg-deb -I '$deb' postinst | grep -q 'adduser --system'"

# The man page: man renders it without a groff warning, and it lists the
# flags of the clap definition and the extra sections.
page=$(MANWIDTH=80 man --warnings -l target/man/corecache.1.gz 2>/tmp/corecache-man.err)
check "man -l renders without warnings" test ! -s /tmp/corecache-man.err
cat /tmp/corecache-man.err
for want in "--conf" "--memory-limit" "--admin" "EXIT STATUS" "SIGTERM" "NOTIFY_SOCKET"; do
  check "man page mentions $want" grep -q -- "$want" <<<"$page"
done

# lintian: every tag printed for the record; an error fails.
lintian_out=$(lintian --allow-root --tag-display-limit 0 "$deb" 2>&1 || true)
echo "lintian: ${lintian_out:-clean}"
if grep -q '^E:' <<<"$lintian_out"; then bad "lintian reports an error"; else ok "lintian reports no error"; fi

# A real install, with service starts forbidden as scripts/test.sh does.
policy=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
  policy=/usr/sbin/policy-rc.d
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod +x "$policy"
fi
cleanup() {
  dpkg --purge corecache >/dev/null 2>&1 || true
  [ -z "$policy" ] || rm -f "$policy"
}
trap cleanup EXIT
dpkg --purge corecache >/dev/null 2>&1 || true
DEBIAN_FRONTEND=noninteractive dpkg -i "$deb" >/dev/null
check "install creates the corecache system user" getent passwd corecache
check "systemd-analyze verify accepts the installed unit" \
  systemd-analyze verify /usr/lib/systemd/system/corecache.service
systemd-analyze security --offline=yes /usr/lib/systemd/system/corecache.service 2>&1 |
  tail -n 1 | sed 's/^/systemd-analyze security: /'

# The packaged conf starts the packaged binary as the corecache user, on
# free ports, and it reports READY=1 on a notify socket this script owns.
# It runs under strace: every system call it makes (the admin port, the
# watchdog, a stop by SIGTERM) must pass the unit's SystemCallFilter, which
# no live systemd checks here. (-k is left out: its mlockall needs the
# unit's LimitMEMLOCK=infinity, which a root without CAP_SYS_RESOURCE, as
# in this project's sandbox, cannot grant; mlockall is in @system-service.)
trace=$(mktemp -d)
chmod 777 "$trace"
check "the packaged conf serves as the corecache user, and restarts warm" env TRACE="$trace/calls" python3 - <<'PY'
import os, pwd, signal, socket, subprocess, tempfile, time
d = tempfile.mkdtemp()
os.chmod(d, 0o777)
path = os.path.join(d, "notify")
n = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
n.bind(path)
os.chmod(path, 0o777)
n.settimeout(20)
def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port
port, admin = free_port(), free_port()
env = dict(os.environ, NOTIFY_SOCKET=path, WATCHDOG_USEC="2000000")
# -e: the first run saves the cache at SIGTERM, the second reads it back,
# so the warm restart's calls are traced too.
mem = os.path.join(d, "mem")

def run(trace, first):
    p = subprocess.Popen(["strace", "-f", "-qq", "-o", trace,
                          "/usr/bin/corecache", "--conf", "/etc/corecache.conf",
                          "-p", str(port), "--admin", f"127.0.0.1:{admin}", "-e", mem],
                         env=env, user="corecache", group="corecache", extra_groups=[])
    try:
        msgs = b""
        while b"READY=1" not in msgs:
            msgs += n.recv(4096)
        c = socket.create_connection(("127.0.0.1", port), timeout=5)
        c.sendall(b"set k 0 0 1\r\nx\r\n" if first else b"")
        c.sendall(b"get k\r\n")
        got = b""
        while not got.endswith(b"END\r\n"):
            got += c.recv(4096)
        want = b"VALUE k 0 1\r\nx\r\nEND\r\n"
        assert got == (b"STORED\r\n" + want if first else want), got
        c.sendall(b"stats\r\n")
        stats = b""
        while not stats.endswith(b"END\r\n"):
            stats += c.recv(65536)
        pid = int([l for l in stats.split(b"\r\n") if l.startswith(b"STAT pid ")][0].split()[2])
        uid = os.stat(f"/proc/{pid}").st_uid
        assert pwd.getpwuid(uid).pw_name == "corecache", uid
        if first:
            h = socket.create_connection(("127.0.0.1", admin), timeout=5)
            # The admin port answers only a Host naming it (DNS-rebinding guard).
            h.sendall(f"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:{admin}\r\nConnection: close\r\n\r\n".encode())
            assert h.recv(64).startswith(b"HTTP/1.1 200"), "metrics"
            while b"WATCHDOG=1" not in msgs:
                msgs += n.recv(4096)
        os.kill(pid, signal.SIGTERM)
        while b"STOPPING=1" not in msgs:
            msgs += n.recv(4096)
        assert p.wait(10) == 0
        assert os.path.exists(mem + ".meta"), "the stop saved the cache"
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(10)

run(os.environ["TRACE"], True)
run(os.environ["TRACE"] + ".2", False)
PY
# The unit's filter: the first SystemCallFilter= allows, the `~` one denies.
unit=/usr/lib/systemd/system/corecache.service
expand() { for w in "$@"; do
  case $w in @*) systemd-analyze syscall-filter "$w" </dev/null | sed -n 's/^ \+\([a-z_0-9@-]*\)$/\1/p' |
    while read -r x; do case $x in @*) expand "$x" ;; *) echo "$x" ;; esac; done ;;
  *) echo "$w" ;; esac; done; }
allow=$(expand $(sed -n 's/^SystemCallFilter=\([^~].*\)/\1/p' $unit) | sort -u)
deny=$(expand $(sed -n 's/^SystemCallFilter=~\(.*\)/\1/p' $unit) | sort -u)
used=$(cat "$trace/calls" "$trace/calls.2" | awk '{print $2}' | sed -n 's/^\([a-z_0-9]*\)(.*/\1/p' | grep -vx execve | sort -u)
outside=$(comm -23 <(echo "$used") <(comm -23 <(echo "$allow") <(echo "$deny")))
echo "system calls made: $(echo "$used" | wc -l); outside the unit's filter: ${outside:-none}"
check "every system call is allowed by the unit's SystemCallFilter" test -z "$outside"
check "the trace saw io_uring" grep -qx io_uring_enter <<<"$used"
check "the trace saw the warm restart's save (fsync)" grep -qx fsync <<<"$used"
rm -rf "$trace"

# The packaged tuning command finds the packaged sysctl file and changes
# nothing without --yes.
check "the packaged corecache-tune dry-runs" sh -c \
  "/usr/sbin/corecache-tune apply | grep -q -e 'dry run: nothing changed' -e 'nothing to change'"

# A changed conffile is kept when the package is installed again.
echo "# local change" >>/etc/corecache.conf
DEBIAN_FRONTEND=noninteractive dpkg -i --force-confold "$deb" >/dev/null
check "a changed conffile survives a reinstall" grep -qx "# local change" /etc/corecache.conf
dpkg --purge corecache >/dev/null
check "purge removes the conffile" test ! -e /etc/corecache.conf

echo "deb: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
