#!/usr/bin/env bash
# A soak on hostile input: `vane run` follows a gorouter log that a writer
# appends to live for DURATION seconds at RATE lines/s, 1 % of them hostile
# (scripts/soak.py: times a year ahead and two years back, made-up app ids,
# 1.5 MiB lines, invalid UTF-8, a response time past 2^63 ns). Its RSS is
# sampled every 10 s; at the end every good line must be in the windows,
# every bad one a dead letter of its kind (or late), and nothing panicked.
#
# Usage: scripts/soak.sh      (DURATION=1800 RATE=2000 by default;
#                              VANE= a built binary, WORK= where it runs)
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-1800}
RATE=${RATE:-2000}
WORK=${WORK:-target/soak}
PORT=${PORT:-19464}
if [ -z "${VANE:-}" ]; then
  cargo build --release --quiet
  VANE=target/release/vane
fi
rm -rf "$WORK" && mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
: > "$WORK/router.log"
cat > "$WORK/vane.toml" <<EOF
data_dir = "$WORK/data"
rules = ["$PWD/rules"]
[[sources]]
type = "file"
path = "$WORK/router.log"
format = "gorouter"
start_at = "beginning"
[api]
listen = "127.0.0.1:$PORT"
EOF

VANE_LOG=warn "$VANE" run --exit-when-idle 15s --config "$WORK/vane.toml" \
  > "$WORK/run.out" 2> "$WORK/run.err" &
VANE_PID=$!
python3 scripts/soak.py write "$WORK/router.log" "$DURATION" "$RATE" "$WORK/tally.json" &
WRITER_PID=$!

echo "seconds,rss_kib" > "$WORK/rss.csv"
start=$(date +%s)
while kill -0 "$VANE_PID" 2>/dev/null; do
  rss=$(awk '/^VmRSS/ {print $2}' "/proc/$VANE_PID/status" 2>/dev/null || true)
  [ -n "$rss" ] && echo "$(( $(date +%s) - start )),$rss" >> "$WORK/rss.csv"
  if ! kill -0 "$WRITER_PID" 2>/dev/null && [ ! -s "$WORK/metrics.txt" ]; then
    curl -s "http://127.0.0.1:$PORT/metrics" > "$WORK/metrics.txt" || true
  fi
  sleep 10
done
wait "$WRITER_PID"
status=0
wait "$VANE_PID" || status=$?
echo "vane run exited with $status" >&2
cat "$WORK/run.out" "$WORK/run.err" > "$WORK/summary.txt"

# RSS after warm-up: the last third against the first third after the
# first 10 % (windows, decider and series maps filled).
python3 - "$WORK/rss.csv" <<'PY'
import csv, sys
rows = [(int(r["seconds"]), int(r["rss_kib"])) for r in csv.DictReader(open(sys.argv[1]))]
n = len(rows)
if n < 10:
    sys.exit(f"only {n} RSS samples")
warm = rows[n // 10 : n // 10 + n // 3]
late = rows[-(n // 3):]
peak_warm = max(r for _, r in warm)
peak_late = max(r for _, r in late)
print(f"RSS MiB: after warm-up peak {peak_warm / 1024:.1f}, last third peak {peak_late / 1024:.1f}, end {rows[-1][1] / 1024:.1f} ({n} samples)")
if peak_late > peak_warm * 1.15 + 8 * 1024:
    sys.exit("RSS grew after warm-up")
PY
grep -E '^vane_dead_letters_total|^vane_lost_total' "$WORK/metrics.txt" | grep -v ' 0$' || true
python3 scripts/soak.py check "$WORK/data" "$WORK/tally.json" "$WORK/summary.txt"
[ "$status" = 0 ]
