#!/usr/bin/env python3
"""Writes a random Llama-shaped model directory for speed and memory benchmarks.

    python3 scripts/make_llama_shape.py OUT_DIR [--layers N] [--shape tinyllama|llama3-8b]
        [--vocab V] [--sparse]

The shapes are TinyLlama-1.1B's (hidden 2048, MLP 5632, 32 heads, 4 key/value heads) and
Llama-3-8B's (4096, 14336, 32, 8). Weights are N(0, 0.02) in f16 (seeded); with --sparse the
file is written sparse (all zeros, no data blocks on disk) for memory tests that only need the
size. The tokenizer is the 300-token one of tests/fixtures/eval/llama, so the vocabulary
defaults to 300: the linear layers, not the head, dominate the time. Needs numpy.
"""

import argparse
import json
import shutil
from pathlib import Path

import numpy as np

import safetensors_file

ROOT = Path(__file__).resolve().parent.parent
SHAPES = {
    "tinyllama": dict(hidden=2048, mlp=5632, heads=32, kv=4, theta=10000.0),
    "llama3-8b": dict(hidden=4096, mlp=14336, heads=32, kv=8, theta=500000.0),
}


def tensors(s, layers, vocab):
    h, m = s["hidden"], s["mlp"]
    kv = s["kv"] * h // s["heads"]
    yield "model.embed_tokens.weight", (vocab, h)
    for i in range(layers):
        p = f"model.layers.{i}."
        yield p + "input_layernorm.weight", (h,)
        yield p + "post_attention_layernorm.weight", (h,)
        for name, shape in [("q_proj", (h, h)), ("k_proj", (kv, h)), ("v_proj", (kv, h)),
                            ("o_proj", (h, h))]:
            yield p + "self_attn." + name + ".weight", shape
        for name, shape in [("gate_proj", (m, h)), ("up_proj", (m, h)), ("down_proj", (h, m))]:
            yield p + "mlp." + name + ".weight", shape
    yield "model.norm.weight", (h,)
    yield "lm_head.weight", (vocab, h)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--shape", choices=sorted(SHAPES), default="tinyllama")
    ap.add_argument("--vocab", type=int, default=300)
    ap.add_argument("--sparse", action="store_true")
    a = ap.parse_args()
    s = SHAPES[a.shape]
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=False)
    entries = list(tensors(s, a.layers, a.vocab))
    blob, offset = safetensors_file.header(
        [(name, "F16", shape, int(np.prod(shape)) * 2) for name, shape in entries])
    rng = np.random.default_rng(0)
    with open(out / "model.safetensors", "wb") as f:
        f.write(blob)
        if a.sparse:
            f.truncate(len(blob) + offset)
        else:
            for name, shape in entries:
                if len(shape) == 1:
                    f.write(np.ones(shape, np.float16).tobytes())
                else:
                    f.write((rng.standard_normal(shape, np.float32) * 0.02).astype(np.float16).tobytes())
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
        "hidden_size": s["hidden"], "intermediate_size": s["mlp"],
        "num_attention_heads": s["heads"], "num_key_value_heads": s["kv"],
        "num_hidden_layers": a.layers, "vocab_size": a.vocab, "rms_norm_eps": 1e-5,
        "rope_theta": s["theta"], "max_position_embeddings": 2048,
        "tie_word_embeddings": False, "bos_token_id": 0, "eos_token_id": 1,
        "torch_dtype": "float16",
    }
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    shutil.copy(ROOT / "tests/fixtures/eval/llama/tokenizer.json", out / "tokenizer.json")
    print(f"{out}: {a.shape} with {a.layers} layers, vocab {a.vocab}, {offset / 1e9:.2f} GB of f16")


if __name__ == "__main__":
    main()
