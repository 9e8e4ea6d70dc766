#!/usr/bin/env bash
# The quality table of docs/README (issue #14): each encoder mode alone and combined, beside the
# data-free baselines, on one model, in one run. For every mode it compresses the model's linear
# layers, then reports bits per compressed weight and mean tensor relMSE (`inspect --json`) and
# the function-space figures (`eval --json`) on the bundled evaluation inputs.
#
#   scripts/levers.sh [MODEL_DIR] [MODE_NAME ...]      (default: assets/demo, every mode)
#
# Modes are "name|compress flags" lines below; calibration and sensitivity read the bundled
# Pride and Prejudice text, never the evaluation sentences.
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-assets/demo}
shift || true
source "$(dirname "$0")/seedlm_bin.sh"
bin=$(seedlm_bin debug)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
text=assets/eval/pride-and-prejudice.txt
calib=$work/calibration.txt
head -200 "$text" > "$calib"
# name|flags: lever 2 (larger P), lever 3 (bit budget: weight error alone, data-free sensitivity
# on the model's vocabulary, or sensitivity measured on the text), lever 4 (calibration), and
# all of them together.
modes=(
  "seedlm-4bit|--bits 4"
  "4bit-p6|--config 4bit-p6"
  "bpw-4.0-none|--target-bpw 4.0 --sensitivity none"
  "bpw-4.0|--target-bpw 4.0"
  "bpw-4.0-sens|--target-bpw 4.0 --sensitivity-text $text"
  "calib-4bit|--bits 4 --calibrate $calib"
  "combined-4.0|--target-bpw 4.0 --sensitivity-text $text --calibrate $calib"
  "seedlm-3bit|--bits 3"
  "bpw-3.0-none|--target-bpw 3.0 --sensitivity none"
  "bpw-3.0|--target-bpw 3.0"
  "bpw-3.0-sens|--target-bpw 3.0 --sensitivity-text $text"
  "calib-3bit|--bits 3 --calibrate $calib"
  "combined-3.0|--target-bpw 3.0 --sensitivity-text $text --calibrate $calib"
)

row() { # name, inspect json, eval json
  python3 - "$@" <<'PY'
import json, sys
name, ins, ev = sys.argv[1], json.load(open(sys.argv[2])), json.load(open(sys.argv[3]))
rel = [t["relmse"] for t in ins["tensors"] if t.get("compressed") and t.get("relmse") is not None]
bpw = ins["totals"]["bits_per_weight"]
sp = ev.get("similarity_spearman")
print(f"| {name} | {bpw:.3f} | {sum(rel)/len(rel):.4f} | {ev['mean_cosine']:.4f} | {ev['min_cosine']:.4f} | {sp:.4f} |")
PY
}

echo "| method | bits/weight | mean tensor relMSE | mean cosine | min cosine | similarity Spearman |"
echo "|---|---|---|---|---|---|"
"$bin" compare "$model" --methods rtn4-row,rtn4-g128,nf4-g64,rtn3-row,rtn3-g128 --eval --json \
  > "$work/baselines.json"
python3 - "$work/baselines.json" <<'PY'
import json, sys
rows = json.load(open(sys.argv[1]))
for m in dict.fromkeys(r["method"] for r in rows):
    per = [r for r in rows if r["method"] == m and r["tensor"] != "total"]
    tot = next(r for r in rows if r["method"] == m and r["tensor"] == "total")
    ev = tot["eval"]
    rel = sum(r["relmse"] for r in per) / len(per)
    print(f"| {m} | {tot['bits_per_weight']:.3f} | {rel:.4f} | {ev['mean_cosine']:.4f} | {ev['min_cosine']:.4f} | {ev['similarity_spearman']:.4f} |")
PY
for m in "${modes[@]}"; do
  name=${m%%|*}
  flags=${m#*|}
  if [ $# -gt 0 ] && ! printf '%s\n' "$@" | grep -qx "$name"; then continue; fi
  out="$work/$name.seedlm"
  # shellcheck disable=SC2086
  "$bin" compress "$model" -o "$out" $flags >/dev/null 2>"$work/$name.err" \
    || { echo "| $name | failed: $(tail -1 "$work/$name.err") |||||"; continue; }
  "$bin" inspect "$out" --json > "$work/$name.inspect.json"
  "$bin" eval "$model" "$out" --json > "$work/$name.eval.json"
  row "$name" "$work/$name.inspect.json" "$work/$name.eval.json"
done
