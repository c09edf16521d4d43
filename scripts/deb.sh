#!/usr/bin/env bash
# Builds the Debian package, target/debian/corecache_<version>_<arch>.deb:
# the release binary, corecache(1) generated from the clap definition
# (src/bin/corecache-man.rs), then `cargo deb` with the metadata in
# Cargo.toml's [package.metadata.deb]. Prints the .deb's path last.
# Needs cargo-deb (`cargo install --locked cargo-deb`) and gzip.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --bin corecache --bin corecache-man
mkdir -p target/man
target/release/corecache-man >target/man/corecache.1
# -n: no name or time stamp, so the same source gives the same page.
gzip -9nf target/man/corecache.1
gzip -9nc tuning/corecache-tune.8 >target/man/corecache-tune.8.gz
cargo deb --no-build --strip | tail -n 1
