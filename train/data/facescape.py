"""Real FaceScape TU models as an `ExpressionMeshSource`, and an exporter that writes any such source in that layout.

Layout read and written (FaceScape's "topologically uniformed" (TU) models as unpacked from the download;
confirmed against FaceScape's doc_tu_model.md and toolkit notes)::

    {root}/{id}/models_reg/{k}_{name}.obj       base mesh: vertices, UVs, polygons; millimetres, y up, face to +z
    {root}/{id}/models_reg/{k}_{name}.obj.mtl   its material; `map_Kd` names the texture (optional)
    {root}/{id}/models_reg/{k}_{name}.jpg       its UV texture (FaceScape ships JPG; our exporter writes PNG
                                                by default, lossless); optional

* `{id}` is an identity folder whose name is a decimal number (1, 2, ... 847 in FaceScape). Directories with other
  names and plain files in `{root}` (FaceScape's info lists, our `identity_map.csv`) are not identity folders and
  are not read. A numeric folder without `models_reg/` is an error.
* `{k}_{name}` is one of the 20 expressions `FACESCAPE_EXPRESSIONS` (or the subset/order passed as
  `expression_names`); every identity must have every requested expression, else the error lists the identity
  folder and the missing file names. FaceScape's displacement maps (`dpmap/`) are not used.
* Every mesh must share the first mesh's topology: vertex count, polygon sizes (quads kept), polygon vertex and UV
  indices, UV coordinates. The first mesh (first identity, first expression) defines the `FaceTemplate`; it must
  have UVs on its faces.
* Texture of a mesh: the `map_Kd` file of `{k}_{name}.obj.mtl` when that mtl exists and names one (a named file
  that is missing is an error), otherwise the first of `{k}_{name}.png`, `.jpg`, `.jpeg` beside the OBJ, otherwise
  none. Images are read with PIL as stored (row 0 = top of the [0,1] UV tile = v 1), L/LA/P/RGBA converted to RGB.
* Units: FaceScape TU meshes are in millimetres, so `units_to_cm` defaults to 0.1 (and `units_from_cm` to 10).

Exported extras: `{root}/identity_map.csv` with header `folder,source_identity` (one row per identity, in source
order). Identity folders keep the source's ids when all are positive decimal numbers, else are numbered 1..N.

This module also holds the mesh/texture helpers the BP4D-style layout (`train/data/bp4d.py`) shares:
`LayoutError`, `template_from_obj`, `topology_problem`, `read_checked_vertices`, `find_texture`,
`read_texture_image`, `write_textured_mesh`.
"""
from __future__ import annotations

import csv
import io
import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image
from tqdm import tqdm

from core.atomic import atomic_path, write_text_atomic
from core.obj_io import ObjError, ObjMesh, read_obj, write_obj
from core.template import FaceTemplate
from train.data.expressions import FACESCAPE_EXPRESSIONS
from train.data.sources import ExpressionMeshSource

MESH_FOLDER = "models_reg"
IDENTITY_MAP = "identity_map.csv"
TEXTURE_SUFFIXES = (".png", ".jpg", ".jpeg")
TEXTURE_FORMATS = {"png": ".png", "jpg": ".jpg"}
EXPRESSION_NAME = re.compile(r"^\d+_[A-Za-z0-9_]+$")
_RGB_CONVERTIBLE = {"RGB", "RGBA", "L", "LA", "P"}
_UV_TOLERANCE = 1e-5  # UVs are written with 6 decimals; equal layouts agree far closer than this


class LayoutError(ValueError):
    """A data folder that does not follow its documented layout; the message names every file and problem."""


MAX_LISTED_PROBLEMS = 50  # a wholly broken set must still give a readable message


def problems_error(root: Path, problems: list[str]) -> LayoutError:
    """One error listing the problems (the first MAX_LISTED_PROBLEMS of them, then a count)."""
    head = f"{root}: {len(problems)} problem{'s' if len(problems) != 1 else ''} found"
    listed = problems[:MAX_LISTED_PROBLEMS]
    if len(problems) > len(listed):
        listed.append(f"... and {len(problems) - len(listed)} more problems")
    return LayoutError(head + ":\n  - " + "\n  - ".join(listed))


# ---------------------------------------------------------------- shared mesh and texture helpers

def positive_scale(value: float, name: str) -> float:
    value = float(value)
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return value


def read_mesh_file(path: Path) -> ObjMesh:
    """read_obj with every failure as a LayoutError naming the file."""
    try:
        return read_obj(path)
    except FileNotFoundError:
        raise LayoutError(f"{path}: mesh file is missing") from None
    except ObjError as e:
        raise LayoutError(str(e)) from e  # ObjError messages start with the path


def template_from_obj(obj: ObjMesh, path: Path) -> FaceTemplate:
    """The topology and UV layout of one mesh, which every other mesh of the set must share."""
    if obj.polygon_uv_indices is None or len(obj.uvs) == 0:
        raise LayoutError(f"{path}: the first mesh has no texture coordinates on its faces; "
                          "the set's FaceTemplate needs UVs ('f v/vt' corners)")
    return FaceTemplate(num_vertices=len(obj.vertices), polygon_sizes=obj.polygon_sizes.astype(np.int32),
                        polygon_vertices=obj.polygon_vertices.astype(np.int32),
                        polygon_uv_indices=obj.polygon_uv_indices.astype(np.int32),
                        uvs=obj.uvs.astype(np.float32), units="cm")


def topology_problem(obj: ObjMesh, template: FaceTemplate, path: Path, first: Path) -> str | None:
    """Why `obj` cannot be read as a mesh of `template` (first difference found), or None."""
    if len(obj.vertices) != template.num_vertices:
        return (f"{path}: has {len(obj.vertices)} vertices, the first mesh {first} has {template.num_vertices}")
    if not np.isfinite(obj.vertices).all():
        row = int(np.argwhere(~np.isfinite(obj.vertices))[0, 0])
        return f"{path}: vertex {row + 1} is NaN or infinite"
    if len(obj.polygon_sizes) != template.num_polygons:
        return (f"{path}: inconsistent topology: {len(obj.polygon_sizes)} polygons, the first mesh {first} has "
                f"{template.num_polygons}")
    diff = np.flatnonzero(obj.polygon_sizes != template.polygon_sizes)
    if len(diff):
        p = int(diff[0])
        return (f"{path}: inconsistent topology: polygon {p + 1} has {obj.polygon_sizes[p]} corners, in the first "
                f"mesh {first} it has {template.polygon_sizes[p]}")
    diff = np.flatnonzero(obj.polygon_vertices != template.polygon_vertices)
    if len(diff):
        return (f"{path}: inconsistent topology: {len(diff)} polygon corners use other vertices than in the first "
                f"mesh {first} (first at polygon {_polygon_of_corner(template, int(diff[0])) + 1})")
    if obj.polygon_uv_indices is None:
        return f"{path}: inconsistent topology: no texture coordinates on its faces, the first mesh {first} has them"
    if (len(obj.uvs) != len(template.uvs) or not np.array_equal(obj.polygon_uv_indices, template.polygon_uv_indices)
            or np.abs(obj.uvs - template.uvs).max(initial=0.0) > _UV_TOLERANCE):
        return (f"{path}: inconsistent topology: its UV layout (vt lines or UV indices) differs from the first "
                f"mesh {first}")
    return None


def _polygon_of_corner(template: FaceTemplate, corner: int) -> int:
    return int(np.searchsorted(np.cumsum(template.polygon_sizes), corner, side="right"))


def read_checked_vertices(path: Path, template: FaceTemplate, first: Path, units_to_cm: float) -> np.ndarray:
    """(V, 3) float32 centimetres of one mesh file, after checking it against the set's template."""
    obj = read_mesh_file(path)
    problem = topology_problem(obj, template, path, first)
    if problem:
        raise LayoutError(problem)
    return (obj.vertices.astype(np.float64) * units_to_cm).astype(np.float32)


def _mtl_texture(mtl: Path) -> Path | None:
    try:
        lines = mtl.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as e:
        raise LayoutError(f"{mtl}: cannot read material file ({e})") from e
    # Options such as `-s 1 1 1` may precede the file name, which is the last token.
    names = {line.split()[-1] for line in lines if line.strip().startswith("map_Kd") and len(line.split()) > 1}
    if len(names) > 1:
        raise LayoutError(f"{mtl}: names several textures ({', '.join(sorted(names))}); the layout has one per mesh")
    if not names:
        return None
    texture = mtl.parent / names.pop()
    if not texture.is_file():
        raise LayoutError(f"{mtl}: its texture {texture} is missing")
    return texture


def find_texture(mtl: Path, stem_path: Path) -> Path | None:
    """The texture of a mesh: the mtl's map_Kd, else `{stem}.png/.jpg/.jpeg` beside it, else None."""
    if mtl.is_file():
        named = _mtl_texture(mtl)
        if named is not None:
            return named
    for suffix in TEXTURE_SUFFIXES:
        candidate = stem_path.with_name(stem_path.name + suffix)
        if candidate.is_file():
            return candidate
    return None


def read_texture_image(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 of a PNG/JPG texture, rows as stored (row 0 = top = v 1)."""
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode not in _RGB_CONVERTIBLE:
                raise LayoutError(f"{path}: unreadable texture: image mode {im.mode!r}, expected 8-bit RGB, RGBA, "
                                  "greyscale or palette")
            rgb = im.convert("RGB")
    except LayoutError:
        raise
    except FileNotFoundError:
        raise LayoutError(f"{path}: texture file is missing") from None
    except (OSError, ValueError, Image.DecompressionBombError) as e:  # PIL raises these for bad/truncated files
        raise LayoutError(f"{path}: unreadable texture ({e})") from e
    return np.asarray(rgb, dtype=np.uint8).copy()


def _checked_texture(texture: np.ndarray, what: str) -> np.ndarray:
    texture = np.asarray(texture)
    if texture.dtype != np.uint8 or texture.ndim != 3 or texture.shape[2] != 3 or 0 in texture.shape:
        raise ValueError(f"{what}: texture must be a non-empty (H, W, 3) uint8 array, got {texture.dtype} "
                         f"{texture.shape}")
    return texture


def write_textured_mesh(obj_path: Path, mtl_path: Path, vertices_cm: np.ndarray, template: FaceTemplate,
                        texture: np.ndarray | None, units_from_cm: float, texture_format: str, what: str) -> None:
    """Write texture, mtl, then OBJ (each atomically): an OBJ on disk means its companions are complete."""
    vertices_cm = np.asarray(vertices_cm)
    if vertices_cm.shape != (template.num_vertices, 3):
        raise ValueError(f"{what}: mesh has shape {vertices_cm.shape}, the template needs "
                         f"({template.num_vertices}, 3)")
    if not np.isfinite(vertices_cm).all():
        raise ValueError(f"{what}: mesh has NaN or infinite vertices")
    mtllib = material = None
    if texture is not None:
        texture = _checked_texture(texture, what)
        image_path = obj_path.with_name(obj_path.stem + TEXTURE_FORMATS[texture_format])
        with atomic_path(image_path) as tmp:
            # 4:4:4 chroma: subsampling would smear colour across UV island borders
            options = {"quality": 95, "subsampling": 0} if texture_format == "jpg" else {}
            Image.fromarray(texture, "RGB").save(tmp, **options)
        material = "facecam_albedo"
        write_text_atomic(mtl_path, f"# facecam export\nnewmtl {material}\nKa 1 1 1\nKd 1 1 1\nKs 0 0 0\n"
                                    f"illum 1\nmap_Kd {image_path.name}\n")
        mtllib = mtl_path.name
    write_obj(obj_path, vertices_cm.astype(np.float64) * units_from_cm, template.polygon_sizes,
              template.polygon_vertices, uvs=template.uvs, polygon_uv_indices=template.polygon_uv_indices,
              mtllib=mtllib, material=material, header=f"facecam export; coordinates = centimetres x {units_from_cm:g}")


def prepare_export_root(root: Path, overwrite: bool) -> None:
    if root.exists() and not root.is_dir():
        raise ValueError(f"{root}: export target exists and is not a folder")
    if root.is_dir() and any(root.iterdir()) and not overwrite:
        raise ValueError(f"{root}: export folder is not empty; pass overwrite=True to write into it "
                         "(files of the same names are replaced, other files stay and may be read with the set)")
    root.mkdir(parents=True, exist_ok=True)


def check_texture_format(texture_format: str) -> str:
    if texture_format not in TEXTURE_FORMATS:
        raise ValueError(f"texture_format must be one of {', '.join(TEXTURE_FORMATS)}, got {texture_format!r}")
    return texture_format


# ---------------------------------------------------------------- FaceScape layout

def _identity_folders(root: Path) -> list[Path]:
    if not root.is_dir():
        raise LayoutError(f"{root}: FaceScape root folder does not exist")
    folders = [p for p in root.iterdir() if p.is_dir() and p.name.isdecimal()]
    if not folders:
        raise LayoutError(f"{root}: no identity folders (folders named 1, 2, ... holding {MESH_FOLDER}/)")
    return sorted(folders, key=lambda p: (int(p.name), p.name))


class FaceScapeFolder:
    """FaceScape TU models under `root` (see the module docstring), read lazily; implements ExpressionMeshSource."""

    def __init__(self, root: str | os.PathLike, expression_names: Sequence[str] = FACESCAPE_EXPRESSIONS,
                 identities: Sequence[str | int] | None = None, units_to_cm: float = 0.1):
        self.root = Path(root)
        self.units_to_cm = positive_scale(units_to_cm, "units_to_cm")
        self.expression_names = tuple(str(n) for n in expression_names)
        if not self.expression_names or len(set(self.expression_names)) != len(self.expression_names):
            raise ValueError(f"expression_names must be non-empty and distinct, got {self.expression_names}")
        folders = _identity_folders(self.root)
        if identities is not None:
            by_name = {p.name: p for p in folders}
            wanted = [str(i) for i in identities]
            if len(set(wanted)) != len(wanted):
                raise ValueError(f"identities must be distinct, got {wanted}")
            absent = [w for w in wanted if w not in by_name]
            if absent:
                raise LayoutError(f"{self.root}: requested identity folders not found: {', '.join(absent)}")
            folders = [by_name[w] for w in wanted]
        self.identity_ids = tuple(p.name for p in folders)
        self._folders = folders
        self._check_files_present()
        self.first_mesh_path = self.mesh_path(0, 0)
        self.template = template_from_obj(read_mesh_file(self.first_mesh_path), self.first_mesh_path)

    def _check_files_present(self) -> None:
        problems = []
        for folder in self._folders:
            mesh_dir = folder / MESH_FOLDER
            if not mesh_dir.is_dir():
                problems.append(f"{folder}: identity folder has no {MESH_FOLDER}/ folder")
                continue
            missing = [f"{n}.obj" for n in self.expression_names if not (mesh_dir / f"{n}.obj").is_file()]
            if missing:
                problems.append(f"{folder}: identity folder is missing {', '.join(missing)} in {MESH_FOLDER}/")
        if problems:
            raise problems_error(self.root, problems)

    def mesh_path(self, identity: int, expression: int) -> Path:
        return self._folders[identity] / MESH_FOLDER / f"{self.expression_names[expression]}.obj"

    def texture_path(self, identity: int, expression: int) -> Path | None:
        obj = self.mesh_path(identity, expression)
        return find_texture(obj.with_name(obj.name + ".mtl"), obj.with_suffix(""))

    def mesh(self, identity: int, expression: int) -> np.ndarray:
        """(V, 3) float32 centimetres."""
        return read_checked_vertices(self.mesh_path(identity, expression), self.template, self.first_mesh_path,
                                     self.units_to_cm)

    def texture(self, identity: int, expression: int) -> np.ndarray | None:
        path = self.texture_path(identity, expression)
        return None if path is None else read_texture_image(path)

    def load_all(self, progress: bool = True) -> np.ndarray:
        """(N_id, N_exp, V, 3) float32 centimetres; every mesh checked against the template."""
        out = np.empty((len(self.identity_ids), len(self.expression_names), self.template.num_vertices, 3),
                       np.float32)
        pairs = [(i, e) for i in range(out.shape[0]) for e in range(out.shape[1])]
        for i, e in tqdm(pairs, desc=f"FaceScape {self.root.name}", unit="mesh", disable=not progress):
            out[i, e] = self.mesh(i, e)
        return out

    def validate(self, textures: bool = True, progress: bool = False) -> None:
        """Read every mesh (and texture) now; raise one LayoutError listing every problem found."""
        problems = []
        pairs = [(i, e) for i in range(len(self.identity_ids)) for e in range(len(self.expression_names))]
        for i, e in tqdm(pairs, desc="validating", unit="mesh", disable=not progress):
            try:
                self.mesh(i, e)
            except LayoutError as err:
                problems.append(str(err))
            if textures:
                try:
                    self.texture(i, e)
                except LayoutError as err:
                    problems.append(str(err))
        if problems:
            raise problems_error(self.root, problems)


def _export_folder_names(identity_ids: Sequence[str]) -> list[str]:
    ids = [str(i) for i in identity_ids]
    if all(i.isdecimal() and int(i) > 0 for i in ids) and len(set(ids)) == len(ids):
        return ids
    return [str(n + 1) for n in range(len(ids))]


def export_facescape_layout(source: ExpressionMeshSource, root: str | os.PathLike, units_from_cm: float = 10.0,
                            texture_format: str = "png", progress: bool = True, overwrite: bool = False) -> Path:
    """Write every (identity, expression) mesh of `source`, with mtl and texture when it has one, as FaceScape TU.

    Expression names must look like FaceScape's `{k}_{name}`. Returns `root`.
    """
    root = Path(root)
    units_from_cm = positive_scale(units_from_cm, "units_from_cm")
    check_texture_format(texture_format)
    names = [str(n) for n in source.expression_names]
    bad = [n for n in names if not EXPRESSION_NAME.match(n)]
    if bad:
        raise ValueError(f"expression names must look like FaceScape's '{{k}}_{{name}}' (e.g. '1_neutral'): "
                         f"{', '.join(map(repr, bad))}")
    if len(set(names)) != len(names):
        raise ValueError(f"expression names must be distinct: {names}")
    if not names or not len(source.identity_ids):
        raise ValueError(f"the source has {len(source.identity_ids)} identities and {len(names)} expressions; "
                         "nothing to export")
    prepare_export_root(root, overwrite)
    folders = _export_folder_names(source.identity_ids)
    pairs = [(i, e) for i in range(len(folders)) for e in range(len(names))]
    for i, e in tqdm(pairs, desc="export FaceScape", unit="mesh", disable=not progress):
        obj_path = root / folders[i] / MESH_FOLDER / f"{names[e]}.obj"
        what = f"identity {source.identity_ids[i]!r} expression {names[e]!r}"
        write_textured_mesh(obj_path, obj_path.with_name(obj_path.name + ".mtl"), source.mesh(i, e),
                            source.template, source.texture(i, e), units_from_cm, texture_format, what)
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow(["folder", "source_identity"])
    writer.writerows(zip(folders, (str(i) for i in source.identity_ids)))
    write_text_atomic(root / IDENTITY_MAP, table.getvalue())
    return root
