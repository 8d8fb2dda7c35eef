#!/bin/sh
# Compares `git credential fill` answered by helperd with git's own credential-cache and
# credential-store, on the same stored credential, in one hyperfine run; then measures the
# daemon's idle memory. Writes the results into BENCHMARKS.md.
set -eu
cd "$(dirname "$0")/.."
command -v hyperfine >/dev/null || { echo "install hyperfine (apt-get install hyperfine)"; exit 1; }

cargo build --release --quiet --workspace
BIN="$PWD/target/release"
T="$(mktemp -d /tmp/helperd-bench.XXXXXX)"
trap '"$BIN/helperctl" daemon stop >/dev/null 2>&1 || true; git credential-cache --socket "$T/cache/socket" exit 2>/dev/null || true; rm -rf "$T"' EXIT

export HOME="$T/home" HELPERD_HOME="$T/helperd" HELPERD_STORE=file GIT_CONFIG_NOSYSTEM=1 GIT_TERMINAL_PROMPT=0
mkdir -p "$HOME" "$T/cache" && chmod 700 "$T/cache"
printf 'protocol=https\nhost=bench.example\nusername=bench\npassword=bench-secret\n' > "$T/cred"
printf 'protocol=https\nhost=bench.example\n' > "$T/query"

HELPERD="$BIN/git-credential-helperd"
CACHE="cache --timeout=86400 --socket=$T/cache/socket"
STORE="store --file=$T/store"
for helper in "$HELPERD" "$CACHE" "$STORE"; do
  git -c credential.helper= -c "credential.helper=$helper" credential approve < "$T/cred"
  # Check that each one answers before timing it.
  git -c credential.helper= -c "credential.helper=$helper" credential fill < "$T/query" | grep -q password=bench-secret
done

hyperfine --warmup 30 --min-runs 1000 --export-json "$T/results.json" \
  -n helperd "git -c credential.helper= -c 'credential.helper=$HELPERD' credential fill < $T/query" \
  -n credential-cache "git -c credential.helper= -c 'credential.helper=$CACHE' credential fill < $T/query" \
  -n credential-store "git -c credential.helper= -c 'credential.helper=$STORE' credential fill < $T/query"

# The helper programs alone, as git runs them (git's own start-up left out).
hyperfine --warmup 30 --min-runs 1000 --export-json "$T/helpers.json" \
  -n helperd "$HELPERD get < $T/query" \
  -n credential-cache "git credential-cache --socket=$T/cache/socket get < $T/query" \
  -n credential-store "git credential-store --file=$T/store get < $T/query"

PID="$(cat "$HELPERD_HOME/run/socket.lock")"
RSS_KB="$(awk '/^VmRSS/ {print $2}' "/proc/$PID/status")"

python3 - "$T/results.json" "$RSS_KB" "$T/helpers.json" <<'PY'
import json, sys, datetime, platform, subprocess
results = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
helpers = {r["command"]: r for r in json.load(open(sys.argv[3]))["results"]}
rss_kb = int(sys.argv[2])
h, c, s = (results[n] for n in ("helperd", "credential-cache", "credential-store"))
git = subprocess.run(["git", "--version"], capture_output=True, text=True).stdout.strip()
ms = lambda r: f'{r["mean"]*1000:.2f} ± {r["stddev"]*1000:.2f} ms (median {r["median"]*1000:.2f})'
lines = [
    "# Benchmarks",
    "",
    "Written by `scripts/bench.sh` (hyperfine, one run, same stored credential, release build,",
    "`credential.helper` set to the client's absolute path as `scripts/install.sh` does).",
    "Each row is a whole `git credential fill`, so git's own start-up is in every number.",
    "",
    f"Run on {datetime.date.today()}, {git}, {platform.machine()}, {subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()} cores.",
    "",
    "| helper | mean | ratio to credential-cache |",
    "|---|---|---|",
    f"| helperd | {ms(h)} | {h['mean']/c['mean']:.2f} (median {h['median']/c['median']:.2f}) |",
    f"| git credential-cache | {ms(c)} | 1.00 |",
    f"| git credential-store | {ms(s)} | {s['mean']/c['mean']:.2f} (median {s['median']/c['median']:.2f}) |",
    "",
    f"Goal: ratio <= 1.0 against credential-cache. Measured: **{h['mean']/c['mean']:.2f}** on the mean,",
    f"**{h['median']/c['median']:.2f}** on the median; differences of a few percent are within this",
    "machine's noise (see the ± columns).",
    "",
    "The helper programs alone, as git runs them (`<helper> get < query`; git's own start-up",
    "left out, so the helpers' differences are not diluted):",
    "",
    "| helper | mean | ratio to credential-cache |",
    "|---|---|---|",
] + [
    f"| {name} | {ms(helpers[name])} | {helpers[name]['mean']/helpers['credential-cache']['mean']:.2f} (median {helpers[name]['median']/helpers['credential-cache']['median']:.2f}) |"
    for name in ("helperd", "credential-cache", "credential-store")
] + [
    "",
    f"Daemon idle memory after the run (VmRSS): **{rss_kb/1024:.1f} MiB** (goal: under 8 MiB).",
    "",
]
open("BENCHMARKS.md", "w").write("\n".join(lines))
print("\n".join(lines))
PY
