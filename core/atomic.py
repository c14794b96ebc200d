"""Atomic file writes: a failed run never leaves a half-written file where a good one was."""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def _umask() -> int:
    """The process umask, read without changing it (os.umask would race with other threads)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o022


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None):
    """Yield a temporary path beside `path`; on success it replaces `path`, on error it is removed.

    `suffix` defaults to the target's suffix, so writers that choose a format by extension (PIL, numpy) still work.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix if suffix is None else suffix,
                               dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 (and writers may recreate the file)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_safetensors_atomic(path: str | os.PathLike, tensors: dict, metadata: dict[str, str] | None = None) -> None:
    """Tensors as one safetensors file, atomically and with the usual permissions (safetensors itself writes 0600)."""
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp), metadata=metadata)


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def write_png_atomic(path: str | os.PathLike, image) -> Path:
    """Write a uint8 image, (H, W) grey, (H, W, 3) RGB or (H, W, 4) RGBA, as a PNG atomically; returns the path."""
    import numpy as np

    from .png_io import encode_png

    image = np.asarray(image)
    if image.dtype != np.uint8 or not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (3, 4))) \
            or 0 in image.shape:
        raise ValueError(f"{path}: a PNG image must be a non-empty uint8 array of shape (H, W), (H, W, 3) or "
                         f"(H, W, 4), got {image.dtype} {image.shape}")
    write_bytes_atomic(path, encode_png(image))
    return Path(path)
