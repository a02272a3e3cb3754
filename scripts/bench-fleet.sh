#!/usr/bin/env bash
# `vane run` against `vane replay` at fleet size, on the same file, in one run.
#
# Generates a gorouter log of a fleet (default 10,000 apps × 10 instances,
# 3 M lines, 60 s of traffic at 50,000 req/s), then, each pinned to one core
# (taskset) and measured with GNU time:
#   - vane replay --rules rules: decode, windows, decisions, alerts, health
#   - vane run --exit-when-idle: the same file as a followed file source, the
#     same rules, the default intervals (checkpoint every 1 s, poll 250 ms)
# It prints lines/s, peak RSS, checkpoint cost and the slowest tick that
# closed windows, and checks that both wrote the same window rows.
#
# Usage: scripts/bench-fleet.sh   (LINES, APPS, INSTANCES, RPS, CPU, WORK, VANE to override)
set -euo pipefail
cd "$(dirname "$0")/.."

LINES=${LINES:-3000000}
APPS=${APPS:-10000}
INSTANCES=${INSTANCES:-100000}
RPS=${RPS:-50000}
CPU=${CPU:-0}
WORK=${WORK:-target/bench-fleet}
IDLE=1
mkdir -p "$WORK"

# VANE=path/to/vane runs a binary already built (skips the build).
if [ -z "${VANE:-}" ]; then
  cargo build --release --quiet
  VANE=target/release/vane
fi
LOG="$WORK/fleet-${LINES}-${APPS}-${INSTANCES}.log"
if [ ! -s "$LOG" ]; then
  echo "generating $LOG" >&2
  $VANE generate --format gorouter --lines "$LINES" --apps "$APPS" --instances "$INSTANCES" \
    --rps "$RPS" --seed 42 --out "$LOG"
fi

# GNU time's fields: elapsed s, user s, system s, peak RSS KiB.
TIMEFMT='%e %U %S %M'

rm -rf "$WORK/replay" "$WORK/run"
mkdir -p "$WORK/replay"
echo "vane replay ..." >&2
/usr/bin/time -f "$TIMEFMT" -o "$WORK/replay.time" taskset -c "$CPU" \
  $VANE replay --format gorouter --rules rules \
  --out "$WORK/replay/windows.jsonl" --dead-letters "$WORK/replay/dead-letters.jsonl" \
  --decisions "$WORK/replay/decisions.jsonl" --alerts "$WORK/replay/alerts.jsonl" \
  "$LOG" 2> "$WORK/replay.log"

cat > "$WORK/run.toml" <<TOML
data_dir = "$WORK/run"
rules = ["rules"]
[[sources]]
type = "file"
path = "$LOG"
format = "gorouter"
start_at = "beginning"
TOML
echo "vane run ..." >&2
VANE_LOG=warn /usr/bin/time -f "$TIMEFMT" -o "$WORK/run.time" taskset -c "$CPU" \
  $VANE run --config "$WORK/run.toml" --exit-when-idle "${IDLE}s" 2> "$WORK/run.log"

python3 - "$WORK" "$LINES" <<'PY'
import re, sys
work, lines = sys.argv[1], int(sys.argv[2])

def gnu_time(name):
    e, u, s, rss = open(f"{work}/{name}.time").read().split()[-4:]
    return float(e), float(u) + float(s), int(rss) / 1024

replay_log = open(f"{work}/replay.log").read()
m = re.search(r"replay: lines (\d+) .*\| ([\d.]+) s, (\d+) lines/s", replay_log)
replay_lines, replay_s, replay_rate = int(m.group(1)), float(m.group(2)), float(m.group(3))
run_log = open(f"{work}/run.log").read()
m = re.search(r"run: input read in ([\d.]+) s, (\d+) lines/s \| (\d+) checkpoints in ([\d.]+) s, ([\d.]+) s of CPU \| slowest tick closing windows ([\d.]+) s", run_log)
run_s, run_rate, cps, cp_s, cp_cpu, slowest = float(m.group(1)), float(m.group(2)), int(m.group(3)), float(m.group(4)), float(m.group(5)), float(m.group(6))
m = re.search(r"^lines (\d+) ", run_log, re.M)
run_lines = int(m.group(1))

re_e, re_cpu, re_rss = gnu_time("replay")
ru_e, ru_cpu, ru_rss = gnu_time("run")
same = open(f"{work}/replay/windows.jsonl", "rb").read() == open(f"{work}/run/windows.jsonl", "rb").read()
rows = sum(1 for _ in open(f"{work}/run/windows.jsonl", "rb"))

print(f"input: {lines} gorouter lines; one core each (taskset); {rows} window rows")
print(f"{'':<8} {'lines':>9} {'input s':>8} {'lines/s':>10} {'CPU s':>7} {'peak RSS':>9}")
print(f"{'replay':<8} {replay_lines:>9} {replay_s:>8.2f} {replay_rate:>10,.0f} {re_cpu:>7.2f} {re_rss:>7.0f} MB")
print(f"{'run':<8} {run_lines:>9} {run_s:>8.2f} {run_rate:>10,.0f} {ru_cpu:>7.2f} {ru_rss:>7.0f} MB")
print(f"run / replay lines/s: {run_rate / replay_rate * 100:.0f} %")
print(f"checkpoints: {cps}, {cp_cpu:.3f} s of CPU = {cp_cpu / ru_cpu * 100:.1f} % of run's CPU time ({cp_s:.3f} s wall, fsync waits included)")
print(f"slowest tick closing windows (rows written by its end): {slowest:.3f} s")
print("window rows " + ("equal" if same else "DIFFER"))
sys.exit(0 if same and run_lines == replay_lines else 1)
PY
