#!/usr/bin/env bash
# Memory and open time of the app on a Llama-shaped model (issue 12).
#
#   scripts/memory.sh [--keep] [--tensor NAME] [SHAPE...]   SHAPE: tinyllama (default), 8b
#
# For each shape it writes a sharded f16 model under /tmp (sparse: only the tensor it
# compresses holds data, so the 16 GB 8B model takes ~35 MB of disk), then runs the app under
# Xvfb twice:
#   1. `seedlm gui MODEL`: time until the window title shows the tensor count, resident memory
#      (VmRSS) 2 s after that, and the peak (VmHWM);
#   2. `seedlm gui MODEL --compress TENSOR`: resident memory once the title says
#      "1 compressed", and the peak of the run. TENSOR is layer 0's k_proj unless --tensor
#      names another (the mlp tensors take minutes to compress);
#   3. `seedlm gui MODEL --view DOWN --exit-when-done`: seconds from the model being open to
#      the first view (heatmaps and histograms) of layer 0's down_proj (2048×5632 for
#      TinyLlama, 4096×14336 for 8B; it holds data too).
# The model is deleted afterwards unless --keep is given. Needs python3 with numpy, Xvfb and
# xdotool (scripts/setup.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/.."

keep=0
shapes=()
tensor=model.layers.0.self_attn.k_proj.weight
while (($#)); do
  case "$1" in
    --keep) keep=1 ;;
    --tensor) tensor=$2; shift ;;
    tinyllama | 8b) shapes+=("$1") ;;
    *) echo "usage: $0 [--keep] [--tensor NAME] [tinyllama] [8b]" >&2; exit 2 ;;
  esac
  shift
done
((${#shapes[@]})) || shapes=(tinyllama)

source "$(dirname "$0")/seedlm_bin.sh"
bin=$(seedlm_bin debug)

# Writes a Llama-shaped model: SHAPE DIR TENSOR... (the tensors given N(0, 0.02) weights).
make_model() {
  PYTHONPATH=scripts python3 - "$@" <<'EOF'
import json, os, sys
import numpy as np
import safetensors_file

shape, out, filled = sys.argv[1], sys.argv[2], sys.argv[3:]
cfg = {
    # TinyLlama-1.1B: 22 layers, 4 KV heads of 64.
    "tinyllama": dict(h=2048, i=5632, layers=22, kv=256, vocab=32000),
    # Llama 3 8B: 32 layers, 8 KV heads of 128.
    "8b": dict(h=4096, i=14336, layers=32, kv=1024, vocab=128256),
}[shape]
h, i, kv, vocab = cfg["h"], cfg["i"], cfg["kv"], cfg["vocab"]
tensors = [("model.embed_tokens.weight", [vocab, h])]
for l in range(cfg["layers"]):
    p = f"model.layers.{l}."
    tensors += [
        (p + "self_attn.q_proj.weight", [h, h]),
        (p + "self_attn.k_proj.weight", [kv, h]),
        (p + "self_attn.v_proj.weight", [kv, h]),
        (p + "self_attn.o_proj.weight", [h, h]),
        (p + "mlp.gate_proj.weight", [i, h]),
        (p + "mlp.up_proj.weight", [i, h]),
        (p + "mlp.down_proj.weight", [h, i]),
        (p + "input_layernorm.weight", [h]),
        (p + "post_attention_layernorm.weight", [h]),
    ]
tensors += [("model.norm.weight", [h]), ("lm_head.weight", [vocab, h])]

# Shards of at most 2 GB (Hugging Face writes up to 5 GB; smaller ones give TinyLlama two).
limit, shards, cur, size = 2 << 30, [], [], 0
for name, shp in tensors:
    n = 2 * int(np.prod(shp))
    if cur and size + n > limit:
        shards.append(cur)
        cur, size = [], 0
    cur.append((name, shp, n))
    size += n
shards.append(cur)

os.makedirs(out, exist_ok=True)
weight_map, total = {}, 0
for k, shard in enumerate(shards):
    fname = f"model-{k + 1:05d}-of-{len(shards):05d}.safetensors"
    head, off = safetensors_file.header(
        [(name, "F16", shp, n) for name, shp, n in shard], {"format": "pt"})
    with open(os.path.join(out, fname), "wb") as f:
        f.write(head)
        f.truncate(len(head) + off)  # sparse: reads as zeros, takes no disk
        at = len(head)
        for name, shp, n in shard:
            weight_map[name] = fname
            if name in filled:
                rng = np.random.default_rng(filled.index(name))
                w = (rng.standard_normal(int(np.prod(shp))) * 0.02).astype("<f2")
                f.seek(at)
                f.write(w.tobytes())
            at += n
    total += off
with open(os.path.join(out, "model.safetensors.index.json"), "w") as f:
    json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f)
print(f"{len(tensors)} tensors, {total / 1e9:.2f} GB of f16 in {len(shards)} shards")
EOF
}

kib() { awk -v k="$2" '$1 == k":" { print $2 }' "/proc/$1/status"; }
mib() { awk -v k="$1" 'BEGIN { printf "%.0f MiB", k / 1024 }'; }

# Runs the app on DIR under display $disp until its title matches PATTERN; sets $secs to the
# seconds that took and $app to the app's pid.
run_until() {
  local dir=$1 pattern=$2 limit=$3
  shift 3
  local t0 t1
  t0=$(date +%s.%N)
  DISPLAY=":$disp" "$bin" gui "$dir" "$@" >/dev/null 2>&1 &
  app=$!
  until DISPLAY=":$disp" xdotool search --name "$pattern" >/dev/null 2>&1; do
    if ! kill -0 "$app" 2>/dev/null; then
      echo "memory: the app exited before its title matched '$pattern'" >&2
      exit 1
    fi
    if awk -v a="$(date +%s.%N)" -v b="$t0" -v l="$limit" 'BEGIN { exit !(a - b > l) }'; then
      echo "memory: no title matching '$pattern' within $limit s" >&2
      kill "$app"
      exit 1
    fi
    sleep 0.05
  done
  t1=$(date +%s.%N)
  secs=$(awk -v a="$t1" -v b="$t0" 'BEGIN { printf "%.2f", a - b }')
}

stop_app() {
  kill "$app" 2>/dev/null || true
  wait "$app" 2>/dev/null || true
}

disp=$((90 + RANDOM % 100))
Xvfb ":$disp" -screen 0 1600x1000x24 -nolisten tcp >/dev/null 2>&1 &
xvfb=$!
cleanup() {
  [ -n "${app:-}" ] && kill "$app" 2>/dev/null || true
  kill "$xvfb" 2>/dev/null || true
  if ((keep == 0)); then rm -rf /tmp/seedlm-memory-*; fi
}
trap cleanup EXIT
sleep 1

for shape in "${shapes[@]}"; do
  dir=/tmp/seedlm-memory-$shape
  rm -rf "$dir"
  view=model.layers.0.mlp.down_proj.weight
  echo "== $shape: $(make_model "$shape" "$dir" "$tensor" "$view") ($(du -sh "$dir" | cut -f1) on disk)"

  run_until "$dir" " [1-9][0-9]* tensors" 120
  sleep 2
  open_rss=$(kib "$app" VmRSS)
  open_peak=$(kib "$app" VmHWM)
  stop_app
  echo "title with the tensor count after $secs s"
  echo "resident after opening: $(mib "$open_rss"), peak $(mib "$open_peak")"

  run_until "$dir" "tensors.* 1 compressed$" 1800 --compress "$tensor"
  sleep 1
  done_rss=$(kib "$app" VmRSS)
  done_peak=$(kib "$app" VmHWM)
  stop_app
  echo "resident after compressing $tensor: $(mib "$done_rss") (opened and compressed in $secs s), peak $(mib "$done_peak")"

  summary=$(DISPLAY=":$disp" "$bin" gui "$dir" --view "$view" --exit-when-done 2>/dev/null)
  echo "first view of $view: $(python3 -c 'import json, sys; print("%.2f" % json.loads(sys.argv[1])["seconds"])' "$summary") s after the model is open"
done
