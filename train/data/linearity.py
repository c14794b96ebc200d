"""How far the synthetic data is from a linear model, measured on held-out identities (mm, mean vertex distance
over ICT's face region); every model is fitted on the training identities only.

A. Nonlinearity in intensity. Even knowing a held-out identity's exact intensity-1 mesh, scaling its offset
   linearly to intensity 0.5 or 2 misses the jaw arc and the response curve: exact ground truth exists there.
B. Identity-specific style. Predicting a held-out identity's expressions from its neutral:
     transfer    neutral + the mean training offset of each expression (how ICT-style blendshapes transfer);
     regression  neutral + an offset linear in the identity weights (ridge regression of all expressions' offsets,
                 one penalty picked on the validation identities): what a model linear in identity can learn of
                 the face-shape dependence;
     oracle      the generator's exact face-shape-dependent style without the person's own random draws: what any
                 model could predict from the neutral at best. The rest is per-person style, which an
                 auto-encoder must read from the person's own meshes and a generative model must sample.
   transfer minus regression is the learnable coupling: how much of a person's expression their face shape
   predicts, linearly, beyond the average expression.
C. Linear baselines reconstructing held-out identities' meshes (all 20 expressions, fitted on the training
   identities' meshes): PCA-130 and the bilinear (Tucker) model, as `train evaluate` fits them.
The same numbers on data generated with StyleConfig.linear() are ~0, which shows the residuals come from the style
and the nonlinearity, not from the measurement; the data generated with deformation transfer switched off (ICT's
offsets added to every face, the generator before deformation transfer) shows what the transfer changed.
"""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import torch

from train.baselines import BilinearModel, PCAModel
from train.config import DataConfig
from train.data.face_synth import StyleConfig
from train.data.synthetic_sets import SyntheticFaceScape

RIDGES = (0.1, 1.0, 10.0, 100.0, 1000.0)
INTENSITIES = (0.5, 2.0)
PCA_COMPONENTS = 130
COLUMNS = ("deformation transfer", "added offsets", "linear")  # the style as configured, without the transfer, ICT's


def _distance_mm(a: np.ndarray, b: np.ndarray, vertices: np.ndarray) -> float:
    return float(np.linalg.norm(a[..., vertices, :] - b[..., vertices, :], axis=-1).mean() * 10)


def transfer_and_regression(train_w, train_off, val_w, val_off, test_w, test_off) -> tuple[float, float, float]:
    """Section B's linear transfer and ridge residuals on the test identities (mm) and the ridge picked on the
    validation ones. *_w: (N, modes) identity weights; *_off: (N, E, V, 3) offsets from each identity's neutral,
    over the vertices measured."""
    x = _design(train_w)
    y = train_off.reshape(len(train_w), -1).astype(np.float64)  # once, not in each product below (same bits)

    def predicted(ridge, w):
        penalty = ridge * np.diag([1.0] * (x.shape[1] - 1) + [0.0])  # the intercept is not shrunk
        # (held-out x) (x'x + P)^-1 x' is small; multiplying it into y last avoids a 101 x 564k solve
        hat = _design(w) @ np.linalg.solve(x.T @ x + penalty, x.T)
        return (hat @ y).reshape(len(w), *train_off.shape[1:])

    everywhere = np.arange(train_off.shape[-2])
    ridge = min(RIDGES, key=lambda r: _distance_mm(val_off, predicted(r, val_w), everywhere))
    transfer = _distance_mm(test_off, train_off.mean(0)[None], everywhere)
    return transfer, _distance_mm(test_off, predicted(ridge, test_w), everywhere), ridge


def _design(w: np.ndarray) -> np.ndarray:
    return np.column_stack([w, np.ones(len(w))])


def shape_only(style: StyleConfig) -> StyleConfig:
    """The style with the per-person random draws switched off, the face-shape dependence kept."""
    return dataclasses.replace(style, gain_sigma=0.0, component_sigma=0.0, asymmetry_sigma=0.0, curvature_sigma=0.0)


def measure(cfg: DataConfig, ict=None, num_identities: int | None = None) -> dict:
    """The quantities of the module docstring for cfg's generator, at num_identities (default: the config's)."""
    if num_identities is not None:
        cfg = dataclasses.replace(cfg, facescape=dataclasses.replace(cfg.facescape, num_identities=num_identities))
    source = SyntheticFaceScape(cfg, ict)
    oracle = SyntheticFaceScape(dataclasses.replace(cfg, style=shape_only(cfg.style)), source.ict)
    face = source.template.region_vertices("face")
    train, val, test = (source.splits[k] for k in ("train", "val", "test"))

    def offsets(src, ids):
        meshes = np.stack([src.meshes(int(i)) for i in ids])
        return meshes, meshes - meshes[:, :1]

    train_meshes, train_off = offsets(source, train)
    test_meshes, test_off = offsets(source, test)
    _, val_off = offsets(source, val)
    _, oracle_off = offsets(oracle, test)

    def weights(ids):
        return np.stack([source.identity(int(i)).weights for i in ids])

    transfer_res, regression_res, ridge = transfer_and_regression(
        weights(train), train_off[..., face, :], weights(val), val_off[..., face, :], weights(test),
        test_off[..., face, :])
    intensity_err = {}
    for alpha in INTENSITIES:
        errs = [_distance_mm(source.mesh(int(i), name, alpha), test_meshes[k, 0] + alpha * test_off[k, e], face)
                for k, i in enumerate(test) for e, name in enumerate(source.expression_names[1:], 1)]
        intensity_err[str(alpha)] = float(np.mean(errs))
    test_flat = test_meshes.reshape(-1, *test_meshes.shape[2:])
    pca = PCAModel(torch.from_numpy(train_meshes.reshape(-1, *train_meshes.shape[2:])), PCA_COMPONENTS)
    pca_err = _distance_mm(pca.reconstruct(torch.from_numpy(test_flat)).numpy(), test_flat, face)
    bilinear = BilinearModel(train_meshes)
    bilinear_err = _distance_mm(bilinear.reconstruct(test_flat), test_flat, face)
    return {
        "config": cfg.config_name, "style": cfg.style.to_dict(), "train_identities": len(train),
        "test_identities": len(test), "ridge": ridge,
        "expression_magnitude_mm": _distance_mm(test_off[:, 1:], np.zeros_like(test_off[:, 1:]), face),
        "intensity_residual_mm": intensity_err,
        "transfer_residual_mm": transfer_res,
        "regression_residual_mm": regression_res,
        "learnable_coupling_mm": transfer_res - regression_res,
        "oracle_residual_mm": _distance_mm(test_off, oracle_off, face),
        f"pca{pca.components}_mm": pca_err, "pca_components": pca.components,
        "bilinear_mm": bilinear_err, "bilinear_ranks": [bilinear.id_rank, bilinear.exp_rank],
    }


def measure_columns(cfg: DataConfig, ict=None, num_identities: int | None = None) -> dict[str, dict]:
    """measure() for the configured style, the same without deformation transfer, and ICT's linear style."""
    styles = {COLUMNS[0]: dataclasses.replace(cfg.style, deformation_transfer=True),
              COLUMNS[1]: dataclasses.replace(cfg.style, deformation_transfer=False),
              COLUMNS[2]: StyleConfig.linear()}
    return {name: measure(dataclasses.replace(cfg, style=style), ict, num_identities) for name, style in styles.items()}


def report_markdown(columns: dict[str, dict], command: str) -> str:
    first = next(iter(columns.values()))
    names = list(columns)
    lines = [
        "# How linear is the synthetic FaceScape-like set?",
        "",
        f"Measured by `{command}`: {first['train_identities']} training and {first['test_identities']} "
        f"held-out (test) identities of config `{first['config']}`'s generator; mean vertex distance over ICT's "
        "face region, mm. The generator itself reproduces every mesh exactly (0 by construction). Columns: the "
        "data as configured (expressions carried onto each face by deformation transfer), the same without "
        "deformation transfer (ICT's offsets added to every face), and ICT's own linear model.",
        "",
        "| quantity | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]

    def row(label, get):
        lines.append(f"| {label} | " + " | ".join(f"{get(columns[n]):.3f}" for n in names) + " |")

    row("mean expression offset (size of the signal)", lambda c: c["expression_magnitude_mm"])
    for a in first["intensity_residual_mm"]:
        row(f"A. exact intensity-1 mesh scaled linearly to intensity {a}", lambda c, a=a: c["intensity_residual_mm"][a])
    row("B. linear transfer: held-out neutral + mean training offset", lambda c: c["transfer_residual_mm"])
    row("B. ridge regression of offsets on identity weights (ridge picked on validation identities)",
        lambda c: c["regression_residual_mm"])
    row("B. learnable coupling: linear transfer minus ridge", lambda c: c["learnable_coupling_mm"])
    row("B. oracle: the exact face-shape-dependent style, without the person's own draws",
        lambda c: c["oracle_residual_mm"])
    row(f"C. PCA-{first['pca_components']} reconstruction of held-out meshes",
        lambda c: c[f"pca{c['pca_components']}_mm"])
    row(f"C. bilinear ({first['bilinear_ranks'][0]} x {first['bilinear_ranks'][1]}) reconstruction of held-out "
        "meshes", lambda c: c["bilinear_mm"])
    lines += ["", "A: what is nonlinear in intensity. B: the gap between the linear transfer and the ridge regression "
              "is the coupling of expression to face shape that a model can learn from the identity; the oracle's "
              "own residual is per-person style, which an auto-encoder reads from that person's meshes and a "
              "generative model samples; how much of the coupling a given training count shows, and how much the face "
              "shape alone holds: `python -m train data coupling`. C: how close a linear model of the training "
              "meshes gets to new people. "
              "The data is decided by what real faces do (deformation transfer is how per-person blendshapes are "
              "made from a template rig), never tuned by looking at a model's score.", ""]
    return "\n".join(lines)


def report_json(columns: dict[str, dict]) -> str:
    return json.dumps(columns, indent=1)
