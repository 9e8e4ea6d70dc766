#!/usr/bin/env python3
"""Writes a HF-format Llama model directory as a GGUF F16 file, for llama.cpp baselines.

    python3 scripts/llama_gguf.py MODEL_DIR OUT.gguf

MODEL_DIR holds config.json, tokenizer.json (a byte-level BPE tokenizer) and one or more
*.safetensors files of f16/bf16/f32 tensors, as scripts/make_llama_shape.py writes them. Needs
numpy and the PyPI `gguf` package (GGUFWriter); nothing else, no torch.

What llama.cpp expects of a `llama` GGUF:
- architecture keys under `llama.*` (sizes, heads, rms eps, rope base and dimension);
- the tokenizer as `gpt2` (byte-level BPE): tokens by id, token types, merges as "a b";
- tensor names token_embd / blk.N.attn_q ... / output_norm / output;
- 2-D weights in F16, 1-D norms in F32;
- Q and K rows reordered per head: HF's checkpoints put the two rotary halves of a head
  in separate blocks (rotate_half), while llama.cpp's llama graph rotates adjacent pairs,
  so row i of a head's first half goes to row 2i and row i of its second half to 2i+1.
"""

import json
import struct
import sys
from pathlib import Path

import numpy as np
import gguf

DTYPES = {"F16": np.float16, "F32": np.float32, "BF16": np.uint16}

NAMES = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
}
LAYER = {
    "input_layernorm": "attn_norm",
    "post_attention_layernorm": "ffn_norm",
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}


def read_safetensors(path):
    """Yields (name, array) from one safetensors file, memory-mapped."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    data = np.memmap(path, np.uint8, "r", offset=8 + n)
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        arr = data[a:b].view(DTYPES[info["dtype"]]).reshape(info["shape"])
        if info["dtype"] == "BF16":
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        yield name, arr


def gguf_name(name):
    if name in NAMES:
        return NAMES[name]
    parts = name.split(".")  # model.layers.N.<module...>.weight
    if parts[:2] != ["model", "layers"] or parts[-1] != "weight":
        raise SystemExit(f"unexpected tensor {name}")
    return f"blk.{parts[2]}.{LAYER['.'.join(parts[3:-1])]}.weight"


def rope_rows(w, heads):
    """HF (two halves per head) -> llama.cpp (adjacent pairs) row order."""
    d = w.shape[0] // heads
    half = np.arange(d // 2)
    per_head = np.empty(d, np.int64)
    per_head[0::2] = half
    per_head[1::2] = half + d // 2
    order = (np.arange(heads)[:, None] * d + per_head[None, :]).reshape(-1)
    return w[order]


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    src, out = Path(sys.argv[1]), sys.argv[2]
    cfg = json.loads((src / "config.json").read_text())
    tok = json.loads((src / "tokenizer.json").read_text())
    if cfg.get("model_type") != "llama":
        raise SystemExit(f"model_type {cfg.get('model_type')!r} is not llama")
    if tok["model"]["type"] != "BPE":
        raise SystemExit("tokenizer.json is not a BPE tokenizer")
    h, heads = cfg["hidden_size"], cfg["num_attention_heads"]
    kv_heads = cfg.get("num_key_value_heads", heads)
    head_dim = cfg.get("head_dim", h // heads)

    w = gguf.GGUFWriter(out, "llama")
    w.add_name(src.name)
    w.add_context_length(cfg.get("max_position_embeddings", 2048))
    w.add_embedding_length(h)
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_rope_dimension_count(head_dim)
    w.add_rope_freq_base(float(cfg.get("rope_theta", 10000.0)))
    w.add_layer_norm_rms_eps(float(cfg.get("rms_norm_eps", 1e-5)))
    w.add_vocab_size(cfg["vocab_size"])
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)

    # Tokenizer: ids from the BPE vocabulary and the added tokens; pad any gap up to vocab_size.
    vocab = dict(tok["model"]["vocab"])
    special = set()
    for t in tok.get("added_tokens", []):
        vocab[t["content"]] = t["id"]
        if t.get("special"):
            special.add(t["id"])
    n_vocab = max(cfg["vocab_size"], max(vocab.values()) + 1)
    tokens = [f"[PAD{i}]" for i in range(n_vocab)]
    types = [gguf.TokenType.UNUSED] * n_vocab
    for text, i in vocab.items():
        tokens[i] = text
        types[i] = gguf.TokenType.CONTROL if i in special else gguf.TokenType.NORMAL
    merges = [m if isinstance(m, str) else " ".join(m) for m in tok["model"].get("merges", [])]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt-2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    if cfg.get("bos_token_id") is not None:
        w.add_bos_token_id(cfg["bos_token_id"])
        w.add_add_bos_token(True)
    if cfg.get("eos_token_id") is not None:
        w.add_eos_token_id(cfg["eos_token_id"])

    count = 0
    for path in sorted(src.glob("*.safetensors")):
        for name, arr in read_safetensors(path):
            if "rotary_emb" in name:
                continue
            if name.endswith("q_proj.weight"):
                arr = rope_rows(arr, heads)
            elif name.endswith("k_proj.weight"):
                arr = rope_rows(arr, kv_heads)
            arr = np.ascontiguousarray(arr, np.float32 if arr.ndim == 1 else np.float16)
            w.add_tensor(gguf_name(name), arr)
            count += 1
    # Tied heads need no output.weight: llama.cpp then reads token_embd for the head.

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"{out}: {count} tensors, vocab {n_vocab}, {cfg['num_hidden_layers']} layers, F16")


if __name__ == "__main__":
    main()
