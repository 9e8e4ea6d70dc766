#!/usr/bin/env bash
# Sets up the machine and runs every check CI runs: formatting, clippy, the search's instruction
# count, and all tests (engine, oracle, packed files, CLI, hardware co-simulation, UI, doc
# tests), then one summary line.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# A one-off build gains nothing from incremental state, which would cost gigabytes of disk.
export CARGO_INCREMENTAL=0
echo "test: $(df -h --output=avail . | tail -1 | tr -d ' ') free on the build disk"
cargo fmt --check
cargo clippy --all-targets -- -D warnings
# The search's instruction count against the checked-in figure (the inliner trap's guard).
bash scripts/search_instructions.sh
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --all-targets 2>&1 | tee "$log"
cargo test --doc 2>&1 | tee -a "$log"
# Totals over every test binary, so the last line speaks for the whole run.
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
