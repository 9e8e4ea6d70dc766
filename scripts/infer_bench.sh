#!/usr/bin/env bash
# Generation speed and memory of one model in several stored forms, in the same engine.
#
#   scripts/infer_bench.sh [--runs N] [--threads T] [--tokens N] ORIGINAL_DIR LABEL=MODEL...
#
# Alternates N rounds (default 5) of `seedlm generate MODEL --original ORIGINAL_DIR --json
# --ignore-eos` over every LABEL=MODEL (a plain model directory or a packed file), each a new
# process, so every form sees the same machine state in turn; prints the medians of prompt
# tokens/s, generation tokens/s and peak resident memory, with ratios to the first form.
# The prompt is the first 64 tokens' worth of the bundled evaluation text.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=5 threads=2 tokens=64
while (($#)); do
  case "$1" in
    --runs) runs=$2; shift ;;
    --threads) threads=$2; shift ;;
    --tokens) tokens=$2; shift ;;
    -*) echo "usage: $0 [--runs N] [--threads T] [--tokens N] ORIGINAL_DIR LABEL=MODEL..." >&2; exit 2 ;;
    *) break ;;
  esac
  shift
done
(($# >= 2)) || { echo "usage: $0 [--runs N] [--threads T] [--tokens N] ORIGINAL_DIR LABEL=MODEL..." >&2; exit 2; }
original=$1; shift
source "$(dirname "$0")/seedlm_bin.sh"
bin=$(seedlm_bin release)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
head -c 300 assets/eval/pride-and-prejudice.txt > "$out/prompt.txt"
for ((r = 1; r <= runs; r++)); do
  for form in "$@"; do
    label=${form%%=*} model=${form#*=}
    "$bin" generate "$model" --original "$original" --prompt-file "$out/prompt.txt" \
      --max-tokens "$tokens" --ignore-eos --json --threads "$threads" 2>/dev/null >> "$out/$label.jsonl"
  done
done
python3 - "$out" "$@" <<'PY'
import json, statistics, sys
out, forms = sys.argv[1], [f.split("=", 1)[0] for f in sys.argv[2:]]
rows = {}
for f in forms:
    runs = [json.loads(l) for l in open(f"{out}/{f}.jsonl")]
    med = lambda k: statistics.median(r[k] for r in runs)
    rows[f] = dict(pp=med("prompt_tokens_per_s"), tg=med("generate_tokens_per_s"),
                   rss=med("peak_rss_bytes") / 1e6, weights=runs[0]["stored_weight_bytes"] / 1e6,
                   kernel=runs[0]["kernel"], threads=runs[0]["threads"], n=len(runs))
base = rows[forms[0]]
print(f"| form | weights MB | prompt tok/s | gen tok/s | gen × {forms[0]} | peak RSS MB | RSS × {forms[0]} |")
print("|---|---|---|---|---|---|---|")
for f in forms:
    r = rows[f]
    print(f"| {f} | {r['weights']:.0f} | {r['pp']:.1f} | {r['tg']:.2f} | {r['tg'] / base['tg']:.2f} "
          f"| {r['rss']:.0f} | {r['rss'] / base['rss']:.2f} |")
print(f"\nkernel {base['kernel']}, {base['threads']} threads, medians of {base['n']} interleaved runs")
PY
