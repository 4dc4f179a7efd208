#!/bin/bash
# Why: the Cisco-style logon script needs a device that has a user mode, `enable` and an
# enable secret. Telnet and /bin/login here are real (inetutils-telnetd, PAM); this login
# shell plays the device's CLI after login. The enable secret is read from ~/.enable.
secret=$(cat "$HOME/.enable")
while true; do
  printf 'router1>'
  IFS= read -r line || exit 0
  case "$line" in
    enable)
      # Like many programs, it prompts first and turns echo off a moment later: a client that
      # types the secret the instant the prompt appears gets it echoed back.
      printf 'Password: '
      sleep 0.05
      stty -echo; IFS= read -r pw; stty echo
      printf '\n'
      if [ "$pw" = "$secret" ]; then break; fi
      printf '%% Bad secrets\n\n'
      ;;
    exit) exit 0 ;;
    "") ;;
    *) printf '%% Unknown command or computer name\n' ;;
  esac
done
while true; do
  printf 'router1#'
  IFS= read -r line || exit 0
  case "$line" in
    "show privilege") printf 'Current privilege level is 15\n' ;;
    exit) exit 0 ;;
    "") ;;
    *) printf '%% Invalid input detected\n' ;;
  esac
done
