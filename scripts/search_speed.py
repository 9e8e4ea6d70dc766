#!/usr/bin/env python3
"""Interleaved speed comparison for a shared, noisy machine (docs/measurements-search.md).

Each variant is a command that prints one JSON object with `blocks_per_s` (`seedlm bench --json`
or scripts/scalar_search.c). Every round runs each variant once, in an order that rotates from
round to round, so slow spells of the machine fall on all variants alike. Reports per variant the
median speed, and per requested ratio A/B the median over rounds of A's speed over B's in the
same round (a ratio of neighbours in time, steadier than a ratio of medians).

Usage: search_speed.py [--rounds N] NAME=COMMAND... [--ratio A/B]...
"""

import argparse
import json
import shlex
import statistics
import subprocess
import sys


def run(command):
    out = subprocess.run(shlex.split(command), check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["blocks_per_s"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--ratio", action="append", default=[], help="A/B: median of A over B")
    ap.add_argument("variants", nargs="+", help="NAME=COMMAND")
    args = ap.parse_args()
    variants = dict(v.split("=", 1) for v in args.variants)
    ratios = [r.split("/") for r in args.ratio]
    for a, b in ratios:
        if a not in variants or b not in variants:
            sys.exit(f"search_speed: unknown variant in ratio {a}/{b}")
    names = list(variants)
    speeds = {n: [] for n in names}
    for r in range(args.rounds):
        shift = r % len(names)
        for n in names[shift:] + names[:shift]:
            speeds[n].append(run(variants[n]))
        print(f"round {r + 1}: " + ", ".join(f"{n} {speeds[n][-1]:.1f}" for n in names),
              file=sys.stderr)
    result = {
        "rounds": args.rounds,
        "median_blocks_per_s": {n: statistics.median(s) for n, s in speeds.items()},
        "ratios": {
            f"{a}/{b}": statistics.median(x / y for x, y in zip(speeds[a], speeds[b]))
            for a, b in ratios
        },
        "runs_blocks_per_s": speeds,
    }
    for n in names:
        print(f"{n:24} {result['median_blocks_per_s'][n]:10.1f} blocks/s (median)")
    for k, v in result["ratios"].items():
        print(f"{k:24} {v:10.3f}× (median of per-round ratios)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
