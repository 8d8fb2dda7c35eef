#!/bin/sh
# Fuzzes the parsers that face untrusted bytes (fuzz/fuzz_targets/): git's input, the
# socket's request lines, the encrypted store file, URLs. cargo-fuzz on stable Rust with
# --sanitizer none (no nightly here).
#
#   scripts/fuzz.sh            every target for FUZZ_RUNS executions (default 10 million)
#   scripts/fuzz.sh --smoke    every target once over its committed corpus (CI)
#
# Without cargo-fuzz (and no way to install it) it says so and exits 0: fuzzing is an
# extra check, the test suite stands on its own.
set -eu
cd "$(dirname "$0")/.."
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz"
  if ! cargo install --quiet --locked cargo-fuzz; then
    echo "fuzz: SKIPPED: cargo-fuzz could not be installed"
    exit 0
  fi
fi
RUNS="${FUZZ_RUNS:-10000000}"
for target in git_input wire_line store_file url; do
  corpus="fuzz/corpus/$target"
  if [ "${1:-}" = "--smoke" ]; then
    echo "fuzz: $target over its corpus"
    # -runs=0: every input of the corpus once, no new ones.
    cargo fuzz run --sanitizer none "$target" "$corpus" -- -runs=0
  else
    # New inputs go to a scratch folder; the committed corpus only seeds.
    scratch="$(mktemp -d)"
    echo "fuzz: $target for $RUNS executions"
    cargo fuzz run --sanitizer none "$target" "$scratch" "$corpus" -- -runs="$RUNS" -print_final_stats=1
    rm -rf "$scratch"
  fi
done
