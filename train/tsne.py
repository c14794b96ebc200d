"""A small exact t-SNE (van der Maaten & Hinton, 2008) in torch, enough for a few thousand embeddings, and a PIL
scatter plot, so the paper's Fig. 3 needs neither scikit-learn nor matplotlib."""
from __future__ import annotations

import colorsys
import os

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from core.atomic import write_png_atomic


def _conditional_p(d2: torch.Tensor, perplexity: float) -> torch.Tensor:
    """Row-wise Gaussian affinities whose entropy matches log(perplexity), by bisection on the precision."""
    n = len(d2)
    target = np.log(perplexity)
    lo, hi = torch.full((n, 1), 1e-20, dtype=d2.dtype), torch.full((n, 1), 1e20, dtype=d2.dtype)
    beta = torch.ones(n, 1, dtype=d2.dtype)
    mask = ~torch.eye(n, dtype=torch.bool)
    for _ in range(64):
        p = torch.exp(-d2 * beta) * mask
        p = p / p.sum(1, keepdim=True).clamp_min(1e-300)
        entropy = -(p * torch.log(p.clamp_min(1e-300))).sum(1, keepdim=True)
        too_flat = entropy > target
        lo = torch.where(too_flat, beta, lo)
        hi = torch.where(too_flat, hi, beta)
        beta = torch.where(hi < 1e19, (lo + hi) / 2, beta * 2)
    return p


def tsne(x: np.ndarray, perplexity: float = 30.0, iterations: int = 750, seed: int = 0) -> np.ndarray:
    x = torch.as_tensor(np.asarray(x), dtype=torch.float64)
    x = (x - x.mean(0)) / x.std().clamp_min(1e-12)
    n = len(x)
    p = _conditional_p(torch.cdist(x, x) ** 2, min(perplexity, (n - 1) / 3))
    p = ((p + p.T) / (2 * n)).clamp_min(1e-12)
    y = torch.randn(n, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)) * 1e-4
    y.requires_grad_(True)
    opt = torch.optim.Adam([y], lr=1.0)  # plain SGD needs its rate tuned to n; Adam does not
    for it in range(iterations):
        exaggeration = 12.0 if it < 250 else 1.0
        q_num = 1 / (1 + torch.cdist(y, y) ** 2)
        q_num = q_num * (1 - torch.eye(n, dtype=q_num.dtype))
        # KL(E*p || q) up to constants, written so that E scales only the attraction (E*KL would only rescale
        # the gradient, which Adam undoes)
        loss = -(exaggeration * p * torch.log(q_num.clamp_min(1e-12))).sum() + torch.log(q_num.sum())
        opt.zero_grad()
        loss.backward()
        opt.step()
    return y.detach().numpy()


def _palette(k: int) -> list[tuple[int, int, int]]:
    return [tuple(int(255 * c) for c in colorsys.hsv_to_rgb(i / max(k, 1), 0.75, 0.85)) for i in range(k)]


def scatter_panel(points: np.ndarray, labels: np.ndarray, title: str, size: int = 360) -> np.ndarray:
    img = Image.new("RGB", (size, size + 22), "white")
    draw = ImageDraw.Draw(img)
    draw.text((6, 4), title, fill=(0, 0, 0), font=ImageFont.load_default(size=13))
    lo, hi = points.min(0), points.max(0)
    xy = (points - lo) / np.maximum(hi - lo, 1e-12) * (size - 24) + 12
    colours = _palette(int(labels.max()) + 1)
    for (px, py), label in zip(xy, labels):
        draw.ellipse([px - 3, py + 22 - 3, px + 3, py + 22 + 3], fill=colours[int(label)])
    return np.asarray(img)


def write_panels(panels: list[np.ndarray], path: str | os.PathLike) -> None:
    write_png_atomic(path, np.concatenate(panels, axis=1))
