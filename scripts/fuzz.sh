#!/usr/bin/env bash
# Runs each fuzz target (text, binary, exec, ascii_auth, sasl, passwd, admin, config) for SECONDS (default 600) with
# AddressSanitizer. cargo fuzz wants nightly flags; RUSTC_BOOTSTRAP lets the
# stable toolchain accept them, since no nightly can be installed here.
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-600}"; shift || true
targets=("$@"); [ ${#targets[@]} -gt 0 ] || targets=(text binary exec ascii_auth sasl passwd admin config)
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz
export RUSTC_BOOTSTRAP=1
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t"
  cp -n fuzz/seeds/"$t"/* "fuzz/corpus/$t/" 2>/dev/null || true
  echo "== $t: ${secs}s"
  log="fuzz/corpus/$t.log"
  if ! cargo fuzz run -s address -O "$t" "fuzz/corpus/$t" -- \
      -max_total_time="$secs" -rss_limit_mb=1024 -max_len=70000 -print_final_stats=1 >"$log" 2>&1; then
    tail -40 "$log" >&2
    echo "fuzz target $t failed (artifacts in fuzz/artifacts/$t)" >&2
    exit 1
  fi
  grep -E "^(Done|stat::number_of_executed_units|stat::peak_rss_mb)" "$log"
done
