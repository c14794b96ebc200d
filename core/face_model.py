"""FaceModel: load an exported facecam model (a local folder, a pinned hub repo, or a manifest name) and generate
faces from seeds. Everything the add-on and the command line call.

A model folder (written by `python -m train export`) holds:
  config.json            format_version, name, expression (or action-unit) names, the shape and texture network
                         configs, how z_id is drawn, the crop window of the texture in the UV tile, provenance
  shape.safetensors      the SAE's decoder and coder, G_id, G_exp, and the training identities' z_id codes
  template.safetensors   topology (polygons with quads kept), UVs, each polygon's material (named in config.json:
                         materials; grouped into parts: skin, sclera, iris, teeth, ... by core.template)
  template_texture.png   the template albedo over the whole UV tile
  texture.safetensors    the texture generator (absent for a shape-only model)
  arkit_rig.safetensors  the learned ARKit rig (core.arkit_rig; config.json: arkit_rig), absent for a model without
  README.md              the model card (not needed to generate)

Intensity (see core/shape_control.py): `intensity_mode` "calibrated" (the default) makes a face at intensity alpha the
identity's neutral plus alpha times the expression's change at intensity 1, so the displacement follows alpha as
the data's ground truth does and extrapolates past 1; "paper" scales z_exp as the paper does. Textures follow the
same rule.

Seeds (0..core.names.SEED_MAX everywhere; anything else is refused): identity_seed draws z_id ~ N(0, I) (or, for a
one-hot model, picks training identity number seed);
noise_seed draws one z_noise vector; the shape uses its first shape.z_noise_dim entries and the texture all of it,
so a face's mesh and texture share (z_id, z_exp, z_noise). Draws are numpy's PCG64 stream made normal by
core.seeds, the same numbers on every machine and backend (since facecam 0.5.0; earlier versions drew with torch, so a
seed gives another face than it did there). Expressions are named by name, FaceScape's number or the bare name
(core.names).

The networks run on numpy or torch (core.backends): `backend` "auto" (numpy on the CPU, torch on a GPU device),
"numpy" or "torch". Both read the same files, through core.model_files (no safetensors or pillow needed).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from . import __version__, hub
from .arkit_rig import ARKitRig, RigConfig, RigFormatError
from .backends import make_backend
from .intensity import INTENSITY_MODES, blend_terms
from .model_files import ModelFormatError, read_tensors
from .names import check_seed, resolve_expression
from .network_configs import (CHANGE_INDICES, ShapeNetConfig, TextureNetConfig, shape_tensor_shapes,
                              texture_tensor_shapes)
from .png_io import PNGError, read_png
from .seeds import standard_normal
from .template import polygon_parts

FORMAT_VERSION = 1
# format_version -> the facecam versions that read it (a folder of another version is refused, naming these)
FORMAT_READERS = {1: "0.1.0 and later"}
GENERATION_FILES = ("config.json", "shape.safetensors", "template.safetensors", "template_texture.png")
TEXTURE_FILE = "texture.safetensors"
RIG_FILE = "arkit_rig.safetensors"
TEMPLATE_TENSORS = ("polygon_sizes", "polygon_vertices", "polygon_uv_indices", "uvs")

__all__ = ["FORMAT_VERSION", "Face", "FaceModel", "ModelFormatError"]


def generation_files(config: dict) -> list[str]:
    """The files of a model folder that generation reads, config.json first, for its config."""
    return (list(GENERATION_FILES) + ([TEXTURE_FILE] if config.get("texture") else [])
            + ([RIG_FILE] if config.get("arkit_rig") else []))


@dataclass
class Face:
    """Plain data, ready for any 3D package: vertices in the template's units (ICT: centimetres, y up)."""
    vertices: np.ndarray  # (V, 3) float32
    polygon_sizes: np.ndarray  # (P,) int32, 3 or 4: quads kept
    polygon_vertices: np.ndarray  # (sum sizes,) int32
    polygon_uv_indices: np.ndarray  # (sum sizes,) int32
    uvs: np.ndarray  # (U, 2) float32
    texture: np.ndarray | None  # (T, T, 3) uint8 over the whole UV tile, or None
    metadata: dict = field(default_factory=dict)
    # the part of the head each polygon belongs to (index into part_names; "skin" first: the textured one)
    polygon_parts: np.ndarray | None = None  # (P,) int32
    part_names: tuple[str, ...] = ("skin",)


def _weighted_rows(outputs: np.ndarray, picks: list[list[tuple[int, float]]]) -> np.ndarray:
    """One output per row of `picks` ((index into outputs, weight) pairs): the weighted sum in float64, in term
    order (the same bits whatever the thread count); a single term of weight 1 passes through unchanged."""
    out = []
    for row in picks:
        if len(row) == 1 and row[0][1] == 1.0:
            out.append(outputs[row[0][0]])
        else:
            acc = np.zeros(outputs.shape[1:], np.float64)
            for k, w in row:
                acc += w * outputs[k].astype(np.float64)
            out.append(acc.astype(np.float32))
    return np.stack(out)


def _bilinear_matrix(size_out: int, size_in: int) -> np.ndarray:
    """(size_out, size_in) weights of F.interpolate(mode="bilinear", align_corners=False) along one axis."""
    src = np.maximum((np.arange(size_out) + 0.5) * (size_in / size_out) - 0.5, 0.0)
    low = np.minimum(src.astype(np.int64), size_in - 1)
    high = np.minimum(low + 1, size_in - 1)
    frac = src - low
    m = np.zeros((size_out, size_in), np.float64)
    np.add.at(m, (np.arange(size_out), low), 1.0 - frac)
    np.add.at(m, (np.arange(size_out), high), frac)
    return m.astype(np.float32)


class FaceModel:
    def __init__(self, folder: str | os.PathLike, files: dict[str, Path] | None = None, backend: str = "auto",
                 device: str = "cpu"):
        """Load from a model folder (or from `files`, name -> path, as fetched from the hub), to generate with
        `backend` ("auto", "numpy", "torch"; see core.backends) on `device` ("cpu", "cuda", "mps")."""
        folder = Path(folder)

        def path(name: str) -> Path:
            return Path(files[name]) if files else folder / name

        config_path = path("config.json")
        try:
            self.config = json.loads(Path(config_path).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ModelFormatError(f"{config_path}: cannot read the model config ({e})", Path(config_path)) from None
        version = self.config.get("format_version") if isinstance(self.config, dict) else None
        if version not in FORMAT_READERS:
            newer = isinstance(version, int) and version > FORMAT_VERSION
            raise ModelFormatError(
                f"{config_path}: format_version {version!r} is "
                + (f"newer than this facecam ({__version__}) reads ({FORMAT_VERSION}); upgrade facecam" if newer else
                   f"not one this facecam ({__version__}) reads: it reads "
                   + ", ".join(f"{v} (written and read by facecam {who})" for v, who in FORMAT_READERS.items())))
        try:
            self.shape_cfg = ShapeNetConfig.from_dict(self.config["shape"])
            self.texture_cfg = (TextureNetConfig.from_dict(self.config["texture"]) if self.config.get("texture")
                                else None)
            self.rig_cfg = RigConfig.from_dict(self.config["arkit_rig"]) if self.config.get("arkit_rig") else None
            self.name = str(self.config["name"])
            self.expression_names = list(self.config["expressions"])
            self.z_id_kind = self.config["z_id"]
            self.crop_window = tuple(self.config["texture_window"])
            self.units = str(self.config.get("units", "cm"))
            self.license = str(self.config.get("license", "unknown"))
        except (KeyError, TypeError, ValueError) as e:  # RigFormatError is a ValueError
            raise ModelFormatError(f"{config_path}: {type(e).__name__}: {e}") from None
        if len(self.expression_names) != self.shape_cfg.num_expressions:
            raise ModelFormatError(f"{config_path}: {len(self.expression_names)} expression names for "
                                   f"{self.shape_cfg.num_expressions} expressions in the shape config")
        self.au_model = self.shape_cfg.expression_labels == "au_intensities"
        self._neutral = self._neutral_code()
        self.intensity_mode = "calibrated"
        self._load(path)
        self._backend_choice = backend
        self.backend, self.backend_note = make_backend(backend, device, self.shape_cfg, self._shape_tensors,
                                                       self.texture_cfg, self._texture_tensors)

    @property
    def intensity_mode(self) -> str:
        return self._intensity_mode

    @intensity_mode.setter
    def intensity_mode(self, mode: str) -> None:
        if mode not in INTENSITY_MODES:
            raise ValueError(f"intensity_mode {mode!r}: expected one of {', '.join(INTENSITY_MODES)}")
        self._intensity_mode = mode

    def _neutral_code(self) -> np.ndarray:
        """z_exp of the neutral face: no action unit active, or the neutral expression's one-hot code (named in
        config.json, else the expression whose name ends in 'neutral'; a model with none falls back to zeros,
        the paper's intensity 0)."""
        z = np.zeros(self.shape_cfg.num_expressions, np.float32)
        if self.shape_cfg.weight_conditioned:
            return z
        name = self.config.get("neutral_expression") or next(
            (n for n in self.expression_names if n.lower().endswith("neutral")), None)
        if name is not None:
            z[self._expression_index(name)] = 1.0
        return z

    def _load(self, path) -> None:
        """Every file generation reads, each checked against config.json before its data is read."""
        cfg = self.shape_cfg
        self._shape_tensors = read_tensors(path("shape.safetensors"), shape_tensor_shapes(cfg), optional=("z_id",))
        self.training_z_ids = self._shape_tensors.pop("z_id", None)
        template_path = Path(path("template.safetensors"))
        t = read_tensors(template_path, optional=(*TEMPLATE_TENSORS, "polygon_materials"))
        missing = [n for n in TEMPLATE_TENSORS if n not in t]
        if missing:
            raise ModelFormatError(f"{template_path}: missing tensor(s) {missing}", template_path)
        self.polygon_sizes, self.polygon_vertices = t["polygon_sizes"], t["polygon_vertices"]
        self.polygon_uv_indices, self.uvs = t["polygon_uv_indices"], t["uvs"]
        materials = t.get("polygon_materials", np.zeros(0, np.int32))
        names = list(self.config.get("materials") or [])
        if len(materials) and (len(materials) != len(self.polygon_sizes) or materials.max() >= len(names)):
            raise ModelFormatError(f"{template_path}: polygon_materials do not match the {len(self.polygon_sizes)} "
                                   f"polygons and the {len(names)} materials of config.json", template_path)
        self.polygon_parts, self.part_names = polygon_parts(len(self.polygon_sizes), materials, names)
        if self.polygon_vertices.max() >= cfg.num_vertices:
            raise ModelFormatError(f"{template_path}: polygons index vertex {self.polygon_vertices.max()}, the "
                                   f"shape config has {cfg.num_vertices} vertices", template_path)
        png = Path(path("template_texture.png"))
        try:
            self.template_texture = read_png(png)
        except (OSError, PNGError) as e:
            raise ModelFormatError(f"{png}: cannot be read as a PNG image ({e}); re-export or re-download it",
                                   png) from None
        self._template_tile = self.template_texture.astype(np.float32) / 127.5 - 1  # (T, T, 3) in [-1, 1]
        self._texture_tensors = None
        if self.texture_cfg is not None:
            self._texture_tensors = read_texture_tensors(Path(path(TEXTURE_FILE)), self.texture_cfg)
        self.rig = None
        if self.rig_cfg is not None:
            rig_path = Path(path(RIG_FILE))
            if self.rig_cfg.num_vertices != cfg.num_vertices:
                raise ModelFormatError(f"{path('config.json')}: arkit_rig.num_vertices {self.rig_cfg.num_vertices}, "
                                       f"the shape model has {cfg.num_vertices}")
            try:
                self.rig = ARKitRig(self.rig_cfg, read_tensors(rig_path, self.rig_cfg.tensor_shapes(),
                                                               indices=RigConfig.INDICES))
            except RigFormatError as e:
                raise ModelFormatError(f"{rig_path}: {e}", rig_path) from None

    @property
    def has_texture(self) -> bool:
        """Whether this model generates textures (a shape-only model does not)."""
        return self.texture_cfg is not None

    @property
    def device(self) -> str:
        return str(self.backend.device)

    def backend_line(self) -> str:
        """One line for the user: what runs the networks, where, and why when it is not what was asked for."""
        line = f"{self.backend.name} on {self.device}"
        return f"{line} ({self.backend_note})" if self.backend_note else line

    def to(self, device: str, backend: str | None = None) -> "FaceModel":
        """Run the networks on `device` ("cpu", "cuda", "cuda:1", "mps") with `backend` (default: the one asked for
        before): any device but the CPU takes the torch backend. Codes are still drawn on the CPU, so seeds mean
        the same face everywhere."""
        choice = backend or self._backend_choice
        self.backend, self.backend_note = make_backend(choice, device, self.shape_cfg, self._shape_tensors,
                                                       self.texture_cfg, self._texture_tensors)
        self._backend_choice = choice
        return self

    # --- loading ---------------------------------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, source: str, cache_dir: str | os.PathLike | None = None, endpoint: str | None = None,
                        manifest: hub.WeightsManifest | None = None, offline: bool = False,
                        on_file: Callable[[str, int, int], None] | None = None, backend: str = "auto",
                        device: str = "cpu") -> "FaceModel":
        """source: a model folder, "owner/name@<commit sha>", or a model name from weights_manifest.json.
        Downloads (or reuses from the cache) only what generation needs, each file's sha256 checked.
        offline: use the cache only (as HF_HUB_OFFLINE does); on_file(name, index, total) is called before each
        file is fetched, for progress displays. backend, device: as for FaceModel()."""
        manifest = manifest if manifest is not None else hub.load_manifest()
        where = hub.parse_source(source, manifest)
        if isinstance(where, hub.LocalSource):
            return cls(where.path, backend=backend, device=device)
        if isinstance(where, hub.ModelSource):
            entry = where.entry
            repo_id, revision = entry.repo_id, entry.revision

            def fetch(names):
                return hub.fetch_model_files(entry, names, cache_dir, endpoint, offline, on_file)
        else:
            repo_id, revision = where.repo_id, where.revision

            def fetch(names):
                return hub.fetch_files(repo_id, revision, {n: (None, None) for n in names}, cache_dir, endpoint,
                                       offline, on_file)
        config = fetch(["config.json"])
        try:
            files = {**config, **fetch(cls._needed_files(config["config.json"])[1:])}
            return cls("", files, backend=backend, device=device)
        except ModelFormatError as e:
            # A damaged download (one with no manifest sha256 to catch it) must not stay cached: the next try
            # downloads it again
            if e.path is not None:
                hub.discard_cached(e.path)
            raise

    @staticmethod
    def _needed_files(config_path: Path) -> list[str]:
        """config.json first, then what generation reads."""
        try:
            config = json.loads(Path(config_path).read_text())
        except (OSError, ValueError) as e:
            raise ModelFormatError(f"{config_path}: cannot read the model config ({e})", Path(config_path)) from None
        return generation_files(config)

    # --- codes -------------------------------------------------------------------------------------------------

    def identity_code(self, identity_seed: int) -> np.ndarray:
        identity_seed = check_seed(identity_seed, "identity seed")
        if self.z_id_kind == "onehot":
            n = self.shape_cfg.z_id_dim
            if not 0 <= identity_seed < n:
                raise ValueError(f"identity_seed {identity_seed}: this model's z_id is one-hot over its {n} training "
                                 f"identities; expected 0..{n - 1}")
            return np.eye(n, dtype=np.float32)[identity_seed]
        return standard_normal(identity_seed, self.shape_cfg.z_id_dim)

    def noise_code(self, noise_seed: int) -> np.ndarray:
        dim = max(self.shape_cfg.z_noise_dim, self.texture_cfg.z_noise_dim if self.texture_cfg else 0)
        return standard_normal(check_seed(noise_seed, "noise seed"), dim)

    def expression_code(self, expression: str | int | dict, intensity: float = 1.0) -> np.ndarray:
        """z_exp for one expression (see core.names.resolve_expression: '2_smile', 2 or 'smile'), a mix {name: weight}, or for an action-unit model a dict
        {AU name: intensity 0..5}; scaled by intensity (values past 1 extrapolate)."""
        n = self.shape_cfg.num_expressions
        mix = expression if isinstance(expression, dict) else {expression: 1.0}
        z = np.zeros(n, np.float32)
        for key, weight in mix.items():
            z[self._expression_index(key)] += np.float32(weight)
        if self.au_model:
            z = z / np.float32(5.0)  # the AU model was trained on intensities / 5
        return z * np.float32(intensity)

    def _terms(self, expression: str | int | dict, intensity: float) -> list[tuple[np.ndarray, float]]:
        """(z_exp, weight) pairs whose weighted meshes (and texture crops) add up to the face at `intensity`."""
        if self.intensity_mode == "paper":
            return [(self.expression_code(expression, intensity), 1.0)]
        if self.shape_cfg.weight_conditioned or not isinstance(expression, dict):  # one code: an expression, or weights
            return blend_terms(self._neutral, [(self.expression_code(expression, 1.0), 1.0)], intensity)
        return blend_terms(self._neutral, [(self.expression_code(k, 1.0), float(w)) for k, w in expression.items()],
                           intensity)

    def _expression_index(self, key: str | int) -> int:
        try:
            return resolve_expression(self.expression_names, key)
        except ValueError as e:
            raise ValueError(f"model {self.name}: {e}") from None

    # --- generation --------------------------------------------------------------------------------------------

    def _compose_textures(self, offsets: np.ndarray) -> np.ndarray:
        """Crop offsets (B, R, R, 3) in [-1, 1] units, added to the template over the crop window of the tile; the
        rest of the tile (scalp, neck, ears) is shifted by the mean offset along the crop's edge, so a skin tone far
        from the template's does not end in a seam where the crop does."""
        tile = self._template_tile
        size = tile.shape[0]
        u0, u1, v0, v1 = self.crop_window
        top, bottom = round((1 - v1) * size), round((1 - v0) * size)
        left, right = round(u0 * size), round(u1 * size)
        rows, cols = _bilinear_matrix(bottom - top, offsets.shape[1]), _bilinear_matrix(right - left, offsets.shape[2])
        resized = np.einsum("yi,bijc,xj->byxc", rows, offsets, cols, optimize=True).astype(np.float32)
        strips = (resized[:, :2], resized[:, -2:], resized[:, :, :2], resized[:, :, -2:])  # two pixels along each edge
        edge = np.concatenate([s.reshape(len(resized), -1, 3) for s in strips], axis=1).mean(1)
        out = tile[None] + edge[:, None, None, :]
        out[:, top:bottom, left:right] = tile[top:bottom, left:right] + resized
        return np.round((np.clip(out, -1, 1) + 1) * np.float32(127.5)).astype(np.uint8)

    def _render(self, rows: list[tuple[np.ndarray, np.ndarray, np.ndarray | None, list]], texture: bool,
                shape: bool = True) -> tuple[np.ndarray | None, np.ndarray | None]:
        """One face per row (z_id, z_noise, style z_id or None, [(z_exp, weight), ...]): the distinct terms of all
        rows generated in one batch (a sweep's rows share two: the neutral and the expression, so a sweep costs two
        meshes and gives the single faces' bits), then each row's terms added with their weights. Meshes unless
        shape is False, textures when asked for and the model has them."""
        terms: dict[bytes, int] = {}
        codes, picks = [], []
        for z_id, z_noise, style, parts in rows:
            style = z_id if style is None else style
            row = []
            for z_exp, w in parts:
                key = b"".join(np.asarray(t, np.float32).tobytes() for t in (z_id, z_noise, style, z_exp))
                if key not in terms:
                    terms[key] = len(codes)
                    codes.append((z_id, z_noise, style, z_exp))
                row.append((terms[key], w))
            picks.append(row)
        z_id, z_noise, style, z_exp = (np.stack(c).astype(np.float32) for c in zip(*codes))
        vertices = textures = None
        if shape:
            vertices = _weighted_rows(self.backend.meshes(z_id, z_exp, z_noise[:, :self.shape_cfg.z_noise_dim], style),
                                      picks)
        if texture and self.has_texture:
            crops = self.backend.textures(z_id, z_exp, z_noise[:, :self.texture_cfg.z_noise_dim])
            textures = self._compose_textures(_weighted_rows(crops, picks))
        return vertices, textures

    def generate(self, identity_seed: int, expression: str | int | dict, intensity: float = 1.0,
                 noise_seed: int = 0, texture: bool = True) -> Face:
        return self.sweep(identity_seed, expression, [intensity], noise_seed, texture)[0]

    def expression_label(self, expression: str | int | dict) -> str:
        """The expression's full name ('2' -> '2_smile'); a mix as 'a+b' (weights in the metadata)."""
        keys = expression if isinstance(expression, dict) else [expression]
        return "+".join(self.expression_names[self._expression_index(k)] for k in keys)

    def _meta(self, **fields) -> dict:
        if "expression" in fields:  # the names, not what the caller typed: '2' and '2_smile' are one face
            e = fields["expression"]
            fields["expression"] = {self.expression_label(k): float(w) for k, w in e.items()} \
                if isinstance(e, dict) else self.expression_label(e)
        return {"model": self.name, **fields, "intensity_mode": self.intensity_mode}

    def sweep(self, identity_seed: int, expression: str | int | dict, intensities, noise_seed: int = 0,
              texture: bool = True) -> list[Face]:
        """One face per intensity, in one batched call."""
        intensities = [float(a) for a in intensities]
        if not intensities or not all(np.isfinite(intensities)):
            raise ValueError(f"intensities must be a non-empty list of finite numbers, got {intensities}")
        z_id, z_noise = self.identity_code(identity_seed), self.noise_code(noise_seed)
        vertices, textures = self._render([(z_id, z_noise, None, self._terms(expression, a)) for a in intensities],
                                          texture)
        return [self._face(vertices[i], None if textures is None else textures[i],
                           self._meta(identity_seed=int(identity_seed), noise_seed=int(noise_seed),
                                      expression=expression, intensity=a)) for i, a in enumerate(intensities)]

    def expression_set(self, identity_seed: int, expressions, intensity: float = 1.0, noise_seed: int = 0,
                       texture: bool = True) -> list[Face]:
        """One face per expression (names, indices or mixes), one identity, in one batched call."""
        expressions = list(expressions)
        if not expressions:
            raise ValueError("expressions must name at least one expression")
        z_id, z_noise = self.identity_code(identity_seed), self.noise_code(noise_seed)
        vertices, textures = self._render([(z_id, z_noise, None, self._terms(e, intensity)) for e in expressions],
                                          texture)
        return [self._face(vertices[i], None if textures is None else textures[i],
                           self._meta(identity_seed=int(identity_seed), noise_seed=int(noise_seed), expression=e,
                                      intensity=float(intensity))) for i, e in enumerate(expressions)]

    def interpolate_identities(self, seed_a: int, seed_b: int, weights, expression: str | int | dict,
                               intensity: float = 1.0, noise_seed: int = 0, texture: bool = True) -> list[Face]:
        """Faces along the straight line from identity seed_a's z_id (weight 0) to seed_b's (weight 1)."""
        t = np.array([float(w) for w in weights], np.float32)[:, None]
        z_ids = (1 - t) * self.identity_code(seed_a) + t * self.identity_code(seed_b)
        z_noise, terms = self.noise_code(noise_seed), self._terms(expression, intensity)
        vertices, textures = self._render([(z, z_noise, None, terms) for z in z_ids], texture)
        return [self._face(vertices[i], None if textures is None else textures[i],
                           self._meta(identity_seeds=[int(seed_a), int(seed_b)], weight=float(w),
                                      noise_seed=int(noise_seed), expression=expression, intensity=float(intensity)))
                for i, w in enumerate(t[:, 0].tolist())]

    def style_edit(self, identity_seed: int, style_seed: int, expression: str | int | dict, intensity: float = 1.0,
                   noise_seed: int = 0, texture: bool = True) -> Face:
        """identity_seed's face making the expression the way style_seed's identity makes it: the style's z_id
        drives G_exp only (the texture keeps identity_seed's z_id)."""
        vertices, textures = self._render([(self.identity_code(identity_seed), self.noise_code(noise_seed),
                                            self.identity_code(style_seed), self._terms(expression, intensity))],
                                          texture)
        return self._face(vertices[0], None if textures is None else textures[0],
                          self._meta(identity_seed=int(identity_seed), style_seed=int(style_seed),
                                     noise_seed=int(noise_seed), expression=expression, intensity=float(intensity)))

    def texture_image(self, identity_seed: int, expression: str | int | dict, intensity: float = 1.0,
                      noise_seed: int = 0) -> np.ndarray | None:
        """generate()'s texture alone, (T, T, 3) uint8 (None for a shape-only model): lets a caller show the mesh
        first and the texture when it is ready."""
        if not self.has_texture:
            return None
        rows = [(self.identity_code(identity_seed), self.noise_code(noise_seed), None, self._terms(expression,
                                                                                                   intensity))]
        return self._render(rows, texture=True, shape=False)[1][0]

    # --- ARKit rig ---------------------------------------------------------------------------------------------

    @property
    def has_arkit_rig(self) -> bool:
        return self.rig is not None

    def _require_rig(self) -> ARKitRig:
        if self.rig is None:
            raise ValueError(f"model {self.name} has no ARKit rig (its folder has no {RIG_FILE}); export one trained "
                             f"with `python -m train arkit-rig`")
        return self.rig

    def neutral_face(self, identity_seed: int, noise_seed: int = 0, texture: bool = True) -> Face:
        """The identity's face at rest: the neutral expression (an action-unit model: no unit active)."""
        z_id, z_noise = self.identity_code(identity_seed), self.noise_code(noise_seed)
        vertices, textures = self._render([(z_id, z_noise, None, [(self._neutral, 1.0)])], texture)
        return self._face(vertices[0], None if textures is None else textures[0],
                          self._meta(identity_seed=int(identity_seed), noise_seed=int(noise_seed), expression="neutral",
                                     intensity=0.0))

    def arkit_keys(self, neutral: np.ndarray) -> tuple[tuple[str, ...], np.ndarray]:
        """(ARKit names, (K, V, 3) float32 keys): this face's own rig, each key its offset from `neutral` at weight 1,
        for any mesh in the model's topology (a facecam face at rest, a registered scan, an ICT-FaceKit face)."""
        rig = self._require_rig()
        return rig.names, rig.keys(neutral)

    def arkit_key_shapes(self, neutral: np.ndarray) -> tuple[tuple[str, ...], np.ndarray]:
        """(ARKit names, (K, V, 3) float32): the face at each key's weight 1 (arkit_keys added to neutral), as shape
        keys hold them."""
        rig = self._require_rig()
        return rig.names, rig.key_shapes(neutral)

    def _face(self, vertices: np.ndarray, texture: np.ndarray | None, metadata: dict) -> Face:
        return Face(vertices.astype(np.float32), self.polygon_sizes, self.polygon_vertices, self.polygon_uv_indices,
                    self.uvs, texture, metadata, self.polygon_parts, self.part_names)


def read_texture_tensors(path: Path, cfg: TextureNetConfig) -> dict[str, np.ndarray]:
    """texture.safetensors' tensors, checked against the config; per-expression change bases index the crop, so
    their offsets must run from 0 to the region size without going back and every pixel index lie in the crop, or
    generation would write outside it."""
    tensors = read_tensors(path, texture_tensor_shapes(cfg), indices=CHANGE_INDICES)
    if not cfg.per_expression_changes:
        return tensors
    offsets, pixels = tensors["change_offsets"], tensors["change_pixels"]
    if offsets[0] != 0 or offsets[-1] != cfg.change_region_size or (np.diff(offsets) < 0).any():
        raise ModelFormatError(f"{path}: change_offsets must rise from 0 to change_region_size "
                               f"{cfg.change_region_size}, got {offsets.tolist()}", path)
    values = 3 * cfg.max_resolution ** 2
    if len(pixels) and (pixels.min() < 0 or pixels.max() >= values):
        raise ModelFormatError(f"{path}: change_pixels must index the {values} values of a "
                               f"{cfg.max_resolution} px crop, got {pixels.min()} to {pixels.max()}", path)
    return tensors
