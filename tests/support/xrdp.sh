#!/bin/sh
# Why: the RDP adapter is tested against a real xrdp (TLS, autologon, Xorg backend). This
# starts one private xrdp and xrdp-sesman per test process, on 127.0.0.1, with their own
# certificate, configuration and logs; users are the machine's (sshd.sh creates them, PAM
# checks them). A watchdog stops both when the owning test process exits.
#
#   xrdp.sh start DIR OWNER_PID   -> prints "PORT SHA256:certificate-fingerprint"
#
# xrdp finds its session manager through /etc/xrdp/sesman.ini (a path compiled into it), so
# the private sesman keeps that file's port (3350, on the loopback interface): one xrdp test
# run per machine at a time.
set -eu
cmd=$1; dir=$2

case "$cmd" in
start)
  owner=$3
  [ -x /usr/sbin/xrdp ] || { echo "/usr/sbin/xrdp not found (apt packages xrdp xorgxrdp)" >&2; exit 1; }
  # The session manager's port is fixed (see above): wait for a previous run's to go away
  # (its watchdog stops it within a second of its test process), else say who holds it.
  i=0
  while ss -ltn 2>/dev/null | grep -q ':3350 '; do
    i=$((i + 1))
    [ $i -lt 100 ] || { echo "port 3350 is taken (another xrdp-sesman?): $(ss -ltnp | grep ':3350 ')" >&2; exit 1; }
    sleep 0.1
  done
  . "$(cd "$(dirname "$0")" && pwd)/x-clean.sh"
  mkdir -p "$dir" /run/xrdp/sockdir
  chmod 1777 /run/xrdp/sockdir
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=xrdp-test \
    -keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null
  chmod 600 "$dir/key.pem"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  sed -e "s#^port=3389#port=tcp://127.0.0.1:$port#" \
      -e "s#^security_layer=.*#security_layer=tls#" \
      -e "s#^certificate=.*#certificate=$dir/cert.pem#" \
      -e "s#^key_file=.*#key_file=$dir/key.pem#" \
      -e "s#^LogFile=.*#LogFile=$dir/xrdp.log#" \
      -e "s#^EnableSyslog=.*#EnableSyslog=false#" \
      /etc/xrdp/xrdp.ini > "$dir/xrdp.ini"
  sed -e "s#^LogFile=.*#LogFile=$dir/sesman.log#" \
      -e "s#^EnableSyslog=.*#EnableSyslog=false#" \
      -e "s#^KillDisconnected=.*#KillDisconnected=true#" \
      -e "s#^ListenAddress=.*#ListenAddress=127.0.0.1#" \
      /etc/xrdp/sesman.ini > "$dir/sesman.ini"
  nohup sh -c "/usr/sbin/xrdp-sesman -n -c '$dir/sesman.ini' >'$dir/sesman.out' 2>&1 & S=\$!
    sleep 0.5
    /usr/sbin/xrdp -n -c '$dir/xrdp.ini' >'$dir/xrdp.out' 2>&1 & X=\$!
    while kill -0 $owner 2>/dev/null && kill -0 \$X 2>/dev/null; do sleep 1; done
    kill \$X \$S 2>/dev/null; wait \$X \$S 2>/dev/null
    rm -rf '$dir'" >/dev/null 2>&1 &
  i=0
  until python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null; do
    i=$((i + 1)); [ $i -lt 200 ] || { cat "$dir/xrdp.out" "$dir/sesman.out" >&2; exit 1; }; sleep 0.05
  done
  fp=$(openssl x509 -in "$dir/cert.pem" -outform der | python3 -c 'import sys, hashlib, base64; print("SHA256:" + base64.b64encode(hashlib.sha256(sys.stdin.buffer.read()).digest()).decode().rstrip("="))')
  echo "$port $fp"
  ;;
*)
  echo "usage: xrdp.sh start DIR OWNER_PID" >&2; exit 2
  ;;
esac
