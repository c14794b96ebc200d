"""How much of a person's expression their face shape predicts, and how much of it a measurement at a given
training-identity count sees.

`train data linearity`'s learnable coupling is the linear transfer residual minus the ridge-on-identity-weights
residual on held-out identities (mm, mean over ICT's face region). Two things keep it below what the data holds:
- the per-person random draws (gains, asymmetry, response curves), which no face shape predicts, add to both
  residuals; distances add in quadrature, so a coupling of c under noise of size s shows as about c^2 / 2s;
- the ridge has 101 coefficients per offset coordinate: fitted to a few hundred identities it also fits their
  draws, which shows as error on new people and shrinks as the training count grows.
This module measures the same two residuals, with the same ridge, on one large set's nested training subsets
(the first n of its training split; the same validation and test identities at every n), on the data as
configured and on its face-shape-dependent part alone (the draws switched off, as linearity's oracle). The
second column is how much coupling there is to learn; the first, how much of it the measurement shows at n.
"""
from __future__ import annotations

import dataclasses
import json
import tempfile
from pathlib import Path

import numpy as np

from train.config import DataConfig, split_counts
from train.data.linearity import shape_only, transfer_and_regression
from train.data.synthetic_sets import StoredSet, build_set

PARTS = ("as configured", "face shape alone")


def identities_for(train_count: int, split) -> int:
    """The fewest identities whose split by `split` fractions has `train_count` training identities or more."""
    n = max(3, int(train_count / max(split[0], 1e-9)))
    while split_counts(n, split)[0] < train_count:
        n += 1
    return n


def face_offsets(cfg: DataConfig, ict=None, workers: int | None = None, progress: bool = True):
    """(offsets (N, E, F, 3) float32 over the face region, identity weights, splits) of cfg's FaceScape-like set,
    built (meshes only) into a temporary folder in worker processes and read back."""
    cfg = dataclasses.replace(cfg, facescape=dataclasses.replace(cfg.facescape, store_textures=False))
    with tempfile.TemporaryDirectory(prefix="facecam-coupling-") as tmp:
        with StoredSet(build_set("facescape", cfg, Path(tmp) / "set", ict, progress, workers=workers)) as stored:
            face = stored.template.region_vertices("face")
            offsets = np.empty(stored.vertices.shape[:2] + (len(face), 3), np.float32)
            for i in range(len(offsets)):  # one identity at a time: the whole set may not fit in memory
                meshes = np.asarray(stored.vertices[i])[:, face]
                offsets[i] = meshes - meshes[:1]
            return offsets, stored.identity_weights.copy(), dict(stored.splits)


def coupling_by_training_count(cfg: DataConfig, counts, ict=None, workers: int | None = None,
                               progress: bool = True) -> dict:
    """{part: {n: {transfer_residual_mm, regression_residual_mm, learnable_coupling_mm, ridge}}} for each training
    count n, plus the identity counts used."""
    counts = sorted({int(n) for n in counts})
    if not counts or counts[0] < 2:
        raise ValueError(f"training counts {counts}: expected counts of 2 or more identities")
    num_identities = identities_for(counts[-1], cfg.facescape.split)
    big = dataclasses.replace(cfg, facescape=dataclasses.replace(cfg.facescape, num_identities=num_identities))
    parts = {}
    for part, style in zip(PARTS, (cfg.style, shape_only(cfg.style))):
        offsets, weights, splits = face_offsets(dataclasses.replace(big, style=style), ict, workers, progress)
        val, test = splits["val"], splits["test"]
        rows = {}
        for n in counts:
            train = splits["train"][:n]
            transfer, regression, ridge = transfer_and_regression(weights[train], offsets[train], weights[val],
                                                                  offsets[val], weights[test], offsets[test])
            rows[n] = {"transfer_residual_mm": transfer, "regression_residual_mm": regression,
                       "learnable_coupling_mm": transfer - regression, "ridge": ridge}
        parts[part] = rows
        del offsets
    return {"config": cfg.config_name, "identities": num_identities, "validation_identities": len(val),
            "test_identities": len(test), "counts": counts, "parts": parts}


def report_markdown(result: dict, command: str) -> str:
    counts = result["counts"]
    lines = [
        "# Learnable coupling by training-identity count",
        "",
        f"Measured by `{command}`: one FaceScape-like set of config `{result['config']}`'s generator with "
        f"{result['identities']} identities; training on the first n of its training split, ridge picked on its "
        f"{result['validation_identities']} validation identities, residuals on its {result['test_identities']} "
        "test identities (the same at every n); mean vertex distance over ICT's face region, mm. 'face shape "
        "alone' is the same data with the per-person random draws switched off.",
        "",
        "| data | quantity | " + " | ".join(f"n = {n}" for n in counts) + " |",
        "|---|---|" + "---|" * len(counts),
    ]
    for part, rows in result["parts"].items():
        for key, label in (("transfer_residual_mm", "linear transfer residual"),
                           ("regression_residual_mm", "ridge residual"),
                           ("learnable_coupling_mm", "learnable coupling")):
            lines.append(f"| {part} | {label} | " + " | ".join(f"{rows[n][key]:.3f}" for n in counts) + " |")
    lines += ["", "The 'as configured' coupling is what `train data linearity` reports at its own training count; "
              "'face shape alone' is how much of the expressions the face shape predicts linearly.", ""]
    return "\n".join(lines)


def report_json(result: dict) -> str:
    return json.dumps(result, indent=1)
