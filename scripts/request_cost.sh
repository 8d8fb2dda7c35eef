#!/bin/sh
# The daemon's own work for one `get` of a plain credential, in instructions counted by
# valgrind (callgrind): user space only, the same on a quiet machine as on a busy one, so a
# change to the request path shows as a number even where timings drown in noise.
# Prints one line: "<instructions per get> <gets counted>".
#
# usage: scripts/request_cost.sh [BIN_DIR]   (BIN_DIR: where helperd and
#        git-credential-helperd are; left out, the release build, built first)
# GETS (2000) sets how many gets are counted, after 300 that warm the daemon up;
# SOCKET_LOAD names an already built benches/socket_load.rs.
set -eu
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "install valgrind (apt-get install valgrind)" >&2; exit 1; }
BIN="${1:-}"
if [ -z "$BIN" ]; then
  cargo build --release --quiet -p helperd --bin helperd -p git-credential-helperd
  BIN="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')/release"
fi
for program in helperd git-credential-helperd; do
  [ -x "$BIN/$program" ] || { echo "no $program in $BIN" >&2; exit 1; }
done
GETS="${GETS:-2000}"
case "$GETS" in
  ''|*[!0-9]*|0) echo "GETS must be a whole number above 0, not '$GETS'" >&2; exit 1 ;;
esac
T="$(mktemp -d /tmp/helperd-cost.XXXXXX)"
VG_PID=""
cleanup() {
  [ -z "$VG_PID" ] || kill "$VG_PID" 2>/dev/null || true
  rm -rf "$T"
}
trap cleanup EXIT

# The load tool: given (bench.sh has built it already), else built here.
LOAD_TOOL="${SOCKET_LOAD:-}"
if [ -z "$LOAD_TOOL" ]; then
  rustc -O --edition 2021 -C debuginfo=0 benches/socket_load.rs -o "$T/socket_load"
  LOAD_TOOL="$T/socket_load"
fi
export HELPERD_HOME="$T/helperd" HELPERD_STORE=file HOME="$T/home"
mkdir -p "$HOME"
# Counting starts switched off: start-up and the warm-up are left out. Only the request's
# own work is counted, the connection's handling and the audit lines' writing: not the
# accept loop's looks at an empty backlog, whose number depends on timing.
valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$T/callgrind.out" \
  --collect-atstart=no --toggle-collect='helperd::daemon::server::serve_with*' \
  --toggle-collect='helperd::daemon::state::writer::Task::flush_audit*' \
  "$BIN/helperd" --foreground > "$T/daemon.log" 2>&1 &
VG_PID=$!
for _ in $(seq 300); do [ -S "$HELPERD_HOME/run/socket" ] && break; sleep 0.1; done
[ -S "$HELPERD_HOME/run/socket" ] || { echo "the daemon did not start under valgrind:" >&2; cat "$T/daemon.log" >&2; exit 1; }
printf 'protocol=https\nhost=bench.example\nusername=bench\npassword=bench-secret\n' \
  | "$BIN/git-credential-helperd" store
PROTO="$(sed -n 's/^pub const PROTOCOL_VERSION: u32 = \([0-9][0-9]*\);.*/\1/p' helper/src/wire.rs)"
load() {
  "$LOAD_TOOL" --helperd "$HELPERD_HOME/run/socket" ${PROTO:+--protocol "$PROTO"} \
    --clients 2 --requests "$1" --rounds 1 --warmup 0 > /dev/null 2> "$T/load.log" \
    || { cat "$T/load.log" >&2; exit 1; }
}
load 300
callgrind_control -i on "$VG_PID" > /dev/null 2>&1
load "$GETS"
# The last audit lines are written within a millisecond (AUDIT_EVERY): counted too.
sleep 0.5
callgrind_control -i off "$VG_PID" > /dev/null 2>&1
kill "$VG_PID"
wait "$VG_PID" 2>/dev/null || true
VG_PID=""
TOTAL="$(callgrind_annotate "$T/callgrind.out" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')"
[ -n "$TOTAL" ] || { echo "callgrind counted nothing" >&2; exit 1; }
echo "$((TOTAL / GETS)) $GETS"
