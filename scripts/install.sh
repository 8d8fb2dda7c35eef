#!/bin/sh
# Builds and installs helperd, helperctl and git-credential-helperd into ~/.local/bin
# (or $PREFIX/bin), points git at the client by absolute path (the fastest form), starts
# the daemon and shows its status.
set -eu
cd "$(dirname "$0")/.."
PREFIX="${PREFIX:-$HOME/.local}"

cargo install --quiet --locked --force --path . --root "$PREFIX"
cargo install --quiet --locked --force --path helper --root "$PREFIX"

git config --global credential.helper "$PREFIX/bin/git-credential-helperd"
echo "git config --global credential.helper = $PREFIX/bin/git-credential-helperd"

"$PREFIX/bin/helperctl" daemon start
"$PREFIX/bin/helperctl" status
case ":$PATH:" in
  *":$PREFIX/bin:"*) ;;
  *) echo "note: add $PREFIX/bin to your PATH to run helperctl directly" ;;
esac
