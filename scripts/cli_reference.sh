#!/usr/bin/env bash
# Writes docs/cli.md from the binary's own --help (tests/it/docs.rs checks it stays current).
#
#   scripts/cli_reference.sh [SEEDLM_BINARY]     default: target/release/seedlm, built now
set -euo pipefail
cd "$(dirname "$0")/.."
source "$(dirname "$0")/seedlm_bin.sh"
bin=$(seedlm_bin release "${1:-}")
out=docs/cli.md
section() {
  printf '\n## %s\n\n```text\n' "$1"
  shift
  "$bin" "$@" --help
  printf '```\n'
}
{
  printf '# CLI reference\n\n'
  printf 'Every subcommand'"'"'s `--help`, written by `scripts/cli_reference.sh`; a test checks that it\n'
  printf 'matches the binary. What the commands do, with examples: [commands.md](commands.md).\n'
  section seedlm
  # The subcommands as --help lists them, `help` itself left out.
  for cmd in $("$bin" --help | sed -n '/^Commands:/,/^$/p' | awk 'NR > 1 && NF { print $1 }'); do
    [ "$cmd" = help ] || section "seedlm $cmd" "$cmd"
  done
} > "$out"
echo "wrote $out"
