#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, unit and integration tests (real
# server binary over HTTPS, SQLite and a private PostgreSQL cluster), then the browser tests
# (playwright-core + Debian chromium). Installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
# CI builds from a clean clone: incremental state would only cost disk (over a GiB) and time.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
start=$(date +%s)
scripts/setup-deps.sh test
echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "==> cargo test (unit + integration)"
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
ASCIINEMA="$target_dir/tools-venv/bin/asciinema" cargo test --workspace
echo "==> browser tests"
# `cargo test` built the server binary for the integration tests; the browser tests use it.
(cd tests/e2e && PORTCULLIS_BIN="$target_dir/debug/portcullis" node --test --test-concurrency=1)
echo "==> build directory: $(du -sh "$target_dir" 2>/dev/null | cut -f1)"
echo "==> all tests passed in $(( $(date +%s) - start ))s"
