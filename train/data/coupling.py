"""How much of a person's expression their face shape predicts, and how much of it a measurement at a given
training-identity count sees.

`train data linearity`'s learnable coupling is the linear transfer residual minus the ridge-on-identity-weights
residual on held-out identities (mm, mean over ICT's face region). Two things keep it below what the data holds:
- the per-person random draws (gains, asymmetry, response curves), which no face shape predicts, add to both
  residuals, roughly in quadrature, which shrinks their difference;
- the ridge has 101 coefficients per offset coordinate: fitted to a few hundred identities it also fits their
  draws, which shows as error on new people and shrinks as the training count grows.
This module measures the same two residuals, with the same ridge, on one large set's nested training subsets
(the first n of its training split; the same validation and test identities at every n), on the data as
configured and on its face-shape-dependent part alone (the draws switched off, as linearity's oracle). The
second part is how much coupling there is to learn; the first, how much of it the measurement shows at n.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from train.config import DataConfig, split_counts
from train.data.expressions import FACESCAPE_EXPRESSIONS
from train.data.ict import load_ict_model
from train.data.linearity import shape_only, transfer_and_regression
from train.data.synthetic_sets import StoredSet, build_set

PARTS = ("as configured", "face shape alone")


def identities_for(train_count: int, split) -> int:
    """The smallest number of identities from train_count / split[0] up whose split by the `split` fractions has
    `train_count` training identities or more."""
    if split[0] <= 0:
        raise ValueError(f"split {list(split)}: the training fraction must be above 0 to hold {train_count} training "
                         f"identities")
    n = max(3, int(train_count / split[0]))
    while split_counts(n, split)[0] < train_count:
        n += 1
    return n


def peak_bytes(num_identities: int, face_vertices: int, train_count: int) -> int:
    """Memory the measurement holds at once: the float32 offsets of every identity, and the float64 copy of the
    largest training subset the ridge multiplies."""
    per_identity = len(FACESCAPE_EXPRESSIONS) * face_vertices * 3
    return num_identities * per_identity * 4 + train_count * per_identity * 8


def split_ordered_offsets(stored) -> tuple[np.ndarray, np.ndarray, dict[str, slice]]:
    """(offsets (N, E, F, 3) float32 over the face region, identity weights (N, modes), {split: slice}) with the
    identities in split order (train, val, test), so that every subset used is a view, not a copy."""
    face = stored.template.region_vertices("face")
    order = np.concatenate([stored.splits[k] for k in ("train", "val", "test")])
    offsets = np.empty((len(order), stored.vertices.shape[1], len(face), 3), np.float32)
    for k, i in enumerate(order):  # one identity at a time: the whole set may not fit in memory
        meshes = np.asarray(stored.vertices[i])[:, face]
        offsets[k] = meshes - meshes[:1]
    sizes = np.cumsum([0] + [len(stored.splits[k]) for k in ("train", "val", "test")])
    slices = {k: slice(sizes[j], sizes[j + 1]) for j, k in enumerate(("train", "val", "test"))}
    return offsets, stored.identity_weights[order], slices


def coupling_rows(offsets: np.ndarray, weights: np.ndarray, slices: dict[str, slice], counts) -> dict:
    """{n: residuals and coupling} training on the first n training identities; the same val and test at every n."""
    val, test = slices["val"], slices["test"]
    rows = {}
    for n in counts:
        train = slice(slices["train"].start, slices["train"].start + n)
        transfer, regression, ridge = transfer_and_regression(weights[train], offsets[train], weights[val],
                                                              offsets[val], weights[test], offsets[test])
        rows[n] = {"transfer_residual_mm": transfer, "regression_residual_mm": regression,
                   "learnable_coupling_mm": transfer - regression, "ridge": ridge}
    return rows


def coupling_by_training_count(cfg: DataConfig, counts, ict=None, workers: int | None = None,
                               progress: bool = True) -> dict:
    """{part: {n: {transfer_residual_mm, regression_residual_mm, learnable_coupling_mm, ridge}}} for each training
    count n, plus the identity counts used. The set is built (meshes only) into a temporary folder, one part at a
    time, in worker processes."""
    counts = sorted({int(n) for n in counts})
    if not counts or counts[0] < 2:
        raise ValueError(f"training counts {counts}: expected counts of 2 or more identities")
    num_identities = identities_for(counts[-1], cfg.facescape.split)
    ict = ict or load_ict_model()
    need = peak_bytes(num_identities, len(ict.template.region_vertices("face")), counts[-1])
    have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if need > 0.75 * have:
        raise ValueError(f"training counts up to {counts[-1]} need {num_identities} identities and about "
                         f"{need / 2**30:.1f} GiB of memory, more than 3/4 of this machine's {have / 2**30:.1f} GiB: "
                         f"ask for smaller counts")
    disk = num_identities * len(FACESCAPE_EXPRESSIONS) * len(ict.neutral) * 3 * 4  # the temporary set's meshes
    free = shutil.disk_usage(tempfile.gettempdir()).free
    if disk > 0.9 * free:
        raise ValueError(f"training counts up to {counts[-1]} need a temporary set of about {disk / 2**30:.1f} GiB in "
                         f"{tempfile.gettempdir()}, which has {free / 2**30:.1f} GiB free (set TMPDIR elsewhere, or "
                         f"ask for smaller counts)")
    set_cfg = dataclasses.replace(cfg.facescape, num_identities=num_identities, store_textures=False)
    parts, sizes = {}, {}
    for part, style in zip(PARTS, (cfg.style, shape_only(cfg.style))):
        part_cfg = dataclasses.replace(cfg, style=style, facescape=set_cfg)
        with tempfile.TemporaryDirectory(prefix="facecam-coupling-") as tmp:
            with StoredSet(build_set("facescape", part_cfg, Path(tmp) / "set", ict, progress, workers=workers)) as s:
                offsets, weights, slices = split_ordered_offsets(s)
        parts[part] = coupling_rows(offsets, weights, slices, counts)
        sizes = {k: v.stop - v.start for k, v in slices.items()}
        del offsets
    return {"config": cfg.config_name, "identities": num_identities, "validation_identities": sizes["val"],
            "test_identities": sizes["test"], "counts": counts, "parts": parts}


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
