"""The appearance texture generator (TextureNetConfig.architecture "appearance"): a person's texture as coordinates
in a linear appearance space, generated from their code.

    offset = mean + a @ identity_basis + (sum_e z_exp[e] c_e) @ change_basis,   (a, c_1..c_E) = MLP(z_id, z_noise)

or, with per-expression change bases (change_bases "per_expression", format version 4), each expression's unit
change decoded in its own basis over its own region, values below half an 8-bit step set to zero, then weighted:

    offset = mean + a @ identity_basis + sum_e z_exp[e] floor(c_e @ change_basis_e)   (scattered into region_e)

The bases are fitted to the training textures in closed form (train/texture_appearance.py: principal components of
each identity's reference texture and of every texture's change from it, each row scaled by its coordinate's spread,
so the MLP's targets have unit variance); the MLP is trained on every training identity's coordinates, including a
change per expression or action unit. Why this and not the paper's progressive GAN for the quick model: a morphable
model's albedo space holds each person's own sharp detail exactly (wrinkle lines, freckles, stubble), where the
convolutional generator had to grow every line from a 4x4 input, and blurred them within a CPU budget
(docs/texture_model.md). The output is linear in z_exp by construction: intensity scales a change, a mix adds them,
each person's change is their own.

The same output as core.numpy_networks.NumpyAppearanceGenerator, which generates without torch.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .network_configs import CHANGE_FLOOR, TextureNetConfig
from .shape_networks import mlp
from .texture_networks import TextureGenerator, latent


class AppearanceTextureGenerator(nn.Module):
    def __init__(self, cfg: TextureNetConfig):
        super().__init__()
        if not cfg.is_appearance:
            raise ValueError(f"AppearanceTextureGenerator needs architecture 'appearance', got {cfg.architecture!r}")
        self.cfg = cfg
        pixels = 3 * cfg.max_resolution ** 2
        self.mapping = mlp([cfg.latent_dim, *cfg.mapping, cfg.coordinate_dim])
        # fitted, not trained by gradient: buffers, saved with the weights
        self.register_buffer("mean", torch.zeros(pixels))
        self.register_buffer("identity_basis", torch.zeros(cfg.identity_components, pixels))
        if cfg.per_expression_changes:  # every expression's rows side by side, each over its own region
            self.register_buffer("change_basis", torch.zeros(cfg.change_components, cfg.change_region_size))
            self.register_buffer("change_pixels", torch.zeros(cfg.change_region_size, dtype=torch.int32))
            self.register_buffer("change_offsets", torch.zeros(cfg.num_expressions + 1, dtype=torch.int64))
        else:
            self.register_buffer("change_basis", torch.zeros(cfg.change_components, pixels))

    def coordinates(self, z_id: torch.Tensor, z_noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(identity coordinates (B, J), change coordinates per expression (B, E, K)), in units of the bases'
        rows."""
        out = self.mapping(latent(self.cfg, z_id, None, z_noise))
        j = self.cfg.identity_components
        return out[:, :j], out[:, j:].view(len(out), self.cfg.num_expressions, self.cfg.change_components)

    def decode(self, identity: torch.Tensor, changes: torch.Tensor, z_exp: torch.Tensor) -> torch.Tensor:
        """Identity coordinates (B, J), change coordinates per expression (B, E, K) and the expression weights
        (B, E) -> (B, 3, R, R) offsets from the template crop."""
        r = self.cfg.max_resolution
        out = self.mean + identity @ self.identity_basis
        if not self.cfg.per_expression_changes:
            out = out + torch.einsum("be,bek->bk", z_exp, changes) @ self.change_basis
            return out.view(-1, 3, r, r)
        bounds = self.change_offsets.tolist()
        pixels = self.change_pixels.long()
        for e, (begin, end) in enumerate(zip(bounds[:-1], bounds[1:])):
            if begin == end or not bool(z_exp[:, e].any()):
                continue
            unit = changes[:, e] @ self.change_basis[:, begin:end]
            unit = torch.where(unit.abs() < CHANGE_FLOOR, torch.zeros_like(unit), unit)
            out = out.index_add(1, pixels[begin:end], z_exp[:, e:e + 1] * unit)
        return out.view(-1, 3, r, r)

    def forward(self, z_id: torch.Tensor, z_exp: torch.Tensor, z_noise: torch.Tensor,
                resolution: int | None = None, alpha: float = 1.0) -> torch.Tensor:
        """(B, 3, R, R) offsets from the template crop; a lower resolution is the max_resolution output
        average-pooled (alpha is the progressive architecture's and is not used)."""
        identity, changes = self.coordinates(z_id, z_noise)
        out = self.decode(identity, changes, z_exp.to(changes.dtype))
        if resolution is not None and resolution != self.cfg.max_resolution:
            out = F.avg_pool2d(out, self.cfg.max_resolution // resolution)
        return out

    def expression_offset(self, z_exp: torch.Tensor, resolution: int) -> None:
        """No measured templates: every change is the network's own."""
        return None


def texture_generator(cfg: TextureNetConfig) -> nn.Module:
    """The generator module of a texture config's architecture."""
    return AppearanceTextureGenerator(cfg) if cfg.is_appearance else TextureGenerator(cfg)
