"""Contact sheets of the data sets, so people can look at what the models learn from."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from train.data.preview import FaceCamera, contact_sheet, render_face


def _fit(image: np.ndarray, size: int) -> np.ndarray:
    if image.shape[0] == size:
        return image
    return np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.LANCZOS))


def facescape_sheet(source, out_path: str | os.PathLike, identities=(0, 1, 2), size: int = 144,
                    progress: bool = True) -> Path:
    """Identities x the 20 expressions: a shaded render row and a texture-crop row per identity."""
    camera = FaceCamera.framing(source.ict.neutral, source.template)
    rows, labels = [], []
    for i in tqdm(identities, desc="preview identities", disable=not progress):
        meshes = source.meshes(i)
        rows.append([render_face(m, source.template, camera, size) for m in meshes])
        rows.append([_fit(source.texture(i, e, mesh=m, window="crop"), size) for e, m in enumerate(meshes)])
        labels += [f"id {source.identity_ids[i]}", f"skin bin {source.skin(i).skin_tone_bin}"]
    return contact_sheet(rows, out_path, row_labels=labels, col_labels=list(source.expression_names),
                         title=f"FaceScape-like synthetic set ({source.cfg.config_name}): shaded meshes and UV crops")


def sweep_sheet(source, out_path: str | os.PathLike, identity: int = 0,
                expressions=("2_smile", "3_mouth_stretch", "5_jaw_left", "14_sadness", "19_brow_raiser"),
                intensities=(0.0, 0.5, 1.0, 1.5, 2.0, 2.5), size: int = 160, progress: bool = True) -> Path:
    """Ground truth at intensities the training set never holds (0.5, 1.5, 2+): textured renders."""
    camera = FaceCamera.framing(source.ict.neutral, source.template, yaw_degrees=20)
    rows = []
    for name in tqdm(expressions, desc="preview sweep", disable=not progress):
        row = []
        for a in intensities:
            mesh = source.mesh(identity, name, a)
            tile = source.texture(identity, name, mesh=mesh, resolution=256, window="tile")
            row.append(render_face(mesh, source.template, camera, size, texture=tile))
        rows.append(row)
    return contact_sheet(rows, out_path, row_labels=list(expressions),
                         col_labels=[f"intensity {a:g}" for a in intensities],
                         title=f"identity {source.identity_ids[identity]}: intensity sweep (training holds 1 only)")


def apex_frames(source, identities) -> tuple[list[str], np.ndarray]:
    """The tasks (in order of first appearance) and, per identity and task, the frame index of the middle frame
    of that task's sequence (by frame number): the apex of its onset-apex-offset, (len(identities), len(tasks)).

    Frames are found through `source.frame_identity`, `frame_tasks` and `frame_numbers`, whatever their order.
    """
    frame_identity = np.asarray(source.frame_identity)
    frame_tasks = np.asarray(source.frame_tasks, dtype=str)
    frame_numbers = np.asarray(source.frame_numbers)
    tasks = list(dict.fromkeys(frame_tasks.tolist()))
    apex = np.empty((len(identities), len(tasks)), np.int64)
    for r, identity in enumerate(identities):
        for t, task in enumerate(tasks):
            frames = np.flatnonzero((frame_identity == identity) & (frame_tasks == task))
            if not len(frames):
                raise ValueError(f"bp4d_sheet: identity {identity} has no frames of task {task!r}")
            apex[r, t] = frames[np.argsort(frame_numbers[frames], kind="stable")[len(frames) // 2]]
    return tasks, apex


def au_caption(au_names, intensities) -> str:
    """'AU6:3 AU12:4': the action units active in one frame with their intensities ('no AU' when none)."""
    active = [f"{au}:{float(v):g}" for au, v in zip(au_names, np.asarray(intensities)) if v]
    return " ".join(active) or "no AU"


def bp4d_sheet(source, out_path: str | os.PathLike, identities=(0, 1, 2), size: int = 144,
               progress: bool = True) -> Path:
    """Identities x BP4D tasks at each task's apex frame; every frame is captioned with its own active AUs."""
    camera = FaceCamera.framing(source.ict.neutral, source.template)
    tasks, apex = apex_frames(source, identities)
    rows, labels, captions = [], [], []
    for r in tqdm(range(len(identities)), desc="preview identities", disable=not progress):
        shaded, textured = [], []
        for f in apex[r].tolist():
            mesh = source.mesh(f)
            shaded.append(render_face(mesh, source.template, camera, size))
            textured.append(_fit(source.texture(f, mesh=mesh, window="crop"), size))
        rows += [shaded, textured]
        labels += [source.frame_subjects[apex[r, 0]], "UV crop"]
        captions += [[""] * len(shaded), [au_caption(source.au_names, source.au_intensities[f]) for f in apex[r]]]
    return contact_sheet(rows, out_path, row_labels=labels, col_labels=tasks, captions=captions,
                         title=f"BP4D-like synthetic set ({source.cfg.config_name}): apex frames, AU:intensity "
                               "under each pair")


def transfer_sheet(source, out_path: str | os.PathLike, candidates: int = 60,
                   expressions=("1_neutral", "2_smile", "3_mouth_stretch", "12_lip_puckerer", "14_sadness",
                                "16_grin", "18_eye_closed"),
                   size: int = 144, progress: bool = True) -> Path:
    """The same expressions on identities of very different shape (the smallest and largest face, and the two
    furthest from the average face among the first `candidates`), each with deformation transfer and, below it,
    with ICT's offsets simply added; the caption under the second row is how far apart the two are (mm, face)."""
    import dataclasses

    from train.data.expressions import EXPRESSION_RECIPES
    from train.data.face_synth import FaceSynthesizer
    synth = source.shapes
    plain = FaceSynthesizer(synth.ict, dataclasses.replace(synth.style, deformation_transfer=False), synth.seed)
    people = [source.identity(i) for i in range(min(candidates, source.num_identities))]
    by_size = sorted(range(len(people)), key=lambda i: people[i].size_scale)
    by_norm = sorted(range(len(people)), key=lambda i: -float(np.linalg.norm(people[i].weights)))
    chosen = list(dict.fromkeys([by_size[0], by_size[-1], *by_norm]))[:4]
    camera = FaceCamera.framing(source.ict.neutral, source.template, yaw_degrees=25)
    face = source.template.region_vertices("face")
    rows, labels, captions = [], [], []
    for i in tqdm(chosen, desc="transfer sheet identities", disable=not progress):
        ident = people[i]
        moved = [synth.mesh(ident, [(e, EXPRESSION_RECIPES[e], 1.0)]) for e in expressions]
        added = [plain.mesh(ident, [(e, EXPRESSION_RECIPES[e], 1.0)]) for e in expressions]
        rows += [[render_face(m, source.template, camera, size) for m in moved],
                 [render_face(m, source.template, camera, size) for m in added]]
        labels += [f"id {source.identity_ids[i]} (size {ident.size_scale:.2f}): transferred", "ICT offsets added"]
        captions += [[""] * len(expressions),
                     [f"{np.linalg.norm(a[face] - b[face], axis=1).mean() * 10:.2f} mm apart"
                      for a, b in zip(moved, added)]]
    return contact_sheet(rows, out_path, row_labels=labels, col_labels=list(expressions), captions=captions,
                         title=f"Expressions carried onto each face by deformation transfer ({source.cfg.config_name})")
