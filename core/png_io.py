"""PNG reading and writing with numpy and zlib alone: Blender's Python has neither pillow nor any other image
library that works outside its own image data-blocks.

Reads the PNGs anyone writes (8-bit grey, grey + alpha, RGB, RGBA and palette images, every filter type), not
interlaced or 16-bit ones; writes 8-bit grey, RGB or RGBA with the Up filter on every row, which this reader undoes
a row at a time with numpy (Average and Paeth, which pillow chooses too, need a loop per byte: correct, slower).
"""
from __future__ import annotations

import struct
import zlib

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_SIDE = 16384  # pixels: textures are at most a few thousand wide; more is a damaged or hostile file
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # colour type -> samples per pixel


class PNGError(ValueError):
    """Not a PNG this reader can decode, in words."""


def _chunks(data: bytes):
    pos = len(SIGNATURE)
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if len(body) < length or pos + 12 + length > len(data):
            raise PNGError(f"truncated in its {kind.decode('latin-1')!r} chunk")
        if zlib.crc32(kind + body) != struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])[0]:
            raise PNGError(f"its {kind.decode('latin-1')!r} chunk fails its checksum")
        yield kind, body
        pos += 12 + length
        if kind == b"IEND":
            return
    raise PNGError("truncated: no IEND chunk")


def _paeth_or_average_row(kind: int, row: bytearray, prev: bytes, bpp: int) -> None:
    """Undo filter 3 (Average) or 4 (Paeth) on one row in place: each byte depends on the one bpp to its left."""
    for i in range(len(row)):
        a = row[i - bpp] if i >= bpp else 0
        b = prev[i]
        if kind == 3:
            row[i] = (row[i] + ((a + b) >> 1)) & 255
            continue
        c = prev[i - bpp] if i >= bpp else 0
        p = a + b - c
        pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
        row[i] = (row[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255


def _unfilter(raw: np.ndarray, height: int, stride: int, bpp: int) -> np.ndarray:
    rows = raw.reshape(height, stride + 1)
    out = np.zeros((height, stride), np.uint8)
    prev = np.zeros(stride, np.uint8)
    for y in range(height):
        kind, line = rows[y, 0], rows[y, 1:]
        if kind == 0:
            out[y] = line
        elif kind == 1:  # Sub: a running sum along the row, per byte of a pixel (uint8 wraps as PNG does)
            out[y] = np.cumsum(line.reshape(-1, bpp), axis=0, dtype=np.uint8).reshape(-1)
        elif kind == 2:  # Up
            out[y] = line + prev
        elif kind in (3, 4):
            row = bytearray(line.tobytes())
            _paeth_or_average_row(int(kind), row, prev.tobytes(), bpp)
            out[y] = np.frombuffer(bytes(row), np.uint8)
        else:
            raise PNGError(f"row {y} has filter type {kind}, which PNG does not define")
        prev = out[y]
    return out


def decode_png(data: bytes) -> np.ndarray:
    """PNG bytes -> (H, W, 3) uint8 RGB (alpha dropped, grey and palette expanded)."""
    if not data.startswith(SIGNATURE):
        raise PNGError("not a PNG file (no PNG signature)")
    header, palette, idat = None, None, []
    for kind, body in _chunks(data):
        if kind == b"IHDR":
            if len(body) != 13:
                raise PNGError(f"its IHDR chunk holds {len(body)} bytes, not 13")
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"PLTE":
            if len(body) % 3:
                raise PNGError(f"its palette holds {len(body)} bytes, not whole RGB entries")
            palette = np.frombuffer(body, np.uint8).reshape(-1, 3)
        elif kind == b"IDAT":
            idat.append(body)
    if header is None:
        raise PNGError("no IHDR chunk")
    width, height, depth, colour, _, _, interlace = header
    if depth != 8 or colour not in _CHANNELS or interlace:
        raise PNGError(f"bit depth {depth}, colour type {colour}, interlace {interlace}: facecam reads 8-bit, "
                       f"non-interlaced grey, RGB, palette or RGBA images")
    if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE):
        raise PNGError(f"{width}x{height} pixels: facecam reads images of 1 to {MAX_SIDE} pixels a side")
    channels = _CHANNELS[colour]
    expected = height * (width * channels + 1)
    try:  # never inflate more than the header's size allows (a small file can expand to gigabytes)
        raw = np.frombuffer(zlib.decompressobj().decompress(b"".join(idat), expected + 1), np.uint8)
    except zlib.error as e:
        raise PNGError(f"its image data does not decompress ({e})") from None
    if raw.size != expected:
        raise PNGError(f"its image data holds {'more than ' if raw.size > expected else ''}{raw.size} bytes, a "
                       f"{width}x{height} image needs {expected}")
    pixels = _unfilter(raw, height, width * channels, channels).reshape(height, width, channels)
    if colour == 3:
        if palette is None or pixels.max() >= len(palette):
            raise PNGError("a palette image without a palette entry for each of its indices")
        return palette[pixels[..., 0]]
    if channels <= 2:
        return np.repeat(pixels[..., :1], 3, axis=2)
    return np.ascontiguousarray(pixels[..., :3])


def read_png(path) -> np.ndarray:
    with open(path, "rb") as f:
        return decode_png(f.read())


def encode_png(image: np.ndarray, level: int = 6) -> bytes:
    """(H, W) grey, (H, W, 3) RGB or (H, W, 4) RGBA uint8 -> PNG bytes, every row Up-filtered."""
    image = np.ascontiguousarray(image)
    height, width = image.shape[:2]
    channels = 1 if image.ndim == 2 else image.shape[2]
    rows = image.reshape(height, width * channels)
    filtered = np.empty((height, width * channels + 1), np.uint8)
    filtered[:, 0] = 2
    filtered[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])  # uint8 wraps, as the filter is defined

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    colour = {1: 0, 3: 2, 4: 6}[channels]
    return (SIGNATURE + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(filtered.tobytes(), level)) + chunk(b"IEND", b""))
