#!/usr/bin/env python3
"""An independent decoder for SeedLM packed files, written from FORMAT.md alone.

Usage: python3 scripts/decode_packed.py PACKED [REFERENCE]
Decodes every compressed tensor to its original dtype; with REFERENCE (a file written by
`seedlm decompress`), checks that every tensor matches it bit for bit. Needs numpy.
"""

import json
import struct
import sys
import zlib

import numpy as np

TAPS = {2: [0, 1], 3: [0, 1], 4: [0, 1], 5: [0, 2], 6: [0, 1], 7: [0, 1], 8: [0, 2, 3, 4],
        9: [0, 4], 10: [0, 3], 11: [0, 2], 12: [0, 1, 2, 8], 13: [0, 1, 2, 5],
        14: [0, 1, 2, 12], 15: [0, 1], 16: [0, 1, 3, 12], 17: [0, 3], 18: [0, 7],
        19: [0, 1, 2, 5], 20: [0, 3], 21: [0, 2], 22: [0, 1], 23: [0, 5], 24: [0, 1, 2, 7]}
DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": None, "U8": np.uint8, "I64": np.int64,
          "I32": np.int32}


def read_safetensors(path):
    data = open(path, "rb").read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    return header.pop("__metadata__", {}), header, data[8 + n:]


def lfsr_states(seed, k, count):
    mask = sum(1 << t for t in TAPS[k])
    s, out = seed, []
    for _ in range(count):
        fb = bin(s & mask).count("1") & 1
        s = (s >> 1) | (fb << (k - 1))
        out.append(s)
    return out


def decode_tensor(meta, packed):
    c, p, k, e_base, blocks = meta["c"], meta["p"], meta["k"], meta["e_base"], meta["blocks"]
    assert meta["crc32"] == zlib.crc32(packed), "checksum mismatch"
    r = k + 4 + 4 * p
    stream = int.from_bytes(packed, "little")
    h, d = 1 << (k - 1), (1 << (k - 1)) - 1
    out = np.zeros(blocks * c, dtype=np.float64)
    for b in range(blocks):
        rec = (stream >> (b * r)) & ((1 << r) - 1)
        seed, e = rec & ((1 << k) - 1), e_base + ((rec >> k) & 0xF)
        q = [((rec >> (k + 4 + 4 * j)) & 0xF) for j in range(p)]
        q = [x - 16 if x >= 8 else x for x in q]
        v = lfsr_states(seed, k, c * p)
        for i in range(c):
            n = sum((v[i * p + j] - h) * q[j] for j in range(p))
            out[b * c + i] = n / d * 2.0 ** e
    length = int(np.prod(meta["shape"]))
    return out[:length].astype(np.float32).reshape(meta["shape"])


def to_dtype_bytes(values_f32, dtype):
    if dtype == "BF16":
        bits = values_f32.view(np.uint32).astype(np.uint64)
        rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16  # round to nearest even
        return rounded.astype(np.uint16).tobytes()
    return values_f32.astype(DTYPES[dtype]).tobytes()


def main():
    meta, header, data = read_safetensors(sys.argv[1])
    assert meta.get("seedlm.format") == "seedlm-packed" and meta.get("seedlm.version") == "1"
    ref = read_safetensors(sys.argv[2]) if len(sys.argv) > 2 else None
    for name, info in header.items():
        s, e = info["data_offsets"]
        key = "seedlm.tensor." + name
        if key in meta:
            m = json.loads(meta[key])
            out = to_dtype_bytes(decode_tensor(m, data[s:e]), m["dtype"])
        else:
            out = data[s:e]
        if ref:
            rs, re_ = ref[1][name]["data_offsets"]
            same = ref[2][rs:re_] == out
            print(f"{name}: {'identical' if same else 'DIFFERENT'}")
            if not same:
                sys.exit(1)
        else:
            print(f"{name}: {len(out)} bytes")


if __name__ == "__main__":
    main()
