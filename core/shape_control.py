"""Controlling generated shapes: the operations on (z_id, z_exp, z_noise) that training, evaluation and the
add-on share, and the generator that turns them into meshes (G_id, G_exp, then the SAE's decoder).

Intensity, two ways:
  calibrated (what FaceModel, the CLI and the add-on use): a face at intensity alpha is the identity's generated
      neutral plus alpha times each expression's generated change from it, at the intensity the model was trained
      on (1); a mix adds the changes with their weights. The displacement then grows in proportion to alpha, as the
      data's ground truth does (its ratio to intensity 1 is 0.5 / 1.5 / 2 / 3 where the data's is 0.51 / 1.49 /
      1.98 / 2.96), and past 1 it extrapolates smoothly and monotonically by construction.
  paper: z_exp scaled by alpha (section 4.3 of the paper). G_exp never saw a z_exp other than a one-hot vector, so
      the response is whatever the networks make of it (measured: 1.9x the displacement at 1.5, 5.3x at 3).
A mix in paper mode is a weighted sum of one-hot expression codes (or an AU-intensity vector for AU models);
interpolation is linear in z; style editing drives G_exp with another identity's z_id while G_id keeps the first
identity's.
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
        """(mu_id', mu_exp') for batches of codes; style_z_id drives only G_exp (style editing): the expression as
        that other identity makes it, G_exp seeing that identity's code (and embedding, where it takes one)."""
        mu_id = self.g_id(z_id, z_noise)
        if style_z_id is None:
            return mu_id, self.g_exp(z_id, z_exp, z_noise, mu_id)
        return mu_id, self.g_exp(style_z_id, z_exp, z_noise, self.g_id(style_z_id, z_noise))

    @torch.no_grad()
    def forward(self, z_id, z_exp, z_noise, style_z_id=None) -> torch.Tensor:
        """(B, V, 3) meshes, every vertex."""
        return self.sae.decode(*self.embeddings(z_id, z_exp, z_noise, style_z_id))

    @torch.no_grad()
    def calibrated(self, z_id, z_exp, z_noise, neutral: torch.Tensor, intensity, style_z_id=None) -> torch.Tensor:
        """(B, V, 3) meshes at calibrated intensity: G(neutral) + intensity (G(z_exp) - G(neutral)) per row, with
        z_exp the unit (intensity 1) code; intensity a number or a (B,) tensor."""
        b = len(z_id)
        both = self.forward(z_id.repeat(2, 1), torch.cat([neutral.expand(b, -1), z_exp]), z_noise.repeat(2, 1),
                            None if style_z_id is None else style_z_id.repeat(2, 1))
        alpha = torch.as_tensor(intensity, dtype=both.dtype, device=both.device).reshape(-1, 1, 1)
        return both[:b] + alpha * (both[b:] - both[:b])
