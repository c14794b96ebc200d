"""Build the project's ICT-FaceKit npz (see data/ict-facekit/README.md) from a clone's raw `FaceXModel/` folder.

Every basis row is that shape's OBJ vertices minus the neutral's; topology, UVs and materials come from the neutral.
Shape OBJs must share the neutral's faces exactly, so only their vertex positions are used.
"""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np
from tqdm import tqdm

from core.atomic import atomic_path
from core.obj_io import ObjMesh, read_obj
from train.data.ict import NPZ_FIELDS, NUM_VERTICES, validate_npz_arrays

NEUTRAL_OBJ = "generic_neutral_mesh.obj"
VERTEX_INDICES_JSON = "vertex_indices.json"
NUM_IDENTITIES = 100
IDENTITY_NAMES = tuple(f"identity{i:03d}" for i in range(NUM_IDENTITIES))
# Shapes that FaceXModel/ ships beyond the ARKit set; vertex_indices.json does not list them.
EXTRA_NAMES = ("PupilDilate_L", "PupilDilate_R", "cheekRaiser_L", "cheekRaiser_R")
NUM_LANDMARKS = 68

# Region table of the ICT-FaceKit README ("Vertex and polygon index ranges"), as [start, stop) instead of its
# inclusive ranges. The OBJs carry no region markers, and several regions (head_and_neck, mouth_socket, eye sockets)
# share the M_BackHead material, so the table cannot be derived from the files.
# name: (vertex start, vertex stop, polygon start, polygon stop)
REGIONS = {
    "face": (0, 9409, 0, 9230),
    "head_and_neck": (9409, 11248, 9230, 11144),
    "mouth_socket": (11248, 13294, 11144, 13226),
    "eye_socket_left": (13294, 13678, 13226, 13630),
    "eye_socket_right": (13678, 14062, 13630, 14034),
    "gums_and_tongue": (14062, 17039, 14034, 17006),
    "teeth": (17039, 21451, 17006, 21496),
    "eyeball_left": (21451, 23021, 21496, 23094),
    "eyeball_right": (23021, 24591, 23094, 24692),
    "lacrimal_fluid_left": (24591, 24795, 24692, 24855),
    "lacrimal_fluid_right": (24795, 24999, 24855, 25018),
    "eye_blend_left": (24999, 25023, 25018, 25033),
    "eye_blend_right": (25023, 25047, 25033, 25048),
    "eye_occlusion_left": (25047, 25199, 25048, 25176),
    "eye_occlusion_right": (25199, 25351, 25176, 25304),
    "eyelashes_left": (25351, 26035, 25304, 25844),
    "eyelashes_right": (26035, 26719, 25844, 26384),
}


def _read_vertex_indices(path: Path) -> tuple[dict, list[str], np.ndarray]:
    """Parse vertex_indices.json; return it, the expression order and the 68 landmark vertex indices."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; the ICT-FaceKit FaceXModel folder must contain {VERTEX_INDICES_JSON}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not readable JSON ({e})") from e
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object at the top level, found {type(data).__name__}")
    expressions = data.get("expressions")
    if (not isinstance(expressions, list) or not expressions
            or not all(isinstance(n, str) and n and "/" not in n and "\\" not in n for n in expressions)):
        raise ValueError(f"{path}: key 'expressions' must be a non-empty list of shape names (OBJ file stems), "
                         f"found {str(expressions)[:80]!r}")
    if len(set(expressions)) != len(expressions):
        dups = sorted({n for n in expressions if expressions.count(n) > 1})
        raise ValueError(f"{path}: key 'expressions' lists {', '.join(dups)} more than once")
    clash = set(expressions) & (set(IDENTITY_NAMES) | set(EXTRA_NAMES))
    if clash:
        raise ValueError(f"{path}: key 'expressions' names identity/extra shapes {sorted(clash)}")
    landmarks = data.get("idx_to_landmark_verts")
    if (not isinstance(landmarks, list) or len(landmarks) != NUM_LANDMARKS
            or not all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < NUM_VERTICES for i in landmarks)):
        raise ValueError(f"{path}: key 'idx_to_landmark_verts' must list {NUM_LANDMARKS} vertex indices in "
                         f"[0, {NUM_VERTICES}), found {str(landmarks)[:80]!r}")
    return data, expressions, np.asarray(landmarks, np.int32)


def _read_neutral(path: Path) -> ObjMesh:
    mesh = read_obj(path)
    if len(mesh.vertices) != NUM_VERTICES:
        raise ValueError(f"{path}: {len(mesh.vertices)} vertices, expected {NUM_VERTICES} (ICT Face Model Light)")
    if mesh.polygon_uv_indices is None:
        raise ValueError(f"{path}: faces carry no texture-coordinate indices; the neutral mesh must have UVs")
    if (mesh.polygon_materials < 0).any():
        first = int(np.argmax(mesh.polygon_materials < 0))
        raise ValueError(f"{path}: polygon {first} comes before any 'usemtl' line; every polygon needs a material")
    num_polygons = len(mesh.polygon_sizes)
    last = list(REGIONS.values())[-1]
    if last[3] != num_polygons:
        raise ValueError(f"{path}: {num_polygons} polygons, but the ICT-FaceKit region table ends at polygon "
                         f"{last[3]}; this is not the ICT Face Model Light topology")
    return mesh


def _same_faces(mesh: ObjMesh, neutral: ObjMesh) -> bool:
    return (np.array_equal(mesh.polygon_sizes, neutral.polygon_sizes)
            and np.array_equal(mesh.polygon_vertices, neutral.polygon_vertices)
            and (mesh.polygon_uv_indices is None) == (neutral.polygon_uv_indices is None)
            and (mesh.polygon_uv_indices is None
                 or np.array_equal(mesh.polygon_uv_indices, neutral.polygon_uv_indices)))


def _shape_offsets(folder: Path, names: list[str], neutral: ObjMesh, bar: tqdm) -> np.ndarray:
    """(len(names), V, 3) float32: each `<name>.obj` minus the neutral, after checking it shares the neutral's mesh."""
    out = np.empty((len(names), NUM_VERTICES, 3), np.float32)
    for row, name in enumerate(names):
        path = folder / f"{name}.obj"
        bar.set_postfix_str(path.name, refresh=False)
        mesh = read_obj(path)
        if len(mesh.vertices) != NUM_VERTICES:
            raise ValueError(f"{path}: {len(mesh.vertices)} vertices, but the neutral {NEUTRAL_OBJ} has {NUM_VERTICES}")
        if not _same_faces(mesh, neutral):
            raise ValueError(f"{path}: faces (polygon sizes, vertex or UV indices) differ from the neutral "
                             f"{NEUTRAL_OBJ}; every shape must share its topology")
        np.subtract(mesh.vertices, neutral.vertices, out=out[row])
        bar.update(1)
    return out


def _region_arrays() -> dict[str, np.ndarray]:
    table = np.asarray(list(REGIONS.values()), np.int32)
    return {
        "region_names": np.asarray(list(REGIONS), dtype=str),
        "region_vertex_ranges": np.ascontiguousarray(table[:, 0:2]),
        "region_polygon_ranges": np.ascontiguousarray(table[:, 2:4]),
    }


def convert_facexmodel(folder: str | Path, out_path: str | Path, allow_partial: bool = False,
                       show_progress: bool = True) -> Path:
    """Convert an ICT-FaceKit `FaceXModel/` folder into the project npz at `out_path` (written atomically).

    Strict by default: every identity, expression and extra OBJ must be present, else FileNotFoundError lists all
    missing files. With `allow_partial=True` only the present shapes become basis rows (names arrays match) and a
    UserWarning lists what was left out; the neutral and vertex_indices.json are always required.
    """
    folder, out_path = Path(folder), Path(out_path)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: not a folder; expected ICT-FaceKit's FaceXModel/ folder")
    vertex_indices, expression_names, landmarks = _read_vertex_indices(folder / VERTEX_INDICES_JSON)
    groups = {"identity": list(IDENTITY_NAMES), "expression": expression_names, "extra": list(EXTRA_NAMES)}
    missing = {n for names in groups.values() for n in names if not (folder / f"{n}.obj").is_file()}
    missing_files = [f"{n}.obj" for names in groups.values() for n in names if n in missing]
    if not (folder / NEUTRAL_OBJ).is_file():
        raise FileNotFoundError(f"{folder}: missing {', '.join([NEUTRAL_OBJ, *missing_files])}; "
                                f"{NEUTRAL_OBJ} is required even with allow_partial")
    if missing and not allow_partial:
        raise FileNotFoundError(f"{folder}: {len(missing)} shape OBJ file(s) missing: {', '.join(missing_files)} "
                                f"(pass allow_partial=True / --allow-partial to convert only the shapes present)")
    if missing:
        warnings.warn(f"{folder}: converting without {len(missing)} missing shape OBJ file(s): "
                      f"{', '.join(missing_files)}", UserWarning, stacklevel=2)
    present = {g: [n for n in names if n not in missing] for g, names in groups.items()}

    neutral = _read_neutral(folder / NEUTRAL_OBJ)
    total = sum(len(names) for names in present.values())
    with tqdm(total=total, desc="ICT-FaceKit OBJs", unit="file", disable=not show_progress) as bar:
        bases = {g: _shape_offsets(folder, names, neutral, bar) for g, names in present.items()}

    arrays = {
        "neutral": neutral.vertices.astype(np.float32),
        "identity_basis": bases["identity"],
        "identity_names": np.asarray(present["identity"], dtype=str),
        "expression_basis": bases["expression"],
        "expression_names": np.asarray(present["expression"], dtype=str),
        "extra_basis": bases["extra"],
        "extra_names": np.asarray(present["extra"], dtype=str),
        "polygon_sizes": neutral.polygon_sizes.astype(np.int32),
        "polygon_vertices": neutral.polygon_vertices.astype(np.int32),
        "polygon_uv_indices": neutral.polygon_uv_indices.astype(np.int32),
        "uvs": neutral.uvs.astype(np.float32),
        "polygon_materials": neutral.polygon_materials.astype(np.int16),
        "material_names": np.asarray(neutral.material_names, dtype=str),
        **_region_arrays(),
        "landmarks_multipie68": landmarks,
        # Re-serialised with json's defaults (the shared npz stores exactly this, not the indented original text).
        "vertex_indices_json": np.asarray(json.dumps(vertex_indices), dtype=str),
    }
    if set(arrays) != set(NPZ_FIELDS):
        raise RuntimeError(f"converter out of step with train.data.ict.NPZ_FIELDS: "
                           f"{sorted(set(arrays) ^ set(NPZ_FIELDS))}")
    validate_npz_arrays(arrays, f"npz converted from {folder}")
    with atomic_path(out_path, suffix=".npz") as tmp:
        np.savez_compressed(tmp, **arrays)
    return out_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Convert ICT-FaceKit's FaceXModel/ folder into the facecam npz.")
    parser.add_argument("folder", type=Path, help="the FaceXModel/ folder of an ICT-FaceKit clone")
    parser.add_argument("--out", type=Path, required=True, help="npz file to write (replaced atomically)")
    parser.add_argument("--allow-partial", action="store_true",
                        help="convert only the shape OBJs present instead of failing on missing ones")
    args = parser.parse_args(argv)
    try:
        out = convert_facexmodel(args.folder, args.out, allow_partial=args.allow_partial)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
