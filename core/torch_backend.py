"""Generation with torch, for a GPU or by choice: the training side's own modules (core.shape_networks,
core.texture_inference.FastTextureGenerator) loaded from the same numpy tensors the numpy backend reads, taking and
giving numpy arrays. Imported only when torch is asked for."""
from __future__ import annotations

import numpy as np
import torch

from .network_configs import ShapeNetConfig, TextureNetConfig
from .shape_control import ShapeGenerator
from .shape_networks import ExpressionGenerator, IdentityGenerator, MeshDecoder
from .texture_inference import FastTextureGenerator
from .texture_appearance import texture_generator


def _loaded(module: torch.nn.Module, tensors: dict, prefix: str) -> torch.nn.Module:
    """module (built on the meta device: nothing allocated) given the tensors, shared with the numpy arrays."""
    names = module.state_dict().keys()
    module.load_state_dict({n: torch.from_numpy(np.ascontiguousarray(tensors[prefix + n])) for n in names},
                           assign=True)
    return module.eval()


class TorchBackend:
    name = "torch"

    def __init__(self, shape_cfg: ShapeNetConfig, shape_tensors: dict, texture_cfg: TextureNetConfig | None,
                 texture_tensors: dict | None, device: str = "cpu"):
        try:
            self.device = torch.device(device)
            torch.empty(0, device=self.device)
        except (RuntimeError, AssertionError) as e:
            raise ValueError(f"device {str(device)!r} is not usable with this torch ({e}); use 'cpu'") from None
        with torch.device("meta"):
            decoder, g_id, g_exp = MeshDecoder(shape_cfg), IdentityGenerator(shape_cfg), ExpressionGenerator(shape_cfg)
            generator = texture_generator(texture_cfg) if texture_cfg is not None else None
        decoder = _loaded(decoder, shape_tensors, "")
        self.shape = ShapeGenerator(decoder, _loaded(g_id, shape_tensors, "g_id."),
                                    _loaded(g_exp, shape_tensors, "g_exp.")).to(self.device)
        if self.device.type == "cpu":
            decoder.prepare_for_inference()
        self.texture = None
        if generator is not None:
            generator = _loaded(generator, texture_tensors, "")
            if not texture_cfg.is_appearance:  # the appearance model is two products: nothing to fold
                # the same function with less work (2.7x faster at 512 px; tests/test_texture_inference.py)
                generator = FastTextureGenerator.from_generator(generator)
            self.texture = generator.to(self.device)

    def _in(self, *arrays):
        return [None if a is None else torch.from_numpy(a).to(self.device) for a in arrays]

    @torch.inference_mode()
    def meshes(self, z_id, z_exp, z_noise, style_z_id=None) -> np.ndarray:
        return self.shape(*self._in(z_id, z_exp, z_noise, style_z_id)).cpu().numpy()

    @torch.inference_mode()
    def textures(self, z_id, z_exp, z_noise) -> np.ndarray:
        """(B, R, R, 3) offsets from the template crop."""
        return self.texture(*self._in(z_id, z_exp, z_noise)).permute(0, 2, 3, 1).cpu().numpy()
