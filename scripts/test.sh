#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, unit and integration tests (real
# server binary over HTTPS, SQLite and a private PostgreSQL cluster), then the browser tests
# (playwright-core + Debian chromium). Installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
scripts/setup-deps.sh test
echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "==> cargo test (unit + integration)"
cargo test --workspace
echo "==> browser tests"
cargo build --bin portcullis
(cd tests/e2e && PORTCULLIS_BIN="$PWD/../../target/debug/portcullis" node --test --test-concurrency=1)
echo "==> all tests passed in $(( $(date +%s) - start ))s"
