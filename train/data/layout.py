"""What the real-data layouts (FaceScape TU in `facescape.py`, BP4D-style in `bp4d.py`) share.

* `LayoutError` and `problems_error`: one error that names every file and problem found;
* reading and checking meshes: `read_mesh_file`, `template_from_obj`, `topology_problem`, `read_checked_vertices`;
* textures: `find_texture` (mtl `map_Kd`, else an image beside the OBJ), `read_texture_image`, `check_texture`;
* `MeshFolder`: the `load_all` and `validate` both folder readers use;
* exporting: `write_textured_mesh` (texture, mtl, then OBJ, each atomically) and `export_folder`, which makes a
  whole export appear at once or not at all.
"""
from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from core.atomic import atomic_path, write_png_atomic, write_text_atomic
from core.obj_io import ObjError, ObjMesh, read_obj, write_obj
from core.template import PART_OF_MATERIAL, FaceTemplate

TEXTURE_SUFFIXES = (".png", ".jpg", ".jpeg")
TEXTURE_FORMATS = {"png": ".png", "jpg": ".jpg"}
MAX_LISTED_PROBLEMS = 50  # a wholly broken set must still give a readable message
_RGB_CONVERTIBLE = {"RGB", "RGBA", "L", "LA", "P"}
_UV_TOLERANCE = 1e-5  # UVs are written with 6 decimals; equal layouts agree far closer than this


class LayoutError(ValueError):
    """A data folder that does not follow its documented layout; the message names every file and problem."""


def problems_error(root: Path, problems: list[str]) -> LayoutError:
    """One error listing the problems (the first MAX_LISTED_PROBLEMS of them, then a count)."""
    head = f"{root}: {len(problems)} problem{'s' if len(problems) != 1 else ''} found"
    listed = problems[:MAX_LISTED_PROBLEMS]
    if len(problems) > len(listed):
        listed.append(f"... and {len(problems) - len(listed)} more problems")
    return LayoutError(head + ":\n  - " + "\n  - ".join(listed))


def positive_scale(value: float, name: str) -> float:
    value = float(value)
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return value


# ---------------------------------------------------------------- meshes

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
                        uvs=obj.uvs.astype(np.float32), units="cm",
                        # the parts of an ICT-topology head (eyes, teeth, ...) are kept; any other file's
                        # materials (FaceScape's one texture material) make it all skin
                        **({"polygon_materials": obj.polygon_materials, "material_names": obj.material_names}
                           if obj.material_names and set(obj.material_names) <= set(PART_OF_MATERIAL)
                           and obj.polygon_materials.min() >= 0 else {}))


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


# ---------------------------------------------------------------- textures

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


def check_texture(texture, what: str = "texture") -> np.ndarray:
    """The texture as an array, after checking it is a non-empty (H, W, 3) uint8 image; `what` starts the error."""
    texture = np.asarray(texture)
    if texture.dtype != np.uint8 or texture.ndim != 3 or texture.shape[2] != 3 or 0 in texture.shape:
        raise ValueError(f"{what} must be a non-empty (H, W, 3) uint8 image, got {texture.dtype} {texture.shape}")
    return texture


# ---------------------------------------------------------------- reading a whole folder

class MeshFolder:
    """Base of the folder readers: `index_shape` names every mesh (np.ndindex order), `mesh`/`texture` read one.

    Subclasses set `root`, `template`, `layout_name` and define `index_shape`, `mesh(*index)`, `texture(*index)`.
    """

    layout_name = "meshes"
    root: Path
    template: FaceTemplate

    @property
    def index_shape(self) -> tuple[int, ...]:
        raise NotImplementedError

    def mesh(self, *index: int) -> np.ndarray:
        raise NotImplementedError

    def texture(self, *index: int) -> np.ndarray | None:
        raise NotImplementedError

    def _indices(self, desc: str, progress: bool):
        shape = self.index_shape
        return tqdm(np.ndindex(shape), total=int(np.prod(shape)), desc=desc, unit="mesh", disable=not progress)

    def load_all(self, progress: bool = True) -> np.ndarray:
        """(*index_shape, V, 3) float32 centimetres; every mesh checked against the template."""
        out = np.empty(self.index_shape + (self.template.num_vertices, 3), np.float32)
        for index in self._indices(f"{self.layout_name} {self.root.name}", progress):
            out[index] = self.mesh(*index)
        return out

    def validate(self, textures: bool = True, progress: bool = False) -> None:
        """Read every mesh (and texture) now; raise one LayoutError listing every problem found."""
        readers = (self.mesh, self.texture) if textures else (self.mesh,)
        problems = []
        for index in self._indices("validating", progress):
            for read in readers:
                try:
                    read(*index)
                except LayoutError as err:
                    problems.append(str(err))
        if problems:
            raise problems_error(self.root, problems)


# ---------------------------------------------------------------- exporting

def check_texture_format(texture_format: str) -> str:
    if texture_format not in TEXTURE_FORMATS:
        raise ValueError(f"texture_format must be one of {', '.join(TEXTURE_FORMATS)}, got {texture_format!r}")
    return texture_format


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
        texture = check_texture(texture, f"{what}: texture")
        image_path = obj_path.with_name(obj_path.stem + TEXTURE_FORMATS[texture_format])
        if texture_format == "png":
            write_png_atomic(image_path, texture)
        else:
            with atomic_path(image_path) as tmp:
                # 4:4:4 chroma: subsampling would smear colour across UV island borders
                Image.fromarray(texture, "RGB").save(tmp, format="JPEG", quality=95, subsampling=0)
        material = "facecam_albedo"
        write_text_atomic(mtl_path, f"# facecam export\nnewmtl {material}\nKa 1 1 1\nKd 1 1 1\nKs 0 0 0\n"
                                    f"illum 1\nmap_Kd {image_path.name}\n")
        mtllib = mtl_path.name
    write_obj(obj_path, vertices_cm.astype(np.float64) * units_from_cm, template.polygon_sizes,
              template.polygon_vertices, uvs=template.uvs, polygon_uv_indices=template.polygon_uv_indices,
              mtllib=mtllib, material=material, header=f"facecam export; coordinates = centimetres x {units_from_cm:g}")


def _check_export_target(root: Path, overwrite: bool, marker: str) -> bool:
    """Whether `root` holds something to replace; raises when it may not be replaced."""
    if root.is_symlink():
        raise ValueError(f"{root}: export target is a symbolic link; give the folder it points to")
    if root.exists() and not root.is_dir():
        raise ValueError(f"{root}: export target exists and is not a folder")
    if not root.is_dir() or not any(root.iterdir()):
        return False
    if not overwrite:
        raise ValueError(f"{root}: export folder is not empty; pass --overwrite (overwrite=True from Python) to replace "
                         "a previous export, or choose another --out")
    if not (root / marker).is_file():
        # Replacing removes the old folder whole, so only a folder this exporter wrote may be replaced.
        raise ValueError(f"{root}: export folder is not empty and holds no {marker}, so it is not a previous "
                         "export; refusing to replace it even with --overwrite")
    return True


@contextlib.contextmanager
def export_folder(root: str | os.PathLike, overwrite: bool, marker: str):
    """Yield a hidden temporary folder beside `root` to export into; on success it becomes `root`.

    The export appears whole or not at all: on any error the temporary folder is removed and `root` is as before.
    A non-empty `root` is refused unless `overwrite` and it holds `marker` (the file the exporter writes last,
    which marks a complete previous export); then it is replaced whole, stale files included.
    A process killed mid-export leaves only the hidden `.{name}.partial-*` folder, which no reader opens.
    """
    root = Path(root)
    replace = _check_export_target(root, overwrite, marker)
    root.parent.mkdir(parents=True, exist_ok=True)
    work = root.parent / f".{root.name}.partial-{os.getpid()}-{secrets.token_hex(4)}"
    work.mkdir()  # mkdir, not mkdtemp: the finished folder gets the usual permissions
    try:
        yield work
        if replace:
            old = work.with_name(work.name.replace(".partial-", ".old-", 1))
            os.replace(root, old)
            try:
                os.replace(work, root)
            except BaseException:
                os.replace(old, root)
                raise
            shutil.rmtree(old)
        else:
            # rename(2) replaces an empty folder in one step and fails on a non-empty one, so a folder that
            # another process filled since the check is never lost.
            os.replace(work, root)
    finally:
        shutil.rmtree(work, ignore_errors=True)
