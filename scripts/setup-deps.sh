#!/usr/bin/env bash
# Why: a fresh Debian machine has only Rust, Node/npm, Python and the PostgreSQL 15 binaries.
# This installs what the project needs beyond that (system packages for tests, npm packages
# for the web app and the browser tests), and skips whatever is already there.
#   scripts/setup-deps.sh run    -> what `scripts/run.sh` needs
#   scripts/setup-deps.sh test   -> what `scripts/test.sh` needs
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-run}"

need_apt=()
if [ "$mode" = test ]; then
  [ -x /usr/bin/chromium ] || need_apt+=(chromium)
  [ -x /usr/sbin/sshd ] || need_apt+=(openssh-server)
  [ -x /usr/sbin/telnetd ] || need_apt+=(inetutils-telnetd)
  [ -x /usr/sbin/inetd ] || need_apt+=(openbsd-inetd)
  [ -x /usr/bin/inetutils-telnet ] || need_apt+=(inetutils-telnet)
  [ -x /usr/lib/postgresql/15/bin/postgres ] || need_apt+=(postgresql-15)
  # The test PostgreSQL offers TLS with a certificate from a CA of the tests' own.
  command -v openssl >/dev/null || need_apt+=(openssl)
  command -v setpriv >/dev/null || need_apt+=(util-linux)
  [ -x /usr/bin/sudo ] || need_apt+=(sudo)
  [ -x /usr/sbin/mariadbd ] || need_apt+=(mariadb-server)
  [ -x /usr/bin/mariadb ] || need_apt+=(mariadb-client)
  # RDP peers: xrdp with its Xorg backend (TLS, autologon), and FreeRDP's NLA-only shadow
  # server on Xvfb; xterm and xsetroot draw the known desktop the tests look at.
  [ -x /usr/sbin/xrdp ] || need_apt+=(xrdp)
  [ -e /usr/lib/xorg/modules/drivers/xrdpdev_drv.so ] || need_apt+=(xorgxrdp)
  [ -x /usr/lib/xorg/Xorg ] || need_apt+=(xserver-xorg-core)
  command -v dbus-launch >/dev/null || need_apt+=(dbus-x11)
  [ -d /usr/share/fonts/X11/misc ] || need_apt+=(xfonts-base)
  command -v xterm >/dev/null || need_apt+=(xterm)
  command -v xsetroot >/dev/null || need_apt+=(x11-xserver-utils)
  # xwud shows a photograph on the desktop (the JPEG-then-lossless test).
  command -v xwud >/dev/null || need_apt+=(x11-apps)
  command -v xclip >/dev/null || need_apt+=(xclip)
  command -v Xvfb >/dev/null || need_apt+=(xvfb)
  command -v freerdp-shadow-cli >/dev/null || need_apt+=(freerdp2-shadow-x11)
  command -v winpr-hash >/dev/null || need_apt+=(winpr-utils)
fi
if [ "${#need_apt[@]}" -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then SUDO=sudo; else SUDO=; fi
  echo "==> installing Debian packages: ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

# The test PostgreSQL cluster runs as `postgres` (initdb refuses root); Debian's package
# creates that user, a hand-installed server may not have.
if [ "$mode" = test ] && [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
  useradd --system --no-create-home --shell /usr/sbin/nologin postgres
fi

# The real asciinema player (PyPI), for the test that plays an exported .cast file; kept in a
# private virtualenv under the cargo target directory.
if [ "$mode" = test ]; then
  venv="${CARGO_TARGET_DIR:-$PWD/target}/tools-venv"
  if [ ! -x "$venv/bin/asciinema" ]; then
    echo "==> installing asciinema 2.4.0 (PyPI) into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check asciinema==2.4.0
  fi
fi

npm_install() { # dir
  if [ ! -d "$1/node_modules" ] || [ "$1/package-lock.json" -nt "$1/node_modules/.package-lock.json" ]; then
    echo "==> npm ci in $1"
    (cd "$1" && npm ci --no-audit --no-fund --loglevel=error)
  fi
}
npm_install web
[ "$mode" = test ] && npm_install tests/e2e
echo "==> building the web app"
(cd web && npm run --silent build)
