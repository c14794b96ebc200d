"""Sliced Wasserstein distance between image sets on their Laplacian pyramids (Karras et al. 2018, appendix D):
random 7x7 patches of each level, normalised per colour channel, compared along random directions. x 1e3."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def _blur_down(x: torch.Tensor) -> torch.Tensor:
    k = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16
    k2 = (k[:, None] * k[None, :]).expand(x.shape[1], 1, 5, 5)
    return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), k2, groups=x.shape[1])[..., ::2, ::2]


def laplacian_pyramid(x: torch.Tensor, min_resolution: int = 16) -> list[torch.Tensor]:
    levels = []
    while x.shape[-1] > min_resolution:
        down = _blur_down(x)
        levels.append(x - F.interpolate(down, scale_factor=2, mode="bilinear", align_corners=False))
        x = down
    return levels + [x]


def _patches(level: torch.Tensor, per_image: int, g: torch.Generator) -> torch.Tensor:
    n, c, h, w = level.shape
    ys = torch.randint(0, h - 6, (n, per_image), generator=g)
    xs = torch.randint(0, w - 6, (n, per_image), generator=g)
    off = torch.arange(7)
    rows = (ys[..., None, None] + off[:, None]).expand(n, per_image, 7, 7)
    cols = (xs[..., None, None] + off[None, :]).expand(n, per_image, 7, 7)
    batch = torch.arange(n)[:, None, None, None].expand_as(rows)
    return level.permute(0, 2, 3, 1)[batch, rows, cols].reshape(n * per_image, -1)


def _normalise(desc: torch.Tensor) -> torch.Tensor:
    d = desc.view(len(desc), 7 * 7, -1)
    d = (d - d.mean((0, 1))) / d.std((0, 1)).clamp_min(1e-8)  # per colour channel, as in the official code
    return d.reshape(len(desc), -1)


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, g: torch.Generator, directions: int = 512,
                       repeats: int = 4) -> float:
    n = min(len(a), len(b))
    a, b = a[:n], b[:n]
    total = 0.0
    for _ in range(repeats):
        d = torch.randn(a.shape[1], directions, generator=g)
        d /= d.norm(dim=0, keepdim=True)
        # numpy's sort: three times torch's on a CPU for these (descriptors x directions) columns
        pa, pb = np.sort((a @ d).numpy(), axis=0), np.sort((b @ d).numpy(), axis=0)
        total += float(np.abs(pa - pb).mean())
    return total / repeats


SWD_DESCRIPTORS = 2 ** 14  # 7x7 patches per pyramid level and side at most (Karras et al. use 2^21 on a GPU)
SWD_DESCRIPTORS_PER_IMAGE = 128  # as Karras et al.'s code draws: a few dozen images give fewer, not overlapping, patches


def _descriptors(level: torch.Tensor, count: int, g: torch.Generator) -> torch.Tensor:
    """`count` random 7x7 patches of a pyramid level, spread evenly over its images."""
    per_image = -(-count // len(level))
    patches = _patches(level, per_image, g)
    return patches[torch.randperm(len(patches), generator=g)[:count]]


def swd_per_level(x: torch.Tensor, y: torch.Tensor, seed: int = 0, descriptors: int = SWD_DESCRIPTORS
                  ) -> dict[int, float]:
    """{level resolution: SWD x 1e3} between image batches (N, 3, R, R) in [-1, 1]. Both sides get the same number
    of descriptors whatever their image counts (the distance's sampling bias depends on it), so rows measured on
    4,000 generated and on 1,000 held-out textures compare; it also bounds the cost (sorting 2^18 descriptors'
    projections on 2,048 directions per level took minutes at 4,000 images). At most 128 per image of the smaller
    batch: a batch of 40 gives 5,120 rather than 410 overlapping patches per image."""
    g = torch.Generator().manual_seed(seed)
    descriptors = min(descriptors, SWD_DESCRIPTORS_PER_IMAGE * min(len(x), len(y)))
    out = {}
    for lx, ly in zip(laplacian_pyramid(x), laplacian_pyramid(y)):
        out[lx.shape[-1]] = 1e3 * sliced_wasserstein(_normalise(_descriptors(lx, descriptors, g)),
                                                     _normalise(_descriptors(ly, descriptors, g)), g)
    return out


def swd_at_finest_level(x: torch.Tensor, y: torch.Tensor, seed: int = 0, descriptors: int = SWD_DESCRIPTORS) -> float:
    """SWD x 1e3 between the finest Laplacian levels of two image batches (N, 3, R, R): the scale of lines and pores."""
    g = torch.Generator().manual_seed(seed)
    descriptors = min(descriptors, SWD_DESCRIPTORS_PER_IMAGE * min(len(x), len(y)))
    fine = lambda images: laplacian_pyramid(images)[0]
    return 1e3 * sliced_wasserstein(_normalise(_descriptors(fine(x), descriptors, g)),
                                    _normalise(_descriptors(fine(y), descriptors, g)), g)
