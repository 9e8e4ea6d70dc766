#!/usr/bin/env bash
# Guard against the inliner trap (a helper left out of line once halved the search's speed):
# counts the instructions the search executes on a fixed benchmark run under callgrind and
# compares them with the checked-in figure in scripts/search_instructions.expected. Instruction
# counts do not depend on the machine's load, so this holds on a shared CI machine where a
# wall-clock assertion would not.
#
# It measures the AVX2 kernel: valgrind 3.19 stops with SIGILL on AVX-512 instructions and
# hides AVX-512 from the program, and `perf stat -e instructions` has no counters on our CI
# virtual machines. The AVX-512 kernel shares the AVX2 kernel's structure.
#
# Usage: scripts/search_instructions.sh [--update]   (--update writes the new figure)
set -euo pipefail
cd "$(dirname "$0")/.."
expected_file=scripts/search_instructions.expected
# Percent the count may move either way before the guard fails. The same source counts
# 153 445 688 on the Intel (AVX-512) CI machines of earlier rounds and 162 939 430 (+6.2 %) on an
# AMD Zen 3 one, whose libc and toolchain differ; the trap this guards against moved it far more.
tolerance=8

# The binary the tests build (the dev profile optimises this crate fully), built as CI builds it:
# an incremental build splits the crate into more codegen units, which moves the count by ~6 %.
CARGO_INCREMENTAL=0 cargo build --quiet --bin seedlm
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Only the search itself counts: the table build before it is a one-off per configuration.
valgrind --tool=callgrind --callgrind-out-file="$work/out" \
  --toggle-collect='*Searcher::search_batch*' \
  target/debug/seedlm bench --kernel avx2 --blocks 64 --threads 1 --warmup 0 --repeat 1 \
  >"$work/bench" 2>"$work/log" || {
  cat "$work/log" >&2
  exit 1
}
count=$(awk '/^(summary|totals):/ { print $2; exit }' "$work/out")
if [ -z "$count" ] || [ "$count" -eq 0 ]; then
  echo "search_instructions: callgrind counted nothing in Searcher::search_batch" >&2
  exit 1
fi
if [ "${1:-}" = "--update" ]; then
  echo "$count" >"$expected_file"
  echo "search_instructions: wrote $count to $expected_file"
  exit 0
fi
expected=$(cat "$expected_file")
awk -v n="$count" -v e="$expected" -v tol="$tolerance" 'BEGIN {
  d = 100 * (n - e) / e
  printf "search_instructions: %d instructions, checked-in %d (%+.2f %%, tolerance %d %%)\n", n, e, d, tol
  if (d > tol || d < -tol) {
    print "search_instructions: the search'"'"'s instruction count moved; if the change is meant, run scripts/search_instructions.sh --update" > "/dev/stderr"
    exit 1
  }
}'
