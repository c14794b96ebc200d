"""What the shape model gets right that only a generator with ground truth can tell: intensity and per-person style.

intensity_response  for training identities (their stored z_id codes, zero noise) and a fixed set of expressions,
                    the displacement from the generated neutral at alpha divided by the displacement at 1, and the
                    mesh error against the data generator's ground truth at alpha (mm), for both intensity modes
                    (calibrated: what FaceModel uses; paper: z_exp scaled); beside them the ground truth's own ratio
                    and the error of scaling the true intensity-1 offset linearly (the best any linear rule does).
sae_intensity       the same for held-out identities through the SAE (report key held_out_intensity): encode their
                    neutral and intensity-1 meshes, then either decode neutral + alpha (expression - neutral) in mesh
                    space (calibrated), or scale the expression embedding's offset by alpha and decode (the
                    embedding-space analogue of the paper's); for training identities too (report key
                    training_intensity_through_sae): what the SAE alone contributes to the cGAN pipeline's error,
                    and so what a perfect cGAN would reach.
disentanglement     the share of the SAE identity embedding's variance that is within a person (across their 20
                    expressions) rather than between people, training and held-out identities: the identity
                    embedding must not move with expression (0: it does not move at all).
identity_specific   for training identities: how far the model's expression offset (expression minus neutral, same
                    z_id) is from that person's true offset, against how far the identity-agnostic mean offset of the
                    training identities is; the fraction of that gap the model closes.
"""
from __future__ import annotations

import numpy as np
import torch

from core.shape_control import ShapeGenerator

ALPHAS = (0.5, 1.0, 1.5, 2.0, 3.0)
# 2_smile, 3_mouth_stretch, 4_anger, 14_sadness, 16_grin, 19_brow_raiser: mouth, jaw, brows, mixed
EXPRESSIONS = ("2_smile", "3_mouth_stretch", "4_anger", "14_sadness", "16_grin", "19_brow_raiser")
IDENTITIES = 16
NEUTRAL = "1_neutral"


def _displacement_mm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean vertex distance per mesh (mm), a and b (..., V, 3) in cm."""
    return torch.linalg.norm(a - b, dim=-1).mean(-1) * 10


def _response(meshes: dict[float, torch.Tensor], neutral: torch.Tensor, truth: dict[float, torch.Tensor]) -> dict:
    """Per alpha: the displacement ratio to alpha 1 and the mean error against the truth (mm)."""
    at_one = _displacement_mm(meshes[1.0], neutral)
    return {str(a): {"ratio": float((_displacement_mm(meshes[a], neutral) / at_one).mean()),
                     "error_mm": float(_displacement_mm(meshes[a], truth[a]).mean())} for a in ALPHAS}


def intensity_truth(source, stored, split: str, expression_names) -> tuple[torch.Tensor, dict]:
    """The generator's neutral and its meshes per alpha for the split's first IDENTITIES identities and EXPRESSIONS
    (computed once per split: the training identities' serve the cGAN's section and the SAE's)."""
    return _truth(source, stored.splits[split][:IDENTITIES], [e for e in EXPRESSIONS if e in expression_names])


def _truth(source, identities, expressions) -> tuple[torch.Tensor, dict]:
    # identity by identity: the generator caches a few identities' transferred expressions (0.4 s each), so the
    # identity-outer order computes each once where alpha-outer recomputed every identity per alpha
    per_identity = [(source.mesh(int(i), NEUTRAL), {a: [source.mesh(int(i), e, a) for e in expressions]
                                                    for a in ALPHAS}) for i in identities]
    neutral = torch.from_numpy(np.stack([n for n, _ in per_identity]))
    truth = {a: torch.from_numpy(np.stack([meshes[a] for _, meshes in per_identity])) for a in ALPHAS}
    return neutral, truth


def _truth_summary(neutral: torch.Tensor, truth: dict) -> dict:
    linear = {a: neutral[:, None] + a * (truth[1.0] - neutral[:, None]) for a in ALPHAS}
    ratios = _response(truth, neutral[:, None], truth)
    return {str(a): {"ratio": ratios[str(a)]["ratio"],
                     "linear_scaling_error_mm": float(_displacement_mm(linear[a], truth[a]).mean())} for a in ALPHAS}


def intensity_response(gen: ShapeGenerator, z_ids: torch.Tensor, noise_dim: int, expression_names, stored,
                       source, truth: tuple | None = None) -> dict:
    """Training identities through the cGAN, both intensity modes, against the ground truth (intensity_truth of the
    training split, computed here if not given)."""
    train = stored.splits["train"][:IDENTITIES]
    exps = [e for e in EXPRESSIONS if e in expression_names]
    n_exp = len(expression_names)
    neutral_code = torch.eye(n_exp)[list(expression_names).index(NEUTRAL)]
    codes = torch.stack([torch.eye(n_exp)[list(expression_names).index(e)] for e in exps])
    k, m = len(train), len(exps)
    z_id = z_ids[:k].repeat_interleave(m, 0)
    z_exp = codes.repeat(k, 1)
    noise = torch.zeros(k * m, noise_dim)
    neutral = gen(z_ids[:k], neutral_code.expand(k, -1), torch.zeros(k, noise_dim)).reshape(k, 1, -1, 3)
    paper = {a: gen(z_id, a * z_exp, noise).reshape(k, m, -1, 3) for a in ALPHAS}
    calibrated = {a: gen.calibrated(z_id, z_exp, noise, neutral_code, a).reshape(k, m, -1, 3) for a in ALPHAS}
    true_neutral, truth = truth or _truth(source, train, exps)
    return {"identities": int(k), "expressions": exps,
            "ground_truth": _truth_summary(true_neutral, truth),
            "calibrated": _response(calibrated, neutral, truth),
            "paper_z_exp_scaling": _response(paper, neutral, truth)}


def sae_intensity(stored, source, sae, expression_names, split: str = "test", truth: tuple | None = None
                  ) -> dict:
    """Held-out (test) identities through the SAE, both ways of applying intensity, against the ground truth. With
    split="train", the same for training identities: the SAE's share of the cGAN pipeline's error, without G."""
    people = stored.splits[split][:IDENTITIES]
    exps = [e for e in EXPRESSIONS if e in expression_names]
    cols = [list(expression_names).index(e) for e in exps]
    n0 = list(expression_names).index(NEUTRAL)
    meshes = torch.from_numpy(np.array(stored.vertices[people]))  # (k, E, V, 3)
    k, m = len(people), len(exps)
    with torch.no_grad():
        mu_id, mu_exp = sae.encode(meshes.reshape(-1, *meshes.shape[2:]))
        mu_id, mu_exp = mu_id.reshape(k, -1, mu_id.shape[-1]), mu_exp.reshape(k, -1, mu_exp.shape[-1])
        ids = mu_id[:, n0:n0 + 1].expand(k, m, -1).reshape(k * m, -1)
        neutral = sae.decode(mu_id[:, n0], mu_exp[:, n0]).reshape(k, 1, -1, 3)
        unit = sae.decode(ids, mu_exp[:, cols].reshape(k * m, -1)).reshape(k, m, -1, 3)
        calibrated = {a: neutral + a * (unit - neutral) for a in ALPHAS}
        embedding = {a: sae.decode(ids, (mu_exp[:, n0:n0 + 1] + a * (mu_exp[:, cols] - mu_exp[:, n0:n0 + 1])
                                         ).reshape(k * m, -1)).reshape(k, m, -1, 3) for a in ALPHAS}
    true_neutral, truth = truth or _truth(source, people, exps)
    return {"identities": int(k), "expressions": exps,
            "ground_truth": _truth_summary(true_neutral, truth),
            "calibrated": _response(calibrated, neutral, truth),
            "embedding_offset_scaling": _response(embedding, neutral, truth)}


def disentanglement(stored, sae) -> dict:
    out = {}
    for split in ("train", "test"):
        ids = stored.splits[split][:50]
        meshes = torch.from_numpy(np.array(stored.vertices[ids]))
        with torch.no_grad():
            mu_id, _ = sae.encode(meshes.reshape(-1, *meshes.shape[2:]))
        mu_id = mu_id.reshape(len(ids), -1, mu_id.shape[-1]).double()
        within = ((mu_id - mu_id.mean(1, keepdim=True)) ** 2).sum(-1).mean()
        total = ((mu_id - mu_id.mean((0, 1), keepdim=True)) ** 2).sum(-1).mean()
        out[split] = float(within / total)
    return {"identity_embedding_within_person_share": out}


def identity_specific(gen: ShapeGenerator, z_ids: torch.Tensor, noise_dim: int, expression_names, stored) -> dict:
    """Is the model's expression offset this person's own, or everyone's? Training identities, zero noise."""
    train = stored.splits["train"]
    n_exp = len(expression_names)
    n0 = list(expression_names).index(NEUTRAL)
    others = [e for e in range(n_exp) if e != n0]
    real = torch.from_numpy(np.array(stored.vertices[train]))  # (N, E, V, 3)
    true_off = real[:, others] - real[:, n0:n0 + 1]
    mean_off = true_off.mean(0, keepdim=True)
    model_errs, mean_errs = [], []
    eye = torch.eye(n_exp)
    for start in range(0, len(train), 8):
        idx = torch.arange(start, min(start + 8, len(train)))
        k = len(idx)
        z_id = z_ids[idx].repeat_interleave(n_exp, 0)
        meshes = gen(z_id, eye.repeat(k, 1), torch.zeros(k * n_exp, noise_dim)).reshape(k, n_exp, -1, 3)
        model_off = meshes[:, others] - meshes[:, n0:n0 + 1]
        model_errs.append(_displacement_mm(model_off, true_off[idx]))
        mean_errs.append(_displacement_mm(mean_off.expand(k, -1, -1, -1), true_off[idx]))
    model_err, mean_err = float(torch.cat(model_errs).mean()), float(torch.cat(mean_errs).mean())
    return {"model_offset_error_mm": model_err, "mean_offset_error_mm": mean_err,
            "gap_closed": 1.0 - model_err / mean_err,
            "closer_than_mean_fraction": float((torch.cat(model_errs) < torch.cat(mean_errs)).float().mean())}


def markdown(r: dict) -> list[str]:
    """Report lines for the three sections."""
    lines = []
    for key, title, modes in (
            ("intensity_response", "training identities (stored z_id, zero noise), through the cGAN",
             (("calibrated", "calibrated (used)"), ("paper_z_exp_scaling", "paper: z_exp scaled"))),
            ("held_out_intensity", "held-out identities, through the SAE",
             (("calibrated", "calibrated (mesh space)"), ("embedding_offset_scaling", "embedding offset scaled"))),
            ("training_intensity_through_sae", "training identities' own meshes through the SAE (no cGAN)",
             (("calibrated", "calibrated (mesh space)"), ("embedding_offset_scaling", "embedding offset scaled")))):
        if key not in r:  # reports written before the section existed
            continue
        s = r[key]
        lines += ["", f"### Intensity: {title}", "",
                  f"{s['identities']} identities x {', '.join(s['expressions'])}. Ratio: mean displacement from the "
                  "neutral at alpha over that at 1. Error: mean vertex distance to the data generator's ground truth "
                  "at alpha (mm).", "",
                  "| alpha | truth ratio | " + " | ".join(f"{label} ratio | {label} mm" for _, label in modes)
                  + " | true offset scaled linearly, mm |",
                  "|---|---|" + "---|---|" * len(modes) + "---|"]
        for a in s["ground_truth"]:
            t = s["ground_truth"][a]
            lines.append(f"| {a} | {t['ratio']:.2f} | " + " | ".join(
                f"{s[m][a]['ratio']:.2f} | {s[m][a]['error_mm']:.3f}" for m, _ in modes)
                + f" | {t['linear_scaling_error_mm']:.3f} |")
    d = r["disentanglement"]["identity_embedding_within_person_share"]
    lines += ["", "### Disentanglement", "",
              f"Share of the SAE identity embedding's variance within a person (across expressions) rather than "
              f"between people: training identities {d['train']:.3f}, held-out {d['test']:.3f} (0: the identity "
              f"embedding does not move with expression)."]
    i = r["identity_specific"]
    lines += ["", "### Identity-specific expression (training identities)", "",
              f"Model offset (expression minus neutral, same z_id) against the person's true offset: "
              f"{i['model_offset_error_mm']:.3f} mm; the identity-agnostic mean offset: {i['mean_offset_error_mm']:.3f} "
              f"mm; gap closed: {i['gap_closed']:.2f}; (identity, expression) pairs where the model is closer: "
              f"{i['closer_than_mean_fraction']:.2f}."]
    return lines
