"""Controlling generated shapes: the operations on (z_id, z_exp, z_noise) that training, evaluation and the
add-on share, and the generator that turns them into meshes (G_id, G_exp, then the SAE's decoder).

Intensity scales z_exp by alpha (alpha > 1 extrapolates); a mix is a weighted sum of one-hot expression codes
(or an AU-intensity vector for AU models); interpolation is linear in z; style editing drives G_exp with
another identity's z_id while G_id keeps the first identity's.
"""
from __future__ import annotations

import torch

from .shape_networks import ExpressionGenerator, IdentityGenerator, MeshDecoder


def expression_code(num_expressions: int, mix: dict[int, float], intensity: float = 1.0) -> torch.Tensor:
    """z_exp for {expression index: weight} at an intensity: intensity * sum_e weight_e * onehot_e."""
    z = torch.zeros(num_expressions)
    for index, weight in mix.items():
        if not 0 <= index < num_expressions:
            raise IndexError(f"expression index {index} outside [0, {num_expressions})")
        z[index] += weight
    return z * intensity


def interpolate(a: torch.Tensor, b: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
    """(1 - t) a + t b; t may be a (K,) tensor for a sweep, giving (K, ...)."""
    t = torch.as_tensor(t, dtype=a.dtype)
    if t.ndim:
        t = t.reshape(-1, *([1] * a.ndim))
    return (1 - t) * a + t * b


class ShapeGenerator(torch.nn.Module):
    """Meshes from codes: decoder(G_id(z_id, z_noise), G_exp(z_style, z_exp, z_noise))."""

    def __init__(self, sae: MeshDecoder, g_id: IdentityGenerator, g_exp: ExpressionGenerator):
        super().__init__()
        self.sae, self.g_id, self.g_exp = sae, g_id, g_exp

    @torch.no_grad()
    def embeddings(self, z_id, z_exp, z_noise, style_z_id=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu_id', mu_exp') for batches of codes; style_z_id drives only G_exp (style editing)."""
        return self.g_id(z_id, z_noise), self.g_exp(z_id if style_z_id is None else style_z_id, z_exp, z_noise)

    @torch.no_grad()
    def forward(self, z_id, z_exp, z_noise, style_z_id=None) -> torch.Tensor:
        """(B, V, 3) meshes, every vertex."""
        return self.sae.decode(*self.embeddings(z_id, z_exp, z_noise, style_z_id))
