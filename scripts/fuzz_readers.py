#!/usr/bin/env python3
"""Mutation fuzzing of the readers, black box through the `seedlm` binary.

Usage: python3 scripts/fuzz_readers.py [--seedlm PATH] [--mutants N] [--seed S] [--timeout SEC]
                                       [--jobs J] [--targets packed,shard,dir,eval]

Builds small intact inputs once, then makes N mutants of them, spread over the targets, and runs
each through the commands that read it:

  packed  a small model (F32, F16, BF16 weights, a norm, an I64 tensor) packed at 4 and 3 bits
          (the 3-bit records leave padding bits): `inspect --json`, `decompress`, `compress`
  shard   shard folders (`job.json`, parts; and an unfinished shard's checkpoint pieces):
          `status`, `merge`, and for the unfinished folder the resumed shard before the merge
  dir     model directories (two weight files and `model.safetensors.index.json`, config.json,
          sentence-transformers' `modules.json` and `1_Pooling/`): `compress` of the plain
          directory; `inspect --json` and `decompress` of the packed one
  eval    `eval`'s inputs: config.json and tokenizer.json of a tiny Llama, and config.json,
          tokenizer files, modules.json and 1_Pooling/config.json of the demo encoder, each
          against a packed candidate

Mutations: bit flips, random bytes, truncations, header-length edits, parsed safetensors-header
edits written back as a well-formed container (a metadata key or value, a record of a part or a
piece such as its `e_base`, a shape, dtype or data offset, the version), JSON edits (a value
replaced by an extreme or wrong-typed one, a number nudged, a key dropped or added), deleted or
stray files, and symlinks (to a file or folder outside the tree, a loop, a dangling link).

Outcomes, per command run:

  clean error  non-zero exit, one `error:` line naming the mutated file (or the folder), no
               panic, no output left
  unchanged    exit 0 and the same result as the intact input
  changed      exit 0 with a different result that the input format does not allow (any change
               of a packed file, part or piece; a directory's weights read differently)
  allowed      exit 0 with a different result the mutation may cause: a plain weight's bytes,
               an eval config's or tokenizer's meaningful change (with finite, in-range figures),
               a followed file link
  panic        exit 101 or a panic message
  signal       killed by a signal (an abort, a segfault)
  timeout      no answer within --timeout seconds
  memory       peak resident memory above 2 GiB
  messy error  non-zero exit but not a clean one (several lines, no file name, output left)

Prints the counts and exits 1 if anything but clean errors, unchanged and allowed results
occurred. About 0.3 s of one core per mutant.
"""

import argparse
import collections
import concurrent.futures
import copy
import hashlib
import json
import math
import os
import random
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

import safetensors_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PARTIAL = ".seedlm-partial-"
MEMORY_LIMIT = 2 << 30
OUTCOMES = ["clean error", "unchanged", "changed", "allowed", "panic", "signal", "timeout",
            "memory", "messy error"]
BAD = {"changed", "panic", "signal", "timeout", "memory", "messy error"}


class Link:
    """A symlink in a tree, to `target` (relative to the link's folder, or absolute)."""

    def __init__(self, target):
        self.target = target


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


class Run:
    """One finished command: exit code (None on timeout, negative on a signal), output, peak
    resident memory in bytes."""

    def __init__(self, code, stdout, stderr, peak):
        self.code, self.stdout, self.stderr, self.peak = code, stdout, stderr, peak


PEAKS = collections.Counter()
PEAKS_LOCK = threading.Lock()


def run(seedlm, args, timeout):
    """Runs seedlm with its output in files and waits with wait4, for the peak memory (the
    largest per command kept in PEAKS)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        p = subprocess.Popen([seedlm] + args, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        killed = []

        def kill():
            killed.append(True)
            os.kill(p.pid, signal.SIGKILL)

        timer = threading.Timer(timeout, kill)
        timer.start()
        _, status, usage = os.wait4(p.pid, 0)
        timer.cancel()
        timer.join()
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        code = None if killed else p.returncode
        peak = usage.ru_maxrss * 1024
        with PEAKS_LOCK:
            PEAKS[args[0]] = max(PEAKS[args[0]], peak)
        return Run(code, out.read(), err.read().decode("utf-8", "replace"), peak)


def classify(r, names, reference, result, allowed=False):
    """The outcome of run `r` whose clean error must name one of `names`; `result` is what an
    exit 0 produced (None when an output that must not exist was left), compared with
    `reference`; `allowed` says a different result may follow from the mutation."""
    if r.code is None:
        return "timeout"
    if r.peak > MEMORY_LIMIT:
        return "memory"
    if r.code == 101 or "panicked" in r.stderr:
        return "panic"
    if r.code < 0:
        return "signal"
    if r.code != 0:
        lines = [l for l in r.stderr.splitlines() if l.startswith("error")]
        clean = len(lines) == 1 and any(n in lines[0] for n in names) and result is None
        return "clean error" if clean else "messy error"
    if result == reference:
        return "unchanged"
    return "allowed" if allowed else "changed"


def listing(stdout):
    """The --json listing without its paths, for comparison."""
    try:
        v = json.loads(stdout)
    except ValueError:
        return stdout
    if isinstance(v, dict):
        v.pop("path", None)
    return json.dumps(v, sort_keys=True).encode()


# ---------------------------------------------------------------- trees on disk


def read_tree(root):
    """A folder as {relative path: bytes or Link}."""
    tree = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            if os.path.islink(path):
                tree[rel] = Link(os.readlink(path))
            elif os.path.isfile(path):
                tree[rel] = open(path, "rb").read()
    return tree


def write_tree(root, tree, linked=None):
    """Writes `tree` under `root`; the paths in `linked` (big, never mutated) are hard links to
    the given files."""
    os.makedirs(root, exist_ok=True)
    for rel, v in sorted(tree.items()):
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if isinstance(v, Link):
            os.symlink(v.target, path)
        else:
            with open(path, "wb") as f:
                f.write(v)
    for rel, src in (linked or {}).items():
        if rel not in tree:
            os.link(src, os.path.join(root, rel))


def tree_digest(root, skip=()):
    """Each file of an output folder (links followed) with the SHA-256 of its bytes, but the
    paths in `skip`, plus any partial file left behind."""
    if not os.path.isdir(root):
        return None
    out = {}
    for rel, v in read_tree(root).items():
        if rel in skip:
            continue
        path = os.path.join(root, rel)
        if os.path.isfile(path):
            out[rel] = hashlib.sha256(open(path, "rb").read()).hexdigest()
    return out


def output_of(path):
    """The bytes of an output file, or None when there is none."""
    return open(path, "rb").read() if os.path.isfile(path) else None


def leftovers(root):
    """Partial files under `root`, but in an input model folder (`model/`), where a mutant
    may have put one."""
    return sum(1 for d, _, files in os.walk(root) for f in files
               if f.startswith(PARTIAL) and not os.path.relpath(d, root).split(os.sep)[0] == "model")


# ---------------------------------------------------------------- mutations


def mutate_bytes(rng, blob):
    kind = rng.choice(["flip", "byte", "truncate"])
    b = bytearray(blob)
    if not b:
        return "grow", b"\0" * rng.randrange(1, 64)
    if kind == "flip":
        i = rng.randrange(len(b))
        b[i] ^= 1 << rng.randrange(8)
    elif kind == "byte":
        b[rng.randrange(len(b))] = rng.randrange(256)
    else:
        b = b[:rng.randrange(len(b))]
    return kind, bytes(b)


EXTREMES = [0, -1, 1, 2, 7, 1 << 31, (1 << 63) - 1, (1 << 64) - 1, 1 << 64, -(1 << 63), 1e308,
            -1e308, 1e-320, 0.5, -0.0, "", "x", "../../../../etc", "/etc/passwd", "a" * 300, None,
            True, [], {}, [0], {"a": 1}]


def json_nodes(v, path=()):
    """Every (path, value) of a JSON value, containers included."""
    yield path, v
    if isinstance(v, dict):
        for k, x in v.items():
            yield from json_nodes(x, path + (k,))
    elif isinstance(v, list):
        for i, x in enumerate(v):
            yield from json_nodes(x, path + (i,))


def json_set(v, path, new):
    for p in path[:-1]:
        v = v[p]
    v[path[-1]] = new


def mutate_json_value(rng, v):
    """One edit of a parsed JSON value, in place or returned; returns (kind, value)."""
    v = copy.deepcopy(v)
    nodes = list(json_nodes(v))
    # Leaves and small containers alike; a tokenizer's vocabulary would otherwise drown the rest.
    path, node = rng.choice(nodes[:1] + [n for n in nodes[1:] if rng.random() < 0.5] or nodes)
    kind = rng.choice(["extreme", "nudge", "drop", "add", "string"])
    if kind == "nudge" and isinstance(node, (int, float)) and not isinstance(node, bool):
        new = rng.choice([node + 1, node - 1, node * 2, -node, node * 1000, 0])
        if not path:
            return kind, new
        json_set(v, path, new)
        return kind + ":" + ".".join(map(str, path[-2:])), v
    if kind == "drop" and path:
        parent = v
        for p in path[:-1]:
            parent = parent[p]
        del parent[path[-1]]
        return kind + ":" + ".".join(map(str, path[-2:])), v
    if kind == "add" and isinstance(node, (dict, list)):
        extra = rng.choice(EXTREMES)
        if isinstance(node, dict):
            node[rng.choice(["extra", "num_hidden_layers", "path", "e_base", "shards", "__x"])] = extra
        else:
            node.append(extra)
        return kind, v
    if kind == "string" and isinstance(node, str) and node:
        i = rng.randrange(len(node))
        new = node[:i] + chr(ord(node[i]) ^ (1 << rng.randrange(7))) + node[i + 1:]
        if not path:
            return kind, new
        json_set(v, path, new)
        return kind + ":" + ".".join(map(str, path[-2:])), v
    new = rng.choice(EXTREMES)
    if not path:
        return "extreme", new
    json_set(v, path, new)
    return "extreme:" + ".".join(map(str, path[-2:])), v


def mutate_json(rng, blob):
    try:
        v = json.loads(blob)
    except ValueError:
        return mutate_bytes(rng, blob)
    if rng.random() < 0.15:
        return mutate_bytes(rng, blob)
    kind, v = mutate_json_value(rng, v)
    return "json-" + kind, json.dumps(v, indent=1).encode()


def mutate_safetensors(rng, blob):
    """One random mutation of a safetensors file with metadata (packed file, part, piece)."""
    n, header, data = split(blob)
    kind = rng.choice(["flip", "flip-header", "flip-data", "byte", "truncate", "length",
                       "meta-value", "meta-json", "meta-key", "meta-drop", "meta-add", "entry",
                       "version"])
    b = bytearray(blob)
    if kind in ("flip", "flip-header", "flip-data"):
        lo, hi = {"flip": (0, len(b)), "flip-header": (8, 8 + n), "flip-data": (8 + n, len(b))}[kind]
        if hi <= lo:
            lo, hi = 0, len(b)
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
    meta = h.setdefault("__metadata__", {"format": "pt"})
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
    elif kind == "meta-json":
        # A value that is JSON (a part's or a piece's description) edited as JSON: e_base,
        # ranges, the job.
        key = rng.choice(sorted(meta))
        try:
            parsed = json.loads(meta[key])
        except ValueError:
            parsed = None
        if isinstance(parsed, (dict, list)):
            sub, parsed = mutate_json_value(rng, parsed)
            kind += "-" + sub
            meta[key] = json.dumps(parsed, separators=(",", ":"))
        else:
            meta[key] = rng.choice(["0", "-1", "1e308", "18446744073709551615", "NaN", "[]"])
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
    elif kind == "entry" and names:
        e = h[rng.choice(names)]
        what = rng.choice(["shape", "dtype", "offsets"])
        if what == "shape":
            e["shape"] = rng.choice([[int(np.prod(e["shape"]))], e["shape"][::-1], e["shape"] + [1], []])
        elif what == "dtype":
            e["dtype"] = rng.choice(["U8", "I8", "F16", "BF16", "F32", "I64"])
        else:
            j = rng.randrange(2)
            e["data_offsets"][j] += rng.choice([-4, -1, 1, 4])
    else:
        kind = "version"
        meta["seedlm.version"] = rng.choice(["1", "+2", "02", "3", " 2", "2.0", ""])
    return kind, safetensors_file.prefix(json.dumps(h, separators=(",", ":")).encode()) + data


def mutate_file(rng, rel, blob):
    if rel.endswith(".json"):
        return mutate_json(rng, blob)
    if rel.endswith(".safetensors") or rel.endswith(".seedlm"):
        try:
            split(blob)
            json.loads(split(blob)[1])
        except (ValueError, struct.error):
            return mutate_bytes(rng, blob)
        return mutate_safetensors(rng, blob)
    return mutate_bytes(rng, blob)


def mutate_tree(rng, tree, outside, focus=None):
    """One mutation of a tree: mostly one file's content, else a structural edit. `focus`
    (a list of paths) limits the content edits; `outside` is a folder outside every tree holding
    `file.json`, `model.safetensors` and `dir/`. Returns (kind, the mutated file, tree)."""
    tree = dict(tree)
    files = sorted(k for k, v in tree.items() if not isinstance(v, Link))
    rel = rng.choice(focus or files)
    if rng.random() < 0.8:
        kind, tree[rel] = mutate_file(rng, rel, tree[rel])
        return os.path.basename(rel) + " " + kind, rel, tree
    kind = rng.choice(["delete", "link-outside-file", "link-outside-dir", "link-loop",
                       "link-dangling", "link-sibling", "stray", "swap"])
    up = "../" * (rel.count("/") + 2)  # from the link's folder to the mutant's parent
    if kind == "delete":
        del tree[rel]
    elif kind == "link-outside-file":
        tree[rel] = Link(os.path.join(outside, rng.choice(["file.json", "model.safetensors"])))
    elif kind == "link-outside-dir":
        rel = os.path.join(os.path.dirname(rel), rng.choice(["sub", "1_Pooling", "shard-0001-of-0002"]))
        tree = {k: v for k, v in tree.items() if not k.startswith(rel + "/")}
        tree[rel] = Link(rng.choice([os.path.join(outside, "dir"), up + "outside/dir"]))
    elif kind == "link-loop":
        rel = os.path.join(os.path.dirname(rel), "loop")
        tree[rel] = Link(rng.choice([".", "..", os.path.join(up, "..")]))
    elif kind == "link-dangling":
        tree[rel] = Link("no-such-file")
    elif kind == "link-sibling":
        other = rng.choice([f for f in files if f != rel] or files)
        tree[rel] = Link(os.path.relpath(other, os.path.dirname(rel) or "."))
    elif kind == "stray":
        name = rng.choice([".seedlm-partial-x.tmp", "part-0007-of-0002.safetensors",
                           "piece-00000-000000000000.safetensors", "model-00003-of-00002.safetensors",
                           "extra.json"])
        tree[os.path.join(os.path.dirname(rel), name)] = rng.choice([b"", tree[rel]])
    else:
        other = rng.choice(files)
        tree[rel], tree[other] = tree[other], tree[rel]
    return os.path.basename(rel) + " " + kind, rel, tree


# ---------------------------------------------------------------- targets


class Packed:
    """Packed files: each mutant is one file."""
    name = "packed"

    def __init__(self, seedlm, work):
        model = os.path.join(work, "model.safetensors")
        small_model(model)
        self.bases = []
        for bits in ("4", "3"):
            packed = os.path.join(work, f"base{bits}.seedlm")
            dec = os.path.join(work, f"base{bits}.dec")
            must(seedlm, ["compress", model, "-o", packed, "--bits", bits, "--include", "weight$",
                          "--exclude", "norm", "--threads", "1"])
            must(seedlm, ["decompress", packed, "-o", dec])
            listed = must(seedlm, ["inspect", "--json", packed])
            self.bases.append((open(packed, "rb").read(), {
                "inspect": listing(listed.stdout), "decompress": open(dec, "rb").read()}))

    def mutant(self, rng, i):
        blob, refs = self.bases[i % 2]
        kind, m = mutate_safetensors(rng, blob)
        return kind, (m, refs)

    def check(self, seedlm, d, i, spec, timeout):
        blob, refs = spec
        name = f"mutant{i}.seedlm"
        path = os.path.join(d, name)
        with open(path, "wb") as f:
            f.write(blob)
        r = run(seedlm, ["inspect", "--json", path], timeout)
        out = {"inspect": classify(r, [name], refs["inspect"],
                                   listing(r.stdout) if r.code == 0 else None)}
        dec = os.path.join(d, "dec.safetensors")
        r = run(seedlm, ["decompress", path, "-o", dec], timeout)
        out["decompress"] = classify(r, [name], refs["decompress"], output_of(dec))
        comp = os.path.join(d, "comp.seedlm")
        r = run(seedlm, ["compress", path, "-o", comp, "--threads", "1"], timeout)
        # The intact packed file is refused by compress, so any success is a changed result.
        out["compress"] = classify(r, [name], None, output_of(comp) if r.code == 0 else None)
        if out["compress"] == "unchanged":
            out["compress"] = "changed"
        return out


class Shards:
    """Shard folders: a finished one (job.json, two parts) and one whose second shard is
    unfinished (its checkpoint pieces)."""
    name = "shard"

    def __init__(self, seedlm, work, outside):
        self.outside = outside
        self.model = os.path.join(work, "shard-model.safetensors")
        small_model(self.model)
        base = os.path.join(work, "shards")
        os.mkdir(base)
        out = os.path.join(base, "m.seedlm")
        self.opts = ["--threads", "1", "--checkpoint-blocks", "2"]
        for shard in ("0/2", "1/2"):
            must(seedlm, ["compress", self.model, "-o", out, "--shard", shard] + self.opts)
        must(seedlm, ["merge", out + ".shards", "-o", out])
        self.reference = open(out, "rb").read()
        self.finished = read_tree(out + ".shards")
        shutil.rmtree(out + ".shards")
        must(seedlm, ["compress", self.model, "-o", out, "--shard", "0/2"] + self.opts)
        self.unfinished = None
        for _ in range(200):
            # A shard killed after its first pieces and before its part.
            p = subprocess.Popen([seedlm, "compress", self.model, "-o", out, "--shard", "1/2"]
                                 + self.opts, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            ckpt = os.path.join(out + ".shards", "shard-0001-of-0002")
            while p.poll() is None:
                if os.path.isdir(ckpt) and sum(f.startswith("piece-") for f in os.listdir(ckpt)) >= 2:
                    p.kill()
                    break
                time.sleep(0.0002)
            p.wait()
            t = read_tree(out + ".shards")
            if any("piece-" in k for k in t) and "part-0001-of-0002.safetensors" not in t:
                self.unfinished = {k: v for k, v in t.items() if not k.endswith("/lock")
                                   and PARTIAL not in k}
                break
            for k in list(t):
                if k.startswith("part-0001") or k.startswith("shard-0001"):
                    path = os.path.join(out + ".shards", k)
                    shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
        if self.unfinished is None:
            print("fuzz: could not catch a shard between pieces; pieces are not fuzzed", file=sys.stderr)
        self.status = {}
        for which, tree in (("finished", self.finished), ("unfinished", self.unfinished)):
            if tree is not None:
                d = os.path.join(work, "status-" + which)
                write_tree(os.path.join(d, "m.seedlm.shards"), tree)
                self.status[which] = status_text(must(seedlm, ["status", os.path.join(d, "m.seedlm")]).stdout)
        shutil.rmtree(base)

    def mutant(self, rng, i):
        which = "unfinished" if self.unfinished is not None and i % 3 == 2 else "finished"
        tree = self.unfinished if which == "unfinished" else self.finished
        focus = [k for k in tree if "piece-" in k] if which == "unfinished" and rng.random() < 0.7 else None
        kind, rel, m = mutate_tree(rng, tree, self.outside, focus)
        return which + " " + kind, (which, kind, rel, m)

    def check(self, seedlm, d, i, spec, timeout):
        which, kind, rel, tree = spec
        folder = os.path.join(d, "m.seedlm.shards")
        write_tree(folder, tree)
        names = [os.path.basename(rel), "m.seedlm.shards"]
        out_path = os.path.join(d, "m.seedlm")
        r = run(seedlm, ["status", out_path], timeout)
        # Work deleted (or a checkpoint folder replaced by a link to another folder) is work to
        # do again, and progress.json is informational (host, rate): status may then say
        # something else.
        allowed = kind.split(" ")[-1] in ("delete", "link-dangling", "link-outside-dir") \
            or rel.endswith("progress.json")
        out = {"status": classify(r, names, self.status[which],
                                  status_text(r.stdout) if r.code == 0 else None, allowed)}
        if which == "unfinished":
            r = run(seedlm, ["compress", self.model, "-o", out_path, "--shard", "1/2"] + self.opts, timeout)
            part = os.path.join(folder, "part-0001-of-0002.safetensors")
            # A resumed shard leaves its part; merging it tells whether it is right.
            out["resume"] = classify(r, names, True, True if r.code == 0 else None)
            if r.code != 0 and os.path.exists(part) and out["resume"] == "clean error":
                out["resume"] = "messy error"
        merged = os.path.join(d, "merged.seedlm")
        r = run(seedlm, ["merge", folder, "-o", merged, "--threads", "1"], timeout)
        out["merge"] = classify(r, names, self.reference, output_of(merged))
        return out


def status_text(stdout):
    """`status` without the folder's path and what depends on the clock."""
    lines = stdout.decode("utf-8", "replace").splitlines()
    if lines:
        lines[0] = lines[0].split(": ", 1)[-1]
    return "\n".join(l.split("blocks/s")[0] if "total" in l else l[:60] for l in lines)


class Directories:
    """Model directories: a plain one (two weight files and their index, config.json,
    modules.json, 1_Pooling/config.json) and the packed one compress makes of it."""
    name = "dir"

    def __init__(self, seedlm, work, outside):
        self.outside = outside
        rng = np.random.default_rng(3)
        plain = os.path.join(work, "dir-plain")
        os.mkdir(plain)
        files = {
            "model-00001-of-00002.safetensors": [
                ("encoder.layer.0.query.weight", "F32", [8, 16], rng.normal(0, 0.1, 128).astype(np.float32).tobytes()),
                ("encoder.layer.0.norm.weight", "F32", [16], rng.normal(1, 0.1, 16).astype(np.float32).tobytes())],
            "model-00002-of-00002.safetensors": [
                ("encoder.layer.1.key.weight", "F16", [4, 24], rng.normal(0, 0.1, 96).astype(np.float16).tobytes())]}
        weight_map = {}
        for fname, tensors in files.items():
            safetensors_file.write(os.path.join(plain, fname), tensors, {"format": "pt"})
            weight_map.update({t[0]: fname for t in tensors})
        jsons = {
            "model.safetensors.index.json": {"metadata": {"total_size": 752}, "weight_map": weight_map},
            "config.json": {"architectures": ["BertModel"], "hidden_size": 16, "num_hidden_layers": 2},
            "modules.json": [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                             {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}],
            "1_Pooling/config.json": {"word_embedding_dimension": 16, "pooling_mode_mean_tokens": True}}
        for rel, v in jsons.items():
            os.makedirs(os.path.dirname(os.path.join(plain, rel)), exist_ok=True)
            with open(os.path.join(plain, rel), "w") as f:
                json.dump(v, f, indent=1)
        packed = os.path.join(work, "dir-packed")
        must(seedlm, ["compress", plain, "-o", packed, "--threads", "1"])
        dec = os.path.join(work, "dir-dec")
        must(seedlm, ["decompress", packed, "-o", dec])
        self.plain, self.packed = read_tree(plain), read_tree(packed)
        self.refs = {"compress": tree_digest(packed), "decompress": tree_digest(dec),
                     "inspect": listing(must(seedlm, ["inspect", "--json", packed]).stdout)}
        self.weights = [k for k in self.plain if k.endswith(".safetensors")]

    def mutant(self, rng, i):
        which = "packed" if i % 2 else "plain"
        tree = self.packed if which == "packed" else self.plain
        focus = None
        if rng.random() < 0.5:
            focus = [k for k in tree if k.endswith(".json")]
        kind, rel, m = mutate_tree(rng, tree, self.outside, focus)
        return which + " " + kind, (which, kind, rel, m)

    def check(self, seedlm, d, i, spec, timeout):
        which, kind, rel, tree = spec
        src = os.path.join(d, "model")
        write_tree(src, tree)
        names = [os.path.basename(rel), "model"]
        # Files copied as they are may differ when their source was the one mutated; the
        # weights may differ when a plain weight file's data was edited or a link followed.
        base = self.packed if which == "packed" else self.plain
        skip = {k for k in set(tree) | set(base) if k not in self.weights
                and not k.endswith("index.json") and k != "model.safetensors"
                and (k not in tree or k not in base or tree[k] != base[k])}
        # A plain weight file has no checksum: any edit of it may change what is read. An
        # index entry dropped leaves its tensor out of the model, as transformers reads it.
        # A link to a file is followed (a Hugging Face cache links every file to a blob).
        allowed = (which == "plain" and (rel in self.weights or "drop:weight_map." in kind)) \
            or kind.endswith("link-outside-file")
        out = {}
        if which == "plain":
            dst = os.path.join(d, "out")
            r = run(seedlm, ["compress", src, "-o", dst, "--threads", "1"], timeout)
            ref = {k: v for k, v in self.refs["compress"].items() if k not in skip}
            out["compress"] = classify(r, names, ref, tree_digest(dst, skip), allowed)
        else:
            r = run(seedlm, ["inspect", "--json", src], timeout)
            out["inspect"] = classify(r, names, self.refs["inspect"],
                                      listing(r.stdout) if r.code == 0 else None, allowed)
            dst = os.path.join(d, "dec")
            r = run(seedlm, ["decompress", src, "-o", dst], timeout)
            ref = {k: v for k, v in self.refs["decompress"].items() if k not in skip}
            out["decompress"] = classify(r, names, ref, tree_digest(dst, skip), allowed)
        return out


class Eval:
    """`eval`'s inputs: a tiny Llama's config.json and tokenizer.json, the demo encoder's
    config.json, tokenizer files, modules.json and 1_Pooling/config.json."""
    name = "eval"

    def __init__(self, seedlm, work, outside):
        self.outside = outside
        self.models = {}
        text = os.path.join(work, "eval-text.txt")
        with open(text, "w") as f:
            f.write("It is a truth universally acknowledged, that a single man in possession\n")
        sentences = os.path.join(work, "eval-sentences.txt")
        with open(sentences, "w") as f:
            f.write("A man is playing a guitar.\nThe cat sits on the mat.\n")
        for name, src, include, extra in (
                ("llama", os.path.join(ROOT, "tests", "fixtures", "eval", "llama"),
                 r"layers\.0\.mlp\.up_proj\.weight", ["--text", text]),
                ("bert", os.path.join(ROOT, "assets", "demo"),
                 r"layer\.0\.attention\.self\.query\.weight", ["--sentences", sentences])):
            weights = os.path.join(work, f"eval-{name}.safetensors")
            shutil.copy(os.path.join(src, "model.safetensors"), weights)
            cand = os.path.join(work, f"eval-{name}.seedlm")
            must(seedlm, ["compress", weights, "-o", cand, "--include", include, "--threads", "1"])
            tree = {k: v for k, v in read_tree(src).items()
                    if k != "model.safetensors" and k != "LICENSE" and k != "reference.json"}
            base = os.path.join(work, f"eval-{name}")
            write_tree(base, tree, {"model.safetensors": weights})
            args = [cand, "--json", "--threads", "1"] + extra
            ref = json.loads(must(seedlm, ["eval", base] + args).stdout)
            self.models[name] = (tree, weights, args, ref)

    def mutant(self, rng, i):
        name = "llama" if i % 2 else "bert"
        tree = self.models[name][0]
        kind, rel, m = mutate_tree(rng, tree, self.outside, sorted(tree))
        return name + " " + kind, (name, rel, m)

    def check(self, seedlm, d, i, spec, timeout):
        name, rel, tree = spec
        _, weights, args, ref = self.models[name]
        src = os.path.join(d, "model")
        write_tree(src, tree, {"model.safetensors": weights})
        r = run(seedlm, ["eval", src] + args, timeout)
        result = None
        if r.code == 0:
            try:
                result = json.loads(r.stdout)
            except ValueError:
                result = r.stdout
        return {"eval": classify(r, [os.path.basename(rel), "model"], ref, result,
                                 allowed=sane_eval(result, ref))}


def sane_eval(v, ref):
    """Whether an eval report that differs from the intact one could be right for the edited
    config: finite figures in their ranges, the same tensors changed."""
    if not isinstance(v, dict) or v.get("changed_tensors") != ref.get("changed_tensors"):
        return False
    for k, x in v.items():
        if isinstance(x, float) and not math.isfinite(x):
            return False
    bounded = [v.get(k) for k in ("mean_cosine", "min_cosine", "top1") if v.get(k) is not None]
    if any(not -1.0 - 1e-9 <= x <= 1.0 + 1e-9 for x in bounded):
        return False
    if any(v.get(k) is not None and v[k] < 1.0 for k in ("ppl_original", "ppl_candidate")):
        return False
    return v.get("kl") is None or v["kl"] >= -1e-9


def must(seedlm, args):
    r = run(seedlm, args, 300)
    assert r.code == 0, f"seedlm {' '.join(args)}: {r.stderr}"
    return r


def group(target, kind):
    """The target, base and file a mutant's runs are counted under (numbers squashed)."""
    words = kind.split(" ")
    return re.sub(r"\d+", "#", " ".join([target] + words[:-1] if len(words) > 1 else [target, "file"]))


KEPT = []


def check_one(target, seedlm, work, i, kind, spec, timeout, keep):
    """Runs mutant i; the folder of a bad one (inputs and outputs) is kept, the first `keep`."""
    d = os.path.join(work, f"m{i}")
    os.mkdir(d)
    outcomes = target.check(seedlm, d, i, spec, timeout)
    left = leftovers(d)
    if (BAD & set(outcomes.values()) or left) and len(KEPT) < keep:
        kept = os.path.join(tempfile.gettempdir(), f"seedlm-fuzz-bad-{os.getpid()}-{i}")
        shutil.move(d, kept)
        KEPT.append(kept)
        return kind, outcomes, left, kept
    shutil.rmtree(d, ignore_errors=True)
    return kind, outcomes, left, None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seedlm", default=os.path.join(ROOT, "target", "debug", "seedlm"))
    ap.add_argument("--mutants", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--targets", default="packed,shard,dir,eval")
    ap.add_argument("--show", type=int, default=8, help="bad mutants described and kept")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    work = tempfile.mkdtemp(prefix="seedlm-fuzz-")
    started = time.time()
    try:
        outside = os.path.join(work, "outside")
        os.makedirs(os.path.join(outside, "dir"))
        with open(os.path.join(outside, "file.json"), "w") as f:
            f.write('{"outside": true}')
        with open(os.path.join(outside, "dir", "config.json"), "w") as f:
            f.write('{"outside": true}')
        small_model(os.path.join(outside, "model.safetensors"))
        makers = {"packed": lambda: Packed(args.seedlm, work),
                  "shard": lambda: Shards(args.seedlm, work, outside),
                  "dir": lambda: Directories(args.seedlm, work, outside),
                  "eval": lambda: Eval(args.seedlm, work, outside)}
        targets = [makers[t]() for t in args.targets.split(",")]
        jobs = []
        for i in range(args.mutants):
            t = targets[i % len(targets)]
            kind, spec = t.mutant(rng, i // len(targets))
            jobs.append((t, i, kind, spec))
        counts = collections.defaultdict(collections.Counter)
        by_kind = collections.defaultdict(collections.Counter)
        left, bad = 0, []
        with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
            futures = {pool.submit(check_one, t, args.seedlm, work, i, k, s, args.timeout,
                                   args.show): t
                       for t, i, k, s in jobs}
            for n, f in enumerate(concurrent.futures.as_completed(futures), 1):
                t = futures[f]
                kind, outcomes, lo, kept = f.result()
                for cmd, o in outcomes.items():
                    counts[(t.name, cmd)][o] += 1
                    by_kind[group(t.name, kind)][o] += 1
                left += lo
                if BAD & set(outcomes.values()):
                    bad.append((t.name, kind, outcomes, kept))
                if n % 500 == 0:
                    print(f"{n}/{args.mutants} mutants, {time.time() - started:.0f} s", file=sys.stderr)
        runs = sum(sum(c.values()) for c in counts.values())
        print(f"{args.mutants} mutants (seed {args.seed}, targets {args.targets}), {runs} runs, "
              f"{time.time() - started:.0f} s")
        short = {"clean error": "clean err", "messy error": "messy err"}
        print(f"{'target command':<18}" + "".join(f"{short.get(k, k):>10}" for k in OUTCOMES))
        total = collections.Counter()
        for (tname, cmd), c in counts.items():
            total.update(c)
            print(f"{tname + ' ' + cmd:<18}" + "".join(f"{c[k]:>10}" for k in OUTCOMES))
        print(f"{'all':<18}" + "".join(f"{total[k]:>10}" for k in OUTCOMES))
        print("by file mutated (runs, not refused): " + ", ".join(
            f"{k} {sum(v.values())} ({sum(v.values()) - v['clean error']})"
            for k, v in sorted(by_kind.items())))
        print(f"partial files left behind: {left}")
        print("largest peak memory: " + ", ".join(
            f"{cmd} {peak / 2**20:.0f} MiB" for cmd, peak in sorted(PEAKS.items())))
        for tname, kind, outcomes, kept in bad[:args.show]:
            print(f"  {tname} {kind}: {outcomes}" + (f" kept in {kept}" if kept else ""))
        ok = all(total[k] == 0 for k in BAD) and not left
        sys.exit(0 if ok else 1)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
