#!/bin/sh
# Why: X servers killed with SIGKILL (a test's user cleanup, a crashed test) leave their
# lock file and socket behind, and xrdp-sesman counts every socket in /tmp/.X11-unix as a
# display in use: after enough runs it has no display left to give a new session. This
# removes the lock and socket of every display whose server is gone. Sourced by xrdp.sh and
# freerdp-shadow.sh.
for lock in /tmp/.X*-lock; do
  [ -f "$lock" ] || continue
  n=${lock#/tmp/.X}; n=${n%-lock}
  pid=$(tr -d ' ' < "$lock" 2>/dev/null || true)
  if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
    rm -f "$lock" "/tmp/.X11-unix/X$n"
  fi
done
for sock in /tmp/.X11-unix/X*; do
  [ -S "$sock" ] || continue
  n=${sock#/tmp/.X11-unix/X}
  [ -f "/tmp/.X$n-lock" ] || rm -f "$sock"
done
