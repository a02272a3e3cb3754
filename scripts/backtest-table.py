#!/usr/bin/env python3
"""Vane's default policy against hpa-ideal, hpa and kpa on every generated
shape at start-up times of 30 s and 90 s: the table in docs/backtest.md.

    VANE=target/debug/vane python3 scripts/backtest-table.py

Prints one Markdown row per shape and start-up time: instance-seconds,
under-provisioned instance-seconds and scale actions, and Vane's in percent
of hpa-ideal's. With STRICT=1 it exits 1 when a row misses the bar that
tests/backtest.rs holds.
"""
import json
import os
import subprocess
import sys

VANE = os.environ.get("VANE", "target/debug/vane")
SHAPES = os.environ.get("SHAPES", "on-off,noisy,staircase,flash,diurnal,step,sawtooth")
STARTUPS = os.environ.get("STARTUPS", "30s,90s").split(",")
CONTENDERS = ["vane", "hpa-ideal", "hpa", "kpa"]


def run(startup):
    out = subprocess.run(
        [VANE, "backtest", "--shape", SHAPES, "--startup", startup,
         "--compare", ",".join(CONTENDERS), "--json"],
        check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(out)


def pct(a, b):
    return f"{a / b * 100:.0f}%" if b > 0 else ("0" if a == 0 else "inf")


def main():
    print("| shape | start-up | instance-s vane / hpa-ideal | under-provisioned inst-s vane / hpa-ideal "
          "| actions vane / hpa-ideal / kpa | inst-s vs hpa-ideal | under vs hpa-ideal |")
    print("|---|---|---|---|---|---|---|")
    failed = 0
    for startup in STARTUPS:
        for app in run(startup):
            runs = {r["contender"]: r for r in app["runs"]}
            v, h, k = runs["vane"], runs["hpa-ideal"], runs["kpa"]
            vu, hu = v["under_provisioned_instance_seconds"], h["under_provisioned_instance_seconds"]
            vi, hi = v["instance_seconds"], h["instance_seconds"]
            # The bar of tests/backtest.rs (cost and actions; under-provisioning
            # no worse, or noise below 0.2 % of the instance-seconds).
            ok = vi <= 1.05 * hi and (vu <= hu or vu <= 0.002 * vi) \
                and v["scale_actions"] <= h["scale_actions"] and v["scale_actions"] < k["scale_actions"]
            failed += not ok
            print(f"| {app['input']} | {startup} | {vi:.0f} / {hi:.0f} | {vu:.0f} / {hu:.0f} "
                  f"| {v['scale_actions']} / {h['scale_actions']} / {k['scale_actions']} "
                  f"| {pct(vi, hi)} | {pct(vu, hu)} |")
    sys.exit(1 if failed and os.environ.get("STRICT") else 0)


if __name__ == "__main__":
    main()
