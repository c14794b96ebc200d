"""`python -m train evaluate --config quick --set bp4d`: the action-unit shape model, measured.

Reconstruction of held-out subjects' frames (SAE against PCA-130), and control: generated meshes asked for
given AU intensities, read back by a ridge regressor trained on real meshes (its own error on real held-out
frames is reported beside it), in intensity levels; and the response of each AU's regressed intensity as one
requested AU goes from 0 to 5.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from core.atomic import write_text_atomic
from core.shape_networks import MeshCoder
from train.baselines import PCAModel
from train.data.expressions import AU_MAX_INTENSITY
from train.shape_runs import load_generator, load_sae, reconstruction_table, vertex_errors_mm


class RealMeshAURegressor:
    """Ridge regression from the PCA-128 code of a real mesh to its AU intensities (levels 0..5)."""

    def __init__(self, meshes: torch.Tensor, intensities: torch.Tensor, ridge: float = 1.0):
        self.coder = MeshCoder(meshes.shape[1], min(128, len(meshes) - 1)).fit(meshes)
        x = torch.cat([self.coder.encode(meshes).double(), torch.ones(len(meshes), 1, dtype=torch.float64)], 1)
        penalty = ridge * torch.eye(x.shape[1], dtype=torch.float64)
        self.weights = torch.linalg.solve(x.T @ x + penalty, x.T @ intensities.double())

    @torch.no_grad()
    def predict(self, meshes: torch.Tensor) -> torch.Tensor:
        code = self.coder.encode(meshes).double()
        return (torch.cat([code, torch.ones(len(code), 1, dtype=torch.float64)], 1) @ self.weights).float()


def _frames(stored, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    idx = np.flatnonzero(np.isin(stored.frame_identity, stored.splits[split]))
    return torch.from_numpy(np.array(stored.vertices[idx])), torch.from_numpy(stored.au_intensities[idx]).float()


def evaluate_au(cfg: dict, stored, sae_dir: Path, gan_dir: Path, out_dir: Path, seed: int = 0) -> dict:
    sae = load_sae(sae_dir)
    gen, z_ids, gan_cfg = load_generator(sae_dir, gan_dir)
    train, train_au = _frames(stored, "train")
    test, test_au = _frames(stored, "test")
    with torch.no_grad():
        sae_recon = sae.decode(*sae.encode(test))
    recon = {"SAE": sae_recon, "PCA-130": PCAModel(train, 130).reconstruct(test)}
    reconstruction = {k: {"mean_mm": float(vertex_errors_mm(v, test).mean()),
                          "median_mm": float(vertex_errors_mm(v, test).median())} for k, v in recon.items()}
    regressor = RealMeshAURegressor(train, train_au)
    real_mae = float((regressor.predict(test) - test_au).abs().mean())
    g = torch.Generator().manual_seed(seed)
    asked = test_au[torch.randperm(len(test_au), generator=g)[:min(64, len(test_au))]]
    z_id = z_ids[torch.randint(len(z_ids), (len(asked),), generator=g)]
    noise = torch.randn(len(asked), gan_cfg.z_noise_dim, generator=g)
    generated = gen(z_id, asked / AU_MAX_INTENSITY, noise)
    gen_mae = float((regressor.predict(generated) - asked).abs().mean())
    levels = torch.arange(0, AU_MAX_INTENSITY + 1, dtype=torch.float32)
    response = {}
    for a, name in enumerate(stored.au_names):
        z_exp = torch.zeros(len(levels), len(stored.au_names))
        z_exp[:, a] = levels / AU_MAX_INTENSITY
        out = regressor.predict(gen(z_ids[:1].repeat(len(levels), 1), z_exp, noise[:1].repeat(len(levels), 1)))
        response[name] = out[:, a].tolist()
    results = {"config": cfg["name"], "reconstruction": reconstruction, "regressor_mae_levels_real_test": real_mae,
               "generated_mae_levels": gen_mae, "au_response_levels": response,
               "responses_increasing": sum(r[-1] > r[0] for r in response.values())}
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out_dir / "report_au.md", report_markdown(results))
    write_text_atomic(out_dir / "report_au.json", json.dumps(results, indent=1))
    return results


def report_markdown(r: dict) -> str:
    lines = [f"# Action-unit shape model evaluation ({r['config']} config)", "",
             f"Command: `python -m train evaluate --config {r['config']} --set bp4d`.", "",
             "## Reconstruction of held-out subjects' frames", "", *reconstruction_table(r["reconstruction"])]
    lines += ["", "## Control", "",
              f"- generated meshes asked for held-out frames' AU intensities, read back by a ridge regressor trained on "
              f"real meshes: mean absolute error {r['generated_mae_levels']:.3f} intensity levels (the regressor on "
              f"real held-out frames: {r['regressor_mae_levels_real_test']:.3f})",
              f"- AUs whose regressed intensity rises as that AU is asked for 0 -> 5: {r['responses_increasing']} of "
              f"{len(r['au_response_levels'])}", "", "| AU | regressed at asked 0, 1, 2, 3, 4, 5 |", "|---|---|"]
    lines += [f"| {k} | " + ", ".join(f"{x:.2f}" for x in v) + " |" for k, v in r["au_response_levels"].items()]
    return "\n".join(lines) + "\n"
