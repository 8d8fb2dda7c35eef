#!/bin/sh
# macOS is compiled and linted here, never run (DESIGN.md §12): `cargo-zigbuild` (zig from
# the PyPI `ziglang` wheel, in a virtual environment of its own) is the C compiler for
# `ring`; no Apple SDK is needed for `clippy`, which never links. Prints one `SKIPPED:`
# line, and succeeds, when a toolchain cannot be installed on this machine; a lint failure
# fails.
set -eu
cd "$(dirname "$0")/.."

skip() {
  echo "SKIPPED: macOS clippy: $1"
  exit 0
}

venv="${XDG_CACHE_HOME:-$HOME/.cache}/helperd-ci/zig-venv"
if [ ! -x "$venv/bin/cargo-zigbuild" ]; then
  python3 -m venv "$venv" >/dev/null 2>&1 || skip "cannot make a Python virtual environment"
  "$venv/bin/pip" install -q cargo-zigbuild >/dev/null 2>&1 || skip "cannot install cargo-zigbuild from PyPI"
fi
for target in aarch64-apple-darwin x86_64-apple-darwin; do
  rustup target add "$target" >/dev/null 2>&1 || skip "cannot add the Rust target $target"
done
for target in aarch64-apple-darwin x86_64-apple-darwin; do
  echo "macOS clippy: $target"
  PATH="$venv/bin:$PATH" cargo-zigbuild clippy --workspace --all-targets --target "$target" -- -D warnings
done
