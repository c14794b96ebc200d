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

The export appears whole or not at all: it is written into a hidden folder beside `root`, renamed into place
when complete (`train.data.layout.export_folder`); `identity_map.csv` is written last. The reader does not require
`identity_map.csv` (FaceScape's own download has none).
"""
from __future__ import annotations

import csv
import io
import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm import tqdm

from core.atomic import write_text_atomic
from train.data.expressions import FACESCAPE_EXPRESSIONS
from train.data.layout import (LayoutError, MeshFolder, check_texture_format, export_folder, find_texture,
                               positive_scale, problems_error, read_checked_vertices, read_mesh_file,
                               read_texture_image, template_from_obj, write_textured_mesh)
from train.data.sources import ExpressionMeshSource

MESH_FOLDER = "models_reg"
IDENTITY_MAP = "identity_map.csv"
EXPRESSION_NAME = re.compile(r"^\d+_[A-Za-z0-9_]+$")


def _identity_folders(root: Path) -> list[Path]:
    if not root.is_dir():
        raise LayoutError(f"{root}: FaceScape root folder does not exist")
    folders = [p for p in root.iterdir() if p.is_dir() and p.name.isdecimal()]
    if not folders:
        raise LayoutError(f"{root}: no identity folders (folders named 1, 2, ... holding {MESH_FOLDER}/)")
    return sorted(folders, key=lambda p: (int(p.name), p.name))


class FaceScapeFolder(MeshFolder):
    """FaceScape TU models under `root` (see the module docstring), read lazily; implements ExpressionMeshSource.

    `load_all()` gives (N_id, N_exp, V, 3) float32 cm; `validate()` reads everything and lists every problem.
    """

    layout_name = "FaceScape"

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

    @property
    def index_shape(self) -> tuple[int, int]:
        return len(self.identity_ids), len(self.expression_names)

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


def _export_folder_names(identity_ids: Sequence[str]) -> list[str]:
    ids = [str(i) for i in identity_ids]
    if all(i.isdecimal() and int(i) > 0 for i in ids) and len(set(ids)) == len(ids):
        return ids
    return [str(n + 1) for n in range(len(ids))]


def export_facescape_layout(source: ExpressionMeshSource, root: str | os.PathLike, units_from_cm: float = 10.0,
                            texture_format: str = "png", progress: bool = True, overwrite: bool = False) -> Path:
    """Write every (identity, expression) mesh of `source`, with mtl and texture when it has one, as FaceScape TU.

    Expression names must look like FaceScape's `{k}_{name}`. The folder appears whole or not at all; a non-empty
    `root` is refused, unless `overwrite` and it is a previous export (holds identity_map.csv), which is then
    replaced whole. Returns `root`.
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
    folders = _export_folder_names(source.identity_ids)
    pairs = [(i, e) for i in range(len(folders)) for e in range(len(names))]
    with export_folder(root, overwrite, IDENTITY_MAP) as work:
        for i, e in tqdm(pairs, desc="export FaceScape", unit="mesh", disable=not progress):
            obj_path = work / folders[i] / MESH_FOLDER / f"{names[e]}.obj"
            what = f"identity {source.identity_ids[i]!r} expression {names[e]!r}"
            write_textured_mesh(obj_path, obj_path.with_name(obj_path.name + ".mtl"), source.mesh(i, e),
                                source.template, source.texture(i, e), units_from_cm, texture_format, what)
        table = io.StringIO()
        writer = csv.writer(table, lineterminator="\n")
        writer.writerow(["folder", "source_identity"])
        writer.writerows(zip(folders, (str(i) for i in source.identity_ids)))
        write_text_atomic(work / IDENTITY_MAP, table.getvalue())
    return root
