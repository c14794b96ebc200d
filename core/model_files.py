"""Reading an exported model's files with numpy and the standard library alone (stock Blender has no safetensors
package and no pillow), every problem named by file and tensor.

safetensors: 8 bytes of little-endian header length, a JSON header {name: {dtype, shape, data_offsets}}, then the
raw little-endian buffers. read_tensors checks the header against the shapes the model's config.json implies
(core.network_configs) before it reads a byte of data, so a config or file asking for more than the file holds is
refused by name instead of becoming a huge allocation.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from .hub import WeightsError

MAX_HEADER_BYTES = 100 << 20  # the safetensors library's own limit
# safetensors dtype -> numpy dtype (little-endian); BF16 has no numpy type and is widened to float32
_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1",
           "U8": "u1", "BOOL": "?", "BF16": "<u2"}


class ModelFormatError(WeightsError):
    """A model file that cannot be read, or does not match what its config.json says (or what this facecam reads);
    `path` is the file at fault."""

    def __init__(self, message: str, path: Path | None = None):
        super().__init__(message)
        self.path = path


def _damaged(path: Path, why: str) -> ModelFormatError:
    return ModelFormatError(f"{path}: cannot be loaded, {why}; re-export or re-download it", path)


def _whole(value) -> bool:
    return type(value) is int and value >= 0  # not bool, float or str: JSON the safetensors format never writes


def read_header(path: Path) -> tuple[dict, int]:
    """(the tensor entries of a safetensors header, the offset where the data starts), every entry checked to be
    as long as its dtype and shape say, and the entries to tile the data without gaps or overlaps (the format's own
    rule: so nothing read can be larger than the file)."""
    path = Path(path)
    if not path.is_file():
        raise ModelFormatError(f"{path}: missing; the model folder is incomplete (re-export or re-download it)", path)
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise _damaged(path, f"truncated: {size} bytes, not even the 8-byte header length")
        length = int.from_bytes(head, "little")
        if length > size - 8:
            raise _damaged(path, f"truncated or not a safetensors file: its header claims {length} bytes, the file "
                                 f"has {size}")
        if length > MAX_HEADER_BYTES:
            raise _damaged(path, f"not a safetensors file: its header claims {length} bytes, over the format's "
                                 f"{MAX_HEADER_BYTES}")
        try:
            header = json.loads(f.read(length))
            if not isinstance(header, dict):
                raise ValueError
        except ValueError:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise _damaged(path, "not a safetensors file: its header is not safetensors JSON") from None
    start, entries = 8 + length, {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        dtype = entry.get("dtype") if isinstance(entry, dict) else None
        shape = entry.get("shape") if isinstance(entry, dict) else None
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if not (isinstance(dtype, str) and isinstance(shape, list) and all(map(_whole, shape))
                and isinstance(offsets, list) and len(offsets) == 2 and all(map(_whole, offsets))):
            raise _damaged(path, f"not a safetensors file: tensor {name!r} has no dtype, shape and data_offsets")
        if dtype not in _DTYPES:
            raise ModelFormatError(f"{path}: tensor {name!r} has dtype {dtype}, which facecam does not read (expected "
                                   f"one of {', '.join(_DTYPES)})", path)
        begin, stop = offsets
        if not begin <= stop or stop - begin != math.prod(shape) * np.dtype(_DTYPES[dtype]).itemsize:
            raise _damaged(path, f"tensor {name!r}: data_offsets {offsets} do not hold a {dtype} array of "
                                 f"shape {shape}")
        entries[name] = {"dtype": dtype, "shape": tuple(shape), "offsets": (begin, stop)}
    end = 0
    for name, entry in sorted(entries.items(), key=lambda item: item[1]["offsets"]):
        if entry["offsets"][0] != end:
            raise _damaged(path, f"tensor {name!r}: data_offsets {list(entry['offsets'])} "
                                 f"{'overlap' if entry['offsets'][0] < end else 'leave a gap after'} the tensor before")
        end = entry["offsets"][1]
    if start + end > size:
        raise _damaged(path, f"truncated: {size} bytes where its header describes {start + end}")
    return entries, start


FLOATS = ("F64", "F32", "F16", "BF16")
INTEGERS = ("I64", "I32", "I16", "I8", "U8")


def check_shapes(path: Path, entries: dict, expected: dict[str, tuple[int, ...]], indices: tuple[str, ...] = ()
                 ) -> None:
    """Every tensor `expected` names is in the header with that shape and a floating-point dtype (they are network
    weights; those named in `indices` an integer one); else a ModelFormatError naming it."""
    for name, shape in expected.items():
        if name not in entries:
            raise ModelFormatError(f"{path}: missing tensor {name!r}", path)
        kinds, what = (INTEGERS, "indices are integers") if name in indices else (FLOATS, "network weights are "
                                                                                          "floating point")
        if entries[name]["dtype"] not in kinds:
            raise ModelFormatError(f"{path}: tensor {name!r} has dtype {entries[name]['dtype']}, {what} "
                                   f"({', '.join(kinds)})", path)
        if entries[name]["shape"] != tuple(shape):
            raise ModelFormatError(f"{path}: tensor {name!r} has shape {entries[name]['shape']}, the config says "
                                   f"{tuple(shape)}", path)


def read_tensors(path: str | Path, expected: dict[str, tuple[int, ...]] | None = None,
                 optional: tuple[str, ...] = (), indices: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """The tensors of a safetensors file as numpy arrays (floating ones as float32, the others as stored): those
    `expected` names, checked against their shapes first, plus any of `optional` present; with `expected` None,
    those of `optional` present, or all of them when `optional` is empty too."""
    path = Path(path)
    entries, start = read_header(path)
    if expected is not None:
        check_shapes(path, entries, expected, indices)
        names = [*expected, *(n for n in optional if n in entries and n not in expected)]
    else:
        names = [n for n in optional if n in entries] if optional else list(entries)
    out = {}
    with path.open("rb") as f:
        for name in names:
            entry = entries[name]
            begin, stop = entry["offsets"]
            f.seek(start + begin)
            dtype = np.dtype(_DTYPES[entry["dtype"]])
            raw = np.fromfile(f, dtype=dtype, count=(stop - begin) // dtype.itemsize)
            if entry["dtype"] == "BF16":
                raw = (raw.astype(np.uint32) << 16).view(np.float32)
            elif raw.dtype.kind == "f" and raw.dtype != np.float32:
                raw = raw.astype(np.float32)
            out[name] = raw.reshape(entry["shape"])
    return out
