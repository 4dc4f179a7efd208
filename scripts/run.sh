#!/usr/bin/env bash
# Runs Portcullis on its embedded defaults: SQLite, files in ./portcullis-data, a generated
# master key and self-signed certificate, HTTPS on 127.0.0.1:7272, a bootstrap `admin` whose
# one-time password is printed once. Extra arguments go to `portcullis serve`
# (e.g. scripts/run.sh --listen 0.0.0.0:7272).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-deps.sh run
cargo build --release --bin portcullis
exec target/release/portcullis serve "$@"
