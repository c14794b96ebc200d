"""Which library runs the networks. Both read the same exported tensors and give the same faces (tests hold them
within 1e-3 mm and 1/255); a seed means the same face on either, since the codes are drawn with numpy
(core.seeds) before either runs.

  numpy   always there (every Blender ships it): what stock Blender and the default CPU path use;
  torch   where it is installed and asked for: a GPU device ("cuda", "mps"), or backend="torch" on the CPU.

"auto" (the default) is numpy on the CPU and torch on any other device. On the CPU numpy starts without importing
torch (1.3 s of torch's 1.6 s cold start in Blender), takes half torch's peak memory at paper size, and is as fast
on the quick model's meshes; torch is faster on large textures (a 512 px paper-size one: 1.44-1.56x over four runs; docs/results.md,
`python -m bench --only inference blender`), which backend="torch" gives where that matters.
"""
from __future__ import annotations

import numpy as np

from .network_configs import ShapeNetConfig, TextureNetConfig
from .numpy_networks import NumpyShapeGenerator, texture_generator

BACKENDS = ("auto", "numpy", "torch")


class NumpyBackend:
    name = "numpy"
    device = "cpu"

    def __init__(self, shape_cfg: ShapeNetConfig, shape_tensors: dict, texture_cfg: TextureNetConfig | None,
                 texture_tensors: dict | None):
        self.shape = NumpyShapeGenerator(shape_cfg, shape_tensors)
        self.texture = texture_generator(texture_cfg, texture_tensors) if texture_cfg is not None else None

    def meshes(self, z_id, z_exp, z_noise, style_z_id=None) -> np.ndarray:
        return self.shape(z_id, z_exp, z_noise, style_z_id)

    def textures(self, z_id, z_exp, z_noise) -> np.ndarray:
        return self.texture(z_id, z_exp, z_noise)


def import_torch_backend():
    """core.torch_backend.TorchBackend, or an ImportError saying why torch cannot be used (not installed, or
    installed but broken: any exception its import raises)."""
    try:
        from .torch_backend import TorchBackend
    except Exception as e:  # noqa: BLE001 - a broken install raises OSError, RuntimeError, AttributeError...
        reason = "torch is not installed" if isinstance(e, ModuleNotFoundError) and e.name == "torch" else \
            f"torch could not be imported ({type(e).__name__}: {e})"
        raise ImportError(reason) from e
    return TorchBackend


def make_backend(choice: str, device: str, shape_cfg, shape_tensors, texture_cfg, texture_tensors):
    """(backend, a note for the user: empty when it is what was asked for, else why numpy runs instead). torch that
    is missing or broken is not an error: numpy runs on the CPU and the note says why."""
    if choice not in BACKENDS:
        raise ValueError(f"backend {choice!r}: expected one of {', '.join(BACKENDS)}")
    device = str(device or "cpu")
    if device != "cpu" and choice == "numpy":
        raise ValueError(f"device {device!r} needs the torch backend; the numpy backend runs on the CPU only")
    if choice == "numpy" or (choice == "auto" and device == "cpu"):
        return NumpyBackend(shape_cfg, shape_tensors, texture_cfg, texture_tensors), ""
    try:
        torch_backend = import_torch_backend()
    except ImportError as e:
        note = f"{e}: generating with numpy on the CPU" + (f" instead of on {device!r}" if device != "cpu" else "")
        return NumpyBackend(shape_cfg, shape_tensors, texture_cfg, texture_tensors), note
    return torch_backend(shape_cfg, shape_tensors, texture_cfg, texture_tensors, device), ""
