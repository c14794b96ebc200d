"""Train the appearance texture generator (core/texture_appearance.py) on the frontal UV crops of a synthetic set.

    python -m train texture --config quick     # when texture.network.architecture is "appearance"

1. Each training identity's reference texture: its neutral (classes), or for action-unit frames the intercept of
   a least-squares fit of its frames on their AU intensities with the set's mean change per unit (centring each
   identity's intensities, as the expression templates are measured).
2. The appearance space, in closed form: the mean reference; principal components of the references (identity
   basis) and of every texture's change from its reference (change basis), each row scaled by its coordinate's
   standard deviation so that every target coordinate has unit variance (the small, fine-detail components count
   as much as the large, tone ones).
3. The MLP (z_id, z_noise) -> coordinates is trained on the training identities' coordinates: the identity's, and
   per texture the z_exp-weighted change coordinates against that texture's (for one-hot classes, each
   expression's own; the neutral's change is zero), mean squared error, Adam with a cosine decay. A fresh noise
   draw every step: the person's texture must not depend on it.

Writes, in the run folder: config.json, log.csv (every 50 steps), checkpoint.pt (every 500), samples/grid.png (identities x expressions) and
texture.safetensors, texture.json, template_crop.png, as the progressive trainer does (no discriminator).
"""
from __future__ import annotations

import math
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from core.texture_appearance import AppearanceTextureGenerator
from train.cgan import identity_codes
from train.config import data_config
from train.data.synthetic_sets import holds_action_units
from train.runs import finished_already, seed_everything, shutdown_distributed
from train.texture import (NEUTRAL_EXPRESSION, export_texture, measure_expression_offsets, open_texture_run,
                           sample_codes, to_unit_range, training_textures, widen_threads_if_signalled,
                           write_sample_grid)

LOG_EVERY = 50  # steps per log row
CHECKPOINT_EVERY = 500  # steps per checkpoint: one holds the bases (0.1 GB at 128 px), which take a while to write


@torch.no_grad()
def read_all(images, resolution: int, chunk: int = 256) -> torch.Tensor:
    """Every crop as float32 (N, 3 R R) in [-1, 1] (the quick set at 128 px: 0.8 GB)."""
    out = torch.empty(len(images), 3 * resolution ** 2)
    batches = [np.arange(i, min(i + chunk, len(images))) for i in range(0, len(images), chunk)]
    for rows, crops in zip(batches, images.stream(batches)):
        x = to_unit_range(crops)
        if x.shape[-1] != resolution:
            raise ValueError(f"texture.network.max_resolution {resolution} differs from the set's "
                             f"{x.shape[-1]} px crops: the appearance space is fitted at the crops' own size")
        out[rows] = x.flatten(1)
    return out


@torch.no_grad()
def references(x: torch.Tensor, id_labels: torch.Tensor, exp_targets: torch.Tensor, neutral: int | None,
               per_unit: torch.Tensor | None) -> torch.Tensor:
    """(identities, 3 R R): each training identity's reference texture (module docstring, step 1); per_unit: for
    action units, the set's mean change per unit intensity (E, 3 R R)."""
    n_ids = int(id_labels.max()) + 1
    refs = torch.zeros(n_ids, x.shape[1])
    if not exp_targets.dtype.is_floating_point:
        if neutral is None:
            raise ValueError(f"the appearance texture model measures expressions against {NEUTRAL_EXPRESSION!r}, "
                             f"which this set lacks")
        rows = torch.nonzero(exp_targets == neutral)[:, 0]
        missing = sorted(set(range(n_ids)) - set(id_labels[rows].tolist()))
        if missing:
            raise ValueError(f"training identities {missing[:10]} (of {len(missing)}) have no {NEUTRAL_EXPRESSION!r} "
                             f"texture, which the appearance texture model measures their expressions against")
        refs[id_labels[rows]] = x[rows]
        return refs
    for k in range(n_ids):
        rows = id_labels == k
        if not rows.any():
            raise ValueError(f"training identity {k} has no frames to measure its reference texture from")
        refs[k] = x[rows].mean(0) - exp_targets[rows].mean(0) @ per_unit
    return refs


@torch.no_grad()
def principal_rows(residuals: torch.Tensor, components: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(components, D) basis rows scaled by their coordinate's standard deviation, and the (N, components)
    unit-variance coordinates of the residuals (N, D), from the N x N Gram matrix (N is far below D). Components
    past the residuals' rank are zero rows with zero coordinates."""
    n = len(residuals)
    gram = (residuals @ residuals.T).double()
    values, vectors = torch.linalg.eigh(gram)
    values, vectors = values.flip(0)[:components], vectors.flip(1)[:, :components]
    keep = values > values[0] * 1e-6 if len(values) else values > 0  # float32 Gram: smaller ones are its rounding
    basis = torch.zeros(components, residuals.shape[1])
    coords = torch.zeros(n, components)
    k = int(keep.sum())
    # residuals = coords @ basis with coords = sqrt(n) v (unit variance) and basis = v.T residuals / sqrt(n)
    coords[:, :k] = (vectors[:, :k] * math.sqrt(n)).float()
    # orthogonal rows, each of norm sqrt(lambda / n): the unit principal direction times its coordinate's std
    basis[:k] = (vectors[:, :k].T.float() @ residuals) / math.sqrt(n)
    return basis, coords


@torch.no_grad()
def fit_appearance_space(g: AppearanceTextureGenerator, x: torch.Tensor, template: torch.Tensor,
                         id_labels: torch.Tensor, exp_targets: torch.Tensor, neutral: int | None,
                         per_unit: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Fills g's mean and bases; returns the targets: identity coordinates (identities, J) and each texture's change
    coordinates (N, K). Turns x into the changes in place (the quick set's crops are 0.8 GB: no second copy)."""
    cfg = g.cfg
    refs = references(x, id_labels, exp_targets, neutral, per_unit)
    for k, ref in enumerate(refs):
        x[id_labels == k] -= ref
    refs -= template
    g.mean.copy_(refs.mean(0))
    g.identity_basis[:], identity_targets = principal_rows(refs - g.mean, cfg.identity_components)
    if cfg.per_expression_changes:
        return identity_targets, fit_expression_changes(g, x, exp_targets)
    # the references' own rows (a neutral) do not change
    moving = torch.cat([x[i:i + 256].abs().amax(1) > 0 for i in range(0, len(x), 256)])
    g.change_basis[:], coords = principal_rows(x[moving], cfg.change_components)
    change_targets = torch.zeros(len(x), cfg.change_components)
    change_targets[moving] = coords
    return identity_targets, change_targets


@torch.no_grad()
def fit_expression_changes(g: AppearanceTextureGenerator, changes: torch.Tensor, expressions: torch.Tensor
                           ) -> torch.Tensor:
    """Per-expression change bases (TextureNetConfig.change_bases "per_expression"): expression e's region is every
    pixel (all three channels) where any training person's change under e is non-zero, and its basis the principal
    rows of those changes there. Gives g its bases, regions and region size; returns each texture's change
    coordinates (N, K) in its own expression's basis."""
    cfg = g.cfg
    r2 = cfg.max_resolution ** 2
    targets = torch.zeros(len(changes), cfg.change_components)
    bases, pixels, offsets = [], [], [0]
    for e in range(cfg.num_expressions):
        rows = torch.nonzero(expressions == e)[:, 0]
        ours = changes[rows].view(len(rows), 3, r2)
        where = torch.nonzero((ours != 0).any(0).any(0))[:, 0]
        region = torch.cat([where + c * r2 for c in range(3)])
        if len(region):
            basis, targets[rows] = principal_rows(ours.flatten(1)[:, region], cfg.change_components)
            bases.append(basis)
            pixels.append(region)
        offsets.append(offsets[-1] + len(region))
    g.cfg = replace(cfg, change_region_size=offsets[-1])
    g.change_basis = torch.cat(bases, 1) if bases else torch.zeros(cfg.change_components, 0)
    g.change_pixels = torch.cat(pixels).int() if pixels else torch.zeros(0, dtype=torch.int32)
    g.change_offsets = torch.tensor(offsets, dtype=torch.int64)
    return targets


def train_appearance(cfg: dict, stored, out_dir: str | Path, resume: bool = False, device: str = "cpu",
                     progress: bool = True, data_workers: int | None = None) -> Path:
    shape, tcfg, net_cfg, run, state, place, dev = open_texture_run(cfg, stored, out_dir, resume, device)
    if place.active:
        raise ValueError("the appearance texture model trains in one process (its steps take milliseconds); run it "
                         "without torchrun")
    if finished_already(run, state, tcfg.steps, ("texture.safetensors", "template_crop.png", "texture.json")):
        return run.path
    seed_everything(tcfg.seed)
    images, id_labels, exp_targets = training_textures(stored, data_config(cfg), data_workers)
    au = holds_action_units(stored)
    g = AppearanceTextureGenerator(net_cfg)
    template = to_unit_range(stored.template_texture("crop"))[None]
    fitted_in = 0.0
    if state is None:
        try:
            x = read_all(images, net_cfg.max_resolution)
            per_unit = None
            if au:  # the set's mean change per unit of each action unit (the expression templates' least squares)
                per_unit = measure_expression_offsets(images, id_labels, exp_targets, net_cfg.num_expressions,
                                                      net_cfg.max_resolution, None).flatten(1)
        finally:
            images.close()
        names = [] if au else list(stored.expression_names)
        neutral = names.index(NEUTRAL_EXPRESSION) if NEUTRAL_EXPRESSION in names else None
        widen_threads_if_signalled()
        started = time.perf_counter()
        identity_targets, change_targets = fit_appearance_space(g, x, template.flatten(), id_labels, exp_targets,
                                                               neutral, per_unit)
        fitted_in = time.perf_counter() - started
        del x
    else:  # the fitted space and its targets come back with the checkpoint: a refit could differ in its signs
        images.close()
        identity_targets, change_targets = state["identity_targets"], state["change_targets"]
        if net_cfg.per_expression_changes:  # the regions' size is the fit's
            g = AppearanceTextureGenerator(replace(net_cfg, change_region_size=state["g"]["change_basis"].shape[1]))
    net_cfg = g.cfg
    z_exp = exp_targets.float() if au else torch.eye(net_cfg.num_expressions)[exp_targets]
    z_ids = identity_codes(net_cfg.num_identities, net_cfg.z_id_dim, shape["cgan"].z_id, shape["cgan"].seed)
    g.to(dev)
    opt = torch.optim.Adam(g.mapping.parameters(), lr=tcfg.lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, tcfg.steps)
                                                                                   / tcfg.steps)))
    start = 0
    if state is not None:
        g.load_state_dict(state["g"])
        opt.load_state_dict(state["opt"])
        schedule.load_state_dict(state["schedule"])
        start = int(state["step"])
    rows_of = [torch.nonzero(id_labels == k)[:, 0] for k in range(net_cfg.num_identities)]
    bar = tqdm(range(start, tcfg.steps), desc="texture steps", disable=not progress, initial=start, total=tcfg.steps)
    sums, tick = {}, time.perf_counter()
    for step in bar:
        # drawn from (seed, step) alone: a resumed run takes the batches and noise an uninterrupted one would
        generator = torch.Generator().manual_seed(tcfg.seed * 100003 + step + 17)
        ids = torch.randperm(net_cfg.num_identities, generator=generator)[:tcfg.batch_identities]
        rows = torch.cat([rows_of[int(k)] for k in ids])
        where = torch.cat([torch.full((len(rows_of[int(k)]),), i) for i, k in enumerate(ids)])
        noise = torch.randn(len(ids), net_cfg.z_noise_dim, generator=generator)
        identity, changes = g.coordinates(z_ids[ids].to(dev), noise.to(dev))
        predicted = torch.einsum("re,rek->rk", z_exp[rows].to(dev), changes[where.to(dev)])
        terms = {"identity_mse": (identity - identity_targets[ids].to(dev)).pow(2).mean(),
                 "change_mse": (predicted - change_targets[rows].to(dev)).pow(2).mean()}
        loss = terms["identity_mse"] + terms["change_mse"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        schedule.step()
        for k, v in terms.items():
            sums[k] = sums.get(k, 0.0) + float(v.detach())
        if (step + 1) % LOG_EVERY == 0 or step + 1 == tcfg.steps:
            widen_threads_if_signalled()  # started beside the shape steps (train/demo.py): every core once they end
            count = (step % LOG_EVERY) + 1
            row = {"epoch": step, **{k: v / count for k, v in sums.items()}, "lr": schedule.get_last_lr()[0],
                   "seconds": time.perf_counter() - tick, "fit_seconds": fitted_in}
            run.log_row(row, step)
            bar.set_postfix(identity=f"{row['identity_mse']:.3f}", change=f"{row['change_mse']:.3f}")
            sums, tick = {}, time.perf_counter()
        if (step + 1) % CHECKPOINT_EVERY == 0 or step + 1 == tcfg.steps:
            run.save_checkpoint({"step": step + 1, "epoch": step + 1, "g": g.state_dict(), "opt": opt.state_dict(),
                                 "schedule": schedule.state_dict(), "identity_targets": identity_targets,
                                 "change_targets": change_targets})
    g = g.cpu().eval()
    write_sample_grid(g, template, sample_codes(net_cfg.num_identities, net_cfg.num_expressions, z_ids,
                                                net_cfg.z_noise_dim, au), net_cfg.max_resolution,
                      run.path / "samples" / "grid.png")
    export_texture(g, None, net_cfg, stored, run.path)
    shutdown_distributed()
    return run.path
