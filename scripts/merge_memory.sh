#!/usr/bin/env bash
# Peak memory of `seedlm merge` on a shard folder (docs/cluster.md): the peak resident set as
# /usr/bin/time -v reports it (memory-mapped input pages included) and the peak of anonymous
# memory (the heap: what the merge itself holds), sampled from /proc every 20 ms.
#   usage: scripts/merge_memory.sh SHARD_FOLDER OUTPUT [SEEDLM_BINARY]
set -euo pipefail
folder=${1:?usage: $0 SHARD_FOLDER OUTPUT [SEEDLM_BINARY]}
out=${2:?usage: $0 SHARD_FOLDER OUTPUT [SEEDLM_BINARY]}
source "$(dirname "$0")/seedlm_bin.sh"
bin=$(seedlm_bin release "${3:-}")
log=$(mktemp)
trap 'rm -f "$log"' EXIT

/usr/bin/time -v "$bin" merge "$folder" -o "$out" 2>"$log" >/dev/null &
timer=$!
peak=0
while kill -0 "$timer" 2>/dev/null; do
  for pid in $(pgrep -P "$timer" 2>/dev/null); do
    kb=$(awk '/^RssAnon:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo 0)
    [ -n "$kb" ] && [ "$kb" -gt "$peak" ] && peak=$kb
  done
  sleep 0.02
done
wait "$timer"
rss=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$log")
wall=$(awk -F': ' '/Elapsed \(wall clock\)/ { print $2 }' "$log")
echo "merge: peak RSS $((rss / 1024)) MiB, peak anonymous $((peak / 1024)) MiB, wall $wall"
