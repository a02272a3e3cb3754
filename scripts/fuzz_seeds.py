#!/usr/bin/env python3
"""Seed inputs for the fuzz targets (scripts/fuzz.sh), made at each run.

Usage: fuzz_seeds.py OUT_DIR SHARED_DATA_DIR

Writes OUT_DIR/<target>/<n> files: small pieces of real inputs (access logs,
app logs, envelopes, expositions from ../shared/data; rules, configuration
and examples from the repository) in the shape each target reads. The seeds
stay outside the repository; only what the fuzzer finds from them is kept.
"""
import glob
import os
import re
import sys

out_dir, shared = sys.argv[1], sys.argv[2]

# The order of the formats the pipeline target's first byte picks
# (src/fuzzing.rs PIPELINE_FORMATS).
AUTO, GOROUTER, NGINX_JSON, COMBINED, INGRESS, LOGGREGATOR = range(6)
MAX_SEED = 8192


def read(path):
    with open(path, "rb") as f:
        return f.read()


def pieces(data, lines_per_piece, limit=40):
    """Consecutive runs of whole lines, at most `limit` of them."""
    lines = data.splitlines(keepends=True)
    out = []
    for i in range(0, len(lines), lines_per_piece):
        piece = b"".join(lines[i : i + lines_per_piece])[:MAX_SEED]
        if piece.strip():
            out.append(piece)
        if len(out) >= limit:
            break
    return out


class Seeds:
    def __init__(self):
        self.count = {}

    def add(self, target, data):
        d = os.path.join(out_dir, target)
        os.makedirs(d, exist_ok=True)
        n = self.count.get(target, 0)
        self.count[target] = n + 1
        with open(os.path.join(d, f"seed-{n:04}"), "wb") as f:
            f.write(data[:MAX_SEED])


seeds = Seeds()
access = {
    "access-logs/gorouter_access_log_samples.log": GOROUTER,
    "access-logs/beats_nginx_ingress_controller_test.log": INGRESS,
    "access-logs/elastic_apache_logs.log": COMBINED,
}
for rel, fmt in access.items():
    path = os.path.join(shared, rel)
    if os.path.exists(path):
        for p in pieces(read(path), 3):
            seeds.add("pipeline", bytes([fmt]) + p)
            seeds.add("pipeline", bytes([AUTO]) + p)
for path in glob.glob("examples/input/*.log"):
    for p in pieces(read(path), 5, limit=10):
        seeds.add("pipeline", bytes([GOROUTER]) + p)
seeds.add(
    "pipeline",
    bytes([NGINX_JSON])
    + b'{"msec":"1700000000.123","host":"a","status":"200","request_time":"0.1",'
    b'"upstream_addr":"1.2.3.4:80, 5.6.7.8:80","bytes_sent":"512"}\n',
)

sse = os.path.join(shared, "container-metrics/loggregator_rlp_gateway_sse_sample.txt")
envelopes = [read(sse)] if os.path.exists(sse) else []
envelopes += [read(p) for p in glob.glob("examples/input/*.jsonl")]
for data in envelopes:
    for p in pieces(data, 2, limit=20):
        seeds.add("loggregator", p)
        seeds.add("pipeline", bytes([LOGGREGATOR]) + p)
        seeds.add("sse", bytes([7]) + p)

for path in sorted(glob.glob(os.path.join(shared, "app-logs/*"))):
    if "LICENSE" in path:
        continue
    for p in pieces(read(path), 25, limit=8):
        seeds.add("app_log", p)

for path in sorted(glob.glob(os.path.join(shared, "container-metrics/*.prom"))):
    for p in pieces(read(path), 40, limit=10):
        seeds.add("prometheus", p)

rule_files = sorted(glob.glob("rules/*.yaml") + glob.glob("tests/cases/*/*.yaml"))
for path in rule_files:
    data = read(path)
    seeds.add("rules", data)
    for expr in re.findall(rb"expr: *(.+)", data):
        seeds.add("alert_expr", expr.strip())
seeds.add("alert_expr", b"(rps > 1 or (p99_ms >= 200)) and error_ratio != 0")

for path in ["vane.toml"] + sorted(glob.glob("tests/cases/*/*.toml")):
    if os.path.exists(path):
        seeds.add("config", read(path))
# The configuration examples of the documentation.
for path in ["README.md"] + sorted(glob.glob("docs/*.md")):
    for block in re.findall(rb"```toml\n(.*?)```", read(path), re.S):
        seeds.add("config", block)

seeds.add("backtest_csv", b"time,rps,app\n2026-03-01T10:00:00Z,5,web\n2026-03-01T10:00:10Z,7.5,web\n")
seeds.add("backtest_csv", b"1700000000,3\n1700000010,4\n1700000020,0\n")

for target, n in sorted(seeds.count.items()):
    print(f"seeds: {target} {n}", file=sys.stderr)
