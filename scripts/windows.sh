#!/bin/sh
# Windows, built and linted here and run under Wine (DESIGN.md §12):
#   1. clippy with -D warnings for x86_64-pc-windows-gnu (mingw-w64 links);
#   2. a release build of the three .exe files;
#   3. the unit tests and the Windows suite (tests/windows.rs) under Wine, through
#      scripts/wine/run as cargo's runner for that target.
# Installs what it needs (Debian's gcc-mingw-w64-x86-64 and wine64, the rustup target).
# Prints one `SKIPPED:` line, and succeeds, when a toolchain cannot be installed on this
# machine; a lint or test failure fails.
set -eu
cd "$(dirname "$0")/.."
target=x86_64-pc-windows-gnu

skip() {
  echo "SKIPPED: Windows $1"
  exit 0
}

need=""
command -v x86_64-w64-mingw32-gcc >/dev/null 2>&1 || need="$need gcc-mingw-w64-x86-64"
[ -x /usr/lib/wine/wine64 ] || need="$need wine64"
if [ -n "$need" ]; then
  echo "installing the Windows toolchain:$need"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $need; } \
    >/dev/null 2>&1 || skip "build and tests: cannot install$need"
fi
rustup target add "$target" >/dev/null 2>&1 || skip "build and tests: cannot add the Rust target $target"

echo "Windows clippy: $target"
cargo clippy --workspace --all-targets --target "$target" -- -D warnings
echo "Windows release build: $target"
cargo build --release --workspace --bins --target "$target"
ls -l target/$target/release/helperd.exe target/$target/release/helperctl.exe \
  target/$target/release/git-credential-helperd.exe

# Wine 8 (Debian 12) lacks bcryptprimitives.dll, which Rust's std needs: a stand-in for
# the test runs only (see scripts/wine/bcryptprimitives.c).
shim="target/$target/wine/bcryptprimitives.dll"
mkdir -p "$(dirname "$shim")"
x86_64-w64-mingw32-gcc -O2 -shared -o "$shim" scripts/wine/bcryptprimitives.c \
  scripts/wine/bcryptprimitives.def -ladvapi32
HELPERD_WINE_SHIM="$(pwd)/$shim"
export HELPERD_WINE_SHIM
# A Wine prefix of this run's own: never the machine's ~/.wine.
WINEPREFIX="$(pwd)/target/$target/wine/prefix"
WINEDEBUG=-all
export WINEPREFIX WINEDEBUG
CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER="$(pwd)/scripts/wine/run"
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER
echo "Windows tests under Wine: unit tests and tests/windows.rs"
# The suite runs the client too, which lives in helper/: build every binary first.
cargo build --workspace --bins --target "$target"
cargo test --workspace --lib --bins --target "$target"
cargo test --test windows --target "$target"
# The prefix's wineserver would otherwise linger for a few seconds after the last test.
/usr/lib/wine/wineserver -k 2>/dev/null || true
