"""`python -m train evaluate --config quick`: the shape model measured against baselines and ground truth.

Writes outputs/CONFIG/eval/report.md (+ report.json, tsne.png). Sections:
  reconstruction  held-out (test) identities encoded and decoded: SAE, plain AE, PCA-130, bilinear (mm);
  generation      DIV, DIV-ID, DIV-EXP (normalised by the training data) and SP (mm) at intensity 1, 5, 10;
  control         expression accuracy and identity consistency of generated meshes under classifiers trained on
                  real meshes; displacement against the paper's z_exp scaling;
  intensity       the response to intensity against the data generator's ground truth, calibrated and paper-style,
                  for training identities (cGAN) and held-out ones (SAE); identity-specific expression
                  (train/evaluate_intensity.py);
  embeddings      t-SNE of identity and expression embeddings, SAE against AE (the paper's Fig. 3).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from core.atomic import write_text_atomic
from core.shape_control import ShapeGenerator, expression_code
from core.shape_networks import MeshCoder, SupervisedAutoEncoder
from train.baselines import BilinearModel, PCAModel
from train.evaluate_intensity import (disentanglement, identity_specific, intensity_response, intensity_truth,
                                      sae_intensity)
from train.evaluate_intensity import markdown as intensity_markdown
from train.shape_runs import load_generator, load_sae, reconstruction_table, vertex_errors_mm
from train.tsne import scatter_panel, tsne, write_panels

INTENSITY_LEVELS = (1.0, 5.0, 10.0)
GEN_SAMPLES = 200


def reconstruction(stored, sae: SupervisedAutoEncoder, ae: SupervisedAutoEncoder, pca: PCAModel) -> dict:
    """pca: PCA-130 of the training meshes (evaluate() fits it once for this table and the classifiers)."""
    train = torch.from_numpy(np.array(stored.vertices[stored.splits["train"]]))
    test = torch.from_numpy(np.array(stored.vertices[stored.splits["test"]])).reshape(-1, train.shape[2], 3)
    results = {}
    with torch.no_grad():
        for name, model in (("SAE", sae), ("AE", ae)):
            results[name] = model.decode(*model.encode(test))
            if len(model.coder.basis):
                coder = model.coder
                results[f"{name}'s fixed PCA-{len(coder.basis)} input code (its floor)"] = coder.decode(coder.encode(test))
    results[f"PCA-{pca.components}"] = pca.reconstruct(test)
    bilinear = BilinearModel(train.numpy())
    results[f"bilinear ({bilinear.id_rank} x {bilinear.exp_rank})"] = torch.from_numpy(bilinear.reconstruct(test.numpy()))
    rows = {}
    for name, recon in results.items():
        err = vertex_errors_mm(recon, test)
        rows[name] = {"mean_mm": float(err.mean()), "median_mm": float(err.median())}
    return rows


def fit_linear_classifier(x: torch.Tensor, y: torch.Tensor, epochs: int = 400) -> torch.nn.Linear:
    """Multinomial logistic regression on features x (N, D), labels y, by full-batch Adam."""
    head = torch.nn.Linear(x.shape[1], int(y.max()) + 1)
    opt = torch.optim.Adam(head.parameters(), lr=0.01)
    for _ in range(epochs):
        opt.zero_grad()
        F.cross_entropy(head(x), y).backward()
        opt.step()
    return head


class RealMeshClassifier:
    """Linear classifiers on the PCA code of real training meshes: identity and expression. coder: a MeshCoder
    already fitted on these meshes (the PCA baseline's: at 4,000 meshes each fit is a minute), else PCA-128."""

    def __init__(self, meshes: torch.Tensor, id_labels, exp_labels, seed: int = 0, coder: MeshCoder | None = None):
        self.coder = coder if coder is not None else MeshCoder(meshes.shape[1], min(128, len(meshes) - 1)).fit(meshes)
        codes = self.coder.encode(meshes).float()
        torch.manual_seed(seed)
        self.id_head = fit_linear_classifier(codes, id_labels)
        self.exp_head = fit_linear_classifier(codes, exp_labels)

    @torch.no_grad()
    def predict(self, meshes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        codes = self.coder.encode(meshes).float()
        return self.id_head(codes).argmax(1), self.exp_head(codes).argmax(1)


def _pairwise_mean_mm(meshes: torch.Tensor) -> float:
    flat = meshes.reshape(len(meshes), -1, 3)
    total, count = 0.0, 0
    for i in range(len(flat)):
        total += float(vertex_errors_mm(flat[i + 1:], flat[i:i + 1]).mean(1).sum())
        count += len(flat) - i - 1
    return total / max(count, 1)


SP_SAMPLES = 50
SP_CANDIDATES = 16  # nearest training meshes by Euclidean distance among which SP takes the mean-vertex-distance one
DIV_ID_PEOPLE = 50  # training identities whose pairwise distances normalise DIV-ID (every pair of 200 is a minute)


def specificity_mm(samples: torch.Tensor, train: torch.Tensor, candidates: int = SP_CANDIDATES) -> float:
    """SP: the mean over samples of the distance (mean per-vertex mm) to the nearest training mesh. The exact
    measure over all training meshes costs a 3V-sized temporary per pair (minutes at 4,000 meshes); the nearest
    by it is found among the `candidates` nearest by Euclidean distance of the whole mesh (one matrix product), which
    the two distances share in practice (tests/test_evaluate.py checks it against the exhaustive search)."""
    flat_s, flat_t = samples.reshape(len(samples), -1), train.reshape(len(train), -1)
    near = torch.cdist(flat_s, flat_t).topk(min(candidates, len(train)), largest=False).indices
    return float(np.mean([float(vertex_errors_mm(train[idx], s[None]).mean(1).min()) for s, idx in zip(samples, near)]))


def generation(gen: ShapeGenerator, z_ids: torch.Tensor, z_kind: str, noise_dim: int, train_meshes: torch.Tensor,
               seed: int = 0) -> dict:
    """DIV / DIV-ID / DIV-EXP normalised by the training data, and SP (mm), per intensity level."""
    g = torch.Generator().manual_seed(seed)
    n_id_train, n_exp = train_meshes.shape[:2]
    flat = train_meshes.reshape(-1, *train_meshes.shape[2:])
    real_div = _pairwise_mean_mm(flat[torch.randperm(len(flat), generator=g)[:100]])  # every expression can appear
    people = torch.randperm(n_id_train, generator=g)[:DIV_ID_PEOPLE]
    real_div_id = np.mean([_pairwise_mean_mm(train_meshes[people, e]) for e in range(0, n_exp, 4)])
    real_div_exp = np.mean([_pairwise_mean_mm(train_meshes[i]) for i in range(0, n_id_train, 4)])
    out = {}
    for alpha in INTENSITY_LEVELS:
        # Gaussian z_id: new people; one-hot z_id: the training identities
        z_id = torch.randn(GEN_SAMPLES, z_ids.shape[1], generator=g) if z_kind == "gaussian" else \
            z_ids[torch.randint(len(z_ids), (GEN_SAMPLES,), generator=g)]
        exps = torch.randint(n_exp, (GEN_SAMPLES,), generator=g)
        z_exp = torch.stack([expression_code(n_exp, {int(e): 1.0}, alpha) for e in exps])
        noise = torch.randn(GEN_SAMPLES, noise_dim, generator=g)
        samples = gen(z_id, z_exp, noise)
        per_id = gen(z_id[:8].repeat_interleave(n_exp, 0), torch.eye(n_exp).repeat(8, 1) * alpha,
                     noise[:8].repeat_interleave(n_exp, 0)).reshape(8, n_exp, -1, 3)
        sp = specificity_mm(samples[:SP_SAMPLES], flat)
        out[str(alpha)] = {
            "DIV": _pairwise_mean_mm(samples[:100]) / real_div,
            "DIV-ID": float(np.mean([_pairwise_mean_mm(per_id[:, e]) for e in range(0, n_exp, 4)])) / real_div_id,
            "DIV-EXP": float(np.mean([_pairwise_mean_mm(per_id[i]) for i in range(8)])) / real_div_exp,
            "SP_mm": float(sp)}
    return out


def control(gen: ShapeGenerator, z_ids: torch.Tensor, noise_dim: int, classifier: RealMeshClassifier, n_exp: int,
            real: tuple, seed: int = 0) -> dict:
    """real = (mu_id, mu_exp, id_labels, exp_labels) of the SAE's training embeddings."""
    g = torch.Generator().manual_seed(seed)
    n_ids = len(z_ids)
    z_id = z_ids.repeat_interleave(n_exp, 0)
    z_exp = torch.eye(n_exp).repeat(n_ids, 1)
    noise = torch.randn(len(z_id), noise_dim, generator=g)
    meshes = gen(z_id, z_exp, noise)
    id_pred, exp_pred = classifier.predict(meshes)
    id_pred = id_pred.reshape(n_ids, n_exp)
    mode = torch.mode(id_pred, dim=1).values
    # In embedding space: is each generated embedding nearest its own class's centroid of real embeddings?
    mu_id, mu_exp, real_ids, real_exps = real
    gen_id, gen_exp = gen.embeddings(z_id, z_exp, noise)
    id_centroids = torch.stack([mu_id[real_ids == k].mean(0) for k in range(n_ids)])
    exp_centroids = torch.stack([mu_exp[real_exps == e].mean(0) for e in range(n_exp)])
    id_centroid_acc = (torch.cdist(gen_id, id_centroids).argmin(1) == torch.arange(n_ids).repeat_interleave(n_exp)
                       ).float().mean()
    exp_centroid_acc = (torch.cdist(gen_exp, exp_centroids).argmin(1) == torch.arange(n_exp).repeat(n_ids)
                        ).float().mean()
    # New people: random z_id draws; the classifier can only name the nearest training identity, so consistency
    # is the share of a new person's expressions that get the same nearest identity.
    new = torch.randn(16, z_ids.shape[1], generator=g)
    new_pred = classifier.predict(gen(new.repeat_interleave(n_exp, 0), torch.eye(n_exp).repeat(16, 1),
                                      torch.randn(16 * n_exp, noise_dim, generator=g)))[0].reshape(16, n_exp)
    new_consistency = (new_pred == torch.mode(new_pred, dim=1).values[:, None]).float().mean()
    # displacement from the generated neutral as z_exp is scaled, for one identity and expression
    alphas = torch.linspace(0, 3, 13)
    curve = {}
    for e in (1, 2, 15):
        if e >= n_exp:
            continue
        k = len(alphas)
        sweep = gen(z_ids[:1].repeat(k, 1), torch.eye(n_exp)[e].repeat(k, 1) * alphas[:, None], noise[:1].repeat(k, 1))
        neutral = gen(z_ids[:1], torch.eye(n_exp)[:1], noise[:1])
        curve[e] = [float(vertex_errors_mm(m, neutral[0]).mean()) for m in sweep]
    return {"expression_accuracy": float((exp_pred == torch.arange(n_exp).repeat(n_ids)).float().mean()),
            "identity_accuracy": float((id_pred == torch.arange(n_ids)[:, None]).float().mean()),
            "identity_consistency": float((id_pred == mode[:, None]).float().mean()),
            "new_identity_consistency": float(new_consistency),
            "identity_embedding_centroid_accuracy": float(id_centroid_acc),
            "expression_embedding_centroid_accuracy": float(exp_centroid_acc),
            "displacement_curve_mm": {"alphas": alphas.tolist(), **{str(k): v for k, v in curve.items()}},
            "curves_monotonic": all(bool(np.all(np.diff(v) > -1e-3)) for v in curve.values())}


TSNE_IDENTITIES = 20  # exact t-SNE is quadratic in the points; 20 identities' meshes (400) are enough to look at


def embedding_plots(stored, sae, ae, path: Path) -> None:
    from train.sae import training_meshes
    meshes, id_labels, exp_labels = training_meshes(stored)
    keep = id_labels < TSNE_IDENTITIES
    meshes, id_labels, exp_labels = meshes[keep], id_labels[keep], exp_labels[keep]
    panels = []
    for name, model in (("SAE", sae), ("AE", ae)):
        with torch.no_grad():
            mu_id, mu_exp = model.encode(meshes)
        panels.append(scatter_panel(tsne(mu_id.numpy()), id_labels.numpy(), f"{name} identity embedding (by id)"))
        panels.append(scatter_panel(tsne(mu_exp.numpy()), exp_labels.numpy(), f"{name} expression emb. (by exp)"))
    write_panels(panels, path)


def evaluate(cfg: dict, stored, sae_dir: Path, ae_dir: Path, gan_dir: Path, out_dir: Path, source) -> dict:
    from train.sae import training_meshes
    sae, ae = load_sae(sae_dir), load_sae(ae_dir)
    gen, z_ids, gan_cfg = load_generator(sae_dir, gan_dir)
    z_kind = json.loads((gan_dir / "config.json").read_text())["cgan"]["z_id"]
    meshes, id_labels, exp_labels = training_meshes(stored)
    train = torch.from_numpy(np.array(stored.vertices[stored.splits["train"]]))
    # the SAE's input code is the PCA of these same training meshes: its leading rows are PCA-130 (the paper
    # config's SAE reads every coordinate, so there it is fitted)
    pca = PCAModel.leading(sae.coder) if len(sae.coder.basis) >= min(130, len(meshes) - 1) else PCAModel(meshes, 130)
    classifier = RealMeshClassifier(meshes, id_labels, exp_labels, coder=pca.coder)
    with torch.no_grad():
        real = (*sae.encode(meshes), id_labels, exp_labels)
    val = torch.from_numpy(np.array(stored.vertices[stored.splits["val"]])).reshape(-1, meshes.shape[1], 3)
    _, val_exp = classifier.predict(val)
    n_exp = train.shape[1]
    train_truth = intensity_truth(source, stored, "train", stored.expression_names)
    results = {
        "config": cfg["name"], "z_id": z_kind,
        "reconstruction": reconstruction(stored, sae, ae, pca),
        "generation": generation(gen, z_ids, z_kind, gan_cfg.z_noise_dim, train),
        "control": control(gen, z_ids, gan_cfg.z_noise_dim, classifier, n_exp, real),
        "classifier_expression_accuracy_on_real_val": float(
            (val_exp == torch.arange(n_exp).repeat(len(val) // n_exp)).float().mean()),
        "intensity_response": intensity_response(gen, z_ids, gan_cfg.z_noise_dim, stored.expression_names, stored,
                                                 source, train_truth),
        "held_out_intensity": sae_intensity(stored, source, sae, stored.expression_names),
        "training_intensity_through_sae": sae_intensity(stored, source, sae, stored.expression_names, "train",
                                                        train_truth),
        "identity_specific": identity_specific(gen, z_ids, gan_cfg.z_noise_dim, stored.expression_names, stored),
        "disentanglement": disentanglement(stored, sae),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    embedding_plots(stored, sae, ae, out_dir / "tsne.png")
    write_text_atomic(out_dir / "report.json", json.dumps(results, indent=1))
    write_text_atomic(out_dir / "report.md", report_markdown(results))
    return results


def report_markdown(r: dict) -> str:
    lines = [f"# Shape model evaluation ({r['config']} config, {r['z_id']} z_id)", "",
             f"Command: `python -m train evaluate --config {r['config']}`.", "",
             "## Reconstruction of held-out (test) identities", "", *reconstruction_table(r["reconstruction"])]
    lines += ["", "## Generation (the paper's Table 1: diversity normalised by the training data, specificity mm)", "",
              "| intensity | DIV | DIV-ID | DIV-EXP | SP mm |", "|---|---|---|---|---|"]
    lines += [f"| {a} | {v['DIV']:.3f} | {v['DIV-ID']:.3f} | {v['DIV-EXP']:.3f} | {v['SP_mm']:.3f} |"
              for a, v in r["generation"].items()]
    c = r["control"]
    lines += ["", "## Control", "",
              f"- expression accuracy of generated meshes: {c['expression_accuracy']:.3f} (the real-mesh classifier "
              f"scores {r['classifier_expression_accuracy_on_real_val']:.3f} on real validation meshes)",
              f"- identity accuracy (training z_id -> its identity): {c['identity_accuracy']:.3f}; identity "
              f"consistency across the expressions of one z_id: {c['identity_consistency']:.3f} (training z_id), "
              f"{c['new_identity_consistency']:.3f} (new N(0, I) z_id: same nearest training identity)",
              f"- generated embeddings nearest their own class's centroid of real SAE embeddings: identity "
              f"{c['identity_embedding_centroid_accuracy']:.3f}, expression {c['expression_embedding_centroid_accuracy']:.3f}",
              f"- displacement from neutral as z_exp is scaled by alpha (the paper's intensity), monotonic: "
              f"{c['curves_monotonic']}",
              "", "| alpha | " + " | ".join(f"exp {k}" for k in c["displacement_curve_mm"] if k != "alphas") + " |",
              "|---|" + "---|" * (len(c["displacement_curve_mm"]) - 1)]
    curve = c["displacement_curve_mm"]
    for i, a in enumerate(curve["alphas"]):
        lines.append(f"| {a:.2f} | " + " | ".join(f"{curve[k][i]:.2f}" for k in curve if k != "alphas") + " |")
    lines += intensity_markdown(r)
    lines += ["", "## Embeddings", "", "![t-SNE of SAE and AE embeddings](tsne.png)", ""]
    return "\n".join(lines)

