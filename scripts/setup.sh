#!/usr/bin/env bash
# Installs everything SeedLM Studio needs on a fresh Debian or Ubuntu machine: the Debian
# packages for the hardware simulation (Verilator, g++, make), the X/GL runtime the app and its
# UI tests use, Xvfb for headless runs, Slurm with munge for the cluster test, and valgrind for
# the search's instruction-count guard. Rust itself comes from rustup (https://rustup.rs).
set -euo pipefail

packages=(
  verilator g++ make              # hardware decompressor simulation (hdl/)
  libgl1 libegl1 libgl1-mesa-dri  # OpenGL for the app (glow backend, Mesa software rendering)
  libx11-6 libx11-xcb1 libxcursor1 libxrandr2 libxi6 libxkbcommon0 libxkbcommon-x11-0
  libwayland-client0 libwayland-egl1
  xvfb xauth                      # headless X server for screenshots and UI runs
  xdotool python3-numpy           # scripts/memory.sh reads the app's window title, writes models
  slurm-wlm munge                 # single-node Slurm cluster of the sharded-compression test
  valgrind                        # scripts/search_instructions.sh counts the search's instructions
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ! command -v cargo >/dev/null; then
  echo "setup: cargo not found; install Rust with rustup (https://rustup.rs), then run this again" >&2
  exit 1
fi
echo "setup: ok ($(cargo --version), $(verilator --version))"
