#!/usr/bin/env bash
# Side-by-side memtier_benchmark runs of corecache and memcached on this host.
# See scripts/bench.py --help. memtier_benchmark is not a Debian package:
# build it from its sources and put it on PATH, or set MEMTIER=/path/to/it.
set -euo pipefail
cd "$(dirname "$0")/.."
MEMTIER="${MEMTIER:-$(command -v memtier_benchmark || true)}"
if [ -z "$MEMTIER" ] || [ ! -x "$MEMTIER" ]; then
  echo "memtier_benchmark not found: build it from its sources and put it on PATH, or set MEMTIER=path" >&2
  exit 2
fi
command -v memcached >/dev/null || { echo "memcached not found: apt-get install memcached" >&2; exit 2; }
# Build this tree unless told which binary to measure (--bin).
case " $* " in *" --bin "* | *" --bin="*) ;; *) cargo build --release -q ;; esac
# Charts need matplotlib: use the test venv, installing it there if missing.
PY=python3
if ! $PY -c 'import matplotlib' 2>/dev/null; then
  [ -x .venv/bin/python ] || python3 -m venv .venv
  .venv/bin/python -c 'import matplotlib' 2>/dev/null || .venv/bin/pip install -q matplotlib
  PY=.venv/bin/python
fi
exec $PY scripts/bench.py --memtier "$MEMTIER" "$@"
