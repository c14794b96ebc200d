"""A small vectorised numpy triangle rasterizer: bakes per-vertex values into UV images and renders previews.

Coordinates are pixels: x to the right, y down, and pixel (r, c) has its centre at (c + 0.5, r + 0.5). A pixel is
covered when its centre lies inside a triangle or on its edge (edges shared by two triangles are covered by both, so
a closed mesh leaves no cracks). Candidate pixels are enumerated per triangle bounding box in chunks, so memory stays
bounded and there is no Python loop over triangles.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Candidate (triangle, pixel) pairs per chunk: ~150 bytes each in flight, so ~300 MB at most (a triangle whose
# clipped box alone exceeds this still runs as one chunk).
CHUNK_CANDIDATES = 2_000_000
# Barycentrics are compared against -EDGE_EPS so centres exactly on a shared edge count for both triangles.
EDGE_EPS = 1e-9
# Twice the signed area (pixels^2) below which a triangle is treated as degenerate and skipped.
MIN_DOUBLE_AREA = 1e-10


@dataclass(frozen=True)
class Raster:
    """Which triangle covers each pixel (-1: none) and the pixel centre's barycentric coordinates in it."""

    triangle: np.ndarray  # (H, W) int64
    barycentric: np.ndarray  # (H, W, 3) float32, zeros where empty

    @property
    def mask(self) -> np.ndarray:
        return self.triangle >= 0

    @property
    def shape(self) -> tuple[int, int]:
        return self.triangle.shape

    def interpolate(self, values: np.ndarray, triangles: np.ndarray) -> np.ndarray:
        """Per-pixel interpolation of per-vertex `values` (N, ...) indexed by `triangles` (T, 3); zeros where empty.

        `triangles` need not be the ones rasterized, only row-aligned with them, e.g. the UV-index triangles of a
        mesh rasterized with its vertex-index triangles.
        """
        values = np.asarray(values)
        triangles = np.asarray(triangles)
        if triangles.ndim != 2 or triangles.shape[1] != 3:
            raise ValueError(f"interpolate: triangles must have shape (T, 3), got {triangles.shape}")
        mask = self.mask
        covered = self.triangle[mask]
        if covered.size and covered.max() >= len(triangles):
            raise ValueError(f"interpolate: raster refers to triangle {int(covered.max())} but only "
                             f"{len(triangles)} triangles were given")
        corner_ids = triangles[covered]  # (N, 3)
        if corner_ids.size and (corner_ids.min() < 0 or corner_ids.max() >= len(values)):
            raise ValueError(f"interpolate: triangle corner index outside [0, {len(values)}) of values")
        weights = self.barycentric[mask].astype(np.float64)
        corners = values[corner_ids]  # (N, 3, ...)
        weights = weights.reshape(weights.shape + (1,) * (corners.ndim - 2))
        out_dtype = np.result_type(values.dtype, np.float32)
        out = np.zeros(self.triangle.shape + values.shape[1:], out_dtype)
        out[mask] = (weights * corners).sum(axis=1)
        return out


def _validate(points, triangles, height, width, depth):
    points = np.asarray(points, np.float64)
    triangles = np.asarray(triangles)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"rasterize: points must have shape (V, 2), got {points.shape}")
    if not np.isfinite(points).all():
        raise ValueError("rasterize: points contain NaN or infinite coordinates")
    if triangles.ndim != 2 or triangles.shape[1] != 3 or triangles.dtype.kind not in "iu":
        raise ValueError(f"rasterize: triangles must be an integer array of shape (T, 3), "
                         f"got {triangles.dtype} {triangles.shape}")
    if triangles.size and (triangles.min() < 0 or triangles.max() >= len(points)):
        raise ValueError(f"rasterize: triangle vertex index outside [0, {len(points)})")
    if int(height) != height or int(width) != width or height <= 0 or width <= 0:
        raise ValueError(f"rasterize: image size must be positive integers, got {height}x{width}")
    if depth is not None:
        depth = np.asarray(depth, np.float64)
        if depth.shape != (len(points),):
            raise ValueError(f"rasterize: depth must have shape ({len(points)},), got {depth.shape}")
        if not np.isfinite(depth).all():
            raise ValueError("rasterize: depth contains NaN or infinite values")
    return points, triangles.astype(np.int64), int(height), int(width), depth


def _pixel_boxes(corners, height, width):
    """Inclusive pixel index ranges whose centres can fall inside each triangle, clipped to the image."""
    lo = np.ceil(corners.min(axis=1) - 0.5)  # (T, 2) as (x, y)
    hi = np.floor(corners.max(axis=1) - 0.5)
    limit = np.array([width - 1, height - 1])
    lo = np.clip(lo, 0, limit + 1).astype(np.int64)  # clipped both ways so far-off boxes cannot overflow int64
    hi = np.clip(hi, -1, limit).astype(np.int64)
    counts = np.maximum(hi - lo + 1, 0)  # empty when the box lies outside the image
    return lo, counts


def _chunks(candidates_per_triangle, budget):
    """Split triangle indices into consecutive runs of at most ~budget candidates (a single big one runs alone)."""
    ends = np.cumsum(candidates_per_triangle)
    start, total = 0, len(candidates_per_triangle)
    while start < total:
        base = ends[start - 1] if start else 0
        stop = int(np.searchsorted(ends, base + budget, side="right"))
        stop = max(stop, start + 1)
        yield start, stop
        start = stop


def _edge_coefficients(a, b, c, double_area, origin):
    """Per triangle, weights of corners a and b as affine functions of a pixel's offset (dx, dy) from `origin`.

    Returns (T, 6): [d w_a/dx, d w_a/dy, w_a(origin), d w_b/dx, d w_b/dy, w_b(origin)], from the edge functions
    w_a(p) = (b - p) x (c - p) / double_area and w_b(p) = (c - p) x (a - p) / double_area.
    """
    def edge(u, v):  # (u - p) x (v - p) = u x v + p x (u - v), as coefficients of p
        d = u - v
        return d[:, 1], -d[:, 0], u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0]

    out = []
    for u, v in ((b, c), (c, a)):
        kx, ky, k0 = edge(u, v)
        out += [kx / double_area, ky / double_area, (k0 + kx * origin[:, 0] + ky * origin[:, 1]) / double_area]
    return np.stack(out, axis=1)


def rasterize(points, triangles, height: int, width: int, depth=None) -> Raster:
    """Rasterize triangles given by pixel-space `points` (V, 2); with `depth` (V,) the smallest depth wins."""
    points, triangles, height, width, depth = _validate(points, triangles, height, width, depth)
    corners = points[triangles]  # (T, 3, 2)
    a, b, c = corners[:, 0], corners[:, 1], corners[:, 2]
    double_area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    lo, counts = _pixel_boxes(corners, height, width)
    per_triangle = counts[:, 0] * counts[:, 1]
    per_triangle[np.abs(double_area) < MIN_DOUBLE_AREA] = 0  # degenerate: no area, no pixels
    live = np.flatnonzero(per_triangle)
    coefficients = _edge_coefficients(a[live], b[live], c[live], double_area[live], lo[live] + 0.5)
    origin_pixel = lo[live, 1] * width + lo[live, 0]
    box_width = counts[live, 0]
    per_live = per_triangle[live]

    best_triangle = np.full(height * width, -1, np.int64)
    best_bary = np.zeros((height * width, 3), np.float64)
    best_depth = np.full(height * width, np.inf)
    for start, stop in _chunks(per_live, CHUNK_CANDIDATES):
        n = per_live[start:stop]
        # Each candidate's offset (dx, dy) within its triangle's box; np.repeat spreads per-triangle data.
        offset = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
        dy, dx = np.divmod(offset, np.repeat(box_width[start:stop], n))
        k = np.repeat(coefficients[start:stop], n, axis=0)
        w_a = k[:, 0] * dx + k[:, 1] * dy + k[:, 2]
        w_b = k[:, 3] * dx + k[:, 4] * dy + k[:, 5]
        w_c = 1.0 - w_a - w_b
        inside = np.flatnonzero((w_a >= -EDGE_EPS) & (w_b >= -EDGE_EPS) & (w_c >= -EDGE_EPS))
        local = np.repeat(np.arange(start, stop), n)[inside]
        pixel = origin_pixel[local] + dy[inside] * width + dx[inside]
        bary = np.stack([w_a[inside], w_b[inside], w_c[inside]], axis=1)
        tri_in = live[local]
        if depth is None:
            best_triangle[pixel] = tri_in  # any covering triangle will do; the last write wins
            best_bary[pixel] = bary
            continue
        z = (bary * depth[triangles[tri_in]]).sum(axis=1)
        # Z-buffer: lower each pixel's depth to its nearest candidate, then write the candidates that hold it.
        np.minimum.at(best_depth, pixel, z)
        win = z == best_depth[pixel]
        best_triangle[pixel[win]] = tri_in[win]
        best_bary[pixel[win]] = bary[win]
    return Raster(best_triangle.reshape(height, width),
                  best_bary.reshape(height, width, 3).astype(np.float32))
