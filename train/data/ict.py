"""ICT-FaceKit face model access: one setting says where the npz lives; loading validates every field."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from core.template import FaceTemplate

ICT_NPZ_ENV = "FACECAM_ICT_NPZ"
NUM_VERTICES = 26719
# Development default: the shared data folder beside the repository root.
DEFAULT_ICT_NPZ = Path(__file__).resolve().parents[3] / "shared" / "data" / "ict-facekit" / "ict_face_model.npz"

# field -> (dtype kind, shape with None for "any length"); the npz format of shared/data/ict-facekit/README.md
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
    """Where the ICT-FaceKit npz is: $FACECAM_ICT_NPZ, else the development default."""
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

    @property
    def num_identity_modes(self) -> int:
        return len(self.identity_basis)

    def expression_index(self, name: str) -> int:
        try:
            return self.expression_names.index(name)
        except ValueError:
            raise KeyError(f"unknown ICT expression shape {name!r}; known: {', '.join(self.expression_names)}") from None

    def identity_shape(self, identity_weights: np.ndarray) -> np.ndarray:
        """Neutral face of one identity (V, 3) from its identity weights."""
        w = np.asarray(identity_weights, np.float32)
        return self.neutral + np.tensordot(w, self.identity_basis[: len(w)], axes=1)


def validate_npz_arrays(arrays, source: str) -> None:
    """Raise ValueError naming `source` and the field when an array is missing or has the wrong form."""
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
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except Exception as e:  # zip errors, truncated files
        raise ValueError(f"{path}: not a readable npz ({e})") from e
    validate_npz_arrays(arrays, str(path))
    template = FaceTemplate(
        num_vertices=NUM_VERTICES,
        polygon_sizes=arrays["polygon_sizes"].astype(np.int32),
        polygon_vertices=arrays["polygon_vertices"].astype(np.int32),
        polygon_uv_indices=arrays["polygon_uv_indices"].astype(np.int32),
        uvs=arrays["uvs"].astype(np.float32),
        region_names=tuple(str(n) for n in arrays["region_names"]),
        region_vertex_ranges=arrays["region_vertex_ranges"].astype(np.int32),
        region_polygon_ranges=arrays["region_polygon_ranges"].astype(np.int32),
        units="cm",
    )
    return ICTFaceModel(
        neutral=arrays["neutral"].astype(np.float32),
        identity_basis=arrays["identity_basis"].astype(np.float32),
        expression_basis=arrays["expression_basis"].astype(np.float32),
        expression_names=tuple(str(n) for n in arrays["expression_names"]),
        template=template,
        polygon_materials=arrays["polygon_materials"].astype(np.int16),
        material_names=tuple(str(n) for n in arrays["material_names"]),
        landmarks=arrays["landmarks_multipie68"].astype(np.int64),
        vertex_indices=json.loads(str(arrays["vertex_indices_json"])),
    )
