"""The safetensors layout the scripts write and read: an 8-byte little-endian header length,
the JSON header (padded with spaces to a multiple of 8), then each tensor's bytes in order.
One copy for every script; the Rust reader (src/io/container.rs) is what it must satisfy."""

import json
import struct


def header(entries, metadata=None):
    """The bytes before the data for `entries` (name, dtype, shape, byte count) laid out in
    order, and the data section's size."""
    h, offset = {}, 0
    if metadata:
        h["__metadata__"] = metadata
    for name, dtype, shape, nbytes in entries:
        h[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    return prefix(json.dumps(h, separators=(",", ":")).encode()), offset


def prefix(header_json):
    """The length field and the header padded to a multiple of 8 (also for a damaged header)."""
    header_json += b" " * (-len(header_json) % 8)
    return struct.pack("<Q", len(header_json)) + header_json


def write(path, tensors, metadata=None):
    """Writes `tensors` (name, dtype, shape, raw bytes) to `path`."""
    head, _ = header([(n, d, s, len(raw)) for n, d, s, raw in tensors], metadata)
    with open(path, "wb") as f:
        f.write(head)
        for *_, raw in tensors:
            f.write(raw)


def read_header(path):
    """The header of the file at `path` (a dict, `__metadata__` included) and where the data
    section starts."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(n)), 8 + n
