#!/usr/bin/env python3
"""Mutation fuzzing of the packed-file readers, black box through the `seedlm` binary.

Usage: python3 scripts/fuzz_readers.py [--seedlm PATH] [--mutants N] [--seed S] [--timeout SEC]
                                       [--jobs J]

Writes a small model (F32, F16 and BF16 linear weights, a norm, an I64 tensor), packs it at the
4-bit and the 3-bit preset (the 3-bit records leave padding bits in the last byte), then makes N
mutants of the packed files: bit flips and random bytes anywhere, in the header or in the data,
truncations, edits of the header length, and parsed-header edits (a metadata key or value
changed, deleted or added, a shape, dtype or data offset changed, the version rewritten) written
back as a well-formed container. Each mutant goes through `inspect --json`, `decompress` and
`compress`. Outcomes, per command:

  clean error  non-zero exit, one `error:` line naming the mutant, no panic, no output file
  unchanged    exit 0 and the same result as the intact file (listing, decompressed bytes)
  changed      exit 0 with a different result: the format should allow none
  panic        exit 101 or a panic message
  timeout      no answer within --timeout seconds
  messy error  non-zero exit but not a clean one (several lines, no file name, output left)

Prints the counts and exits 1 if anything but clean errors and unchanged results occurred.
Takes a few minutes for 3 000 mutants; not part of the test suite.
"""

import argparse
import collections
import concurrent.futures
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

import numpy as np

import safetensors_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_container(path, header_bytes, data):
    with open(path, "wb") as f:
        f.write(safetensors_file.prefix(header_bytes) + data)


def split(blob):
    (n,) = struct.unpack("<Q", blob[:8])
    return n, blob[8:8 + n], blob[8 + n:]


def small_model(path):
    rng = np.random.default_rng(7)
    bf16 = (rng.normal(0, 0.5, 65).astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
    safetensors_file.write(path, [
        ("layers.0.q_proj.weight", "F16", [16, 24], rng.normal(0, 0.02, 384).astype(np.float16).tobytes()),
        ("layers.0.mlp.weight", "BF16", [5, 13], bf16.tobytes()),
        ("layers.1.o_proj.weight", "F32", [7, 13], rng.normal(0, 0.1, 91).astype(np.float32).tobytes()),
        ("layers.0.norm.weight", "F32", [24], rng.normal(1, 0.1, 24).astype(np.float32).tobytes()),
        ("position_ids", "I64", [1, 7], np.arange(7, dtype=np.int64).tobytes()),
    ], {"format": "pt"})


def run(seedlm, args, timeout):
    try:
        p = subprocess.run([seedlm] + args, capture_output=True, timeout=timeout)
        return p.returncode, p.stdout, p.stderr.decode("utf-8", "replace")
    except subprocess.TimeoutExpired:
        return None, b"", ""


def mutate(rng, blob):
    """One random mutation of a packed file; returns (kind, bytes)."""
    n, header, data = split(blob)
    kind = rng.choice(["flip", "flip-header", "flip-data", "byte", "truncate", "length",
                       "meta-value", "meta-key", "meta-drop", "meta-add", "entry", "version"])
    b = bytearray(blob)
    if kind in ("flip", "flip-header", "flip-data"):
        lo, hi = {"flip": (0, len(b)), "flip-header": (8, 8 + n), "flip-data": (8 + n, len(b))}[kind]
        i = rng.randrange(lo, hi)
        b[i] ^= 1 << rng.randrange(8)
        return kind, bytes(b)
    if kind == "byte":
        b[rng.randrange(len(b))] = rng.randrange(256)
        return kind, bytes(b)
    if kind == "truncate":
        return kind, bytes(b[:rng.randrange(len(b))])
    if kind == "length":
        delta = rng.choice([-8, -1, 1, 8, 1 << 20, -n])
        return kind, struct.pack("<Q", max(0, n + delta)) + blob[8:]
    h = json.loads(header)
    meta = h["__metadata__"]
    names = [k for k in h if k != "__metadata__"]
    if kind == "meta-value":
        key = rng.choice(sorted(meta))
        value = meta[key]
        if value:
            i = rng.randrange(len(value))
            c = value[i]
            new = chr(ord(c) ^ (1 << rng.randrange(7))) if not c.isdigit() else rng.choice("0123456789-")
            meta[key] = value[:i] + new + value[i + 1:]
        else:
            meta[key] = "x"
    elif kind == "meta-key":
        key = rng.choice(sorted(meta))
        i = rng.randrange(len(key))
        new = key[:i] + chr(ord(key[i]) ^ (1 << rng.randrange(7))) + key[i + 1:]
        meta[new] = meta.pop(key)
    elif kind == "meta-drop":
        del meta[rng.choice(sorted(meta))]
    elif kind == "meta-add":
        meta[rng.choice(["seedlm.extra", "note", "seedlm.tensor.position_ids"])] = rng.choice(
            ["1", "{}", meta[rng.choice(sorted(meta))]])
    elif kind == "entry":
        e = h[rng.choice(names)]
        what = rng.choice(["shape", "dtype", "offsets"])
        if what == "shape":
            e["shape"] = rng.choice([[int(np.prod(e["shape"]))], e["shape"][::-1], e["shape"] + [1], []])
        elif what == "dtype":
            e["dtype"] = rng.choice(["U8", "I8", "F16", "BF16", "F32", "I64"])
        else:
            j = rng.randrange(2)
            e["data_offsets"][j] += rng.choice([-4, -1, 1, 4])
    elif kind == "version":
        meta["seedlm.version"] = rng.choice(["1", "+2", "02", "3", " 2", "2.0", ""])
    return kind, rebuild(h, data)


def rebuild(h, data):
    return safetensors_file.prefix(json.dumps(h, separators=(",", ":")).encode()) + data


def classify(code, stdout, stderr, name, reference, out_path):
    if code is None:
        return "timeout"
    if code == 101 or "panicked" in stderr:
        return "panic"
    if code != 0:
        lines = [l for l in stderr.splitlines() if l.startswith("error")]
        clean = len(lines) == 1 and name in lines[0] and (out_path is None or not os.path.exists(out_path))
        return "clean error" if clean else "messy error"
    result = stdout if out_path is None else open(out_path, "rb").read()
    return "unchanged" if result == reference else "changed"


def listing(stdout, name):
    """The --json listing without its path, for comparison."""
    try:
        v = json.loads(stdout)
    except ValueError:
        return stdout
    v.pop("path", None)
    return json.dumps(v, sort_keys=True).encode()


def check_one(args, seedlm, work, i, kind, blob, refs):
    d = os.path.join(work, f"m{i}")
    os.mkdir(d)
    name = f"mutant{i}.seedlm"
    path = os.path.join(d, name)
    with open(path, "wb") as f:
        f.write(blob)
    outcomes = {}
    code, out, err = run(seedlm, ["inspect", "--json", path], args.timeout)
    if code == 0:
        out = listing(out, name)
    outcomes["inspect"] = classify(code, out, err, name, refs["inspect"], None)
    dec = os.path.join(d, "dec.safetensors")
    code, out, err = run(seedlm, ["decompress", path, "-o", dec], args.timeout)
    outcomes["decompress"] = classify(code, out, err, name, refs["decompress"], dec)
    comp = os.path.join(d, "comp.seedlm")
    code, out, err = run(seedlm, ["compress", path, "-o", comp, "--threads", "1"], args.timeout)
    # The intact packed file is refused by compress, so any success is a changed result.
    outcomes["compress"] = classify(code, out, err, name, None, comp)
    leftovers = [f for f in os.listdir(d) if f.startswith(".seedlm-partial-")]
    shutil.rmtree(d)
    return kind, outcomes, leftovers, blob if "changed" in outcomes.values() or "panic" in outcomes.values() else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seedlm", default=os.path.join(ROOT, "target", "debug", "seedlm"))
    ap.add_argument("--mutants", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    work = tempfile.mkdtemp(prefix="seedlm-fuzz-")
    try:
        model = os.path.join(work, "model.safetensors")
        small_model(model)
        bases = []
        for bits in ("4", "3"):
            packed = os.path.join(work, f"base{bits}.seedlm")
            dec = os.path.join(work, f"base{bits}.dec")
            for cmd in (["compress", model, "-o", packed, "--bits", bits, "--include", "weight$",
                         "--exclude", "norm"], ["decompress", packed, "-o", dec]):
                code, _, err = run(args.seedlm, cmd, 120)
                assert code == 0, err
            code, out, err = run(args.seedlm, ["inspect", "--json", packed], 60)
            assert code == 0, err
            refs = {"inspect": listing(out, ""), "decompress": open(dec, "rb").read()}
            bases.append((open(packed, "rb").read(), refs))
        jobs = []
        for i in range(args.mutants):
            blob, refs = bases[i % 2]
            kind, mutant = mutate(rng, blob)
            jobs.append((i, kind, mutant, refs))
        counts = {c: collections.Counter() for c in ("inspect", "decompress", "compress")}
        by_kind = collections.defaultdict(collections.Counter)
        leftovers, bad = 0, []
        with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
            futures = [pool.submit(check_one, args, args.seedlm, work, i, k, m, r)
                       for i, k, m, r in jobs]
            for n, f in enumerate(concurrent.futures.as_completed(futures), 1):
                kind, outcomes, left, blob = f.result()
                for cmd, o in outcomes.items():
                    counts[cmd][o] += 1
                    by_kind[kind][o] += 1
                leftovers += len(left)
                if blob is not None:
                    bad.append((kind, outcomes, blob))
                if n % 500 == 0:
                    print(f"{n}/{args.mutants} mutants", file=sys.stderr)
        kinds = ["clean error", "unchanged", "changed", "panic", "timeout", "messy error"]
        print(f"{args.mutants} mutants (seed {args.seed}), {3 * args.mutants} runs")
        print(f"{'command':<11}" + "".join(f"{k:>13}" for k in kinds))
        total = collections.Counter()
        for cmd, c in counts.items():
            total.update(c)
            print(f"{cmd:<11}" + "".join(f"{c[k]:>13}" for k in kinds))
        print(f"{'all':<11}" + "".join(f"{total[k]:>13}" for k in kinds))
        print("by mutation (mutants, runs not refused): " + ", ".join(
            f"{k} {sum(v.values()) // 3} ({sum(v.values()) - v['clean error']})"
            for k, v in sorted(by_kind.items())))
        print(f"partial files left behind: {leftovers}")
        for kind, outcomes, blob in bad[:5]:
            keep = os.path.join(tempfile.gettempdir(), f"seedlm-fuzz-bad-{zlib.crc32(blob):08x}.seedlm")
            open(keep, "wb").write(blob)
            print(f"  {kind}: {outcomes} kept as {keep}")
        ok = all(total[k] == 0 for k in ("changed", "panic", "timeout", "messy error")) and not leftovers
        sys.exit(0 if ok else 1)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
