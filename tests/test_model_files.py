"""core's own file readers (stock Blender has neither safetensors nor pillow): they read what those libraries write,
and say what is wrong with what they cannot read."""
import io
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from core.model_files import ModelFormatError, read_header, read_tensors
from core.png_io import PNGError, decode_png, encode_png


def test_safetensors_of_every_dtype_read_as_the_library_writes_them(tmp_path):
    g = torch.Generator().manual_seed(0)
    tensors = {"f32": torch.randn(3, 4, generator=g), "f16": torch.randn(5, generator=g).half(),
               "bf16": torch.randn(2, 3, generator=g).bfloat16(), "f64": torch.randn(2, generator=g).double(),
               "i32": torch.arange(6, dtype=torch.int32).reshape(2, 3), "i64": torch.arange(3),
               "u8": torch.arange(4, dtype=torch.uint8), "flag": torch.tensor([True, False]),
               "scalar": torch.tensor(2.5), "empty": torch.zeros(0, 7)}
    path = tmp_path / "all.safetensors"
    save_file(tensors, path)
    read = read_tensors(path)
    assert set(read) == set(tensors)
    for name, t in tensors.items():
        expected = t.float().numpy() if t.is_floating_point() else t.numpy()
        assert read[name].shape == tuple(t.shape) and read[name].dtype == expected.dtype, name
        np.testing.assert_array_equal(read[name], expected, err_msg=name)
    only = read_tensors(path, {"f32": (3, 4)}, optional=("u8", "absent"))
    assert set(only) == {"f32", "u8"}
    with pytest.raises(ModelFormatError, match=r"all.safetensors: tensor 'f32' has shape \(3, 4\), the config says "
                                               r"\(4, 3\)"):
        read_tensors(path, {"f32": (4, 3)})
    with pytest.raises(ModelFormatError, match=r"tensor 'i32' has dtype I32, network weights are floating point"):
        read_tensors(path, {"i32": (2, 3)})


def test_safetensors_headers_that_lie_are_refused_before_reading(tmp_path):
    def file_with(header: dict, data: bytes = b"") -> str:
        body = __import__("json").dumps(header).encode()
        path = tmp_path / "lying.safetensors"
        path.write_bytes(struct.pack("<Q", len(body)) + body + data)
        return path

    with pytest.raises(ModelFormatError, match="'w': data_offsets .* do not hold a F32 array of shape"):
        read_header(file_with({"w": {"dtype": "F32", "shape": [100000, 100000], "data_offsets": [0, 16]}}, b"0" * 16))
    with pytest.raises(ModelFormatError, match="truncated: .* where its header describes"):
        read_header(file_with({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, b"0" * 8))
    with pytest.raises(ModelFormatError, match="'w' has no dtype, shape and data_offsets"):
        read_header(file_with({"w": {"dtype": "F32"}}))
    with pytest.raises(ModelFormatError, match="not a safetensors file: its header is not safetensors JSON"):
        read_header(file_with([1, 2]))  # JSON, but not an object
    for entry in ({"dtype": "F32", "shape": [1], "data_offsets": ["0", "4"]},
                  {"dtype": "F32", "shape": [1], "data_offsets": [0.0, 4.0]},
                  {"dtype": ["F32"], "shape": [1], "data_offsets": [0, 4]},
                  {"dtype": "F32", "shape": [True], "data_offsets": [0, 4]}, [1, 2]):
        with pytest.raises(ModelFormatError, match="'w' has no dtype, shape and data_offsets"):
            read_header(file_with({"w": entry}, b"0" * 4))
    # many entries on the same bytes would read far more than the file holds
    many = {f"w{i}": {"dtype": "U8", "shape": [1000], "data_offsets": [0, 1000]} for i in range(50)}
    with pytest.raises(ModelFormatError, match=r"tensor 'w\d+': data_offsets \[0, 1000\] overlap the tensor before"):
        read_header(file_with(many, b"0" * 1000))
    gap = {"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]},
           "b": {"dtype": "U8", "shape": [4], "data_offsets": [8, 12]}}
    with pytest.raises(ModelFormatError, match=r"tensor 'b': data_offsets \[8, 12\] leave a gap"):
        read_header(file_with(gap, b"0" * 12))


def _filtered(rows: np.ndarray, kind: int, bpp: int) -> bytes:
    """Rows (H, stride) uint8 filtered with PNG filter `kind` (the encoder's side, written out plainly)."""
    out = bytearray()
    prev = [0] * rows.shape[1]
    for row in rows.tolist():
        out.append(kind)
        for i, x in enumerate(row):
            a = row[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            p = a + b - c
            paeth = a if abs(p - a) <= abs(p - b) and abs(p - a) <= abs(p - c) else b if abs(p - b) <= abs(p - c) else c
            predictor = [0, a, b, (a + b) // 2, paeth][kind]
            out.append((x - predictor) & 255)
        prev = row
    return bytes(out)


def _png(image: np.ndarray, colour: int, kind: int, interlace: int = 0) -> bytes:
    def chunk(tag, body):
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))
    h, w = image.shape[:2]
    bpp = 1 if image.ndim == 2 else image.shape[2]
    data = _filtered(image.reshape(h, w * bpp), kind, bpp)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, colour, 0, 0, interlace))
            + chunk(b"IDAT", zlib.compress(data)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("kind", [0, 1, 2, 3, 4], ids=["none", "sub", "up", "average", "paeth"])
@pytest.mark.parametrize("colour,channels", [(2, 3), (6, 4), (0, 1), (4, 2)], ids=["rgb", "rgba", "grey", "grey-a"])
def test_png_rows_of_every_filter_and_colour_type(kind, colour, channels):
    rng = np.random.default_rng(kind)
    image = rng.integers(0, 256, (9, 11, channels) if channels > 1 else (9, 11), dtype=np.uint8)
    image[3:6] = image[2]  # some structure for the predictors
    decoded = decode_png(_png(image, colour, kind))
    expected = np.asarray(Image.open(io.BytesIO(_png(image, colour, kind))).convert("RGB"))
    np.testing.assert_array_equal(decoded, expected)


def test_png_as_pillow_writes_it_and_our_own_round_trip():
    rng = np.random.default_rng(1)
    smooth = (np.add.outer(np.arange(64), np.arange(80))[..., None] * [1, 2, 3] % 256).astype(np.uint8)
    for image in (smooth, rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)):
        for mode in ("RGB", "P", "L", "RGBA"):
            buffer = io.BytesIO()
            Image.fromarray(image).convert(mode).save(buffer, format="PNG")
            np.testing.assert_array_equal(decode_png(buffer.getvalue()),
                                          np.asarray(Image.open(buffer).convert("RGB")), err_msg=mode)
        ours = encode_png(image)
        np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(ours))), image)  # pillow reads ours
        np.testing.assert_array_equal(decode_png(ours), image)


def test_pngs_it_cannot_read_are_described():
    image = np.zeros((4, 4, 3), np.uint8)
    good = _png(image, 2, 0)
    with pytest.raises(PNGError, match="no PNG signature"):
        decode_png(b"<html>not found</html>")
    with pytest.raises(PNGError, match="truncated"):
        decode_png(good[:40])
    with pytest.raises(PNGError, match="fails its checksum"):
        decode_png(good[:-5] + b"\x00" + good[-4:])
    with pytest.raises(PNGError, match="interlace 1"):
        decode_png(_png(image, 2, 0, interlace=1))

    def chunk(tag, body):
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))
    signature, end = b"\x89PNG\r\n\x1a\n", chunk(b"IEND", b"")
    with pytest.raises(PNGError, match="IHDR chunk holds 5 bytes"):
        decode_png(signature + chunk(b"IHDR", b"\0" * 5) + end)
    header = chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 8, 3, 0, 0, 0))
    with pytest.raises(PNGError, match="palette holds 4 bytes"):
        decode_png(signature + header + chunk(b"PLTE", b"\0" * 4) + end)
    with pytest.raises(PNGError, match="0x4 pixels"):
        decode_png(signature + chunk(b"IHDR", struct.pack(">IIBBBBB", 0, 4, 8, 2, 0, 0, 0)) + end)
    # a few kilobytes that inflate to far more than a 4x4 image: refused before more than that is inflated
    bomb = signature + chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 8, 2, 0, 0, 0)) + chunk(
        b"IDAT", zlib.compress(b"\0" * (64 << 20))) + end
    assert len(bomb) < 100_000
    with pytest.raises(PNGError, match="holds more than 53 bytes, a 4x4 image needs 52"):
        decode_png(bomb)
