#!/usr/bin/env python3
"""Hostile traffic for the soak (scripts/soak.sh), and the check of what
`vane run` made of it.

  soak.py write LOG SECONDS RATE TALLY   append gorouter lines live, 1 % hostile
  soak.py check DATA_DIR TALLY SUMMARY   compare vane's outputs with the tally

Hostile kinds (each ~1/7 of the 1 %): a time a year ahead (skewed clock:
dead letter), two years back (late: counted, never in a window), a made-up
app id (a good line of a new series), a 1.5 MiB line (cut at 1 MiB into two
parts, both dead letters), invalid UTF-8 (dead letter), a response time
past 2^63 ns (dead letter), bytes of 2^64 - 1 (20 digits: dead letter).
A good line now and then carries bytes of 10^19 - 1 (sums saturate; the
line counts). The first 1,000 lines are good: they set the stream's time.
"""
import datetime
import json
import os
import random
import re
import sys
import time
import uuid

APPS = [(f"app{i}.apps.example.com", str(uuid.UUID(int=i + 1))) for i in range(50)]
INSTANCES = 4
LONG_LINE = 3 << 19  # 1.5 MiB


def stamp(t):
    dt = datetime.datetime.fromtimestamp(t, datetime.timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{int((t % 1) * 1e9):09d}Z"


def line(t, host, app_id, index, status=200, rt="0.012345678", sent=512):
    return (
        f'{host} - [{stamp(t)}] "GET /api/items HTTP/1.1" {status} 0 {sent} "-" '
        f'"curl/8.5" "10.1.0.{index}:40000" "10.0.0.{index}:61000" '
        f'x_forwarded_for:"10.1.0.{index}" x_forwarded_proto:"https" '
        f'vcap_request_id:"{uuid.uuid4()}" response_time:{rt} gorouter_time:0.000100 '
        f'app_id:"{app_id}" app_index:"{index}" instance_id:"{app_id[:8]}-{index}"\n'
    ).encode()


def write(log, seconds, rate, tally_path):
    rng = random.Random(7)
    tally = dict.fromkeys(
        ["lines", "good", "future", "past", "spoofed", "long", "bad_utf8", "huge_rt", "huge_bytes", "big_bytes"], 0
    )
    end = time.time() + seconds
    with open(log, "ab", buffering=0) as out:
        while time.time() < end:
            started = time.time()
            batch = []
            for _ in range(max(1, rate // 10)):
                now = time.time()
                host, app_id = rng.choice(APPS)
                index = rng.randrange(INSTANCES)
                roll = rng.random()
                tally["lines"] += 1
                if roll >= 0.01 or tally["lines"] <= 1000:
                    if rng.random() < 0.001:
                        batch.append(line(now, host, app_id, index, sent=10**19 - 1))
                        tally["big_bytes"] += 1
                    else:
                        batch.append(line(now, host, app_id, index))
                    tally["good"] += 1
                    continue
                kind = rng.choice(
                    ["future", "past", "spoofed", "long", "bad_utf8", "huge_rt", "huge_bytes"]
                )
                tally[kind] += 1
                if kind == "future":
                    batch.append(line(now + 365 * 86400, host, app_id, index))
                elif kind == "past":
                    batch.append(line(now - 2 * 365 * 86400, host, app_id, index))
                elif kind == "spoofed":
                    batch.append(line(now, "spoofed.example.com", str(uuid.uuid4()), 0))
                    tally["good"] += 1
                elif kind == "long":
                    batch.append(b"x" * LONG_LINE + b"\n")
                elif kind == "huge_bytes":
                    batch.append(line(now, host, app_id, index, sent=2**64 - 1))
                elif kind == "bad_utf8":
                    batch.append(line(now, host, app_id, index).replace(b"/api/items", b"/api/\xff\xfe"))
                else:
                    batch.append(line(now, host, app_id, index, rt="9223372036.854775807"))
            out.write(b"".join(batch))
            time.sleep(max(0.0, 0.1 - (time.time() - started)))
    with open(tally_path, "w") as f:
        json.dump(tally, f)


def check(data_dir, tally_path, summary_path):
    tally = json.load(open(tally_path))
    requests = 0
    for raw in open(os.path.join(data_dir, "windows.jsonl")):
        row = json.loads(raw)
        if row.get("instance") is None:
            requests += row["requests"]
    kinds = {}
    for raw in open(os.path.join(data_dir, "dead-letters.jsonl"), "rb"):
        kind = json.loads(raw)["kind"]
        kinds[kind] = kinds.get(kind, 0) + 1
    summary = open(summary_path, errors="replace").read()
    m = re.search(r"lines (\d+) decoded (\d+) late (\d+) dead_letters (\d+)", summary)
    want_dead = {
        "skewed_clock": tally["future"],
        "invalid_utf8": tally["bad_utf8"],
        "malformed": tally["huge_rt"] + tally["huge_bytes"] + 2 * tally["long"],
    }
    problems = []
    if requests != tally["good"]:
        problems.append(f"requests in windows {requests}, good lines written {tally['good']}")
    for kind, n in want_dead.items():
        if kinds.get(kind, 0) != n:
            problems.append(f"dead letters {kind}: {kinds.get(kind, 0)}, want {n}")
    if not m:
        problems.append("no counts line in the run's output")
    elif int(m.group(3)) != tally["past"]:
        problems.append(f"late {m.group(3)}, want {tally['past']}")
    if "panicked" in summary:
        problems.append("a panic")
    print(json.dumps({"tally": tally, "requests": requests, "dead_letters": kinds}, indent=1))
    for p in problems:
        print("PROBLEM:", p)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    if sys.argv[1] == "write":
        write(sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
    else:
        check(sys.argv[2], sys.argv[3], sys.argv[4])
