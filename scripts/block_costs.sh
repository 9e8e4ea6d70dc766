#!/usr/bin/env bash
# Measures search::BLOCK_COSTS: each bit-budget menu entry's search time per block in percent of
# a 4-bit preset block, as medians over rounds of per-round ratios (every entry and the preset
# once per round, one thread, N(0,1) blocks), and prints the table's lines.
#
#   scripts/block_costs.sh [--rounds N] [--blocks B]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=3 blocks=2000
while (($#)); do
  case "$1" in
    --rounds) rounds=$2; shift ;;
    --blocks) blocks=$2; shift ;;
    *) echo "usage: $0 [--rounds N] [--blocks B]" >&2; exit 2 ;;
  esac
  shift
done
source "$(dirname "$0")/seedlm_bin.sh"
bin=$(seedlm_bin release)
# core::config::MENU, in its order.
menu="14,4,16 12,3,16 13,4,16 11,3,16 12,4,16 10,3,16 11,4,16 9,3,16 10,4,16 8,3,16 11,6,16
9,4,16 8,4,16 7,3,16 7,4,16 6,3,16 6,4,16"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for ((r = 1; r <= rounds; r++)); do
  for cfg in $menu; do
    "$bin" bench --config "$cfg" --blocks "$blocks" --threads 1 --json 2>/dev/null |
      sed "s/^/$r /" >> "$out"
  done
done
python3 - "$out" <<'PY'
import json, statistics, sys
rates = {}
for line in open(sys.argv[1]):
    r, rec = line.split(" ", 1)
    j = json.loads(rec)
    rates.setdefault(int(r), {})[(j["C"], j["P"], j["K"])] = j["blocks_per_s"]
configs = list(next(iter(rates.values())))
for c, p, k in configs:
    ratio = statistics.median(v[(8, 3, 16)] / v[(c, p, k)] for v in rates.values())
    print(f"    (Config {{ c: {c}, p: {p}, k: {k} }}, {round(100 * ratio)}),")
PY
