#!/usr/bin/env bash
# Measures what an outlier costs the search (issue 11, item 10): `seedlm compress` of a 256×256
# N(0, 0.02) tensor with one weight set to OUTLIER against the same tensor without it, RUNS times
# each. Prints the median CPU time (user + system) of each, their ratio, and whether the packed
# files of every run agree.
#   usage: scripts/outlier_cost.sh [SEEDLM_BINARY] [THREADS] [RUNS] [OUTLIER] [BITS]
set -euo pipefail
source "$(dirname "$0")/seedlm_bin.sh"
bin=$(seedlm_bin release "${1:-}")
threads=${2:-2}
runs=${3:-3}
outlier=${4:-3e4}
bits=${5:-4}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The two tensors, from the Python standard library only (same weights in both).
PYTHONPATH="$(dirname "$0")" python3 - "$work" "$outlier" <<'PY'
import random, struct, sys
import safetensors_file
work, outlier = sys.argv[1], float(sys.argv[2])
rng = random.Random(5)
w = [rng.gauss(0.0, 0.02) for _ in range(256 * 256)]
for name, values in (("normal", w), ("outlier", w[:1000] + [outlier] + w[1001:])):
    data = struct.pack("<%df" % len(values), *values)
    safetensors_file.write(f"{work}/{name}.safetensors", [("w.weight", "F32", [256, 256], data)])
PY

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
for name in normal outlier; do
  for ((i = 0; i < runs; i++)); do
    /usr/bin/time -f "%U %S" -a -o "$work/$name.times" "$bin" compress "$work/$name.safetensors" \
      -o "$work/$name.$i.seedlm" --include '.*' --bits "$bits" --threads "$threads" >/dev/null 2>&1
    cmp -s "$work/$name.0.seedlm" "$work/$name.$i.seedlm" || echo "$name: run $i differs from run 0"
  done
  awk '{ printf "%.2f\n", $1 + $2 }' "$work/$name.times" | median >"$work/$name.median"
  echo "$name: CPU $(tr '\n' ' ' <"$work/$name.times" | awk '{ for (i = 1; i <= NF; i += 2) printf "%.2f ", $i + $(i + 1) }')s, median $(cat "$work/$name.median") s"
done
awk -v n="$(cat "$work/normal.median")" -v o="$(cat "$work/outlier.median")" \
  'BEGIN { printf "outlier / normal CPU: %.2f\n", o / n }'
