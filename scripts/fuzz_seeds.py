#!/usr/bin/env python3
"""Seed inputs for the fuzz targets (scripts/fuzz.sh), made at each run.

Usage: fuzz_seeds.py OUT_DIR VANE

Writes OUT_DIR/<target>/<n> files in the shape each target reads, made
only from what the repository has: `vane generate` output in every access
format and as Loggregator envelopes, app-log and Prometheus samples written
here, the repository's rules, configuration and documented examples. The
corpus the fuzzer keeps (fuzz/corpus/, in git) grows from these, so no
third-party data ends up in the repository.
"""
import glob
import os
import re
import subprocess
import sys

out_dir, vane = sys.argv[1], sys.argv[2]

# The order of the formats the pipeline target's first byte picks
# (src/fuzzing.rs PIPELINE_FORMATS).
FORMATS = ["auto", "gorouter", "nginx-json", "combined", "ingress-nginx", "loggregator"]
MAX_SEED = 8192


def pieces(data, lines_per_piece, limit=20):
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


def generated(fmt, lines=60):
    return subprocess.run(
        [vane, "generate", "--format", fmt, "--lines", str(lines), "--apps", "3",
         "--instances", "6", "--rps", "20", "--seed", "1", "--error-burst", "1,3,0.5"],
        check=True, capture_output=True,
    ).stdout


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
for pick, fmt in enumerate(FORMATS):
    if fmt == "auto":
        continue
    text = generated(fmt)
    for p in pieces(text, 3, limit=12):
        seeds.add("pipeline", bytes([pick]) + p)
        seeds.add("pipeline", bytes([0]) + p)
    if fmt == "loggregator":
        for p in pieces(text, 2, limit=12):
            seeds.add("loggregator", p)
            seeds.add("loggregator", b"data: " + p)
            seeds.add("sse", bytes([7]) + b"data: " + p.replace(b"\n", b"\n\ndata: "))
    if fmt == "gorouter":
        # As a Cloud Foundry syslog drain sends them: octet-counted, the
        # router's lines and an app's, one frame per line.
        for p in pieces(text, 3, limit=8):
            frames = b""
            for i, line in enumerate(p.splitlines()):
                proc = b"[RTR/1]" if i % 2 == 0 else b"[APP/PROC/WEB/0]"
                msg = b"<14>1 2026-03-01T10:00:00.123456Z org.space.app app-guid " + proc + b" - - " + line
                frames += str(len(msg)).encode() + b" " + msg
            seeds.add("syslog", bytes([13]) + frames)
            seeds.add("syslog", bytes([255]) + frames.replace(b" <14>", b"\n<14>"))
for path in glob.glob("examples/input/*"):
    data = open(path, "rb").read()
    pick = FORMATS.index("loggregator") if path.endswith(".jsonl") else FORMATS.index("gorouter")
    for p in pieces(data, 5, limit=6):
        seeds.add("pipeline", bytes([pick]) + p)

APP_LOGS = [
    b"2026-03-01 10:00:00,123 INFO  [main] com.example.Shop - started in 2.3 s\n"
    b"2026-03-01 10:00:01,004 ERROR [http-1] com.example.Cart - checkout failed\n"
    b"java.lang.IllegalStateException: no stock\n"
    b"\tat com.example.Cart.checkout(Cart.java:42)\n"
    b"\tat com.example.Api.post(Api.java:7)\n"
    b"Caused by: java.sql.SQLException: timeout\n"
    b"\t... 12 more\n"
    b"2026-03-01 10:00:02,000 WARN  [http-2] com.example.Cart - slow\n",
    b'{"@timestamp":"2026-03-01T10:00:00.123Z","level":"ERROR","logger":"shop",'
    b'"message":"boom","stack_trace":"java.lang.RuntimeException: x\\n\\tat a.b(C.java:1)"}\n'
    b'{"time":1772359200,"level":"info","msg":"ok","app":"web","instance":"2"}\n',
    b"[2026-03-01 10:00:00,000] INFO [Controller id=0] Ready (kafka.controller)\n"
    b"plain line without a head\n"
    b"    continuation\n",
    b"I0301 10:00:00.000000       1 main.go:42] serving\n"
    b"2026-03-01T10:00:00Z DEBUG worker 3 idle\n",
]
for text in APP_LOGS:
    seeds.add("app_log", text)

PROMETHEUS = (
    b"# HELP container_cpu_usage_seconds_total Cumulative cpu time consumed\n"
    b"# TYPE container_cpu_usage_seconds_total counter\n"
    b'container_cpu_usage_seconds_total{container="web",cpu="total",namespace="shop",'
    b'pod="web-7d9f-abc12",image="web:1"} 12.5 1772359200000\n'
    b'container_memory_working_set_bytes{container="web",namespace="shop",pod="web-7d9f-abc12"} 2.5e+08\n'
    b'container_spec_memory_limit_bytes{container="web",namespace="shop",pod="web-7d9f-abc12"} 5.36870912e+08\n'
    b'container_spec_cpu_quota{container="web",namespace="shop",pod="web-7d9f-abc12"} 50000\n'
    b'container_spec_cpu_period{container="web",namespace="shop",pod="web-7d9f-abc12"} 100000\n'
    b'container_cpu_usage_seconds_total{container="POD",namespace="shop",pod="web-7d9f-abc12"} 1\n'
    b'container_oom_events_total{container="web",namespace="shop",pod="web-7d9f-abc12"} 0 -1\n'
    b'node_memory_MemTotal_bytes NaN\nup +Inf\nx{a="\\"q\\"\\n"} -Inf\n'
)
seeds.add("prometheus", PROMETHEUS)
for p in pieces(PROMETHEUS, 3):
    seeds.add("prometheus", p)

rule_files = sorted(glob.glob("rules/*.yaml") + glob.glob("tests/cases/*/*.yaml"))
for path in rule_files:
    data = open(path, "rb").read()
    seeds.add("rules", data)
    for expr in re.findall(rb"expr: *(.+)", data):
        seeds.add("alert_expr", expr.strip())
seeds.add("alert_expr", b"(rps > 1 or (p99_ms >= 200)) and error_ratio != 0")

for path in ["vane.toml"] + sorted(glob.glob("tests/cases/*/*.toml")):
    if os.path.exists(path):
        seeds.add("config", open(path, "rb").read())
# The configuration examples of the documentation.
for path in ["README.md"] + sorted(glob.glob("docs/*.md")):
    for block in re.findall(rb"```toml\n(.*?)```", open(path, "rb").read(), re.S):
        seeds.add("config", block)

seeds.add("backtest_csv", b"time,rps,app\n2026-03-01T10:00:00Z,5,web\n2026-03-01T10:00:10Z,7.5,web\n")
seeds.add("backtest_csv", b"1700000000,3\n1700000010,4\n1700000020,0\n")
csv = subprocess.run([vane, "generate", "--shape", "diurnal"], capture_output=True).stdout
if csv:
    seeds.add("backtest_csv", csv[:MAX_SEED])

for target, n in sorted(seeds.count.items()):
    print(f"seeds: {target} {n}", file=sys.stderr)
