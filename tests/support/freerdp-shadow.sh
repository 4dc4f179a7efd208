#!/bin/sh
# Why: an RDP server that speaks NLA (CredSSP), which xrdp does not: FreeRDP's shadow server
# sharing a private Xvfb display (a solid root colour), with one user in its own NTLM SAM
# file. It listens on 127.0.0.1 only; a watchdog stops it when the owning process exits.
#
#   freerdp-shadow.sh start DIR OWNER_PID USER PASSWORD [ADDR NETNS]  -> prints "PORT"
# (with ADDR and NETNS: inside network namespace NETNS, listening on ADDR:3389)
set -eu
cmd=$1; dir=$2

case "$cmd" in
start)
  here=$(cd "$(dirname "$0")" && pwd)
  owner=$3; user=$4; password=$5; addr=${6:-127.0.0.1}; netns=${7:-}
  run=""; [ -z "$netns" ] || run="ip netns exec $netns"
  command -v freerdp-shadow-cli >/dev/null || { echo "freerdp-shadow-cli not found (apt packages freerdp2-shadow-x11 winpr-utils xvfb)" >&2; exit 1; }
  mkdir -p "$dir"
  winpr-hash -u "$user" -p "$password" -f sam > "$dir/sam"
  if [ -n "$netns" ]; then port=3389; else
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  fi
  . "$here/x-clean.sh"
  # A free X display number, above the range xrdp gives its sessions (10-60).
  n=$(( 100 + $$ % 400 ))
  while [ -e "/tmp/.X$n-lock" ] || [ -e "/tmp/.X11-unix/X$n" ]; do n=$((n + 1)); done
  nohup sh -c "Xvfb :$n -screen 0 1024x768x24 -nolisten tcp >'$dir/xvfb.log' 2>&1 & V=\$!
    # A window covering the screen in the test colour, fully drawn before the server starts
    # (the shadow server captures once per connection; the bare root window reads black).
    i=0; until python3 '$here/xpixel.py' :$n 0 0 >/dev/null 2>&1; do i=\$((i+1)); [ \$i -lt 200 ] || break; sleep 0.05; done
    DISPLAY=:$n xterm -geometry 300x100+0+0 -bg '#2e8b57' -fg '#2e8b57' >/dev/null 2>&1 &
    i=0; until [ \"\$(python3 '$here/xpixel.py' :$n 512 384 2>/dev/null)\" = 2e8b57 ]; do i=\$((i+1)); [ \$i -lt 200 ] || break; sleep 0.05; done
    DISPLAY=:$n $run freerdp-shadow-cli /bind-address:$addr /port:$port +auth /sec:nla /sam-file:'$dir/sam' >'$dir/shadow.log' 2>&1 & S=\$!
    while kill -0 $owner 2>/dev/null && kill -0 \$S 2>/dev/null; do sleep 1; done
    kill \$S \$V 2>/dev/null; wait \$S \$V 2>/dev/null
    rm -rf '$dir'" >/dev/null 2>&1 &
  # Up to 40 s: Xvfb and the xterm may take 10 s each on a loaded machine before the server
  # even starts (CI once gave up at 10 s, before shadow.log existed).
  i=0
  until $run python3 -c "import socket; socket.create_connection(('$addr', $port), 1)" 2>/dev/null; do
    i=$((i + 1))
    [ $i -lt 800 ] || {
      echo "freerdp-shadow-cli did not listen on $addr:$port within 40 s" >&2
      cat "$dir/xvfb.log" "$dir/shadow.log" >&2 2>/dev/null; exit 1; }
    sleep 0.05
  done
  echo "$port"
  ;;
*)
  echo "usage: freerdp-shadow.sh start DIR OWNER_PID USER PASSWORD" >&2; exit 2
  ;;
esac
