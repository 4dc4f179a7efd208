#!/bin/sh
# Why: hop-chain tests need targets that are reachable *only* through landing servers. This
# builds a line of network namespaces, root - node1 - node2 - ... - nodeN, with a veth pair
# per link and no forwarding anywhere, so each node can reach only its neighbours. Every
# node runs a private OpenSSH server and inetutils-telnetd on its upstream address. Users are
# the machine's (shared by all namespaces).
#
#   netns.sh up DIR OWNER_PID SLOT N  -> prints one line per node: "ADDR FINGERPRINT"
#                                        (SLOT 0-31 keeps concurrent chains apart)
#   netns.sh noforward DIR K          -> node K's sshd refuses TCP forwarding (restarts it)
#   netns.sh rekey DIR K              -> node K gets a new host key; prints its fingerprint
#   netns.sh isolated DIR K           -> fails unless node K is unreachable from here except
#                                        through the chain (no route into it, no forwarding)
#   netns.sh down DIR                 -> stops everything and deletes the namespaces
# A watchdog runs `down` when OWNER_PID exits, so a crashed test leaves nothing behind.
set -eu
cmd=$1; dir=$2
here=$(cd "$(dirname "$0")" && pwd)

node_addr() { # $1 = node index (1-based): its address on the link towards the gateway
  echo "10.$(cat "$dir/octet").$(( $(cat "$dir/slot") * 8 + $1 )).2"
}

start_sshd() { # $1 = node index
  k=$1; ns=$(cat "$dir/ns$k")
  ip netns exec "$ns" /usr/sbin/sshd -D -e -f "$dir/sshd$k.conf" >"$dir/sshd$k.log" 2>&1 &
  echo $! > "$dir/sshd$k.pid"
  addr=$(node_addr "$k"); i=0
  until ip netns exec "$ns" python3 -c "import socket; socket.create_connection(('$addr', 22), 1).close()" 2>/dev/null; do
    i=$((i + 1)); [ $i -lt 200 ] || { cat "$dir/sshd$k.log" >&2; exit 1; }; sleep 0.05
  done
}

case "$cmd" in
up)
  owner=$3; slot=$4; n=$5
  mkdir -p "$dir" /run/sshd
  echo $(( 200 + $$ % 50 )) > "$dir/octet"; echo "$slot" > "$dir/slot"; echo "$n" > "$dir/n"
  tag="p$(( owner % 10000000 ))s$slot"; echo "$tag" > "$dir/tag"
  prev=""
  k=1
  while [ $k -le "$n" ]; do
    ns="pcl-$owner-$slot-$k"; echo "$ns" > "$dir/ns$k"
    ip netns add "$ns"
    ip netns exec "$ns" ip link set lo up
    net="10.$(cat "$dir/octet").$(( slot * 8 + k ))"
    up="${tag}l${k}u"; down="${tag}l${k}d"
    ip link add "$up" type veth peer name "$down"
    ip link set "$down" netns "$ns"
    ip netns exec "$ns" ip addr add "$net.2/30" dev "$down"
    ip netns exec "$ns" ip link set "$down" up
    if [ -z "$prev" ]; then
      ip addr add "$net.1/30" dev "$up"; ip link set "$up" up
    else
      ip link set "$up" netns "$prev"
      ip netns exec "$prev" ip addr add "$net.1/30" dev "$up"
      ip netns exec "$prev" ip link set "$up" up
    fi
    ssh-keygen -q -t ed25519 -N '' -f "$dir/host$k"
    cat > "$dir/sshd$k.conf" <<CONF
Port 22
ListenAddress $net.2
HostKey $dir/host$k
PidFile $dir/sshd$k.sshpid
PasswordAuthentication yes
KbdInteractiveAuthentication yes
UsePAM yes
StrictModes no
PermitRootLogin no
AllowTcpForwarding yes
X11Forwarding no
PrintMotd no
LogLevel VERBOSE
CONF
    start_sshd "$k"
    prev="$ns"; k=$((k + 1))
  done
  # Every node also speaks Telnet (targets, and landing servers reached by Telnet).
  k=1
  while [ $k -le "$n" ]; do
    echo "$(node_addr "$k"):23 stream tcp nowait root /usr/sbin/telnetd telnetd" > "$dir/inetd$k.conf"
    ip netns exec "$(cat "$dir/ns$k")" /usr/sbin/inetd -d "$dir/inetd$k.conf" >"$dir/inetd$k.log" 2>&1 &
    echo $! > "$dir/inetd$k.pid"
    k=$((k + 1))
  done
  nohup sh -c "while kill -0 $owner 2>/dev/null && [ -d '$dir' ]; do sleep 1; done; sh '$here/netns.sh' down '$dir'" >/dev/null 2>&1 &
  k=1
  while [ $k -le "$n" ]; do
    echo "$(node_addr "$k") $(ssh-keygen -l -E sha256 -f "$dir/host$k.pub" | awk '{print $2}')"
    k=$((k + 1))
  done
  ;;
noforward)
  k=$3
  sed -i 's/^AllowTcpForwarding yes/AllowTcpForwarding no/' "$dir/sshd$k.conf"
  kill "$(cat "$dir/sshd$k.pid")" 2>/dev/null || true; sleep 0.2
  start_sshd "$k"
  ;;
rekey)
  k=$3
  rm -f "$dir/host$k" "$dir/host$k.pub"
  ssh-keygen -q -t ed25519 -N '' -f "$dir/host$k"
  kill "$(cat "$dir/sshd$k.pid")" 2>/dev/null || true; sleep 0.2
  start_sshd "$k"
  ssh-keygen -l -E sha256 -f "$dir/host$k.pub" | awk '{print $2}'
  ;;
isolated)
  # (A connection attempt proves nothing here: this sandbox's gateway accepts TCP to any
  # address. What keeps node K private is routing: none into it, and no forwarding.)
  k=$3; addr=$(node_addr "$k"); tag=$(cat "$dir/tag")
  if [ "$k" -gt 1 ] && ip route get "$addr" | grep -q "dev $tag"; then
    echo "$addr is routed into the chain from the gateway's namespace" >&2; exit 1
  fi
  for f in "$dir"/ns*; do
    ns=$(cat "$f")
    [ "$(ip netns exec "$ns" sysctl -n net.ipv4.ip_forward)" = 0 ] || { echo "$ns forwards packets" >&2; exit 1; }
  done
  ;;
down)
  [ -d "$dir" ] || exit 0
  for f in "$dir"/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done
  for f in "$dir"/ns*; do
    [ -f "$f" ] || continue
    ns=$(cat "$f")
    # Processes still inside (sessions' sshd children, telnetd, shells) go with it.
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
  done
  rm -rf "$dir"
  ;;
*)
  echo "usage: netns.sh up|noforward|rekey|down DIR ..." >&2; exit 2 ;;
esac
