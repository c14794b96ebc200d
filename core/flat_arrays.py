"""A Face as the flat arrays 3D packages' bulk setters take (Blender's foreach_set): so the add-on needs no array
code of its own."""
from __future__ import annotations

import numpy as np

from .coordinates import y_up_to_z_up_metres, z_up_metres_to_y_up


def z_up_positions(vertices: np.ndarray, units: str) -> np.ndarray:
    """(V * 3,) float32 z-up metres."""
    return y_up_to_z_up_metres(vertices, units).ravel()


def loop_starts(polygon_sizes: np.ndarray) -> np.ndarray:
    """(P,) int32: where each polygon's corners start in the flat corner list."""
    starts = np.zeros(len(polygon_sizes), np.int32)
    np.cumsum(polygon_sizes[:-1], out=starts[1:])
    return starts


def corner_uvs(face) -> np.ndarray:
    """(sum sizes * 2,) float32: one UV per polygon corner."""
    return face.uvs[face.polygon_uv_indices].astype(np.float32).ravel()


def rgba_bottom_up(texture: np.ndarray) -> np.ndarray:
    """(T * T * 4,) float32 in [0, 1], rows bottom to top (image origin at the lower left), opaque."""
    h, w = texture.shape[:2]
    rgba = np.ones((h, w, 4), np.float32)
    rgba[..., :3] = texture[::-1] / np.float32(255)
    return rgba.ravel()


def float_buffer(count: int) -> np.ndarray:
    """(count,) float32 for foreach_get."""
    return np.empty(count, np.float32)


def model_positions(flat: np.ndarray, units: str) -> np.ndarray:
    """Flat z-up metres (Blender's, from foreach_get) -> (V, 3) y-up vertices in the model's units."""
    return z_up_metres_to_y_up(flat, units)


def filled(count: int, value: int) -> np.ndarray:
    """(count,) int32 of one value (an enum's value for every keyframe, say)."""
    return np.full(count, value, np.int32)
