"""Wavefront OBJ reading and writing for polygon meshes with UVs (quads kept), fast enough for 27k-vertex faces."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .atomic import write_text_atomic


class ObjError(ValueError):
    """An OBJ file that cannot be read as a polygon mesh; the message names the file and line."""


@dataclass
class ObjMesh:
    vertices: np.ndarray  # (V, 3) float32
    uvs: np.ndarray  # (U, 2) float32, may be empty
    polygon_sizes: np.ndarray  # (P,) int32
    polygon_vertices: np.ndarray  # (sum sizes,) int32, 0-based
    polygon_uv_indices: np.ndarray | None  # (sum sizes,) int32, 0-based, None when the file has no UVs on faces
    polygon_materials: np.ndarray  # (P,) int16, index into material_names, -1 before any usemtl
    material_names: tuple[str, ...]
    mtllib: str | None


def _float_rows(lines: list[str], width: int, what: str, path: Path) -> np.ndarray:
    if not lines:
        return np.zeros((0, width), np.float32)
    try:
        rows = [line.split()[1:width + 1] for line in lines]
        arr = np.array(rows, dtype=np.float32)
    except ValueError as e:
        raise ObjError(f"{path}: malformed {what} line ({e}); expected {width} numbers per line") from e
    if arr.ndim != 2 or arr.shape[1] != width:
        raise ObjError(f"{path}: {what} lines need at least {width} numbers each")
    if not np.isfinite(arr).all():
        bad = int(np.argwhere(~np.isfinite(arr))[0, 0])
        raise ObjError(f"{path}: {what} {bad + 1} is NaN or infinite: {lines[bad].strip()!r}")
    return arr


def read_obj(path: str | os.PathLike) -> ObjMesh:
    """Read vertices, UVs, polygons (any corner count >= 3) and per-polygon materials; normals are ignored."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="strict")
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError) as e:
        raise ObjError(f"{path}: cannot read OBJ file ({e})") from e
    v_lines, vt_lines = [], []
    sizes, corner_v, corner_uv = [], [], []
    materials: list[str] = []
    poly_mat: list[int] = []
    current_mat = -1
    mtllib = None
    has_uv = None
    for lineno, line in enumerate(text.splitlines(), 1):
        if line.startswith("v "):
            v_lines.append(line)
        elif line.startswith("vt "):
            vt_lines.append(line)
        elif line.startswith("f "):
            corners = line.split()[1:]
            if len(corners) < 3:
                raise ObjError(f"{path}:{lineno}: face with {len(corners)} corners, expected at least 3")
            try:
                parts = [c.split("/") for c in corners]
                vi = [int(p[0]) for p in parts]
                ti = [int(p[1]) for p in parts] if len(parts[0]) > 1 and parts[0][1] else None
            except (ValueError, IndexError) as e:
                raise ObjError(f"{path}:{lineno}: malformed face {line.strip()!r}") from e
            if has_uv is None:
                has_uv = ti is not None
            elif has_uv != (ti is not None):
                raise ObjError(f"{path}:{lineno}: some faces have UV indices and some do not")
            nv = len(v_lines)
            corner_v.extend(i - 1 if i > 0 else nv + i for i in vi)
            if ti is not None:
                nt = len(vt_lines)
                corner_uv.extend(i - 1 if i > 0 else nt + i for i in ti)
            sizes.append(len(corners))
            poly_mat.append(current_mat)
        elif line.startswith("usemtl"):
            name = line[6:].strip()
            if name not in materials:
                materials.append(name)
            current_mat = materials.index(name)
        elif line.startswith("mtllib"):
            mtllib = line[6:].strip()
    vertices = _float_rows(v_lines, 3, "vertex", path)
    uvs = _float_rows(vt_lines, 2, "texture coordinate", path)
    if not sizes:
        raise ObjError(f"{path}: no faces ('f' lines) found")
    pv = np.asarray(corner_v, np.int64)
    if pv.min() < 0 or pv.max() >= len(vertices):
        raise ObjError(f"{path}: face refers to a vertex outside 1..{len(vertices)}")
    puv = None
    if has_uv:
        puv = np.asarray(corner_uv, np.int64)
        if puv.min() < 0 or puv.max() >= len(uvs):
            raise ObjError(f"{path}: face refers to a texture coordinate outside 1..{len(uvs)}")
        puv = puv.astype(np.int32)
    return ObjMesh(vertices=vertices, uvs=uvs, polygon_sizes=np.asarray(sizes, np.int32),
                   polygon_vertices=pv.astype(np.int32), polygon_uv_indices=puv,
                   polygon_materials=np.asarray(poly_mat, np.int16), material_names=tuple(materials), mtllib=mtllib)


def _format_rows(prefix: str, arr: np.ndarray, fmt: str) -> str:
    if len(arr) == 0:
        return ""
    row = prefix + " " + " ".join([fmt] * arr.shape[1])
    return "\n".join([row] * len(arr)) % tuple(arr.ravel().tolist()) + "\n"


def write_obj(path: str | os.PathLike, vertices: np.ndarray, polygon_sizes: np.ndarray, polygon_vertices: np.ndarray,
              uvs: np.ndarray | None = None, polygon_uv_indices: np.ndarray | None = None,
              mtllib: str | None = None, material: str | None = None, header: str = "",
              normals: np.ndarray | None = None, polygon_materials: np.ndarray | None = None,
              material_names: tuple[str, ...] = ()) -> None:
    """Write one polygon mesh (quads kept), atomically. Indices are 0-based here, 1-based in the file. normals:
    (V, 3) per-vertex normals, written as `vn` with the vertex's own index (importers then shade smooth).
    material: one material for every polygon; or polygon_materials (P,) indices into material_names, written as a
    `usemtl` wherever the material changes."""
    vertices = np.asarray(vertices, np.float64)
    if not np.isfinite(vertices).all():
        raise ValueError(f"{path}: refusing to write NaN or infinite vertices")
    parts = [f"# {line}\n" for line in header.splitlines()]
    if mtllib:
        parts.append(f"mtllib {mtllib}\n")
    parts.append(_format_rows("v", vertices, "%.6f"))
    with_uv = uvs is not None and polygon_uv_indices is not None
    if with_uv:
        parts.append(_format_rows("vt", np.asarray(uvs, np.float64), "%.6f"))
    if normals is not None:
        if np.shape(normals) != vertices.shape:
            raise ValueError(f"{path}: normals {np.shape(normals)} do not match vertices {vertices.shape}")
        parts.append(_format_rows("vn", np.asarray(normals, np.float64), "%.5f"))
    if material:
        parts.append(f"usemtl {material}\n")
    pv = np.asarray(polygon_vertices, np.int64) + 1
    if with_uv:
        uv = (np.asarray(polygon_uv_indices) + 1).tolist()
        corners = [f"{v}/{t}/{v}" for v, t in zip(pv.tolist(), uv)] if normals is not None else \
            [f"{v}/{t}" for v, t in zip(pv.tolist(), uv)]
    else:
        corners = [f"{v}//{v}" for v in pv.tolist()] if normals is not None else [str(v) for v in pv.tolist()]
    ends = np.cumsum(polygon_sizes).tolist()
    start = 0
    faces = []
    current = None
    for index, end in enumerate(ends):
        if polygon_materials is not None and polygon_materials[index] != current:
            current = polygon_materials[index]
            faces.append(f"usemtl {material_names[current]}")
        faces.append("f " + " ".join(corners[start:end]))
        start = end
    parts.append("\n".join(faces) + "\n")
    write_text_atomic(path, "".join(parts))
