"""Seeds to codes, the same numbers on every machine, numpy version and backend.

PCG64's raw 64-bit stream is fixed by numpy's compatibility policy for bit generators; the distributions built on
it (Generator.standard_normal) may change between numpy versions, and Blender 4.2 to 5.0 ship different numpys. So
the normal draws are made here from the raw stream with the Box-Muller transform, in float64, then rounded to
float32: identity seed 7 is the same person with or without torch.
"""
from __future__ import annotations

import numpy as np

from .names import check_seed


def standard_normal(seed: int, count: int) -> np.ndarray:
    """`count` N(0, 1) draws (float32) for a seed in 0..SEED_MAX."""
    seed = check_seed(seed, "seed")
    pairs = (count + 1) // 2
    bits = np.random.PCG64(seed).random_raw(2 * pairs).astype(np.uint64)
    uniform = (bits >> np.uint64(11)).astype(np.float64) * 2.0 ** -53  # [0, 1), 53 random bits each
    radius = np.sqrt(-2.0 * np.log1p(-uniform[0::2]))  # log(1 - u): u = 0 stays finite
    angle = 2.0 * np.pi * uniform[1::2]
    draws = np.empty(2 * pairs)
    draws[0::2], draws[1::2] = radius * np.cos(angle), radius * np.sin(angle)
    return draws[:count].astype(np.float32)
