#!/usr/bin/env bash
# Sets up the machine and runs every check CI runs: formatting, clippy, and all tests (engine,
# oracle, packed files, CLI, hardware co-simulation, UI).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo fmt --check
cargo clippy --all-targets -- -D warnings
cargo test --all-targets
# Doc tests are part of the contract too.
cargo test --doc
