#!/bin/sh
# Why: one private OpenSSH server for tests, shared by the Rust harness (tests/support/sshd.rs)
# and the browser tests (tests/e2e/harness.mjs). It listens on 127.0.0.1 only; test users are
# real local users (sshd authenticates through PAM). A watchdog stops sshd and deletes the
# users and files when the owning test process exits, even if it crashed.
#
#   sshd.sh start DIR OWNER_PID      -> prints "PORT SHA256:fingerprint"
#   sshd.sh user DIR NAME PASSWORD   -> creates the user (bash login shell, home directory)
#   sshd.sh key DIR USER PASSPHRASE  -> authorizes a new ed25519 key, prints its private key file
#   sshd.sh rekey DIR                -> replaces the host key (sshd restarts), prints the new fingerprint
#   sshd.sh telnet DIR OWNER_PID     -> also serves Telnet (inetutils-telnetd under openbsd-inetd,
#                                       127.0.0.1 only) for the same users; prints its port
#   sshd.sh file DIR USER NAME MODE  -> stdin becomes the user's ~/NAME (mode MODE, owned by USER)
#   sshd.sh shell DIR USER PATH      -> the user's login shell becomes PATH
#
# A *private* server has its own copy of /etc (bind-mounted in a mount namespace), so tests
# may set root's password, grant sudo and change passwords without touching the machine's
# accounts. Its users get uids 50000-59999 (never the machine's), homes under /home.
#   sshd.sh private DIR OWNER_PID     -> prints "PORT SHA256:fingerprint" (sshd and telnetd,
#                                        127.0.0.1 only; Telnet's port is in DIR/telnet_port)
#   sshd.sh puser DIR NAME PASSWORD   -> a user of the private server
#   sshd.sh psudo DIR NAME            -> NAME may run anything through sudo (with its password)
#   sshd.sh pkey DIR USER             -> a new ed25519 key in ~USER/.ssh/authorized_keys,
#                                        prints the private key file
#   sshd.sh pcat DIR USER NAME        -> prints ~USER/NAME
#   sshd.sh pset DIR USER PASSWORD    -> sets USER's password (behind the gateway's back)
set -eu
cmd=$1; dir=$2

case "$cmd" in
start)
  owner=$3
  [ -x /usr/sbin/sshd ] || { echo "/usr/sbin/sshd not found (apt package openssh-server)" >&2; exit 1; }
  mkdir -p "$dir/keys" /run/sshd
  : > "$dir/users"
  ssh-keygen -q -t ed25519 -N '' -f "$dir/host_ed25519"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  cat > "$dir/sshd_config" <<CONF
Port $port
ListenAddress 127.0.0.1
HostKey $dir/host_ed25519
PidFile $dir/sshd.pid
PasswordAuthentication yes
KbdInteractiveAuthentication yes
UsePAM yes
PubkeyAuthentication yes
AuthorizedKeysFile $dir/keys/%u
StrictModes no
PermitRootLogin no
AllowTcpForwarding yes
X11Forwarding no
PrintMotd no
LogLevel VERBOSE
CONF
  /usr/sbin/sshd -t -f "$dir/sshd_config"
  nohup sh -c "/usr/sbin/sshd -D -e -f '$dir/sshd_config' >'$dir/sshd.log' 2>&1 & P=\$!
    while kill -0 $owner 2>/dev/null && kill -0 \$P 2>/dev/null; do sleep 1; done
    kill \$P 2>/dev/null; wait \$P 2>/dev/null
    for u in \$(cat '$dir/users'); do
      pkill -KILL -u \"\$u\" 2>/dev/null
      for try in 1 2 3 4 5 6 7 8 9 10; do userdel -r \"\$u\" 2>/dev/null && break; sleep 0.3; done
    done
    rm -rf '$dir'" >/dev/null 2>&1 &
  i=0
  until python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null; do
    i=$((i + 1)); [ $i -lt 200 ] || { cat "$dir/sshd.log" >&2; exit 1; }; sleep 0.05
  done
  echo "$port $(ssh-keygen -l -E sha256 -f "$dir/host_ed25519.pub" | awk '{print $2}')"
  ;;
user)
  name=$3; password=$4
  echo "$name" >> "$dir/users"
  useradd -m -s /bin/bash "$name"
  echo "$name:$password" | chpasswd
  ;;
key)
  user=$3; passphrase=$4
  ssh-keygen -q -t ed25519 -N "$passphrase" -C "$user" -f "$dir/id_$user"
  cp "$dir/id_$user.pub" "$dir/keys/$user"
  echo "$dir/id_$user"
  ;;
rekey)
  # The server "was reinstalled": a new host key, sshd re-executed by SIGHUP (same pid, so the
  # watchdog keeps watching it). Prints the new fingerprint once sshd presents it.
  port=$(awk '/^Port /{print $2}' "$dir/sshd_config")
  rm -f "$dir/host_ed25519" "$dir/host_ed25519.pub"
  ssh-keygen -q -t ed25519 -N '' -f "$dir/host_ed25519"
  new=$(ssh-keygen -l -E sha256 -f "$dir/host_ed25519.pub" | awk '{print $2}')
  kill -HUP "$(cat "$dir/sshd.pid")"
  i=0
  until [ "$(ssh-keyscan -T 2 -t ed25519 -p "$port" 127.0.0.1 2>/dev/null | ssh-keygen -l -E sha256 -f - 2>/dev/null | awk '{print $2}')" = "$new" ]; do
    i=$((i + 1)); [ $i -lt 100 ] || { echo "sshd did not come back with the new key" >&2; cat "$dir/sshd.log" >&2; exit 1; }; sleep 0.1
  done
  echo "$new"
  ;;
telnet)
  owner=$3
  [ -x /usr/sbin/telnetd ] || { echo "/usr/sbin/telnetd not found (apt package inetutils-telnetd)" >&2; exit 1; }
  [ -x /usr/sbin/inetd ] || { echo "/usr/sbin/inetd not found (apt package openbsd-inetd)" >&2; exit 1; }
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  echo "127.0.0.1:$port stream tcp nowait root /usr/sbin/telnetd telnetd" > "$dir/inetd.conf"
  # -d keeps inetd in the foreground (and logs each connection to inetd.log).
  nohup sh -c "/usr/sbin/inetd -d '$dir/inetd.conf' >'$dir/inetd.log' 2>&1 & P=\$!
    while kill -0 $owner 2>/dev/null && kill -0 \$P 2>/dev/null; do sleep 1; done
    kill \$P 2>/dev/null" >/dev/null 2>&1 &
  i=0
  until python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 1).close()" 2>/dev/null; do
    i=$((i + 1)); [ $i -lt 200 ] || { cat "$dir/inetd.log" >&2; exit 1; }; sleep 0.05
  done
  echo "$port"
  ;;
file)
  user=$3; name=$4; mode=$5
  cat > "/home/$user/$name"
  chown "$user:" "/home/$user/$name"
  chmod "$mode" "/home/$user/$name"
  ;;
shell)
  user=$3; path=$4
  usermod -s "$path" "$user"
  ;;
private)
  owner=$3
  mkdir -p "$dir" /run/sshd
  : > "$dir/users"
  cp -a /etc "$dir/etc"
  ssh-keygen -q -t ed25519 -N '' -f "$dir/host_ed25519"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  tport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  echo "$tport" > "$dir/telnet_port"
  cat > "$dir/sshd_config" <<CONF
Port $port
ListenAddress 127.0.0.1
HostKey $dir/host_ed25519
PidFile $dir/sshd.pid
PasswordAuthentication yes
KbdInteractiveAuthentication yes
UsePAM yes
PubkeyAuthentication yes
AuthorizedKeysFile .ssh/authorized_keys
StrictModes no
PermitRootLogin no
X11Forwarding no
PrintMotd no
LogLevel VERBOSE
CONF
  echo "127.0.0.1:$tport stream tcp nowait root /usr/sbin/telnetd telnetd" > "$dir/inetd.conf"
  # The namespace lives as long as sshd; inetd joins it.
  nohup sh -c "unshare --mount --propagation private sh -c \"mount --bind '$dir/etc' /etc && exec /usr/sbin/sshd -D -e -f '$dir/sshd_config'\" >'$dir/sshd.log' 2>&1 & P=\$!
    echo \$P > '$dir/ns.pid'
    sleep 0.3
    nsenter --mount=/proc/\$P/ns/mnt /usr/sbin/inetd -d '$dir/inetd.conf' >'$dir/inetd.log' 2>&1 & I=\$!
    while kill -0 $owner 2>/dev/null && kill -0 \$P 2>/dev/null; do sleep 1; done
    kill \$P \$I 2>/dev/null; wait \$P 2>/dev/null
    for uid in \$(cat '$dir/uids' 2>/dev/null); do pkill -KILL -U \"\$uid\" 2>/dev/null; done
    for u in \$(cat '$dir/users'); do rm -rf \"/home/\$u\"; done
    rm -rf '$dir'" >/dev/null 2>&1 &
  i=0
  until python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 1).close(); socket.create_connection(('127.0.0.1', $tport), 1).close()" 2>/dev/null; do
    i=$((i + 1)); [ $i -lt 200 ] || { cat "$dir/sshd.log" "$dir/inetd.log" >&2; exit 1; }; sleep 0.05
  done
  echo "$port $(ssh-keygen -l -E sha256 -f "$dir/host_ed25519.pub" | awk '{print $2}')"
  ;;
puser)
  name=$3; password=$4
  in_ns() { nsenter --mount=/proc/$(cat "$dir/ns.pid")/ns/mnt "$@"; }
  echo "$name" >> "$dir/users"
  in_ns useradd -m -s /bin/bash -K UID_MIN=50000 -K UID_MAX=59999 -K GID_MIN=50000 -K GID_MAX=59999 "$name"
  echo "$name:$password" | in_ns chpasswd
  in_ns id -u "$name" >> "$dir/uids"
  ;;
psudo)
  name=$3
  echo "$name ALL=(ALL:ALL) ALL" > "$dir/etc/sudoers.d/$name"
  chmod 0440 "$dir/etc/sudoers.d/$name"
  ;;
pkey)
  user=$3
  ssh-keygen -q -t ed25519 -N '' -C "$user" -f "$dir/pid_$user"
  nsenter --mount=/proc/$(cat "$dir/ns.pid")/ns/mnt sh -c "umask 077; mkdir -p /home/$user/.ssh && cat '$dir/pid_$user.pub' >> /home/$user/.ssh/authorized_keys && chown -R $user: /home/$user/.ssh"
  echo "$dir/pid_$user"
  ;;
pcat)
  cat "/home/$3/$4"
  ;;
pset)
  echo "$3:$4" | nsenter --mount=/proc/$(cat "$dir/ns.pid")/ns/mnt chpasswd
  ;;
*)
  echo "usage: sshd.sh start|user|key|rekey|telnet|file|shell|private|puser|psudo|pkey|pcat DIR ..." >&2; exit 2 ;;
esac
