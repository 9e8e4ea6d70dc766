#!/usr/bin/env bash
# Compression throughput of the app against the CLI on the same tensors (issue 12).
#
#   scripts/app_throughput.sh [--runs N] [--model PATH] [TENSOR...]
#
# Alternates N runs (default 5) of
#   app: `seedlm gui MODEL --compress T... --exit-when-done` under Xvfb, which prints one JSON
#        line (blocks, seconds, blocks/s, UI thread CPU seconds, frames drawn) for the
#        compression alone, from the frame that starts it to the frame that sees it end;
#   cli: `seedlm compress MODEL --include '^(T|...)$' --json`, its tensors' blocks and its
#        totals' seconds (compression and writing the small packed file; opening not counted),
# both on the machine's cores (the app's pool and the CLI's default), and prints the medians
# and the app/CLI ratio of blocks/s. The default tensors are layers 0 and 1 of the bundled demo
# model (all-MiniLM-L6-v2). Needs Xvfb (scripts/setup.sh installs it).
set -euo pipefail
cd "$(dirname "$0")/.."

runs=5
model=assets/demo/model.safetensors
tensors=()
while (($#)); do
  case "$1" in
    --runs) runs=$2; shift ;;
    --model) model=$2; shift ;;
    -*) echo "usage: $0 [--runs N] [--model PATH] [TENSOR...]" >&2; exit 2 ;;
    *) tensors+=("$1") ;;
  esac
  shift
done
# Default: every linear layer of layers 0 and 1 (442 368 blocks, ~16 s a run): long enough
# that start-up and the frame the app notices the end in are small beside it.
if ((${#tensors[@]} == 0)); then
  for l in 0 1; do
    for n in attention.self.query attention.self.key attention.self.value attention.output.dense \
      intermediate.dense output.dense; do
      tensors+=("encoder.layer.$l.$n.weight")
    done
  done
fi

source "$(dirname "$0")/seedlm_bin.sh"
bin=$(seedlm_bin debug)

work=$(mktemp -d /tmp/seedlm-throughput-XXXXXX)
disp=$((200 + RANDOM % 100))
Xvfb ":$disp" -screen 0 1600x1000x24 -nolisten tcp >/dev/null 2>&1 &
xvfb=$!
trap 'kill "$xvfb" 2>/dev/null || true; rm -rf "$work"' EXIT
sleep 1

# Both run on a copy, whose resume sidecar (which the app writes next to the model and would
# hand finished tensors back from) is removed after every app run.
cp -r "$model" "$work/"
model=$work/$(basename "$model")

compress_args=()
for t in "${tensors[@]}"; do compress_args+=(--compress "$t"); done
include="^($(printf '%s\n' "${tensors[@]}" | sed 's/[.]/\\./g' | paste -sd '|'))\$"

# Field $2 of the JSON line $1.
field() { python3 -c 'import json, sys; v = json.loads(sys.argv[1])[sys.argv[2]]; print(v)' "$1" "$2"; }

echo "run  app blocks/s  cli blocks/s  app frames/s  app UI core share"
app_rates=() cli_rates=() fps=() shares=()
for ((r = 1; r <= runs; r++)); do
  line=$(DISPLAY=":$disp" timeout 1800 "$bin" gui "$model" "${compress_args[@]}" --exit-when-done 2>"$work/app.err" | tail -n 1)
  find "$work" -name '*.seedlm-resume' -prune -exec rm -rf {} +
  blocks=$(field "$line" blocks)
  if ((blocks == 0)); then
    echo "app_throughput: the app compressed nothing: $line" >&2
    cat "$work/app.err" >&2
    exit 1
  fi
  app_rates+=("$(field "$line" blocks_per_s)")
  fps+=("$(field "$line" frames_per_s)")
  shares+=("$(field "$line" ui_core_share)")

  rm -f "$work/out.safetensors"
  "$bin" compress "$model" --include "$include" -o "$work/out.safetensors" --json >"$work/cli.json" 2>"$work/cli.err"
  read -r cli_blocks secs < <(python3 -c 'import json, sys
r = json.load(open(sys.argv[1]))
print(sum(t["blocks"] for t in r["tensors"]), r["totals"]["seconds"])' "$work/cli.json")
  if [ "$cli_blocks" != "$blocks" ]; then
    echo "app_throughput: the app compressed $blocks blocks, the CLI $cli_blocks" >&2
    exit 1
  fi
  cli_rates+=("$(awk -v b="$cli_blocks" -v s="$secs" 'BEGIN { printf "%.1f", b / s }')")
  printf '%3d  %12.1f  %12.1f  %12.2f  %17.3f\n' "$r" "${app_rates[-1]}" "${cli_rates[-1]}" "${fps[-1]}" "${shares[-1]}"
done

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
app=$(median "${app_rates[@]}")
cli=$(median "${cli_rates[@]}")
echo "tensors: ${tensors[*]} ($blocks blocks), $(nproc) cores, $runs runs each, alternating"
echo "median app $app blocks/s, CLI $cli blocks/s: app/CLI $(awk -v a="$app" -v c="$cli" 'BEGIN { printf "%.3f", a / c }')"
echo "median app frames/s while compressing $(median "${fps[@]}"), UI thread $(median "${shares[@]}") of a core"
