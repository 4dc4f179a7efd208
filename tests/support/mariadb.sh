#!/bin/sh
# Why: a private MariaDB for the rotation tests, on a 127.0.0.1 port with a fresh data
# directory; root logs in over the Unix socket in DIR (unix_socket authentication) to set up
# accounts; every TCP login is checked with the account's password. A watchdog stops the
# server and removes DIR when the owning test process exits.
#
#   mariadb.sh start DIR OWNER_PID        -> prints "PORT"
#   mariadb.sh sql DIR SQL                 -> runs SQL as root
#   mariadb.sh login DIR PORT USER PASSWORD -> exit status 0 if USER logs in with PASSWORD
set -eu
cmd=$1; dir=$2

case "$cmd" in
start)
  owner=$3
  [ -x /usr/sbin/mariadbd ] || { echo "/usr/sbin/mariadbd not found (apt package mariadb-server)" >&2; exit 1; }
  mkdir -p "$dir"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  mariadb-install-db --no-defaults --datadir="$dir/data" --user="$(id -un)" --auth-root-authentication-method=socket --skip-test-db >"$dir/install.log" 2>&1 \
    || { cat "$dir/install.log" >&2; exit 1; }
  nohup sh -c "/usr/sbin/mariadbd --no-defaults --datadir='$dir/data' --port=$port --bind-address=127.0.0.1 --socket='$dir/sock' --pid-file='$dir/pid' --user=$(id -un) --skip-log-bin --log-error='$dir/err.log' & P=\$!
    while kill -0 $owner 2>/dev/null && kill -0 \$P 2>/dev/null; do sleep 1; done
    kill \$P 2>/dev/null; wait \$P 2>/dev/null; rm -rf '$dir'" >/dev/null 2>&1 &
  i=0
  until [ -S "$dir/sock" ] && python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 1).close()" 2>/dev/null; do
    i=$((i + 1)); [ $i -lt 400 ] || { cat "$dir/err.log" >&2; exit 1; }; sleep 0.05
  done
  echo "$port"
  ;;
sql)
  mariadb --no-defaults -S "$dir/sock" -uroot -N -B -e "$3"
  ;;
login)
  MYSQL_PWD=$5 mariadb --no-defaults -h 127.0.0.1 -P "$3" -u "$4" -N -B -e 'SELECT 1' >/dev/null 2>&1
  ;;
*)
  echo "usage: mariadb.sh start|sql|login DIR ..." >&2; exit 2 ;;
esac
