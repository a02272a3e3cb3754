#!/usr/bin/env bash
# Vane against its peers on the same input, in one run, pinned to one core.
#
# Generates one realistic gorouter access log (default 2M lines, 200 apps, 2,000
# instances), then times on it, each pinned to CPU 0 with taskset:
#   - vane replay: decode + 10 s windows per app and per instance (rps,
#     concurrency, latency percentiles, status classes, bytes), written to a file
#   - mtail -one_shot: one regex, a counter of requests by status
#   - goaccess: its parser and status-code panel, JSON report
# and checks that all three agree on the per-status totals.
#
# Usage: scripts/bench-peers.sh    (LINES, APPS, INSTANCES, RPS, RUNS, CPU to override;
#                                   GOACCESS=0 leaves goaccess out; VANE= a built binary)
# A fleet where many instances are quiet (more than one window row per five
# lines): APPS=250 INSTANCES=2500 RPS=1000 scripts/bench-peers.sh
set -euo pipefail
cd "$(dirname "$0")/.."

LINES=${LINES:-2000000}
APPS=${APPS:-200}
INSTANCES=${INSTANCES:-2000}
RPS=${RPS:-20000}
GOACCESS=${GOACCESS:-1}
RUNS=${RUNS:-3}
CPU=${CPU:-0}
WORK=${WORK:-target/bench-peers}
mkdir -p "$WORK"

need=()
command -v mtail >/dev/null || need+=(mtail)
[ "$GOACCESS" = 0 ] || command -v goaccess >/dev/null || need+=(goaccess)
command -v hyperfine >/dev/null || need+=(hyperfine)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]} (apt)" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

# VANE=path/to/vane runs a binary already built (skips the build).
if [ -z "${VANE:-}" ]; then
  cargo build --release --quiet
  VANE=target/release/vane
fi
LOG="$WORK/gorouter-${LINES}-${APPS}-${INSTANCES}-${RPS}.log"
if [ ! -s "$LOG" ]; then
  echo "generating $LOG" >&2
  $VANE generate --format gorouter --lines "$LINES" --apps "$APPS" --instances "$INSTANCES" \
    --rps "$RPS" --seed 42 --out "$LOG"
fi
BYTES=$(stat -c %s "$LOG")

mkdir -p "$WORK/mtail-progs"
cat > "$WORK/mtail-progs/gorouter.mtail" <<'MTAIL'
counter requests_total by status
/^\S+ - \[[^\]]+\] "[^"]*" (?P<status>\d{3}) / {
  requests_total[$status]++
}
MTAIL

GOACCESS_FORMAT='%v - [%dT%t.%^] "%r" %s %^ %b "%R" "%u" "%h:%^" %^'

hyperfine --runs "$RUNS" --warmup 1 --style basic --export-json "$WORK/times.json" \
  -n vane "taskset -c $CPU $VANE replay --format gorouter --out $WORK/vane-windows.jsonl --dead-letters $WORK/vane-dead.jsonl $LOG" \
  -n mtail "taskset -c $CPU mtail -one_shot -one_shot_format prometheus -progs $WORK/mtail-progs -logs $LOG -logtostderr > $WORK/mtail.prom 2>/dev/null" \
  >&2
# goaccess takes minutes on this input (it keeps every distinct host, path and
# agent): one run, no warm-up.
[ "$GOACCESS" = 0 ] || hyperfine --runs 1 --style basic --export-json "$WORK/times-goaccess.json" \
  -n goaccess "taskset -c $CPU goaccess $LOG --log-format='$GOACCESS_FORMAT' --date-format=%Y-%m-%d --time-format=%H:%M:%S --no-global-config -o $WORK/goaccess.json > /dev/null 2>&1" \
  >&2

python3 - "$WORK" "$LINES" "$BYTES" "$GOACCESS" <<'PY'
import json, re, sys
from collections import Counter
work, lines, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with_goaccess = sys.argv[4] != "0"
rows = 0

vane = Counter()
for line in open(f"{work}/vane-windows.jsonl"):
    rows += 1
    w = json.loads(line)
    if w["instance"] is None:
        for k, v in w["status"].items():
            vane[k] += v
mtail = Counter()
for line in open(f"{work}/mtail.prom"):
    m = re.match(r'requests_total\{.*status="(\d)\d\d".*\} (\S+)', line)
    if m:
        mtail[m.group(1) + "xx"] += int(float(m.group(2)))
classes = ["2xx", "3xx", "4xx", "5xx"]
tools = ["vane", "mtail"]
goaccess = Counter()
if with_goaccess:
    tools.append("goaccess")
    for item in json.load(open(f"{work}/goaccess.json"))["status_codes"]["data"]:
        goaccess[item["data"][:3]] += item["hits"]["count"]
else:
    goaccess = mtail
agree = all(vane[c] == mtail[c] == goaccess[c] for c in classes)

files = ["times.json"] + (["times-goaccess.json"] if with_goaccess else [])
times = {r["command"]: r for f in files for r in json.load(open(f"{work}/{f}"))["results"]}
base = lines / times["mtail"]["mean"]
print(f"input: {lines} gorouter lines, {size / 1e6:.0f} MB, {rows} window rows (a row per {lines / max(rows, 1):.1f} lines); one core each; mean of runs")
print(f"{'tool':<10} {'seconds':>8} {'lines/s':>12} {'MB/s':>8} {'vs mtail':>9}")
for name in tools:
    t = times[name]["mean"]
    print(f"{name:<10} {t:>8.3f} {lines / t:>12,.0f} {size / 1e6 / t:>8.1f} {lines / t / base:>8.1f}x")
print("status totals " + ("agree" if agree else "DISAGREE") + ": " +
      ", ".join(f"{c} {vane[c]}/{mtail[c]}/{goaccess[c]}" for c in classes) + " (vane/mtail/" + ("goaccess)" if with_goaccess else "mtail)"))
sys.exit(0 if agree else 1)
PY
