#!/usr/bin/env bash
# Runs every test: the Rust unit, model and server tests, then the client
# suites (pymemcache, python-binary-memcached, pylibmc, memccapable) against
# the release binary. Installs what those need on a fresh Debian machine.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v memccapable >/dev/null 2>&1 || need_apt+=(libmemcached-tools)
command -v memcached >/dev/null 2>&1 || need_apt+=(memcached)
[ -f /usr/include/libmemcached/memcached.h ] || need_apt+=(libmemcached-dev)
[ -f /usr/include/zlib.h ] || need_apt+=(zlib1g-dev)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need_apt+=(python3-venv)
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" pkg-config >/dev/null
fi

if [ ! -x .venv/bin/pytest ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install -q -r tests/py/requirements.txt

cargo build --release
cargo test --release
.venv/bin/pytest -q tests/py
