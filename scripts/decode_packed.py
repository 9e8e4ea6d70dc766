#!/usr/bin/env python3
"""An independent decoder for SeedLM packed files, written from FORMAT.md alone.

Usage: python3 scripts/decode_packed.py PACKED [REFERENCE]
Checks the file as FORMAT.md §1-§2 says a reader must (version, metadata and file checksums,
contiguous data, zero padding bits, seed 0, the order, finite reconstructions), decodes every
compressed tensor to its original dtype and, with REFERENCE (a file written by
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
    meta, body = header.pop("__metadata__", {}), data[8 + n:]
    for name, info in header.items():
        assert isinstance(info, dict) and sorted(info) == ["data_offsets", "dtype", "shape"], \
            f"{name}: a header entry is an object of dtype, shape and data_offsets"
    end = 0
    for name, info in sorted(header.items(), key=lambda kv: tuple(kv[1]["data_offsets"])):
        s, e = info["data_offsets"]
        assert s == end, f"{name}: gap or overlap in the data section"
        end = e
    assert end == len(body), "trailing bytes after the last tensor"
    return meta, header, body


def field(value):
    b = value.encode() if isinstance(value, str) else value
    return str(len(b)).encode() + b":" + b


def meta_canonical(m):
    relmse = "" if m.get("relmse") is None else struct.pack(">d", m["relmse"]).hex()
    return b"".join(field(str(v)) for v in [
        m["name"], ",".join(str(d) for d in m["shape"]), m["dtype"], m["c"], m["p"], m["k"],
        m["e_base"], m["blocks"], m["crc32"], relmse])


def file_checksum(meta, header, data):
    out = b""
    for name in sorted(header, key=lambda n: n.encode()):
        info = header[name]
        s, e = info["data_offsets"]
        out += field(name) + field(info["dtype"]) + field(",".join(str(d) for d in info["shape"]))
        out += field(str(zlib.crc32(data[s:e])))
    for key in sorted(meta, key=lambda k: k.encode()):
        if key != "seedlm.checksum":
            out += field(key) + field(meta[key])
    return zlib.crc32(out)


def check_packed(meta, header, data):
    """The whole-file checks of FORMAT.md §1-§2; returns the format version."""
    assert meta.get("seedlm.format") == "seedlm-packed", "not a packed file"
    version = meta.get("seedlm.version")
    assert version in ("1", "2"), f"unknown version {version!r}"
    if version == "2":
        assert meta["seedlm.checksum"] == str(file_checksum(meta, header, data)), \
            "file checksum mismatch"
    else:
        assert "seedlm.checksum" not in meta, "version 1 files have no checksum"
    known = {"seedlm.format", "seedlm.version", "seedlm.checksum", "seedlm.order",
             "seedlm.calibration", "seedlm.allocation"}
    for key in meta:
        if key.startswith("seedlm.") and key not in known:
            assert key.startswith("seedlm.tensor.") and key[14:] in header, f"unknown key {key}"
    order = json.loads(meta["seedlm.order"])
    assert sorted(order) == sorted(header) and len(set(order)) == len(order), "bad order"
    return version


def calibrated_tensors(meta):
    """The tensors named by the informative seedlm.calibration record (§1): each a compressed
    tensor of the file. Older records hold a count instead of the names: none named."""
    if "seedlm.calibration" not in meta:
        return set()
    names = json.loads(meta["seedlm.calibration"]).get("tensors")
    if not isinstance(names, list):
        return set()
    for n in names:
        assert "seedlm.tensor." + n in meta, f"calibration names {n!r}, not a compressed tensor"
    return set(names)


def lfsr_states(seed, k, count):
    mask = sum(1 << t for t in TAPS[k])
    s, out = seed, []
    for _ in range(count):
        fb = bin(s & mask).count("1") & 1
        s = (s >> 1) | (fb << (k - 1))
        out.append(s)
    return out


def decode_tensor(meta, packed, version):
    c, p, k, e_base, blocks = meta["c"], meta["p"], meta["k"], meta["e_base"], meta["blocks"]
    if version == "2":
        assert meta["meta_crc32"] == zlib.crc32(meta_canonical(meta)), "metadata checksum"
    assert meta["crc32"] == zlib.crc32(packed), "checksum mismatch"
    assert abs(e_base) <= 1000 and blocks == -(-int(np.prod(meta["shape"])) // c)
    r = k + 4 + 4 * p
    assert len(packed) == (blocks * r + 7) // 8, "packed byte count"
    stream = int.from_bytes(packed, "little")
    assert stream >> (blocks * r) == 0, "nonzero padding bits"
    h, d = 1 << (k - 1), (1 << (k - 1)) - 1
    out = np.zeros(blocks * c, dtype=np.float64)
    for b in range(blocks):
        rec = (stream >> (b * r)) & ((1 << r) - 1)
        seed, e = rec & ((1 << k) - 1), e_base + ((rec >> k) & 0xF)
        assert seed != 0, f"record {b} has seed 0"
        q = [((rec >> (k + 4 + 4 * j)) & 0xF) for j in range(p)]
        q = [x - 16 if x >= 8 else x for x in q]
        v = lfsr_states(seed, k, c * p)
        for i in range(c):
            n = sum((v[i * p + j] - h) * q[j] for j in range(p))
            out[b * c + i] = n / d * 2.0 ** e
    length = int(np.prod(meta["shape"]))
    return out[:length].astype(np.float32).reshape(meta["shape"])


def check_finite(values_f32, dtype):
    encoded = np.frombuffer(to_dtype_bytes(values_f32, dtype), dtype=np.uint16 if dtype == "BF16"
                            else DTYPES[dtype])
    if dtype == "BF16":
        finite = (encoded >> 7) & 0xFF != 0xFF  # exponent all ones: inf or NaN
    else:
        finite = np.isfinite(encoded)
    assert finite.all(), "reconstruction not finite in dtype"


def to_dtype_bytes(values_f32, dtype):
    if dtype == "BF16":
        bits = values_f32.view(np.uint32).astype(np.uint64)
        rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16  # round to nearest even
        return rounded.astype(np.uint16).tobytes()
    with np.errstate(over="ignore"):
        return values_f32.astype(DTYPES[dtype]).tobytes()


def main():
    meta, header, data = read_safetensors(sys.argv[1])
    version = check_packed(meta, header, data)
    calibrated = calibrated_tensors(meta)
    ref = read_safetensors(sys.argv[2]) if len(sys.argv) > 2 else None
    for name, info in header.items():
        s, e = info["data_offsets"]
        key = "seedlm.tensor." + name
        if key in meta:
            m = json.loads(meta[key])
            fields = {"name", "shape", "dtype", "c", "p", "k", "e_base", "blocks", "crc32",
                      "relmse", "meta_crc32"}
            assert isinstance(m, dict) and set(m) <= fields, f"{name}: metadata fields"
            assert m["name"] == name and info["dtype"] == "U8" and len(info["shape"]) == 1
            r = m.get("relmse")
            assert r is None or 0 <= r <= 100, f"{name}: recorded relmse {r} outside [0, 100]"
            values = decode_tensor(m, data[s:e], version)
            check_finite(values, m["dtype"])
            out = to_dtype_bytes(values, m["dtype"])
        else:
            out = data[s:e]
        if ref:
            rs, re_ = ref[1][name]["data_offsets"]
            same = ref[2][rs:re_] == out
            print(f"{name}: {'identical' if same else 'DIFFERENT'}")
            if not same:
                sys.exit(1)
        else:
            print(f"{name}: {len(out)} bytes{' (calibrated)' if name in calibrated else ''}")


if __name__ == "__main__":
    main()
