"""FaceTemplate: the mesh topology every face shares (polygons with quads kept, UV seams, regions)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class FaceTemplate:
    """Topology and UV layout of a face mesh; vertices live elsewhere (one array per face).

    Polygons are stored flat, as Blender's `foreach_set` wants them: `polygon_sizes[i]` corners for
    polygon i, whose vertex and UV indices follow in `polygon_vertices` / `polygon_uv_indices`.
    """

    num_vertices: int
    polygon_sizes: np.ndarray  # (P,) int32, 3 or 4
    polygon_vertices: np.ndarray  # (sum sizes,) int32
    polygon_uv_indices: np.ndarray  # (sum sizes,) int32, index into uvs
    uvs: np.ndarray  # (U, 2) float32
    region_names: tuple[str, ...] = ()
    region_vertex_ranges: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.int32))
    region_polygon_ranges: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.int32))
    units: str = "cm"
    polygon_materials: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int16))  # (P,) or empty: none
    material_names: tuple[str, ...] = ()

    def __post_init__(self):
        if len(self.polygon_vertices) != int(self.polygon_sizes.sum()):
            raise ValueError(
                f"polygon_vertices has {len(self.polygon_vertices)} corners, polygon_sizes add up to "
                f"{int(self.polygon_sizes.sum())}")
        if len(self.polygon_uv_indices) != len(self.polygon_vertices):
            raise ValueError("polygon_uv_indices must have one entry per polygon corner")
        if len(self.polygon_materials) and (len(self.polygon_materials) != len(self.polygon_sizes)
                                            or self.polygon_materials.min() < 0
                                            or self.polygon_materials.max() >= len(self.material_names)):
            raise ValueError(f"polygon_materials: expected one index into the {len(self.material_names)} "
                             f"material_names per polygon ({len(self.polygon_sizes)})")
        if len(self.polygon_vertices) and (self.polygon_vertices.min() < 0
                                           or self.polygon_vertices.max() >= self.num_vertices):
            raise ValueError(f"polygon_vertices index outside [0, {self.num_vertices})")

    @property
    def num_polygons(self) -> int:
        return len(self.polygon_sizes)

    @property
    def polygon_starts(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.polygon_sizes)[:-1]]).astype(np.int64)

    def region_polygons(self, name: str) -> np.ndarray:
        """Indices of the polygons of one region (e.g. 'face')."""
        start, stop = self.region_polygon_ranges[self.region_names.index(name)]
        return np.arange(start, stop)

    def region_vertices(self, name: str) -> np.ndarray:
        start, stop = self.region_vertex_ranges[self.region_names.index(name)]
        return np.arange(start, stop)

    def triangles(self, polygons: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Fan-triangulate polygons (all, or the given indices): (T, 3) vertex and (T, 3) UV indices."""
        sizes = self.polygon_sizes if polygons is None else self.polygon_sizes[polygons]
        starts = self.polygon_starts if polygons is None else self.polygon_starts[polygons]
        corners, _ = fan_corners(sizes, starts)
        return self.polygon_vertices[corners].astype(np.int64), self.polygon_uv_indices[corners].astype(np.int64)

    def triangle_polygons(self) -> np.ndarray:
        """(T,) the polygon each of triangles()' triangles comes from, in the same order."""
        return fan_corners(self.polygon_sizes, self.polygon_starts)[1]


def fan_corners(polygon_sizes: np.ndarray, starts: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Fan triangulation, the one every mesh writer and the normals share: (T, 3) indices into the flat corner
    arrays and (T,) the polygon of each triangle. Triangle (0, k, k+1) of every polygon with more than k+1 corners,
    for k = 1, 2, ... in that order; starts: each polygon's first corner (default: from the sizes)."""
    sizes = np.asarray(polygon_sizes)
    if starts is None:
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    corners, polygons = [], []
    for fan in range(1, int(sizes.max(initial=3)) - 1):  # triangle (0, fan, fan+1) needs fan+2 corners
        sel = np.flatnonzero(sizes >= fan + 2)
        corners.append(starts[sel][:, None] + np.array([0, fan, fan + 1]))
        polygons.append(sel)
    return np.concatenate(corners).astype(np.int64), np.concatenate(polygons).astype(np.int64)


def vertex_normals(vertices: np.ndarray, polygon_sizes: np.ndarray, polygon_vertices: np.ndarray) -> np.ndarray:
    """(V, 3) float32 unit normals: the area-weighted mean of the adjacent polygons' normals (polygons fan-split),
    so faces import smooth-shaded; a vertex no polygon uses gets (0, 0, 1)."""
    v = np.asarray(vertices, np.float64)
    tri = np.asarray(polygon_vertices)[fan_corners(polygon_sizes)[0]]
    n = np.cross(v[tri[:, 1]] - v[tri[:, 0]], v[tri[:, 2]] - v[tri[:, 0]])  # length: twice the area
    acc = np.zeros_like(v)
    for corner in range(3):
        for axis in range(3):
            acc[:, axis] += np.bincount(tri[:, corner], n[:, axis], minlength=len(v))
    length = np.linalg.norm(acc, axis=1, keepdims=True)
    out = np.where(length > 0, acc / np.where(length > 0, length, 1), np.array([0.0, 0.0, 1.0]))
    return out.astype(np.float32)


# The parts of a head that look different (ICT-FaceKit's material names -> the part each belongs to): one material
# per part in Blender and in exported files. A template without materials is all skin; an unknown name is a part of
# its own.
PART_OF_MATERIAL = {
    "M_Face": "skin", "M_BackHead": "skin",
    "M_ScleraLeft": "sclera", "M_ScleraRight": "sclera",
    "M_IrisLeft": "iris", "M_IrisRight": "iris",
    # the eyes as train/data/eyes.py splits them for drawing without ICT's eye textures
    "M_EyeWhiteLeft": "sclera", "M_EyeWhiteRight": "sclera", "M_PupilLeft": "pupil", "M_PupilRight": "pupil",
    "M_CorneaLeft": "cornea", "M_CorneaRight": "cornea",
    "M_Teeth": "teeth", "M_GumsTongue": "gums and tongue", "M_EyeLashes": "eyelashes",
    "M_LacrimalFluid": "eye wetness", "M_EyeBlend": "eye wetness", "M_EyeOcclusion": "eye wetness",
}


def polygon_parts(num_polygons: int, polygon_materials: np.ndarray, material_names) -> tuple[np.ndarray,
                                                                                              tuple[str, ...]]:
    """((P,) int32 part index per polygon, part names with "skin" first) from a template's materials."""
    if len(polygon_materials) == 0:
        return np.zeros(num_polygons, np.int32), ("skin",)
    parts = ["skin"]
    of_material = []
    for name in material_names:
        part = PART_OF_MATERIAL.get(str(name), str(name))
        if part not in parts:
            parts.append(part)
        of_material.append(parts.index(part))
    return np.asarray(of_material, np.int32)[np.asarray(polygon_materials, np.int64)], tuple(parts)


# Each part's colour (linear RGB) and opacity where no texture says otherwise: the OBJ/glTF materials and the
# add-on's start from these. "eye wetness" (tear film, occlusion shadow) is transparent: it only serves renders
# that model it.
PART_COLOURS = {
    "skin": (0.62, 0.44, 0.36), "sclera": (0.80, 0.76, 0.72), "iris": (0.20, 0.11, 0.05),
    "teeth": (0.82, 0.78, 0.66), "gums and tongue": (0.55, 0.16, 0.16), "eyelashes": (0.03, 0.02, 0.015),
    "eye wetness": (1.0, 1.0, 1.0), "pupil": (0.005, 0.005, 0.005), "cornea": (1.0, 1.0, 1.0),
}
PART_OPACITY = {"eye wetness": 0.0, "cornea": 0.0}
