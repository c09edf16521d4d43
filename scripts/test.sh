#!/usr/bin/env bash
# Runs every test: deploy/'s alert rules (promtool), the Rust unit, model,
# server and admin-port tests, the loom models of the segment-reuse grace
# protocol and the shard-lending token (loom/), the dashboard end to end in headless
# Chromium (tests/e2e), the Debian package (scripts/test-deb.sh),
# then the client
# suites (pymemcache, python-binary-memcached, pylibmc, memccapable), the
# memcached-oracle tests (tests/py/test_oracle_*.py: the same bytes to
# Debian's memcached and to corecache) and the client matrix
# (tests/py/test_client_*.py: php-memcached, libmemcached's tools,
# memcached-tool, Perl, Ruby dalli, node memjs, meta-memcache, aiomcache)
# against the release binary. Installs what those need on a fresh Debian
# machine; quick when all is there already.
set -euo pipefail
cd "$(dirname "$0")/.."

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
need_apt=()
command -v memccapable >/dev/null 2>&1 || need_apt+=(libmemcached-tools)
command -v memcached >/dev/null 2>&1 || need_apt+=(memcached)
[ -f /usr/include/libmemcached/memcached.h ] || need_apt+=(libmemcached-dev)
[ -f /usr/include/zlib.h ] || need_apt+=(zlib1g-dev)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need_apt+=(python3-venv)
# promtool, for the admin port's scrape and deploy/'s alert rules.
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
# The oracle and the client matrix.
[ -x /usr/bin/memcached ] || need_apt+=(memcached)
command -v php >/dev/null 2>&1 || need_apt+=(php-cli)
php -r 'exit(class_exists("Memcached") ? 0 : 1);' >/dev/null 2>&1 || need_apt+=(php-memcached)
command -v ruby >/dev/null 2>&1 || need_apt+=(ruby)
ruby -e 'require "dalli"' >/dev/null 2>&1 || need_apt+=(ruby-dalli)
installed libcache-memcached-perl || need_apt+=(libcache-memcached-perl)
installed libcache-memcached-fast-perl || need_apt+=(libcache-memcached-fast-perl)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
# tests/e2e: the dashboard in headless Chromium (playwright-core drives it).
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
# tests/py/scale and the client crate's ring tests: twemproxy; the client's
# placement test builds a C program against libmemcached.
[ -x /usr/sbin/nutcracker ] || need_apt+=(nutcracker)
command -v cc >/dev/null 2>&1 || need_apt+=(gcc)
# scripts/test-deb.sh: the package's checks.
command -v lintian >/dev/null 2>&1 || need_apt+=(lintian)
command -v man >/dev/null 2>&1 || need_apt+=(man-db)
command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)
command -v adduser >/dev/null 2>&1 || need_apt+=(adduser)
command -v strace >/dev/null 2>&1 || need_apt+=(strace)
# SASL PLAIN for libmemcached's clients (pylibmc, php-memcached) in
# tests/py/test_auth*.py.
installed libsasl2-modules || need_apt+=(libsasl2-modules)
# tests/py/test_tls.py makes its certificates and runs s_client with it.
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  # Debian's memcached package starts a service on 11211; the tests use free
  # ports and must not leave a server on 11211, so no service is started
  # while installing (policy-rc.d 101 = "action forbidden").
  policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    policy=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
    $SUDO chmod +x "$policy"
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" pkg-config >/dev/null
  [ -z "$policy" ] || $SUDO rm -f "$policy"
fi

# node clients: npm ci from the committed lock, again only when it changed.
(
  cd tests/clients/node
  if [ ! node_modules/.package-lock.json -nt package-lock.json ]; then
    npm ci --no-audit --no-fund --loglevel=error
  fi
)

# tests/e2e: playwright-core from the committed lock.
(
  cd tests/e2e
  if [ ! node_modules/.package-lock.json -nt package-lock.json ]; then
    npm ci --no-audit --no-fund --loglevel=error
  fi
)

if [ ! -x .venv/bin/pytest ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install -q -r tests/py/requirements.txt

# deploy/: the alert rules parse, and each alert fires and clears on
# synthetic series.
(cd deploy/prometheus &&
  promtool check rules corecache-alerts.yml &&
  promtool test rules corecache-alerts.test.yml)

cargo build --release
cargo test --release --no-fail-fast
# The loom models of src/store/grace.rs and src/engine/lend.rs: a package of
# its own (loom/) with its own target dir, since --cfg loom must reach only
# loom and the models (tokio drops its net module under it) and must not
# invalidate the cache above.
RUSTFLAGS="--cfg loom" cargo test --manifest-path loom/Cargo.toml --release \
  --target-dir target/loom --test loom_grace --test loom_lend
# The fuzz targets (run by scripts/fuzz.sh under cargo-fuzz) still build
# against the crate: checked here, not fuzzed, so an API change cannot
# leave one stale (the exec target did not compile for weeks unnoticed).
cargo check --manifest-path fuzz/Cargo.toml --bins --target-dir target/fuzz-check
# The dashboard end to end: real binary, headless Chromium, pymemcache.
(cd tests/e2e && PYTHON="$PWD/../../.venv/bin/python" npm test)
# The Debian package: built with cargo-deb (installed once into ~/.cargo/bin;
# compiling it takes 3-7 minutes on a 2-core machine), checked, installed,
# purged.
command -v cargo-deb >/dev/null 2>&1 || cargo install --locked cargo-deb
bash scripts/test-deb.sh
# The client's tests that need its optional features (msgpack, tls); the
# rest ran with the workspace above.
cargo test --release -p corecache-client --all-features --test typed_blocking --test tls
.venv/bin/pytest -q tests/py
