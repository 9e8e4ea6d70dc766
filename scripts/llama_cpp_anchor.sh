#!/usr/bin/env bash
# llama.cpp's F16 and Q4_0 speed on the same model shape and machine as seedlm's engine (issue #25).
#
#   scripts/llama_cpp_anchor.sh [WORK_DIR [MODEL_DIR]]
#
# From a fresh machine, end to end, all of it in WORK_DIR (default: $TMPDIR/llama-cpp-anchor,
# or /tmp/llama-cpp-anchor), never in this checkout:
#   1. apt: cmake, ninja-build, g++ (and python3-venv) when missing;
#   2. a venv with the PyPI `gguf` package;
#   3. the PyPI sdist of llama-cpp-python (its vendor/llama.cpp is the llama.cpp we build);
#   4. llama-bench, llama-quantize and llama-completion, Release, with this CPU's own vector
#      extensions (the GGML_* ISA switches set from /proc/cpuinfo; AMX off, see below), static,
#      no tests/examples/server/UI, nothing downloaded at build time;
#   5. MODEL_DIR (default: the TinyLlama-1.1B shape with $LAYERS layers and a 300-token
#      vocabulary, made by scripts/make_llama_shape.py) -> F16 GGUF (scripts/llama_gguf.py)
#      -> Q4_0 (llama-quantize); a short greedy generation checks that the file runs;
#   6. llama-bench -p $PROMPT -n $GEN -t $THREADS -r $REPS on both files, $RUNS times with
#      $GAP seconds between runs (the load average is printed before each), as a markdown table.
#
# Environment: LLAMA_CPP_PYTHON_VERSION (default 0.3.36, which vendors llama.cpp 0c1e57098),
# LAYERS (2), THREADS (1,2), PROMPT (64), GEN (64), REPS (5), RUNS (1), GAP (300), JOBS (2),
# BENCH_FORMAT (md; json and csv also work). Steps already done in WORK_DIR are skipped.
# On a loaded 2-core machine, -t 2 collapses while ggml's OpenMP threads spin at each barrier
# and one of them is descheduled; OMP_WAIT_POLICY=passive in the environment (passed through to
# llama-bench) shows how much of that is waiting. Record `uptime` beside every result.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=${1:-${TMPDIR:-/tmp}/llama-cpp-anchor}
MODEL=${2:-}
VERSION=${LLAMA_CPP_PYTHON_VERSION:-0.3.36}
LAYERS=${LAYERS:-2}
THREADS=${THREADS:-1,2}
PROMPT=${PROMPT:-64}
GEN=${GEN:-64}
REPS=${REPS:-5}
RUNS=${RUNS:-1}
GAP=${GAP:-300}
JOBS=${JOBS:-2}
BENCH_FORMAT=${BENCH_FORMAT:-md}

mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd -P)
case "$WORK/" in
  "$(cd "$ROOT" && pwd -P)"/*) echo "WORK_DIR $WORK is inside the checkout; give one outside it" >&2; exit 2 ;;
esac
log() { echo "== $*" >&2; }

# 1. Build tools.
missing=()
command -v cmake >/dev/null || missing+=(cmake)
command -v ninja >/dev/null || missing+=(ninja-build)
command -v g++ >/dev/null || missing+=(g++)
command -v python3 >/dev/null || missing+=(python3)
if ((${#missing[@]})); then
  log "apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# 2. A venv with gguf (numpy comes with it; make_llama_shape.py runs in it too).
VENV=$WORK/venv
if [ ! -x "$VENV/bin/python" ]; then
  log "venv $VENV"
  if ! python3 -m venv "$VENV" 2>/dev/null; then
    rm -rf "$VENV"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv "$VENV"
  fi
fi
"$VENV/bin/python" -c "import gguf" 2>/dev/null || "$VENV/bin/pip" install -q gguf
PY=$VENV/bin/python

# 3. The sdist. Only llama-cpp-python itself is taken from source: its build dependencies
#    (scikit-build-core, for pip's metadata step) come as wheels, and cmake from apt.
SDIST=$WORK/llama_cpp_python-$VERSION.tar.gz
if [ ! -f "$SDIST" ]; then
  log "pip download llama-cpp-python==$VERSION (sdist)"
  "$VENV/bin/pip" download -q --no-deps --no-binary llama-cpp-python \
    "llama-cpp-python==$VERSION" -d "$WORK"
fi
SRC=$WORK/llama_cpp_python-$VERSION/vendor/llama.cpp
[ -d "$SRC" ] || tar -xzf "$SDIST" -C "$WORK"
LLAMA_COMMIT=$(sed -n 's/.*update llama.cpp to ggml-org\/llama.cpp@\([0-9a-f]*\).*/\1/p' \
  "$WORK/llama_cpp_python-$VERSION/CHANGELOG.md" | head -1)

# 4. Build only what is needed. LLAMA_USE_PREBUILT_UI and LLAMA_OPENSSL are off so that
#    nothing is fetched or linked for the server.
#    CPU flags: GGML_NATIVE=ON (-march=native) turns on AMX where the CPU reports it, and on this
#    workplace's Sapphire Rapids VMs ggml's AMX Q4_0 kernel then dies at its first ldtilecfg
#    (general protection fault in ggml_backend_amx_mul_mat; llama.cpp issue 20824, fix proposed
#    in PR 26954). So each ISA switch is set from /proc/cpuinfo instead, with AMX off; set
#    NATIVE=1 for plain -march=native.
cpu_has() { grep -qw "$1" /proc/cpuinfo; }
onoff() { if cpu_has "$1"; then echo ON; else echo OFF; fi; }
all_on() { for f in "$@"; do cpu_has "$f" || { echo OFF; return; }; done; echo ON; }
if [ "${NATIVE:-0}" = 1 ]; then
  CPU_FLAGS=(-DGGML_NATIVE=ON)
else
  CPU_FLAGS=(-DGGML_NATIVE=OFF -DGGML_SSE42="$(onoff sse4_2)" -DGGML_F16C="$(onoff f16c)"
    -DGGML_FMA="$(onoff fma)" -DGGML_BMI2="$(onoff bmi2)" -DGGML_AVX="$(onoff avx)"
    -DGGML_AVX2="$(onoff avx2)" -DGGML_AVX_VNNI="$(onoff avx_vnni)"
    -DGGML_AVX512="$(all_on avx512f avx512cd avx512vl avx512dq avx512bw)" -DGGML_AVX512_VBMI="$(onoff avx512vbmi)"
    -DGGML_AVX512_VNNI="$(onoff avx512_vnni)" -DGGML_AVX512_BF16="$(onoff avx512_bf16)"
    -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF)
fi
BUILD=$WORK/build
BIN=$BUILD/bin
if [ ! -x "$BIN/llama-bench" ] || [ ! -x "$BIN/llama-quantize" ] || [ ! -x "$BIN/llama-completion" ]; then
  log "configure + build llama.cpp ($LLAMA_COMMIT) in $BUILD"
  cmake -S "$SRC" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    "${CPU_FLAGS[@]}" -DGGML_CCACHE=OFF -DBUILD_SHARED_LIBS=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF \
    -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
    -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_COMMON=ON >"$WORK/configure.log"
  nice -n 10 cmake --build "$BUILD" --config Release -j"$JOBS" \
    --target llama-bench llama-quantize llama-completion >"$WORK/build.log"
fi

# 5. The model, as F16 and Q4_0 GGUF.
if [ -z "$MODEL" ]; then
  MODEL=$WORK/model-$LAYERS
  if [ ! -f "$MODEL/config.json" ]; then
    rm -rf "$MODEL"
    "$PY" "$ROOT/scripts/make_llama_shape.py" "$MODEL" --layers "$LAYERS"
  fi
fi
NAME=$(basename "$MODEL")
F16=$WORK/$NAME-f16.gguf
Q40=$WORK/$NAME-q4_0.gguf
if [ ! -f "$F16" ]; then
  "$PY" "$ROOT/scripts/llama_gguf.py" "$MODEL" "$F16.part"
  mv "$F16.part" "$F16"
fi
if [ ! -f "$Q40" ]; then
  "$BIN/llama-quantize" "$F16" "$Q40.part" Q4_0 >"$WORK/quantize.log" 2>&1 \
    || { tail -20 "$WORK/quantize.log" >&2; exit 1; }
  mv "$Q40.part" "$Q40"
fi
for m in "$F16" "$Q40"; do
  log "check: greedy generation with $(basename "$m")"
  "$BIN/llama-completion" -m "$m" -p "the cat" -n 16 --temp 0 -t 2 -no-cnv --no-warmup \
    </dev/null >"$m.check.txt" 2>"$m.check.log" || { tail -20 "$m.check.log" >&2; exit 1; }
  echo "   $(tr -c '[:print:]' '.' <"$m.check.txt")" >&2
done

# 6. Benchmark.
for run in $(seq 1 "$RUNS"); do
  [ "$run" -eq 1 ] || sleep "$GAP"
  log "run $run/$RUNS at $(date -u +%H:%M:%SZ), load $(cut -d' ' -f1-3 /proc/loadavg), nproc $(nproc)"
  "$BIN/llama-bench" -m "$F16" -m "$Q40" -p "$PROMPT" -n "$GEN" -t "$THREADS" -r "$REPS" \
    -o "$BENCH_FORMAT"
done
