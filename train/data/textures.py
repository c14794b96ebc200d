"""Procedural UV albedo maps on ICT's face UV tile: identity skin and expression wrinkles.

No texture model exists in ICT-FaceKit, so this is ours. Per identity (seeded): skin tone from melanin and
haemoglobin (a two-pigment absorption model), lip colour, brow hair, eye-surround pigment, cheek blush, optional
beard shadow, freckles, and fine noise (pores, blotches). Per expression: the surface compression of the
expression mesh against the identity's neutral, measured per triangle in UV space, darkens folds into wrinkle
lines running across the compression direction, and stretching blanches the skin. The lines are sparse Gabor
noise: cosine kernels at jittered lattice points, each turned to the smoothed compression axis at its centre and
phased from that centre, so the lines follow the axis where it turns and keep their spacing.

Everything is sampled in continuous UV coordinates, so the full tile and the frontal crop of one face agree
wherever they overlap, at any resolution.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from train.data.ict import ICTFaceModel
from train.data.raster import rasterize

SKIN_TONE_BINS = 4  # melanin quartiles; the texture model's skin-tone check classifies into these
_STREAM_SKIN = 10
_STREAM_WRINKLE = 11
_WRINKLE_FREQUENCY = 28.0  # wrinkle lines per UV unit, about 1 cm apart on an average face
_KERNEL_CELL = 0.08  # UV size of the wrinkle noise's lattice cells, and the radius of each kernel
_DIRECTION_GRID = 128  # UV bins over the tile for the smoothed wrinkle direction
_DIRECTION_RADIUS = 0.04  # UV radius of the box that smooths the wrinkle direction
_BASELINE = np.array([0.96, 0.86, 0.80])
_MELANIN_ABSORPTION = np.array([2.1, 2.8, 3.5])
_HAEMOGLOBIN_ABSORPTION = np.array([0.04, 0.42, 0.30])
_HAIR = np.array([0.09, 0.065, 0.05])
# Multi-PIE 68 landmark indices
_BROWS = (range(17, 22), range(22, 27))
_EYES = (list(range(36, 42)) + [36], list(range(42, 48)) + [42])
_OUTER_LIP = list(range(48, 60))


@dataclass(frozen=True)
class SkinParams:
    melanin: float  # 0 (very light) .. 1 (very dark)
    haemoglobin: float
    lip_redness: float
    brow_density: float
    eye_pigment: float
    blush: float
    beard: float
    freckles: float
    wrinkle_depth: float
    noise_seed: int

    @property
    def skin_tone_bin(self) -> int:
        return min(int(self.melanin * SKIN_TONE_BINS), SKIN_TONE_BINS - 1)


def _segment_distance(points: np.ndarray, polyline: np.ndarray) -> np.ndarray:
    """Distance from each point (N, 3) to a polyline (K, 3)."""
    a, b = polyline[:-1], polyline[1:]
    ab = b - a
    t = np.clip(np.einsum("nkc,kc->nk", points[:, None] - a[None], ab) / (ab * ab).sum(1), 0, 1)
    closest = a[None] + t[..., None] * ab[None]
    return np.linalg.norm(points[:, None] - closest, axis=2).min(1)


def _inside_polygon_xy(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Even-odd rule in the x-y (frontal) plane."""
    x, y = points[:, 0:1], points[:, 1:2]
    x1, y1 = polygon[:, 0], polygon[:, 1]
    x2, y2 = np.roll(x1, -1), np.roll(y1, -1)
    crosses = ((y1 > y) != (y2 > y)) & (x < (x2 - x1) * (y - y1) / (y2 - y1 + 1e-12) + x1)
    return crosses.sum(1) % 2 == 1


def value_noise(u: np.ndarray, v: np.ndarray, frequency: int, rng: np.random.Generator) -> np.ndarray:
    """Smooth noise in [-1, 1] on a lattice of `frequency` cells over the UV tile, sampled at (u, v)."""
    lattice = rng.uniform(-1, 1, (frequency + 2, frequency + 2))
    x, y = np.clip(u, 0, 1) * frequency, np.clip(v, 0, 1) * frequency
    i, j = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = x - i, y - j
    fx, fy = fx * fx * (3 - 2 * fx), fy * fy * (3 - 2 * fy)
    top = lattice[j, i] * (1 - fx) + lattice[j, i + 1] * fx
    bottom = lattice[j + 1, i] * (1 - fx) + lattice[j + 1, i + 1] * fx
    return top * (1 - fy) + bottom * fy


def _box_blur(image: np.ndarray, radius: int) -> np.ndarray:
    if radius < 1:
        return image
    out = image
    for axis in (0, 1):
        pad = [(0, 0)] * out.ndim
        pad[axis] = (radius + 1, radius)
        c = np.cumsum(np.pad(out, pad, mode="edge"), axis=axis)
        n = out.shape[axis]
        out = (np.take(c, np.arange(2 * radius + 1, 2 * radius + 1 + n), axis=axis)
               - np.take(c, np.arange(0, n), axis=axis)) / (2 * radius + 1)
    return out


@dataclass(frozen=True)
class _Layout:
    """What one (window, resolution) needs, computed once: which face triangle covers each pixel, and the
    per-pixel region masks interpolated from per-vertex masks on the template."""

    uv: np.ndarray  # (H, W, 2)
    mask: np.ndarray  # (H, W) bool, pixels the face covers
    triangle: np.ndarray  # (H, W) index into the face triangles, -1 outside
    regions: dict


class TextureSynthesizer:
    """Albedo textures of synthetic faces, as (R, R, 3) uint8 images (row 0 = top of the UV window)."""

    def __init__(self, ict: ICTFaceModel, seed: int = 0):
        self.ict = ict
        self.seed = int(seed)
        t = ict.template
        face_polygons = t.region_polygons("face")
        self.tri_vertices, self.tri_uvs = t.triangles(face_polygons)
        self.uvs = t.uvs.astype(np.float64)
        self._vertex_regions = self._template_regions()
        lm_uv = self._vertex_uvs()[ict.landmarks]
        # Frontal crop: the square around the 68 landmarks with a margin, what the texture model trains on.
        lo, hi = lm_uv.min(0) - 0.04, lm_uv.max(0) + 0.04
        centre, half = (lo + hi) / 2, (hi - lo).max() / 2
        self.windows = {"tile": (0.0, 1.0, 0.0, 1.0),
                        "crop": (centre[0] - half, centre[0] + half, centre[1] - half, centre[1] + half)}
        self._layout = lru_cache(maxsize=8)(self._make_layout)
        self._base = lru_cache(maxsize=64)(self._base_albedo)
        self._frames = None
        self._tri_bins = None

    def _vertex_uvs(self) -> np.ndarray:
        uv_of_vertex = np.zeros((self.ict.template.num_vertices, 2))
        uv_of_vertex[self.tri_vertices.ravel()] = self.uvs[self.tri_uvs.ravel()]
        return uv_of_vertex

    def _template_regions(self) -> dict:
        n, lm = self.ict.neutral.astype(np.float64), self.ict.landmarks
        p = n[lm]
        brows = np.minimum(*[_segment_distance(n, p[list(b)] + [0, 0.3, 0]) for b in _BROWS])
        eyes = np.minimum(*[_segment_distance(n, p[e]) for e in _EYES])
        front = n[:, 2] > p[:, 2].min() - 1.0
        lips = (_inside_polygon_xy(n, p[_OUTER_LIP]) & front).astype(float)
        cheek_centres = [0.5 * (p[3] + p[31]) + [0, 0.8, 0], 0.5 * (p[13] + p[35]) + [0, 0.8, 0]]
        cheeks = sum(np.exp(-((np.linalg.norm(n - c, axis=1) / 1.8) ** 2)) for c in cheek_centres)
        nose = np.exp(-((np.linalg.norm(n - p[30], axis=1) / 0.9) ** 2))
        below_nose = 1 / (1 + np.exp((n[:, 1] - (p[33, 1] - 0.4)) / 0.3))
        beard = below_nose * (1 - lips) * np.clip((n[:, 2] - 2.0) / 2.0, 0, 1)
        return {"brows": np.exp(-((brows / 0.5) ** 4)) * front, "eyes": np.exp(-((eyes / 0.45) ** 2)) * front,
                "lips": lips, "cheeks": cheeks, "nose": nose, "beard": beard}

    def skin(self, identity_index: int) -> SkinParams:
        r = np.random.default_rng([self.seed, _STREAM_SKIN, identity_index])
        melanin = float(r.uniform(0.02, 0.98))
        return SkinParams(
            melanin=melanin, haemoglobin=float(r.uniform(0.25, 0.75)), lip_redness=float(r.uniform(0.4, 1.0)),
            brow_density=float(r.uniform(0.4, 0.95)), eye_pigment=float(r.uniform(0.0, 0.25)),
            blush=float(r.uniform(0.0, 0.5)), beard=float(r.uniform(0.0, 0.6)) if r.random() < 0.35 else 0.0,
            freckles=float(r.uniform(0.2, 1.0)) if (r.random() < 0.25 and melanin < 0.4) else 0.0,
            wrinkle_depth=float(r.uniform(0.5, 1.5)), noise_seed=int(r.integers(2 ** 31)))

    def _make_layout(self, window: str, resolution: int) -> _Layout:
        u0, u1, v0, v1 = self.windows[window]
        px = np.column_stack([(self.uvs[:, 0] - u0) / (u1 - u0) * resolution,
                              (v1 - self.uvs[:, 1]) / (v1 - v0) * resolution])
        raster = rasterize(px, self.tri_uvs, resolution, resolution)
        centres = (np.arange(resolution) + 0.5) / resolution
        uv = np.stack(np.meshgrid(u0 + centres * (u1 - u0), v1 - centres * (v1 - v0)), axis=-1)
        # Region edges are soft on skin: blur by about a millimetre of face.
        regions = {k: _box_blur(raster.interpolate(v, self.tri_vertices), max(1, resolution // 200))
                   for k, v in self._vertex_regions.items()}
        return _Layout(uv, raster.mask, raster.triangle, regions)

    def _base_albedo(self, identity_index: int, window: str, resolution: int) -> np.ndarray:
        """Identity albedo before any expression: (R, R, 3) float in [0, 1]."""
        s = self.skin(identity_index)
        lay = self._layout(window, resolution)
        u, v = lay.uv[..., 0], lay.uv[..., 1]
        rng = np.random.default_rng(s.noise_seed)
        blotch = value_noise(u, v, 6, rng)
        mottle = value_noise(u, v, 40, rng)
        pores = value_noise(u, v, 300, rng)
        freckle = np.clip(value_noise(u, v, 90, rng) - 0.45, 0, None) * 4 * s.freckles
        reg = lay.regions
        melanin = s.melanin + 0.04 * blotch + 0.02 * mottle + 0.25 * freckle + s.eye_pigment * reg["eyes"]
        haem = (s.haemoglobin + 0.08 * blotch + s.blush * reg["cheeks"] + 0.25 * reg["nose"]
                + s.lip_redness * 1.4 * reg["lips"])
        melanin = melanin + 0.15 * reg["lips"]
        albedo = _BASELINE * np.exp(-melanin[..., None] * _MELANIN_ABSORPTION - haem[..., None] * _HAEMOGLOBIN_ABSORPTION)
        hair = np.clip(s.brow_density * reg["brows"] * (0.75 + 0.5 * np.abs(value_noise(u, v, 120, rng))), 0, 1)
        hair = np.maximum(hair, s.beard * reg["beard"] * (0.6 + 0.4 * value_noise(u, v, 150, rng)))
        hair_colour = np.minimum(albedo * 0.45, _HAIR * 3)
        albedo = albedo * (1 - hair[..., None]) + hair_colour * hair[..., None]
        albedo *= (1 + 0.035 * pores)[..., None]
        # Outside the face polygons: the identity's mean skin colour, so crops have no artificial border.
        albedo[~lay.mask] = albedo[lay.mask].mean(0)
        return albedo

    def _uv_frames(self) -> tuple[np.ndarray, np.ndarray]:
        """Per face triangle: the inverse of its UV edge matrix (to get d(xyz)/d(uv)) and whether it is usable."""
        uv = self.uvs[self.tri_uvs]
        a, b = uv[:, 1] - uv[:, 0], uv[:, 2] - uv[:, 0]  # columns of the 2x2 UV edge matrix
        det = a[:, 0] * b[:, 1] - b[:, 0] * a[:, 1]
        ok = np.abs(det) > 1e-12
        det = np.where(ok, det, 1.0)
        inv = np.stack([np.stack([b[:, 1], -b[:, 0]], 1), np.stack([-a[:, 1], a[:, 0]], 1)], 1) / det[:, None, None]
        return inv, ok

    def strain(self, neutral: np.ndarray, mesh: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per face triangle: compression (1 - smallest principal stretch, >= 0), stretch (largest - 1, >= 0),
        and the unit UV direction of the compression, comparing the expression mesh with the identity neutral."""
        compression, stretch, direction, _ = self._strain_fields(neutral, mesh)
        return compression, stretch, direction

    def _strain_fields(self, neutral, mesh):
        """`strain` plus, per triangle, the unit UV wave vector of wrinkles across the compression: M_n w for
        compression direction w and neutral metric M_n. The UV map is not conformal (the face's u and v scales
        differ by 1.7x at the median), so lines perpendicular on the skin are not perpendicular in UV."""
        if self._frames is None:
            self._frames = self._uv_frames()
        inv, ok = self._frames

        def metric(vertices):  # first fundamental form in UV coordinates: (E, F, G) per triangle
            p = vertices.astype(np.float64)[self.tri_vertices]
            e1, e2 = p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]
            gu = e1 * inv[:, 0, 0, None] + e2 * inv[:, 1, 0, None]
            gv = e1 * inv[:, 0, 1, None] + e2 * inv[:, 1, 1, None]
            return np.einsum("tc,tc->t", gu, gu), np.einsum("tc,tc->t", gu, gv), np.einsum("tc,tc->t", gv, gv)

        (en, fn, gn), (ee, fe, ge) = metric(neutral), metric(mesh)
        det_n = np.where(ok, en * gn - fn * fn, 1.0)
        det_n = np.where(np.abs(det_n) > 1e-18, det_n, 1.0)
        # b = M_n^-1 M_e in closed form; its eigenvalues are the squared principal stretches.
        b00, b01 = (gn * ee - fn * fe) / det_n, (gn * fe - fn * ge) / det_n
        b10, b11 = (en * fe - fn * ee) / det_n, (en * ge - fn * fe) / det_n
        tr, dt = b00 + b11, b00 * b11 - b01 * b10
        disc = np.sqrt(np.maximum(tr * tr / 4 - dt, 0))
        lam_min, lam_max = np.maximum(tr / 2 - disc, 1e-8), tr / 2 + disc
        direction = np.stack([b01, lam_min - b00], axis=1)
        alt = np.stack([lam_min - b11, b10], axis=1)
        use_alt = np.linalg.norm(alt, axis=1) > np.linalg.norm(direction, axis=1)
        direction[use_alt] = alt[use_alt]
        direction /= np.maximum(np.linalg.norm(direction, axis=1, keepdims=True), 1e-12)
        compression = np.clip(1 - np.sqrt(lam_min), 0, 0.6) * ok
        stretch = np.clip(np.sqrt(lam_max) - 1, 0, 0.6) * ok
        wave = np.stack([en * direction[:, 0] + fn * direction[:, 1], fn * direction[:, 0] + gn * direction[:, 1]], 1)
        wave /= np.maximum(np.linalg.norm(wave, axis=1, keepdims=True), 1e-12)
        return compression, stretch, direction, wave

    def texture(self, identity_index: int, neutral: np.ndarray, mesh: np.ndarray | None = None,
                resolution: int = 256, window: str = "crop") -> np.ndarray:
        """Albedo (R, R, 3) uint8 of one identity (its neutral vertices) performing `mesh` (None: neutral)."""
        if window not in self.windows:
            raise ValueError(f"window must be one of {sorted(self.windows)}, got {window!r}")
        albedo = self._base(identity_index, window, resolution)
        if mesh is not None:
            albedo = self._wrinkle(albedo, identity_index, neutral, mesh, window, resolution)
        return (np.clip(albedo, 0, 1) ** (1 / 2.2) * 255 + 0.5).astype(np.uint8)

    def _wave_field(self, compression, wave):
        """Compression-weighted mean wave axis on a UV grid over the tile, as doubled angles (axes: k ~ -k), smoothed
        over about _DIRECTION_RADIUS. Independent of window and resolution, so crop and tile agree."""
        if self._tri_bins is None:
            uv = self.uvs[self.tri_uvs]
            a, b = uv[:, 1] - uv[:, 0], uv[:, 2] - uv[:, 0]
            area = 0.5 * np.abs(a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0])
            cell = np.clip((uv.mean(1) * _DIRECTION_GRID).astype(int), 0, _DIRECTION_GRID - 1)
            self._tri_bins = (cell[:, 1] * _DIRECTION_GRID + cell[:, 0], area)
        bins, area = self._tri_bins
        angle2 = 2 * np.arctan2(wave[:, 1], wave[:, 0])
        weight = compression * area
        n = _DIRECTION_GRID * _DIRECTION_GRID
        field = np.stack([np.bincount(bins, weight * np.cos(angle2), n), np.bincount(bins, weight * np.sin(angle2), n)],
                         -1).reshape(_DIRECTION_GRID, _DIRECTION_GRID, 2)
        # A fine blur for the local axis plus one as wide as a kernel, so that kernels centred where the face has
        # no compressed skin (outside its edge, in the eye and mouth openings) take the axis of the skin they cover.
        fine, wide = round(_DIRECTION_RADIUS * _DIRECTION_GRID), round(_KERNEL_CELL * _DIRECTION_GRID)
        field = _box_blur(field, fine) + _box_blur(field, wide)
        return field[..., 0], field[..., 1]

    def _wrinkle_lines(self, identity_index, compression, wave, uv):
        """Sparse Gabor noise in [-1, 1] at UV points `uv` (N, 2): one kernel per jittered lattice cell (seeded per
        identity, in continuous UV), each a cosine of _WRINKLE_FREQUENCY cycles per UV unit along the smoothed wave
        axis at the kernel's centre, under a compact bump of radius _KERNEL_CELL. The phase is relative to each
        kernel's centre, so the lines keep their direction and spacing where the axis turns."""
        c2, s2 = self._wave_field(compression, wave)
        n = int(np.ceil(1 / _KERNEL_CELL))
        rng = np.random.default_rng([self.seed, _STREAM_WRINKLE, identity_index])
        # Padded by one cell on each side, so every point of the tile has its 3 x 3 neighbourhood of kernels.
        centres = ((np.stack(np.meshgrid(np.arange(-1, n + 1), np.arange(-1, n + 1)), -1)
                    + rng.uniform(0, 1, (n + 2, n + 2, 2))) * _KERNEL_CELL)
        phase = rng.uniform(0, 2 * np.pi, (n + 2, n + 2))
        amplitude = rng.uniform(0.5, 1.0, (n + 2, n + 2))
        at = np.clip((centres * _DIRECTION_GRID).astype(int), 0, _DIRECTION_GRID - 1)
        half = 0.5 * np.arctan2(s2[at[..., 1], at[..., 0]], c2[at[..., 1], at[..., 0]])
        freq = 2 * np.pi * _WRINKLE_FREQUENCY
        # Per kernel: centre, wave vector (radians per UV unit) and phase, gathered together below.
        kernels = np.stack([centres[..., 0], centres[..., 1], freq * np.cos(half), freq * np.sin(half), phase,
                            amplitude], -1).reshape(-1, 6)
        u, v = uv[:, 0], uv[:, 1]
        cu = np.clip(np.floor(u / _KERNEL_CELL).astype(int), -1, n) + 1
        cv = np.clip(np.floor(v / _KERNEL_CELL).astype(int), -1, n) + 1
        total, power = np.zeros(len(uv)), np.zeros(len(uv))
        for dv in (-1, 0, 1):
            row = np.clip(cv + dv, 0, n + 1) * (n + 2)
            for du in (-1, 0, 1):
                k = kernels[row + np.clip(cu + du, 0, n + 1)]
                x, y = u - k[:, 0], v - k[:, 1]
                bump = np.clip(1 - (x * x + y * y) * (1 / _KERNEL_CELL ** 2), 0, None) ** 2 * k[:, 5]
                total += bump * np.cos(k[:, 2] * x + k[:, 3] * y + k[:, 4])
                power += bump * bump
        # Normalised to a cosine's amplitude; the floor fades the rare gaps no kernel covers instead of cutting them.
        return np.clip(total / np.sqrt(power + 0.01), -1, 1)

    def _wrinkle(self, albedo, identity_index, neutral, mesh, window, resolution):
        lay = self._layout(window, resolution)
        compression, stretch, _, wave = self._strain_fields(neutral, mesh)
        tri = np.where(lay.mask, lay.triangle, 0)
        radius = max(1, resolution // 160)
        # Small compressions (< 5%) leave smooth skin: only real folds wrinkle.
        comp = np.clip(_box_blur(np.where(lay.mask, compression[tri], 0), 2 * radius) - 0.05, 0, None)
        stre = _box_blur(np.where(lay.mask, stretch[tri], 0), radius)
        folds = comp > 0
        lines = np.zeros(comp.shape)
        lines[folds] = (0.5 + 0.5 * self._wrinkle_lines(identity_index, compression, wave, lay.uv[folds])) ** 6
        depth = self.skin(identity_index).wrinkle_depth
        shade = 1 - np.clip(depth * comp * (0.6 + 2.0 * lines), 0, 0.5)
        blanch = np.clip(0.2 * stre - 0.02, 0, 0.06)
        out = albedo * shade[..., None]
        return out + blanch[..., None] * (1 - out) * np.array([0.6, 0.8, 0.8])
