"""The synthetic FaceScape-like and BP4D-like sets: generated on the fly, or built once to memory-mapped files.

On the fly (`SyntheticFaceScape`, `SyntheticBP4D`): any mesh at any intensity, ground truth included.
Built (`build_set`): the training intensities only, as FaceScape and BP4D hold them, in a folder

    meta.json             what was built, from which config, splits by identity, array shapes
    vertices.npy          (N_id, N_exp, V, 3) or (N_frames, V, 3) float32, cm, memory-mapped
    identity_weights.npy  (N_id, 100) the ICT identity weights of each identity
    textures.npy          (..., R, R, 3) uint8 frontal UV crops (when the config stores textures)
    template.npz          topology and UVs (the set is readable without the ICT npz)
    template_texture.png  mean neutral albedo of the training identities over the whole UV tile
    template_crop.png     the same over the frontal crop the texture model trains on

The folder appears complete or not at all (built under a temporary name, then renamed), and a second build
with the same config reuses it.
"""
from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import shutil
from concurrent.futures import ProcessPoolExecutor, as_completed
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from core.atomic import atomic_path, write_png_atomic, write_text_atomic
from core.template import FaceTemplate
from train.config import DataConfig, split_counts
from train.data.arkit import ARKIT_RECIPES, RIG_NAMES, draw_weights
from train.data.expressions import (AU_MAX_INTENSITY, AU_NAMES, AU_RECIPES, AU_TASK_PROTOTYPES, EXPRESSION_RECIPES,
                                    FACESCAPE_EXPRESSIONS)
from train.data.face_synth import FaceSynthesizer, StyleConfig, SyntheticIdentity
from train.data.ict import ICTFaceModel, load_ict_model
from train.data.textures import TextureSynthesizer

TILE_RESOLUTION = 512  # whole-UV-tile textures (exports, renders); the config's resolution is the crop's
TEMPLATE_IDENTITIES = 96
GENERATOR_VERSION = 4  # bump when generated data changes, so stale built sets are rebuilt
TEMPLATE_FORMAT = 2  # template.npz's fields (2: materials per polygon); a set built with another is rebuilt
SPLITS = ("train", "val", "test")
_STREAM_SPLIT, _STREAM_FRAMES = 20, 21


def split_identities(num_identities: int, fractions, seed: int) -> dict[str, np.ndarray]:
    """Disjoint identity indices per split; every split gets at least one identity."""
    order = np.random.default_rng([seed, _STREAM_SPLIT, num_identities]).permutation(num_identities)
    n_train, n_val, _ = split_counts(num_identities, fractions)
    if n_train < 1:
        raise ValueError(f"split {fractions} of {num_identities} identities leaves no training identity")
    cuts = np.split(order, [n_train, n_train + n_val])
    return {name: np.sort(idx) for name, idx in zip(SPLITS, cuts)}


class _Synthetic:
    """What both synthetic sets share: the ICT model, the shape and texture synthesizers, splits by identity."""

    # Offset of this set's people in the random streams: the BP4D-like subjects are other people than the
    # FaceScape-like identities with the same index.
    person_offset = 0

    def __init__(self, cfg: DataConfig, set_cfg, ict: ICTFaceModel | None):
        self.ict = ict or load_ict_model()
        self.cfg, self.set_cfg = cfg, set_cfg
        self.template: FaceTemplate = self.ict.template
        self.shapes = FaceSynthesizer(self.ict, cfg.style, seed=cfg.seed)
        self.textures = TextureSynthesizer(self.ict, seed=cfg.seed)
        self.num_identities = set_cfg.num_identities
        self.splits = split_identities(self.num_identities, set_cfg.split, cfg.seed)
        self.identity = lru_cache(maxsize=64)(lambda i: self.shapes.identity(i + self.person_offset))

    def skin(self, identity: int):
        return self.textures.skin(identity + self.person_offset)

    def _texture(self, identity: int, mesh: np.ndarray, resolution: int | None, window: str) -> np.ndarray:
        if resolution is None:
            resolution = self.set_cfg.texture_resolution if window == "crop" else TILE_RESOLUTION
        return self.textures.texture(identity + self.person_offset, self.identity(identity).neutral, mesh,
                                     resolution, window)

    def template_texture(self, resolution: int, window: str = "tile") -> np.ndarray:
        """Mean neutral albedo over the training identities (the first TEMPLATE_IDENTITIES of them: the mean
        has converged well before, and at paper size all 677 would cost minutes)."""
        ids = self.splits["train"][:TEMPLATE_IDENTITIES]
        acc = np.zeros((resolution, resolution, 3))
        for i in ids:
            acc += self._texture(int(i), None, resolution, window)
        return np.round(acc / len(ids)).astype(np.uint8)


class SyntheticFaceScape(_Synthetic):
    """FaceScape-like set, generated on the fly: identities x the 20 FaceScape expressions, at any intensity."""

    def __init__(self, cfg: DataConfig, ict: ICTFaceModel | None = None):
        super().__init__(cfg, cfg.facescape, ict)
        self.identity_ids = [str(i + 1) for i in range(self.num_identities)]
        self.expression_names = FACESCAPE_EXPRESSIONS

    def _expression(self, expression: int | str) -> str:
        if isinstance(expression, str):
            if expression not in EXPRESSION_RECIPES:
                raise KeyError(f"unknown expression {expression!r}; expected one of {', '.join(FACESCAPE_EXPRESSIONS)}")
            return expression
        return self.expression_names[expression]

    def _check_identity(self, identity: int) -> SyntheticIdentity:
        if not 0 <= identity < self.num_identities:
            raise IndexError(f"identity {identity} outside [0, {self.num_identities})")
        return self.identity(int(identity))

    def mesh(self, identity: int, expression: int | str, intensity: float = 1.0) -> np.ndarray:
        """(V, 3) cm. intensity 0 = neutral, 1 = the labelled expression, > 1 exaggerated (ground truth too)."""
        name = self._expression(expression)
        return self.shapes.mesh(self._check_identity(identity), [(name, EXPRESSION_RECIPES[name], float(intensity))])

    def meshes(self, identity: int, intensity: float = 1.0) -> np.ndarray:
        """(20, V, 3): every expression of one identity, in one batched call."""
        ident = self._check_identity(identity)
        weights = np.stack([self.shapes.shape_weights(ident, n, EXPRESSION_RECIPES[n], intensity)
                            for n in self.expression_names])
        return self.shapes.mesh_from_weights(ident, weights)

    def texture(self, identity: int, expression: int | str, intensity: float = 1.0, resolution: int | None = None,
                window: str = "tile", mesh: np.ndarray | None = None) -> np.ndarray:
        """Albedo of the whole UV tile (window='tile') or of the frontal crop the texture model trains on."""
        if mesh is None:
            mesh = self.mesh(identity, expression, intensity)
        return self._texture(identity, mesh, resolution, window)


class SyntheticBP4D(_Synthetic):
    """BP4D-like set, generated on the fly: per identity the eight BP4D tasks, each a sequence of frames in which
    the task's co-occurring action units rise and fall together (integer intensities 0..5, as BP4D labels them),
    with an occasional spurious action unit."""

    person_offset = 1_000_000

    def __init__(self, cfg: DataConfig, ict: ICTFaceModel | None = None):
        super().__init__(cfg, cfg.bp4d, ict)
        self.au_names = AU_NAMES
        frames = cfg.bp4d.frames_per_task
        tasks = list(AU_TASK_PROTOTYPES)
        n = self.num_identities * len(tasks) * frames
        self.frame_identity = np.repeat(np.arange(self.num_identities), len(tasks) * frames)
        self.frame_subjects = [f"S{i + 1:03d}" for i in self.frame_identity]
        self.frame_tasks = [tasks[(k // frames) % len(tasks)] for k in range(n)]
        self.frame_numbers = np.tile(np.arange(frames), self.num_identities * len(tasks))
        self.au_intensities = self._draw_intensities(tasks, frames)

    def _draw_intensities(self, tasks, frames) -> np.ndarray:
        out = np.zeros((self.num_identities, len(tasks), frames, len(AU_NAMES)), np.float32)
        envelope = np.sin(np.pi * (np.arange(frames) + 0.5) / frames)  # onset, apex, offset
        for i in range(self.num_identities):
            for t, task in enumerate(tasks):
                rng = np.random.default_rng([self.cfg.seed, _STREAM_FRAMES, i, t])
                peak = rng.uniform(2.5, AU_MAX_INTENSITY + 0.5)
                for au in AU_TASK_PROTOTYPES[task]:
                    out[i, t, :, AU_NAMES.index(au)] = peak * rng.uniform(0.6, 1.15) * envelope
                spurious = rng.random(frames) < 0.15
                out[i, t, spurious, rng.integers(len(AU_NAMES), size=spurious.sum())] += rng.uniform(1, 2.5,
                                                                                             spurious.sum())
        return np.clip(np.round(out), 0, AU_MAX_INTENSITY).reshape(-1, len(AU_NAMES))

    def __len__(self) -> int:
        return len(self.au_intensities)

    def mesh_for(self, identity: int, au_intensities: dict[str, float] | np.ndarray) -> np.ndarray:
        """Any identity with any action-unit intensities (0..5, beyond 5 extrapolates): ground truth for control."""
        if not isinstance(au_intensities, dict):
            au_intensities = dict(zip(self.au_names, np.asarray(au_intensities, float)))
        unknown = set(au_intensities) - set(AU_RECIPES)
        if unknown:
            raise KeyError(f"unknown action unit(s) {sorted(unknown)}; expected some of {', '.join(AU_NAMES)}")
        parts = [(au, AU_RECIPES[au], float(v) / AU_MAX_INTENSITY) for au, v in au_intensities.items() if v > 0]
        return self.shapes.mesh(self.identity(int(identity)), parts)

    def mesh(self, frame: int) -> np.ndarray:
        return self.mesh_for(int(self.frame_identity[frame]), self.au_intensities[frame])

    def texture(self, frame: int, resolution: int | None = None, window: str = "tile",
                mesh: np.ndarray | None = None) -> np.ndarray:
        mesh = self.mesh(frame) if mesh is None else mesh
        return self._texture(int(self.frame_identity[frame]), mesh, resolution, window)


def tracker_style(style: StyleConfig) -> StyleConfig:
    """The per-person style as ARKit weights see it. ARKit's weights are a tracker's solve: each frame is fitted
    with the person's own (identity-adapted) blendshapes, so how far and how sharply a person moves goes into the
    weights (a bigger smile reads as a larger mouthSmile), not into the keys: the per-person draws of gain, response
    curve and side (the asymmetry draw scales each one-sided key like a gain) are off. What no coefficient absorbs
    stays in the meshes: how each key deforms this face (deformation transfer, the face-shape-dependent gain, the
    jaw's hinge). Left out with the side draw: a lopsided browInnerUp or cheekPuff (ARKit's two two-sided keys)."""
    return dataclasses.replace(style, gain_sigma=0.0, component_sigma=0.0, curvature_sigma=0.0, asymmetry_sigma=0.0)


class SyntheticARKit(_Synthetic):
    """ARKit-like set, generated on the fly: per identity, frames of ARKit blendshape weights (51 of the 52: see
    train.data.arkit), half single keys at several levels, half co-activations, as a face tracker reports them
    (tracker_style); the same identities' sampling, deformation transfer and jaw hinge as the other sets, so each
    person's rig is theirs, not ICT's offsets."""

    person_offset = 2_000_000

    def __init__(self, cfg: DataConfig, ict: ICTFaceModel | None = None):
        if cfg.arkit is None:
            raise ValueError(f"config {cfg.config_name!r} has no data.arkit section: it builds no ARKit-like set")
        super().__init__(cfg, cfg.arkit, ict)
        self.shapes = FaceSynthesizer(self.ict, tracker_style(cfg.style), seed=cfg.seed)
        self.weight_names = RIG_NAMES
        frames = cfg.arkit.frames_per_identity
        self.frame_identity = np.repeat(np.arange(self.num_identities), frames)
        self.arkit_weights = np.concatenate([
            draw_weights(np.random.default_rng([cfg.seed, _STREAM_FRAMES, self.person_offset + i]), frames)
            for i in range(self.num_identities)])

    def __len__(self) -> int:
        return len(self.arkit_weights)

    def mesh_for(self, identity: int, weights: dict[str, float] | np.ndarray) -> np.ndarray:
        """Any identity with any ARKit weights (0..1, past 1 extrapolates): ground truth for the rig."""
        if not isinstance(weights, dict):
            weights = np.asarray(weights, float)
            if weights.shape != (len(RIG_NAMES),):
                raise ValueError(f"weights: expected {len(RIG_NAMES)} values (train.data.arkit.RIG_NAMES), got shape "
                                 f"{weights.shape}")
            weights = dict(zip(RIG_NAMES, weights))
        unknown = set(weights) - set(ARKIT_RECIPES)
        if unknown:
            raise KeyError(f"unknown ARKit key(s) {sorted(unknown)}; expected some of {', '.join(RIG_NAMES)}")
        parts = [(k, ARKIT_RECIPES[k], float(v)) for k, v in weights.items() if v > 0]
        return self.shapes.mesh(self.identity(int(identity)), parts)

    def mesh(self, frame: int) -> np.ndarray:
        return self.mesh_for(int(self.frame_identity[frame]), self.arkit_weights[frame])

    def true_keys(self, identity: int | SyntheticIdentity) -> np.ndarray:
        """(51, V, 3) the person's own rig: each key alone at 1 minus their neutral (an index of this set, or an
        identity made from any neutral with self.shapes.identity_from_neutral)."""
        ident = self.identity(int(identity)) if not isinstance(identity, SyntheticIdentity) else identity
        meshes = np.stack([self.shapes.mesh(ident, [(k, ARKIT_RECIPES[k], 1.0)]) for k in RIG_NAMES])
        return meshes - ident.neutral

    def texture(self, frame: int, resolution: int | None = None, window: str = "tile",
                mesh: np.ndarray | None = None) -> np.ndarray:
        mesh = self.mesh(frame) if mesh is None else mesh
        return self._texture(int(self.frame_identity[frame]), mesh, resolution, window)


SET_KINDS = ("facescape", "bp4d", "arkit")
_SET_CLASSES = {"facescape": SyntheticFaceScape, "bp4d": SyntheticBP4D, "arkit": SyntheticARKit}


def synthetic_set(kind: str, cfg: DataConfig, ict: ICTFaceModel | None = None):
    if kind not in _SET_CLASSES:
        raise ValueError(f"unknown synthetic set {kind!r}; expected one of {', '.join(SET_KINDS)}")
    return _SET_CLASSES[kind](cfg, ict)


def _build_key(kind: str, cfg: DataConfig, ict: ICTFaceModel) -> dict:
    set_cfg = getattr(cfg, kind)
    style = tracker_style(cfg.style) if kind == "arkit" else cfg.style  # the style the set's meshes are made with
    return {"kind": kind, "generator_version": GENERATOR_VERSION, "template_format": TEMPLATE_FORMAT, "seed": cfg.seed, "style": style.to_dict(),
            "set": set_cfg.__dict__, "ict_sha256": ict.source_sha256}


def _save_template(path: Path, template: FaceTemplate) -> None:
    with atomic_path(path) as tmp:
        np.savez(tmp, num_vertices=template.num_vertices, polygon_sizes=template.polygon_sizes,
                 polygon_vertices=template.polygon_vertices, polygon_uv_indices=template.polygon_uv_indices,
                 uvs=template.uvs, region_names=np.array(template.region_names),
                 region_vertex_ranges=template.region_vertex_ranges,
                 region_polygon_ranges=template.region_polygon_ranges, units=template.units,
                 polygon_materials=template.polygon_materials, material_names=np.array(template.material_names))


def _load_template(path: Path) -> FaceTemplate:
    with np.load(path, allow_pickle=False) as z:
        return FaceTemplate(int(z["num_vertices"]), z["polygon_sizes"], z["polygon_vertices"],
                            z["polygon_uv_indices"], z["uvs"], tuple(str(n) for n in z["region_names"]),
                            z["region_vertex_ranges"], z["region_polygon_ranges"], str(z["units"]),
                            *((z["polygon_materials"], tuple(str(n) for n in z["material_names"]))
                              if "polygon_materials" in z.files else ()))


def _holds(out_dir: Path, key) -> bool:
    """Whether out_dir holds a finished set built with this build key."""
    try:
        return json.loads((out_dir / "meta.json").read_text()).get("build_key") == json.loads(json.dumps(key))
    except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError):
        return False  # none there, or a corrupt meta: build


def build_set(kind: str, cfg: DataConfig, out_dir: str | os.PathLike, ict: ICTFaceModel | None = None,
              progress: bool = True, force: bool = False, workers: int | None = None) -> Path:
    """Build a synthetic set into out_dir (reused when already built from the same config), in `workers`
    processes (default: one per core, one for small sets); every mesh is a pure function of the config, so the
    files are the same bits whatever the number of workers."""
    out_dir = Path(out_dir)
    ict = ict or load_ict_model()
    key = _build_key(kind, cfg, ict)
    if not force and _holds(out_dir, key):
        return out_dir
    source = synthetic_set(kind, cfg, ict)
    _remove_abandoned(out_dir)
    work = out_dir.parent / f".{out_dir.name}.partial-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        meta = _write_arrays(kind, source, work, progress, workers)
        _save_template(work / "template.npz", source.template)
        res = source.set_cfg.texture_resolution
        write_png_atomic(work / "template_texture.png", source.template_texture(2 * res, "tile"))
        write_png_atomic(work / "template_crop.png", source.template_texture(res, "crop"))
        meta.update(build_key=key, splits={k: v.tolist() for k, v in source.splits.items()},
                    texture_windows=source.textures.windows,
                    skin_tone_bins=[source.skin(i).skin_tone_bin for i in range(source.num_identities)])
        write_text_atomic(work / "meta.json", json.dumps(meta, indent=1))
        old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
        if out_dir.exists():
            try:
                os.replace(out_dir, old)
            except FileNotFoundError:  # another process moved it first
                pass
        try:
            os.replace(work, out_dir)
        except OSError:
            # another process building the same set at once (the ranks of a torchrun) put theirs there first
            if not _holds(out_dir, key):
                raise
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out_dir


def _remove_abandoned(out_dir: Path) -> None:
    """Delete temporary folders that builds killed midway left beside out_dir (their process is gone)."""
    if not out_dir.parent.is_dir():
        return
    for p in out_dir.parent.glob(f".{out_dir.name}.*-*"):
        kind, _, pid = p.name.rpartition("-")
        if not (kind.endswith((".partial", ".old")) and pid.isdigit()):
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(p, ignore_errors=True)
        except PermissionError:
            pass  # someone else's live process


def _write_arrays(kind: str, source, work: Path, progress: bool, workers: int | None) -> dict:
    V = source.template.num_vertices
    res, store = source.set_cfg.texture_resolution, source.set_cfg.store_textures
    weights = np.stack([source.identity(i).weights for i in range(source.num_identities)])
    np.save(work / "identity_weights.npy", weights)
    if kind == "facescape":
        lead = (source.num_identities, len(source.expression_names))
        meta = {"kind": "facescape", "identity_ids": list(source.identity_ids),
                "expression_names": list(source.expression_names)}
    elif kind == "arkit":
        lead = (len(source),)
        meta = {"kind": "arkit", "weight_names": list(source.weight_names),
                "frame_identity": source.frame_identity.tolist()}
        np.save(work / "arkit_weights.npy", source.arkit_weights)
    else:
        lead = (len(source),)
        meta = {"kind": "bp4d", "au_names": list(source.au_names), "frame_identity": source.frame_identity.tolist(),
                "frame_subjects": source.frame_subjects, "frame_tasks": source.frame_tasks,
                "frame_numbers": source.frame_numbers.tolist()}
        np.save(work / "au_intensities.npy", source.au_intensities)
    for name, dtype, shape in (("vertices.npy", np.float32, lead + (V, 3)), ("textures.npy", np.uint8,
                                                                              lead + (res, res, 3))):
        if name == "vertices.npy" or store:
            _close(np.lib.format.open_memmap(work / name, "w+", dtype, shape))
    _fill_parallel(kind, source, work, progress, workers)
    meta.update(format_version=1, num_identities=source.num_identities, num_vertices=V, units="cm",
                vertices_shape=list(lead + (V, 3)), textures_shape=list(lead + (res, res, 3)) if store else None,
                texture_resolution=res)
    return meta


def _close(array: np.ndarray | None) -> None:
    if array is not None:
        array.flush()
        array._mmap.close()


# Sets smaller than this are built in-process: starting workers (each loads the ICT model and prepares the
# deformation transfer) costs more than it saves.
_PARALLEL_MIN_IDENTITIES = 16


def _fill_parallel(kind: str, source, work: Path, progress: bool, workers: int | None) -> None:
    """Fill the (already created) arrays in `work`, one identity at a time, spread over worker processes."""
    identities = list(range(source.num_identities))
    if workers is None:
        workers = min(os.cpu_count() or 1, 8) if len(identities) >= _PARALLEL_MIN_IDENTITIES else 1
    desc = {"facescape": "facescape-like identities", "bp4d": "bp4d-like subjects", "arkit": "arkit-like identities"}[kind]
    bar = tqdm(total=len(identities), desc=desc, disable=not progress)
    if workers <= 1:
        for i in identities:
            _fill_identity(kind, source, work, i)
            bar.update()
    else:
        # fork where there is one (as torch's DataLoader does): workers inherit the loaded ICT model, and a
        # caller's script needs no `if __name__ == "__main__"` guard; they use numpy and scipy only
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        chunks = [identities[k::workers * 4] for k in range(workers * 4)]
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method),
                                 initializer=_init_worker, initargs=(kind, source.cfg, source.ict)) as pool:
            for done in as_completed([pool.submit(_fill_chunk, work, chunk) for chunk in chunks]):
                bar.update(done.result())
    bar.close()


_worker_source = None


def _init_worker(kind: str, cfg: DataConfig, ict: ICTFaceModel) -> None:
    global _worker_source
    # one BLAS thread per worker: with several, idle OpenBLAS threads spin against the other workers (3x slower)
    threadpool_limits(1)
    _worker_source = synthetic_set(kind, cfg, ict)


def _fill_chunk(work: Path, identities: list[int]) -> int:
    kind = next(k for k, cls in _SET_CLASSES.items() if type(_worker_source) is cls)
    for i in identities:
        _fill_identity(kind, _worker_source, work, i)
    return len(identities)


def _fill_identity(kind: str, source, work: Path, identity: int) -> None:
    """Write one identity's meshes (and crops) into the set's memory-mapped arrays."""
    vertices = np.load(work / "vertices.npy", mmap_mode="r+")
    textures = np.load(work / "textures.npy", mmap_mode="r+") if source.set_cfg.store_textures else None
    try:
        if kind == "facescape":
            meshes = source.meshes(identity)
            vertices[identity] = meshes
            if textures is not None:
                for e, name in enumerate(source.expression_names):
                    textures[identity, e] = source.texture(identity, name, mesh=meshes[e], window="crop")
        else:
            for f in np.flatnonzero(source.frame_identity == identity):
                mesh = source.mesh(int(f))
                vertices[f] = mesh
                if textures is not None:
                    textures[f] = source.texture(int(f), mesh=mesh, window="crop")
    finally:
        _close(vertices)
        _close(textures)


def holds_action_units(stored) -> bool:
    """Whether a set's expression labels are per-frame action-unit intensities (BP4D-like) rather than expression
    classes (FaceScape-like); a set object without a kind holds classes."""
    return getattr(stored, "kind", "facescape") == "bp4d"


def holds_weights(stored) -> bool:
    """Whether a set's frames are labelled with a weight vector (action-unit intensities, ARKit weights) rather
    than an expression class."""
    return getattr(stored, "kind", "facescape") in ("bp4d", "arkit")


def frame_weights(stored) -> tuple[tuple[str, ...], np.ndarray]:
    """(the weights' names, (N, K) float32 per frame) as the shape models take them: action-unit intensities / 5,
    ARKit weights as they are (both 0..1)."""
    if getattr(stored, "kind", None) == "arkit":
        return tuple(stored.weight_names), np.asarray(stored.arkit_weights, np.float32)
    return tuple(stored.au_names), (np.asarray(stored.au_intensities) / AU_MAX_INTENSITY).astype(np.float32)


class StoredSet:
    """A built set, memory-mapped; speaks ExpressionMeshSource (facescape) or ActionUnitFrameSource (bp4d)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        meta_path = self.path / "meta.json"
        if not meta_path.is_file():
            raise FileNotFoundError(f"{meta_path}: no built data set here; run `python -m train data build`")
        try:
            self.meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{meta_path}: not valid JSON ({e})") from e
        if self.meta.get("format_version") != 1:
            raise ValueError(f"{meta_path}: format_version {self.meta.get('format_version')!r}, expected 1")
        self.kind = self.meta["kind"]
        self.vertices = self._open("vertices.npy", self.meta["vertices_shape"])
        self.textures = (self._open("textures.npy", self.meta["textures_shape"])
                         if self.meta.get("textures_shape") else None)
        self.identity_weights = np.load(self.path / "identity_weights.npy")
        self.template = _load_template(self.path / "template.npz")
        self.splits = {k: np.asarray(v, np.int64) for k, v in self.meta["splits"].items()}
        self.skin_tone_bins = np.asarray(self.meta["skin_tone_bins"])
        if self.kind == "facescape":
            self.identity_ids = self.meta["identity_ids"]
            self.expression_names = tuple(self.meta["expression_names"])
        elif self.kind == "arkit":
            self.weight_names = tuple(self.meta["weight_names"])
            self.frame_identity = np.asarray(self.meta["frame_identity"])
            self.arkit_weights = np.load(self.path / "arkit_weights.npy")
        else:
            self.au_names = tuple(self.meta["au_names"])
            self.frame_identity = np.asarray(self.meta["frame_identity"])
            self.frame_subjects = self.meta["frame_subjects"]
            self.frame_tasks = self.meta["frame_tasks"]
            self.frame_numbers = np.asarray(self.meta["frame_numbers"])
            self.au_intensities = np.load(self.path / "au_intensities.npy")

    def _open(self, name: str, shape) -> np.ndarray:
        try:
            arr = np.load(self.path / name, mmap_mode="r")
        except (OSError, ValueError) as e:
            raise ValueError(f"{self.path / name}: unreadable ({e}); rebuild with `python -m train data build "
                             f"--force`") from e
        if list(arr.shape) != list(shape):
            raise ValueError(f"{self.path / name}: shape {arr.shape}, meta.json says {tuple(shape)}")
        return arr

    def close(self) -> None:
        """Release the memory maps (the set is unusable afterwards)."""
        for name in ("vertices", "textures"):
            array = getattr(self, name, None)
            if isinstance(array, np.memmap) and array._mmap is not None:
                array._mmap.close()
            setattr(self, name, None)

    def __enter__(self) -> "StoredSet":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __len__(self) -> int:
        return len(self.vertices)

    def mesh(self, *index: int) -> np.ndarray:
        return np.asarray(self.vertices[index])

    def texture(self, *index: int) -> None:
        """Whole-tile textures are not stored (only the training crops): export from the on-the-fly set."""
        return None

    def crop(self, *index: int) -> np.ndarray:
        """The stored frontal UV crop, (R, R, 3) uint8."""
        if self.textures is None:
            raise ValueError(f"{self.path}: this set stores no textures (its config has store_textures false); "
                             f"generate them on the fly with SyntheticFaceScape/SyntheticBP4D.texture(..., "
                             f"window='crop')")
        return np.asarray(self.textures[index])

    def template_texture(self, window: str = "tile") -> np.ndarray:
        name = {"tile": "template_texture.png", "crop": "template_crop.png"}[window]
        return np.asarray(Image.open(self.path / name).convert("RGB"))
