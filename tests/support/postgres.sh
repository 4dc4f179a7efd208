#!/bin/sh
# Why: a private PostgreSQL 15 for the browser tests (the Rust tests start theirs from
# tests/support/postgres.rs), on a 127.0.0.1 port, where every TCP login is checked with
# SCRAM passwords (rotation tests need the server to refuse old passwords). The superuser
# `postgres` logs in over the Unix socket in DIR without a password (for setting up roles).
# A watchdog stops the server and removes DIR when the owning test process exits.
#
#   postgres.sh start DIR OWNER_PID   -> prints "PORT"
#   postgres.sh sql DIR PORT SQL       -> runs SQL as the superuser
set -eu
cmd=$1; dir=$2
BIN=/usr/lib/postgresql/15/bin
as_pg() { if [ "$(id -u)" = 0 ]; then setpriv --reuid=postgres --regid=postgres --init-groups "$@"; else "$@"; fi; }

case "$cmd" in
start)
  owner=$3
  [ -x "$BIN/postgres" ] || { echo "$BIN/postgres not found (PostgreSQL 15)" >&2; exit 1; }
  mkdir -p "$dir"
  [ "$(id -u)" = 0 ] && chown postgres: "$dir"
  as_pg "$BIN/initdb" -A trust -U postgres --no-sync -E UTF8 -D "$dir/data" >/dev/null
  printf 'local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n' > "$dir/data/pg_hba.conf"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  nohup sh -c "$( [ "$(id -u)" = 0 ] && echo 'setpriv --reuid=postgres --regid=postgres --init-groups' ) $BIN/postgres -D '$dir/data' -p $port -k '$dir' -c listen_addresses=127.0.0.1 -c fsync=off >'$dir/postgres.log' 2>&1 & P=\$!
    while kill -0 $owner 2>/dev/null && kill -0 \$P 2>/dev/null; do sleep 1; done
    kill \$P 2>/dev/null; wait \$P 2>/dev/null; rm -rf '$dir'" >/dev/null 2>&1 &
  i=0
  until "$BIN/pg_isready" -h 127.0.0.1 -p "$port" >/dev/null 2>&1; do
    i=$((i + 1)); [ $i -lt 300 ] || { cat "$dir/postgres.log" >&2; exit 1; }; sleep 0.1
  done
  echo "$port"
  ;;
sql)
  port=$3
  psql -h "$dir" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 -qAt -c "$4"
  ;;
*)
  echo "usage: postgres.sh start DIR OWNER_PID | sql DIR PORT SQL" >&2; exit 2
  ;;
esac
