"""ICT-FaceKit face model access: one setting says where the npz lives; loading validates every field."""
from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from core.template import FaceTemplate

ICT_NPZ_ENV = "FACECAM_ICT_NPZ"
NUM_VERTICES = 26719
# The copy the repository carries (data/ict-facekit: MIT, with its license and provenance).
DEFAULT_ICT_NPZ = Path(__file__).resolve().parents[2] / "data" / "ict-facekit" / "ict_face_model.npz"

# field -> (dtype kind, shape with None for "any length"); the npz format of data/ict-facekit/README.md
NPZ_FIELDS = {
    "neutral": ("f", (NUM_VERTICES, 3)),
    "identity_basis": ("f", (None, NUM_VERTICES, 3)),
    "identity_names": ("U", (None,)),
    "expression_basis": ("f", (None, NUM_VERTICES, 3)),
    "expression_names": ("U", (None,)),
    "extra_basis": ("f", (None, NUM_VERTICES, 3)),
    "extra_names": ("U", (None,)),
    "polygon_sizes": ("i", (None,)),
    "polygon_vertices": ("i", (None,)),
    "polygon_uv_indices": ("i", (None,)),
    "uvs": ("f", (None, 2)),
    "polygon_materials": ("i", (None,)),
    "material_names": ("U", (None,)),
    "region_names": ("U", (None,)),
    "region_vertex_ranges": ("i", (None, 2)),
    "region_polygon_ranges": ("i", (None, 2)),
    "landmarks_multipie68": ("i", (68,)),
    "vertex_indices_json": ("U", ()),
}


def ict_npz_path() -> Path:
    """Where the ICT-FaceKit npz is: $FACECAM_ICT_NPZ, else the repository's own copy."""
    return Path(os.environ.get(ICT_NPZ_ENV) or DEFAULT_ICT_NPZ)


@dataclass(frozen=True)
class ICTFaceModel:
    """The linear ICT face model: neutral + identity modes (weights ~ N(0,1)) + expression blendshapes (0..1)."""

    neutral: np.ndarray
    identity_basis: np.ndarray
    expression_basis: np.ndarray
    expression_names: tuple[str, ...]
    template: FaceTemplate
    polygon_materials: np.ndarray
    material_names: tuple[str, ...]
    landmarks: np.ndarray  # Multi-PIE 68 vertex indices
    vertex_indices: dict
    source_sha256: str = ""  # of the npz it was loaded from: built data sets record which model made them

    @property
    def num_identity_modes(self) -> int:
        return len(self.identity_basis)

    def expression_index(self, name: str) -> int:
        try:
            return self.expression_names.index(name)
        except ValueError:
            raise KeyError(f"unknown ICT expression shape {name!r}; known: {', '.join(self.expression_names)}") from None

    def identity_shape(self, identity_weights: np.ndarray) -> np.ndarray:
        """Neutral face of one identity (V, 3) float32 from its identity weights."""
        w = np.asarray(identity_weights, np.float64)
        if len(w) > self.num_identity_modes:
            raise ValueError(f"{len(w)} identity weights, but the ICT model has {self.num_identity_modes} modes")
        return weighted_sum(self.neutral, self.identity_basis, w).astype(np.float32)


def weighted_sum(base: np.ndarray, basis: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """base + sum_k weights[k] * basis[k] in float64, adding the terms in index order without BLAS: the same
    bits on every machine (a BLAS product may sum in another order with another thread count or CPU)."""
    out = np.array(base, np.float64)
    for k in np.flatnonzero(weights):
        out += float(weights[k]) * basis[k].astype(np.float64)
    return out


def validate_npz_arrays(arrays, source: str) -> None:
    """Raise ValueError naming `source` and the field when an array is missing, has the wrong form, or does not
    agree with the fields it indexes or names."""
    for name, (kind, shape) in NPZ_FIELDS.items():
        if name not in arrays:
            raise ValueError(f"{source}: field {name!r} is missing (expected {kind}-array of shape {shape})")
        a = arrays[name]
        ok_kind = a.dtype.kind == kind or (kind == "i" and a.dtype.kind == "u")
        if not ok_kind or a.ndim != len(shape) or any(s is not None and s != n for s, n in zip(shape, a.shape)):
            raise ValueError(f"{source}: field {name!r} has dtype {a.dtype} shape {a.shape}, "
                             f"expected kind {kind!r} shape {tuple('N' if s is None else s for s in shape)}")
        if kind == "f" and not np.isfinite(a).all():
            raise ValueError(f"{source}: field {name!r} contains NaN or infinite values")
    _check_cross_fields(arrays, source)


def _check_cross_fields(a, source: str) -> None:
    def fail(field: str, problem: str):
        raise ValueError(f"{source}: field {field!r} {problem}")

    for basis, names in (("identity_basis", "identity_names"), ("expression_basis", "expression_names"),
                         ("extra_basis", "extra_names")):
        if len(a[names]) != len(a[basis]):
            fail(names, f"has {len(a[names])} names for {len(a[basis])} rows of {basis!r}")
        if len(set(a[names].tolist())) != len(a[names]):
            fail(names, "has duplicate names")
    sizes = a["polygon_sizes"]
    if len(sizes) and sizes.min() < 3:
        fail("polygon_sizes", f"has a polygon with {int(sizes.min())} corners (at least 3 expected)")
    corners = int(sizes.sum())
    for field, bound, what in (("polygon_vertices", NUM_VERTICES, "vertices"), ("polygon_uv_indices", len(a["uvs"]), "uvs")):
        if len(a[field]) != corners:
            fail(field, f"has {len(a[field])} entries, polygon_sizes add up to {corners} corners")
        if corners and (a[field].min() < 0 or a[field].max() >= bound):
            fail(field, f"indexes outside [0, {bound}) of {what}")
    if len(a["polygon_materials"]) != len(sizes):
        fail("polygon_materials", f"has {len(a['polygon_materials'])} entries for {len(sizes)} polygons")
    if len(a["polygon_materials"]) and (a["polygon_materials"].min() < 0
                                        or a["polygon_materials"].max() >= len(a["material_names"])):
        fail("polygon_materials", f"indexes outside the {len(a['material_names'])} material_names")
    for field, names, bound in (("region_vertex_ranges", "region_names", NUM_VERTICES),
                                ("region_polygon_ranges", "region_names", len(sizes))):
        r = a[field]
        if len(r) != len(a[names]):
            fail(field, f"has {len(r)} ranges for {len(a[names])} region_names")
        if len(r) and (r.min() < 0 or r.max() > bound or (r[:, 0] > r[:, 1]).any()):
            fail(field, f"has a range outside [0, {bound}] or with start > stop")
    if a["landmarks_multipie68"].min() < 0 or a["landmarks_multipie68"].max() >= NUM_VERTICES:
        fail("landmarks_multipie68", f"indexes outside [0, {NUM_VERTICES})")
    try:
        json.loads(str(a["vertex_indices_json"]))
    except json.JSONDecodeError as e:
        fail("vertex_indices_json", f"is not valid JSON ({e})")


def load_ict_model(path: str | os.PathLike | None = None) -> ICTFaceModel:
    """Load and validate the ICT-FaceKit npz (default: ict_npz_path()); cached per resolved path."""
    path = Path(path) if path is not None else ict_npz_path()
    stat = path.stat() if path.is_file() else None
    return _load_ict_model(path.resolve(), stat and (stat.st_mtime_ns, stat.st_size))


@lru_cache(maxsize=4)
def _load_ict_model(path: Path, file_version) -> ICTFaceModel:
    if file_version is None:
        raise FileNotFoundError(
            f"ICT-FaceKit model not found at {path}. Set ${ICT_NPZ_ENV} to the npz, or build it from a clone of "
            f"ICT-FaceKit with `python -m train data convert-ict PATH/TO/FaceXModel --out {path}`")
    try:
        raw = path.read_bytes()
        with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except Exception as e:  # zip errors, truncated files
        raise ValueError(f"{path}: not a readable npz ({e})") from e
    validate_npz_arrays(arrays, str(path))
    template = FaceTemplate(
        num_vertices=NUM_VERTICES,
        polygon_sizes=arrays["polygon_sizes"].astype(np.int32, copy=False),
        polygon_vertices=arrays["polygon_vertices"].astype(np.int32, copy=False),
        polygon_uv_indices=arrays["polygon_uv_indices"].astype(np.int32, copy=False),
        uvs=arrays["uvs"].astype(np.float32, copy=False),
        region_names=tuple(str(n) for n in arrays["region_names"]),
        region_vertex_ranges=arrays["region_vertex_ranges"].astype(np.int32, copy=False),
        region_polygon_ranges=arrays["region_polygon_ranges"].astype(np.int32, copy=False),
        units="cm",
        polygon_materials=arrays["polygon_materials"].astype(np.int16, copy=False),
        material_names=tuple(str(n) for n in arrays["material_names"]),
    )
    for array in arrays.values():
        array.flags.writeable = False  # the model is cached and shared: no caller may edit it in place
    return ICTFaceModel(
        neutral=arrays["neutral"].astype(np.float32, copy=False),
        identity_basis=arrays["identity_basis"].astype(np.float32, copy=False),
        expression_basis=arrays["expression_basis"].astype(np.float32, copy=False),
        expression_names=tuple(str(n) for n in arrays["expression_names"]),
        template=template,
        polygon_materials=arrays["polygon_materials"].astype(np.int16, copy=False),
        material_names=tuple(str(n) for n in arrays["material_names"]),
        landmarks=arrays["landmarks_multipie68"].astype(np.int64, copy=False),
        vertex_indices=json.loads(str(arrays["vertex_indices_json"])),
        source_sha256=hashlib.sha256(raw).hexdigest(),
    )
