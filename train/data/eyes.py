"""ICT-FaceKit's eyes as parts a renderer can draw without ICT's eye textures.

ICT models each eye as two meshes: an outer shell ("M_Sclera*", a sphere of about 1.58 cm radius: the wet cornea
layer, drawn through in ICT's own materials) and an inner eyeball ("M_Iris*") that carries the eye texture (white,
iris and pupil). Untextured, an opaque outer shell hides everything (white eyes without irises). So the outer shell
becomes "M_Cornea*" (transparent) and the inner eyeball is split by the angle from the gaze axis (+z, ICT's front)
about the shell's centre: the pupil within 9 degrees, the iris within 28 (where the inner mesh steps down at the
limbus: its radius is 1.50-1.52 cm up to 27 degrees, 1.43 cm beyond 30), the white beyond.
"""
from __future__ import annotations

import numpy as np

from core.template import FaceTemplate

PUPIL_DEGREES = 9.0  # a 3-4 mm pupil on a 12 mm iris
IRIS_DEGREES = 28.0


def _polygon_centroids(template: FaceTemplate, vertices: np.ndarray, polygons: np.ndarray) -> np.ndarray:
    starts, sizes = template.polygon_starts[polygons], template.polygon_sizes[polygons]
    corners = starts[:, None] + np.arange(int(sizes.max()))[None]
    valid = np.arange(int(sizes.max()))[None] < sizes[:, None]
    idx = template.polygon_vertices[np.where(valid, corners, starts[:, None])]
    return (vertices[idx] * valid[..., None]).sum(1) / sizes[:, None]


def _sphere_centre(points: np.ndarray) -> np.ndarray:
    """Least-squares sphere through points: |p - c|^2 = r^2 is linear in (c, r^2 - |c|^2)."""
    a = np.c_[2 * points, np.ones(len(points))]
    return np.linalg.lstsq(a, (points ** 2).sum(1), rcond=None)[0][:3]


def split_eye_materials(template: FaceTemplate, neutral: np.ndarray) -> tuple[np.ndarray, tuple[str, ...]]:
    """(polygon materials, material names) with the eyes split as the module says; a template without ICT's eye
    materials is returned as it is."""
    names = list(template.material_names)
    materials = np.asarray(template.polygon_materials, np.int32).copy()
    vertices = np.asarray(neutral, np.float64)
    for side in ("Left", "Right"):
        if f"M_Sclera{side}" not in names or f"M_Iris{side}" not in names:
            continue
        shell = np.flatnonzero(materials == names.index(f"M_Sclera{side}"))
        inner = np.flatnonzero(materials == names.index(f"M_Iris{side}"))
        shell_vertices = np.unique(np.concatenate([template.polygon_vertices[s:s + n] for s, n in zip(
            template.polygon_starts[shell], template.polygon_sizes[shell])]))
        centre = _sphere_centre(vertices[shell_vertices])
        d = _polygon_centroids(template, vertices, inner) - centre
        angle = np.degrees(np.arccos(np.clip(d[:, 2] / np.linalg.norm(d, axis=1), -1, 1)))
        names[names.index(f"M_Sclera{side}")] = f"M_Cornea{side}"
        for name, chosen in ((f"M_Pupil{side}", angle < PUPIL_DEGREES),
                             (f"M_EyeWhite{side}", angle >= IRIS_DEGREES)):
            names.append(name)
            materials[inner[chosen]] = len(names) - 1
    return materials, tuple(names)
