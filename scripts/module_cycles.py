#!/usr/bin/python3
"""Lists the circles between sibling modules of the crate: a uses b and b uses a.

Each `crate::`, `super::` and `self::` path in src/ (in `use` lines, braces expanded, and in
code) is cut to the module it names; a use of a.x.y by a.b.z counts as the sibling pair
a.b -> a.x, so a parent and its own children never count. Prints one line per circle, then
the count. Usage: scripts/module_cycles.py [SRC_DIR]
"""

import os
import re
import sys


def module_of(path, src):
    rel = os.path.relpath(path, src)[:-3].split(os.sep)
    if rel[-1] == "mod" or rel == ["lib"] or rel == ["main"]:
        rel = rel[:-1]
    return tuple(rel)


def expand(prefix, body):
    """Expands a brace group of a `use` line into full paths."""
    out, depth, start = [], 0, 0
    for i, ch in enumerate(body + ","):
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        elif ch == "," and depth == 0:
            out.extend(expand_one(prefix, body[start:i].strip()))
            start = i + 1
    return out


def expand_one(prefix, item):
    if not item:
        return []
    m = re.match(r"^([\w:]*?)(::)?\{(.*)\}$", item, re.S)
    if m:
        head = prefix + ([p for p in m.group(1).split("::") if p])
        return expand(head, m.group(3))
    item = re.sub(r"\s+as\s+\w+$", "", item)
    return [prefix + [p for p in item.split("::") if p]]


def resolve(parts, here, modules):
    base = list(here)
    if parts[0] == "crate":
        base, parts = [], parts[1:]
    elif parts[0] in ("self", "super"):
        while parts and parts[0] in ("self", "super"):
            if parts[0] == "super":
                base = base[:-1]
            parts = parts[1:]
    else:
        return None
    full = base + parts
    while full and tuple(full) not in modules:
        full = full[:-1]
    return tuple(full)


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else "src"
    files = {}
    for root, _, names in os.walk(src):
        for n in names:
            if n.endswith(".rs"):
                p = os.path.join(root, n)
                files[p] = module_of(p, src)
    modules = set(files.values())
    edges = set()
    for path, here in files.items():
        text = re.sub(r"//[^\n]*", "", open(path, encoding="utf-8").read())
        paths = []
        for m in re.finditer(r"\buse\s+((?:crate|super|self)[^;]*);", text, re.S):
            paths.extend(expand_one([], m.group(1).strip()))
        for m in re.finditer(r"\b((?:crate|super|self)(?:::\w+)+)", text):
            paths.append(m.group(1).split("::"))
        for parts in paths:
            target = resolve(parts, here, modules)
            if target is None:
                continue
            n = 0
            while n < min(len(here), len(target)) and here[n] == target[n]:
                n += 1
            if n == len(here) or n == len(target):
                continue  # a module and its ancestor
            edges.add((here[: n + 1], target[: n + 1]))
    circles = sorted({tuple(sorted((a, b))) for a, b in edges if (b, a) in edges})
    for a, b in circles:
        print("::".join(a), "<->", "::".join(b))
    print(len(circles), "circles")


if __name__ == "__main__":
    main()
