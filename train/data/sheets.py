"""Contact sheets of the data sets, so people can look at what the models learn from."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from train.data.expressions import AU_TASK_PROTOTYPES
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


def bp4d_sheet(source, out_path: str | os.PathLike, identities=(0, 1, 2), size: int = 144,
               progress: bool = True) -> Path:
    """Identities x BP4D tasks at each task's apex frame, labelled with its active action units."""
    camera = FaceCamera.framing(source.ict.neutral, source.template)
    frames = source.cfg.bp4d.frames_per_task
    tasks = list(AU_TASK_PROTOTYPES)
    rows, labels, col_labels = [], [], []
    for i in tqdm(identities, desc="preview identities", disable=not progress):
        shaded, textured = [], []
        for t, task in enumerate(tasks):
            f = (i * len(tasks) + t) * frames + frames // 2
            mesh = source.mesh(f)
            shaded.append(render_face(mesh, source.template, camera, size))
            textured.append(_fit(source.texture(f, mesh=mesh, window="crop"), size))
            if i == identities[0]:
                active = [f"{au[2:]}:{int(v)}" for au, v in zip(source.au_names, source.au_intensities[f]) if v]
                col_labels.append(f"{task} " + " ".join(active))
        rows += [shaded, textured]
        labels += [source.frame_subjects[i * len(tasks) * frames], "UV crop"]
    return contact_sheet(rows, out_path, row_labels=labels, col_labels=col_labels,
                         title=f"BP4D-like synthetic set ({source.cfg.config_name}): apex frames, AU:intensity")
