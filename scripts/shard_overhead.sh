#!/usr/bin/env bash
# Measures what sharding costs (docs/cluster.md): one `seedlm compress` against N = 1, 2, 4 shards
# run one after another, each on the same number of threads. Prints, per N, the sum of the
# shards' CPU time against the single run's, the merge time, the imbalance (slowest shard's CPU
# time / mean) and whether the merged file is byte-identical.
#   usage: scripts/shard_overhead.sh MODEL [THREADS] [SEEDLM_BINARY]
set -euo pipefail
model=${1:?usage: $0 MODEL [THREADS] [SEEDLM_BINARY]}
threads=${2:-1}
source "$(dirname "$0")/seedlm_bin.sh"
bin=$(seedlm_bin release "${3:-}")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# CPU seconds (user + system) and wall seconds of one command, appended to $work/times.
timed() { /usr/bin/time -f "%U %S %e" -a -o "$work/times" "$@" >/dev/null 2>&1; }
last_cpu() { tail -n 1 "$work/times" | awk '{ printf "%.2f", $1 + $2 }'; }
last_wall() { tail -n 1 "$work/times" | awk '{ printf "%.2f", $3 }'; }

timed "$bin" compress "$model" -o "$work/single.safetensors" --threads "$threads"
single=$(last_cpu)
echo "single run: $single s CPU, $(last_wall) s wall, $threads thread(s)"
for n in 1 2 4; do
  out="$work/n$n.safetensors"
  [ -d "$work/single.safetensors" ] && out="$work/n$n"
  cpus=()
  for ((i = 0; i < n; i++)); do
    timed "$bin" compress "$model" -o "$out" --shard "$i/$n" --threads "$threads"
    cpus+=("$(last_cpu)")
  done
  timed "$bin" merge "$out.shards" -o "$out" --threads "$threads"
  merge_wall=$(last_wall)
  merge_cpu=$(last_cpu)
  # A model directory gives a directory: its packed file and copied files must all agree.
  same=$(diff -rq "$work/single.safetensors" "$out" >/dev/null && echo identical || echo DIFFERENT)
  printf '%s\n' "${cpus[@]}" | awk -v n="$n" -v single="$single" -v mw="$merge_wall" \
    -v mc="$merge_cpu" -v same="$same" '
    { sum += $1; if ($1 > max) max = $1 }
    END {
      mean = sum / n
      printf "N=%d: shards %.2f s CPU (%+.1f %% vs single), +merge %.2f s CPU (%.2f s wall) = %+.1f %%, imbalance %.3f, %s\n",
        n, sum, (sum / single - 1) * 100, mc, mw, ((sum + mc) / single - 1) * 100, max / mean, same
    }'
done
