#!/usr/bin/env bash
# Why: the parsers that read bytes from targets are fuzzed with cargo fuzz (libFuzzer). This
# runs each fuzz target for a bounded time (default 60 s each) and fails if any crashed;
# crash inputs land in fuzz/artifacts/<target>/ and belong in a regression test
# (gateway/src/telnet/*.rs tests) once fixed.
#   scripts/fuzz.sh [SECONDS_PER_TARGET]
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "==> installing cargo-fuzz (crates.io)"
  cargo install cargo-fuzz --locked
fi
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "cargo fuzz needs the nightly toolchain (rustup toolchain install nightly)" >&2
  exit 1
fi
for target in telnet_protocol logon_output rdp_planar rdp_bitmap; do
  echo "==> fuzzing $target for ${secs}s"
  mkdir -p "fuzz/corpus/$target"
  cargo +nightly fuzz run "$target" "fuzz/corpus/$target" -- -max_total_time="$secs" -rss_limit_mb=1024
done
echo "==> no crashes"
