"""Fit the learned ARKit rig from an ARKit-like set: each person's 51 keys as a function of their neutral face.

    key_k(person) = (A_k + sum_j phi_j B_kj) @ offset_basis        phi = identity_basis (neutral - identity_mean)

- phi: the person's coordinates in the principal components of the training people's neutral faces (the face
  region), so any mesh in ICT-FaceKit's topology has them: a facecam face, a registered scan, an ICT face.
- A_k, B_kj: a ridge regression of the training people's keys (each key alone at full strength in their range of
  motion, minus their rest frame) on phi, in the principal components of those keys (on the vertices that move).

Why not the SAE + cGAN's own keys: on held-out people G_exp, seeing an identity embedding it was never trained on,
gives keys further from the truth than ICT's generic offsets (python -m train evaluate --set arkit reports both);
a person's keys depend on their face about linearly (deformation transfer is linear in the neutral's geometry
for faces near the mean), which a ridge over a few hundred people learns and a G_exp memorising 240 does not.
The fit is closed-form: seconds, the same bits every run.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from core.arkit_rig import ARKitRig, RigConfig
from core.atomic import write_safetensors_atomic, write_text_atomic
from train.config import ConfigError, typed_section
from train.texture_appearance import principal_rows

RIG_FILE = "arkit_rig.safetensors"


@dataclass(frozen=True)
class RigFitConfig:
    identity_components: int  # J: principal components of the training neutrals (at most training people - 1)
    offset_components: int  # C: principal components of the training frames' offsets
    ridge: float  # the regression's penalty, in units of the (unit-variance) identity coordinates


def rig_fit_section(cfg: dict) -> RigFitConfig:
    where = f"{cfg.get('_path', cfg['name'])}: arkit_rig"
    section = cfg.get("arkit_rig")
    if not isinstance(section, dict):
        raise ConfigError(f"{where}: section missing (the ARKit rig's fit settings)")
    out = typed_section(section, RigFitConfig, where)
    if out.identity_components < 1 or out.offset_components < 1 or out.ridge < 0:
        raise ConfigError(f"{where}: identity_components and offset_components must be >= 1, ridge >= 0")
    return out


def range_of_motion(stored, identities: np.ndarray) -> np.ndarray:
    """(identities, 1 + K) frame indices: each identity's rest frame (all weights 0), then its frame of each key alone
    at full strength; refuses a set where one is missing, naming it."""
    weights = np.asarray(stored.arkit_weights)
    people = np.asarray(stored.frame_identity)
    alone = (weights == 1.0) & ((weights > 0).sum(1) == 1)[:, None]
    out = np.full((len(identities), 1 + weights.shape[1]), -1)
    for row, person in enumerate(identities):
        frames = np.flatnonzero(people == person)
        rest = frames[~weights[frames].any(axis=1)]
        if len(rest):
            out[row, 0] = rest[0]
        for k in range(weights.shape[1]):
            hit = frames[alone[frames, k]]
            if len(hit):
                out[row, 1 + k] = hit[0]
    missing = np.argwhere(out < 0)
    if len(missing):
        row, column = missing[0]
        what = "a frame at rest (all weights 0)" if column == 0 else f"a frame of {stored.weight_names[column - 1]} alone at 1"
        raise ValueError(f"{stored.path}: identity {int(identities[row])} has no {what} ({len(missing)} such gaps); "
                         f"the rig is fitted from each person's range of motion")
    return out


@torch.no_grad()
def fit_rig(stored, fit: RigFitConfig) -> ARKitRig:
    """The rig fitted on the set's training identities' range of motion (module docstring)."""
    names = tuple(stored.weight_names)
    train_ids = np.asarray(stored.splits["train"])
    if fit.identity_components >= len(train_ids):
        raise ConfigError(f"arkit_rig.identity_components {fit.identity_components}: the set has "
                          f"{len(train_ids)} training identities (at most {len(train_ids) - 1} components)")
    rom = range_of_motion(stored, train_ids)
    face = stored.template.region_vertices("face")
    people = len(train_ids)

    neutrals = torch.from_numpy(np.ascontiguousarray(stored.vertices[rom[:, 0]]))
    # each face region moved to the faces' common centre, as ARKitRig.identity does with any face it is given
    faces = neutrals[:, face]
    centroids = faces.mean(1, keepdim=True)
    faces = (faces - centroids + centroids.mean(0)).reshape(people, -1)
    identity_mean = faces.mean(0)
    identity_rows, _ = principal_rows(faces - identity_mean, fit.identity_components)
    # phi = rows (x - mean) / |row|^2: unit variance over the people (the rows are orthogonal, scaled by their std)
    identity_basis = identity_rows / (identity_rows ** 2).sum(1).clamp_min(1e-20)[:, None]
    phi = (faces - identity_mean) @ identity_basis.T  # (P, J)

    keys = torch.from_numpy(np.asarray(stored.vertices[rom[:, 1:].reshape(-1)])).reshape(people, len(names), -1, 3)
    keys -= neutrals[:, None]
    moving = torch.from_numpy(np.flatnonzero((keys.abs() > 1e-4).any(dim=3).any(dim=1).any(dim=0).numpy()))
    flat = keys[:, :, moving].reshape(people * len(names), -1)
    del keys
    # randomized SVD: the Gram matrix of 12,000 keys x 60,000 coordinates would take minutes on two cores
    torch.manual_seed(0)
    _, _, right = torch.svd_lowrank(flat, q=min(fit.offset_components + 16, *flat.shape), niter=3, M=None)
    offset_basis = right[:, :fit.offset_components].T.contiguous()  # orthonormal rows
    codes = (flat @ offset_basis.T).double().reshape(people, -1)  # (P, K C)
    del flat

    design = torch.cat([torch.ones(people, 1, dtype=torch.float64), phi.double()], 1)  # (P, J + 1)
    penalty = torch.full((design.shape[1],), float(fit.ridge), dtype=torch.float64)
    penalty[0] = 0.0  # the mean key is not shrunk
    solution = torch.linalg.solve(design.T @ design + torch.diag(penalty), design.T @ codes)  # (J + 1, K C)
    coefficients = solution.reshape(fit.identity_components + 1, len(names), -1).transpose(0, 1)
    rig_cfg = RigConfig(names=names, num_vertices=stored.vertices.shape[-2],
                        identity_components=fit.identity_components, offset_components=fit.offset_components,
                        num_identity_vertices=len(face), num_moving_vertices=len(moving),
                        units=stored.template.units)
    return ARKitRig(rig_cfg, {"identity_vertices": face.astype(np.int32), "identity_mean": identity_mean.numpy(),
                              "identity_basis": identity_basis.numpy(),
                              "moving_vertices": moving.numpy().astype(np.int32),
                              "offset_basis": offset_basis.numpy(),
                              "coefficients": np.ascontiguousarray(coefficients.float().numpy())})


# Stored as float16 in an exported model: the bases are the bulk of the rig, and half precision moves a key by
# well under a micrometre (their rows are unit vectors, or the identity's coordinates a few units large).
COMPACT = ("offset_basis", "identity_basis")


def save_rig(rig: ARKitRig, folder: Path, compact: bool = False) -> None:
    """arkit_rig.safetensors and arkit_rig.json in folder (the bases in float16 when compact)."""
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in rig.tensors.items()}
    if compact:
        tensors = {k: v.half() if k in COMPACT else v for k, v in tensors.items()}
    write_safetensors_atomic(folder / RIG_FILE, tensors)
    write_text_atomic(folder / "arkit_rig.json", json.dumps(rig.cfg.to_dict(), indent=1))


def load_rig(folder: Path) -> ARKitRig:
    from core.model_files import read_tensors
    cfg = RigConfig.from_dict(json.loads((folder / "arkit_rig.json").read_text()))
    return ARKitRig(cfg, read_tensors(folder / RIG_FILE, cfg.tensor_shapes(), indices=RigConfig.INDICES))


def main(args) -> int:
    """`python -m train arkit-rig`: build (or reuse) the config's ARKit-like set, fit the rig, write it."""
    from train.config import data_config, load_config
    from train.data.cli import output_root, set_dir
    from train.data.synthetic_sets import StoredSet, build_set

    cfg = load_config(args.config)
    data_cfg = data_config(cfg)
    fit = rig_fit_section(cfg)
    if data_cfg.arkit is None:
        raise ConfigError(f"{cfg['_path']}: data.arkit: missing (the ARKit-like set the rig is fitted on)")
    stored = StoredSet(build_set("arkit", data_cfg, set_dir(data_cfg.config_name, "arkit")))
    out = Path(args.out) if args.out else output_root(data_cfg.config_name) / "shape" / "arkit_rig"
    out.mkdir(parents=True, exist_ok=True)
    rig = fit_rig(stored, fit)
    save_rig(rig, out)
    print(f"ARKit rig ({len(rig.names)} keys, {fit.identity_components} identity components, "
          f"{fit.offset_components} offset components): {out}")
    return 0
