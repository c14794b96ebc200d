"""How a texture model's expression changes compare with each person's real ones.

A person's change under expression e is their texture in e minus their neutral texture (same noise for the
generated pair). Every training identity is in the set in every expression, so each generated change has a real
one to be compared with:
  paired change  Pearson correlation of the generated change with the same person's real change, beside what an
                 identity-agnostic change reaches (the training identities' mean change, which the expression
                 templates are) and another person's real change (the next training identity's);
  crispness      sliced Wasserstein distance between generated and real change maps at the finest Laplacian level,
                 beside the same distance for the mean change: a mean blurs each person's own wrinkle lines into
                 soft bands, which this distance sees and a correlation hardly does.
"""
from __future__ import annotations

import torch

from train.texture_swd import swd_at_finest_level


def pearson(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per leading index: the correlation of a[i] and b[i] over all their other entries."""
    a, b = a.flatten(1).double(), b.flatten(1).double()
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    return ((a * b).sum(1) / ((a * a).sum(1) * (b * b).sum(1)).sqrt().clamp_min(1e-12)).float()


def changes_from_neutral(textures: torch.Tensor, neutral: int) -> torch.Tensor:
    """(N, E, 3, R, R) textures of N people in E expressions -> (N, E - 1, 3, R, R): each non-neutral expression's
    texture minus the same person's neutral one, in expression order without the neutral."""
    keep = [e for e in range(textures.shape[1]) if e != neutral]
    return textures[:, keep] - textures[:, neutral:neutral + 1]


def paired_change(generated: torch.Tensor, real: torch.Tensor) -> dict:
    """generated, real: (N, E', 3, R, R) changes of the same N training identities. -> per expression (lists over
    E') and mean: the generated change's correlation with the person's own real change, the mean change's, and
    another person's real change's."""
    n, e = real.shape[:2]
    if n < 2:
        raise ValueError("paired change needs at least two identities (one person is compared with another)")
    mean = real.mean(0, keepdim=True).expand_as(real)
    other = real.roll(1, dims=0)

    def per_expression(candidate):
        return pearson(candidate.flatten(0, 1), real.flatten(0, 1)).view(n, e).mean(0)

    rows = {"generated": per_expression(generated), "mean_change": per_expression(mean),
            "other_person": per_expression(other)}
    return {name: {"per_expression": [round(float(v), 4) for v in values], "mean": float(values.mean())}
            for name, values in rows.items()}


CRISPNESS_DESCRIPTORS = 2 ** 12  # per side and expression: 2 x 19 distances at 2^14 took minutes at 128 px


def crispness(generated: torch.Tensor, real: torch.Tensor, seed: int = 0) -> dict:
    """Per expression: SWD x 1e3 at the finest level between the generated change maps (N, E', 3, R, R) and the
    real ones, and between the mean change (every person given the same map) and the real ones."""
    mean = real.mean(0, keepdim=True)
    gen, templ = [], []
    for e in range(real.shape[1]):
        gen.append(swd_at_finest_level(generated[:, e], real[:, e], seed, CRISPNESS_DESCRIPTORS))
        templ.append(swd_at_finest_level(mean[:, e].expand_as(real[:, e]), real[:, e], seed, CRISPNESS_DESCRIPTORS))
    return {"generated": {"per_expression": [round(v, 2) for v in gen], "mean": sum(gen) / len(gen)},
            "mean_change": {"per_expression": [round(v, 2) for v in templ], "mean": sum(templ) / len(templ)}}
