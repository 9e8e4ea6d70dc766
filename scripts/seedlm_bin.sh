# Sourced by the scripts: the one way they find the seedlm binary.
#
#   bin=$(seedlm_bin PROFILE [PATH])
#
# prints PATH when given, else $SEEDLM when set, else this checkout's target/PROFILE/seedlm,
# built (or brought up to date) first. PROFILE is `release`, or `debug` for the dev profile,
# which builds seedlm itself at opt-level 3 and is quicker to build. The build's output goes to
# stderr; the path printed is absolute unless PATH or $SEEDLM was relative.
seedlm_bin() {
  local profile=$1 given=${2:-${SEEDLM:-}}
  if [ -n "$given" ]; then
    echo "$given"
    return
  fi
  local root flags=()
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  [ "$profile" = release ] && flags=(--release)
  (cd "$root" && CARGO_INCREMENTAL=0 cargo build --quiet "${flags[@]}" --bin seedlm) >&2
  echo "$root/target/$profile/seedlm"
}
