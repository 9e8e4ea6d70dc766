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
work=$(mktemp -d)
trap 'rm -f "$log"; rm -rf "$work"' EXIT
cargo test --all-targets 2>&1 | tee "$log"
cargo test --doc 2>&1 | tee -a "$log"
# The format spec against the reader: the independent decoder written from FORMAT.md decodes
# 4-bit and 3-bit files (the latter with padding bits) bit-exactly as `decompress` does.
seedlm=target/debug/seedlm
for bits in 4 3; do
  "$seedlm" compress assets/demo/model.safetensors -o "$work/p$bits.seedlm" --bits "$bits" \
    --include 'layer\.0\.attention\.self\.(query|key)\.weight' > /dev/null
  "$seedlm" decompress "$work/p$bits.seedlm" -o "$work/d$bits.safetensors" > /dev/null
  /usr/bin/python3 scripts/decode_packed.py "$work/p$bits.seedlm" "$work/d$bits.safetensors" > /dev/null
  echo "decode_packed.py: the $bits-bit file decodes as decompress does"
done
# A short mutation fuzz of the readers (packed files, shard folders, model directories, eval's
# config and tokenizer files; about 20 s): any panic, signal, timeout, silent change or messy
# error fails it.
/usr/bin/python3 scripts/fuzz_readers.py --seedlm "$seedlm" --mutants 200
# Totals over every test binary, so the last line speaks for the whole run.
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
