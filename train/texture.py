"""Train the conditional progressive texture GAN (section 3.2) on the frontal UV crops of a synthetic set.

    python -m train texture --config quick [--set facescape|bp4d] [--resume] [--device cpu|cuda|auto]
    torchrun --nproc_per_node 2 -m train texture --config paper     # data parallel

Schedule: start_resolution trains stable for first_phase_epochs epochs; every doubling then fades in (alpha 0 -> 1,
for the real images too) for one phase and trains stable for another. Loss: WGAN-GP (lambda = gp_weight) with
Karras et al.'s drift term, plus identity and expression terms: the critic's class heads learn on real textures,
the generator is scored by them on its own. z_id is the shape cGAN's code of each training identity (the same
function and seed, so a face's mesh and texture come from one code), z_exp the expression's one-hot vector (or a
frame's action-unit intensities / 5), z_noise 256-d.
With network.expression_templates (not in the paper) the generator adds, weighted by z_exp, each expression's mean
change of a training identity's texture (measured once before training, saved with the weights).

Data parallel: every rank takes an equal shard of each epoch and the gradients are averaged by an all-reduce after
each backward. Not DistributedDataParallel: the gradient penalty differentiates the critic twice, which DDP's
hooks do not support.

Writes, in the run folder: config.json, log.csv, checkpoint.pt (every epoch), samples/RES_stable.png (a grid of
identities x expressions at the end of every resolution) and at the end texture.safetensors (the moving-average
generator, which is what sampling uses), texture_discriminator.safetensors, texture.json (network config),
template_crop.png (what the generator's output is added to).
"""
from __future__ import annotations

import json
import math
import os
import shutil
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm import tqdm

from core.atomic import atomic_path, write_png_atomic, write_safetensors_atomic, write_text_atomic
from core.texture_networks import TextureDiscriminator, TextureGenerator, TextureNetConfig
from train.cgan import identity_codes
from train.config import DataConfig, data_config
from train.data.crops import crop_rows, default_workers, identity_rows
from train.data.expressions import AU_MAX_INTENSITY, FACESCAPE_EXPRESSIONS
from train.data.synthetic_sets import holds_action_units
from train.losses import expression_loss
from train.runs import epoch_order, finished_already, open_run, seed_everything, shutdown_distributed
from train.shape_config import shape_section
from train.texture_config import texture_section


NEUTRAL_EXPRESSION = FACESCAPE_EXPRESSIONS[0]  # "1_neutral", as FaceScape names it


def training_textures(stored, data_cfg: DataConfig, workers: int | None = None):
    """The training identities' crops (stored, or synthesised in `workers` processes: train/data/crops.py),
    identity labels, and expression targets: class indices, or action-unit intensities / 5 for a BP4D-like set."""
    train_ids = stored.splits["train"]
    if holds_action_units(stored):
        frames = np.flatnonzero(np.isin(stored.frame_identity, train_ids))
        ids = torch.from_numpy(np.searchsorted(train_ids, stored.frame_identity[frames])).long()
        targets = torch.from_numpy(stored.au_intensities[frames] / AU_MAX_INTENSITY).float()
        return crop_rows(stored, data_cfg, frames, workers), ids, targets
    n_exp = len(stored.expression_names)
    return (crop_rows(stored, data_cfg, identity_rows(train_ids, n_exp), workers),
            torch.arange(len(train_ids)).repeat_interleave(n_exp), torch.arange(n_exp).repeat(len(train_ids)))


def images_per_batch(resolution: int) -> int:
    """How many images to generate at once without training: 64 at 64 px, one at 512 px (a 512 px layer's
    activations are 67 MB per image)."""
    return max(1, 2 ** 18 // resolution ** 2)


def to_unit_range(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 (..., R, R, 3) -> float (..., 3, R, R) in [-1, 1]."""
    x = torch.from_numpy(np.array(images, dtype=np.float32)).div(127.5).sub(1)
    return x.movedim(-1, -3)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """float (..., 3, R, R) in [-1, 1] -> uint8 (..., R, R, 3)."""
    return images.movedim(-3, -1).add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8).cpu().numpy()


def downsample(images: torch.Tensor, resolution: int) -> torch.Tensor:
    if images.shape[-1] == resolution:
        return images
    return F.avg_pool2d(images, images.shape[-1] // resolution)


def faded_reals(real: torch.Tensor, resolution: int, alpha: float) -> torch.Tensor:
    """Real crops at `resolution`; during a fade-in (alpha < 1) blended with their coarser version, as the
    generator's new block is."""
    real = downsample(real, resolution)
    if alpha < 1.0:
        coarse = F.interpolate(F.avg_pool2d(real, 2), scale_factor=2, mode="nearest")
        real = coarse + alpha * (real - coarse)
    return real


def generate_others(g: TextureGenerator, rgb: torch.Tensor | None, z_id, z_exp_others, z_noise, resolution: int,
                    alpha: float) -> torch.Tensor:
    """(B, K, 3, R, R): the generator's outputs for K more expressions of each row's person, with the row's noise:
    with expression_maps from the row's to_rgb output `rgb` (every expression's map is in it), otherwise one pass
    per K."""
    k = z_exp_others.shape[1]
    if rgb is None:
        return torch.stack([g(z_id, z_exp_others[:, j], z_noise, resolution, alpha) for j in range(k)], 1)
    return g.weigh(rgb, z_exp_others)


def phases(cfg: TextureNetConfig) -> list[tuple[int, str]]:
    """(resolution, 'stable' | 'fade') in training order."""
    out = [(cfg.stages[0], "stable")]
    for r in cfg.stages[1:]:
        out += [(r, "fade"), (r, "stable")]
    return out


def phase_epochs(cfg: TextureNetConfig, tcfg) -> list[tuple[int, str, int]]:
    """(resolution, kind, epochs) in training order: the start resolution's stable phase takes first_phase_epochs
    (it is cheap, 1/64 of the pixels of 8x its size, and it is where identity colour is learned), every other
    phase epochs_per_phase."""
    return [(r, kind, tcfg.first_phase_epochs if i == 0 else tcfg.epochs_per_phase)
            for i, (r, kind) in enumerate(phases(cfg))]


def phase_at(plan: list[tuple[int, str, int]], epoch: int) -> tuple[int, str, int, int]:
    """(resolution, kind, epochs into the phase, the phase's epochs) of a training epoch."""
    for resolution, kind, length in plan:
        if epoch < length:
            return resolution, kind, epoch, length
        epoch -= length
    raise ValueError(f"epoch beyond the schedule's {sum(p[2] for p in plan)} epochs")


def network_config(texture: dict, shape: dict, stored) -> TextureNetConfig:
    au = holds_action_units(stored)
    n_ids = len(stored.splits["train"])
    cgan = shape["cgan"]
    if cgan is None:
        raise ValueError(f"{shape['where']}.cgan: missing (the texture model shares the shape cGAN's z_id codes)")
    z_id_dim = n_ids if cgan.z_id == "onehot" else shape["network"].get("z_id_dim", 20)
    if au and texture["network"].get("change_bases", "shared") != "shared":
        raise ValueError(f"{texture['where']}.network.change_bases {texture['network']['change_bases']!r} needs "
                         f"expression classes, and {stored.path} holds action units, which act together in a frame: "
                         f"train it with change_bases 'shared' (a config of its own)")
    cfg = TextureNetConfig(num_identities=n_ids,
                           num_expressions=len(stored.au_names) if au else len(stored.expression_names),
                           expression_labels="au_intensities" if au else "classes", z_id_dim=z_id_dim,
                           **{k: tuple(v) if isinstance(v, list) else v for k, v in texture["network"].items()})
    if cfg.max_resolution > stored.meta["texture_resolution"]:
        raise ValueError(f"{texture['where']}.network.max_resolution {cfg.max_resolution} exceeds the set's "
                         f"{stored.meta['texture_resolution']} px crops in {stored.path}")
    return cfg


@torch.no_grad()
def measure_expression_offsets(images, id_labels: torch.Tensor, exp_targets: torch.Tensor, num_expressions: int,
                               resolution: int, neutral: int | None, chunk: int = 64) -> torch.Tensor:
    """The expression templates (E, 3, R, R): how an identity's texture changes, on average over the training
    identities, per unit of each z_exp entry. Classes: the mean difference from the same identity's neutral
    (so a neutral face and intensity 0 get no offset). Action units: least squares with an intercept per identity
    (centring z per identity is enough: centred z is orthogonal to the identity's mean texture). Reads `chunk`
    images at a time, so neither a paper-size set nor one identity's frames sit in memory whole."""
    au = exp_targets.dtype.is_floating_point
    if not au and neutral is None:
        raise ValueError("texture.network.expression_templates needs a neutral expression class to measure the "
                         "other expressions against")
    d = 3 * resolution * resolution
    gram = torch.zeros(num_expressions, num_expressions, dtype=torch.float64)
    cross = torch.zeros(num_expressions, d, dtype=torch.float64)

    def read(rows: torch.Tensor) -> torch.Tensor:
        return downsample(to_unit_range(images[rows.numpy()]), resolution).flatten(1).double()

    for identity in torch.unique(id_labels):
        rows = torch.nonzero(id_labels == identity)[:, 0]
        if au:
            z = exp_targets[rows].double()
            z = z - z.mean(0)
            reference = None
        else:
            classes = exp_targets[rows]
            if not (classes == neutral).any():
                continue
            reference = read(rows[classes == neutral]).mean(0)
            z = F.one_hot(classes, num_expressions).double()
        gram += z.T @ z
        for start in range(0, len(rows), chunk):
            x = read(rows[start:start + chunk])
            cross += z[start:start + chunk].T @ (x if reference is None else x - reference)
    if au:
        offsets = torch.linalg.lstsq(gram, cross).solution
    else:  # one-hot rows: the normal equations are diagonal, each row a mean difference
        offsets = cross / gram.diagonal().clamp_min(1)[:, None]
        offsets[neutral] = 0
    return offsets.float().view(num_expressions, 3, resolution, resolution)


def gradient_penalty(score, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """WGAN-GP's penalty on score (images -> (B,) critic scores) at random points between real and fake."""
    eps = torch.rand(len(real), 1, 1, 1, device=real.device)
    mixed = (eps * real + (1 - eps) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(score(mixed).sum(), mixed, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()


def conditioned_score(outputs, id_labels: torch.Tensor, exp_targets: torch.Tensor, projection: bool) -> torch.Tensor:
    """The critic's score (B,); with projection plus the identity logit of each image's identity and the expression
    outputs dotted with its expression (one-hot for classes, the AU intensities / 5 for AU models)."""
    score, id_logits, exp_out = outputs
    score = score.view(-1)
    if not projection:
        return score
    exp_term = ((exp_out * exp_targets).sum(1) if exp_targets.dtype.is_floating_point
                else exp_out.gather(1, exp_targets[:, None])[:, 0])
    return score + id_logits.gather(1, id_labels[:, None])[:, 0] + exp_term


def critic_loss(d, real, fake, id_labels, exp_targets, alpha: float, tcfg) -> dict:
    out_real = d(real, alpha)
    _, id_real, exp_real = out_real
    score_real = conditioned_score(out_real, id_labels, exp_targets, tcfg.projection)
    score_fake = conditioned_score(d(fake.detach(), alpha), id_labels, exp_targets, tcfg.projection)
    exp_term, acc_exp = expression_loss(exp_real, exp_targets)
    wasserstein = score_fake.mean() - score_real.mean()

    def score(x):
        return conditioned_score(d(x, alpha), id_labels, exp_targets, tcfg.projection)
    loss = (wasserstein + tcfg.gp_weight * gradient_penalty(score, real, fake.detach())
            + tcfg.drift_weight * score_real.pow(2).mean()
            + tcfg.id_weight * F.cross_entropy(id_real, id_labels) + tcfg.exp_weight * exp_term)
    return {"d": loss, "wasserstein": -wasserstein, "acc_id_real": (id_real.argmax(1) == id_labels).float().mean(),
            "acc_exp_real": acc_exp}


def fine_detail(images: torch.Tensor, block: int = 4) -> torch.Tensor:
    """Each image minus its block x block means: the wrinkle scale, without skin tone and shading."""
    return images - F.interpolate(F.avg_pool2d(images, block), scale_factor=block, mode="nearest")


def generator_loss(d, fake, real, id_labels, exp_targets, alpha: float, tcfg, others=None) -> dict:
    """fake[i] was generated for real[i]'s identity and expression. others: (fake, real), each (B, K, 3, R, R), K more
    textures of each row's person (fake with the row's noise): the pair term compares their changes from the row,
    and the reconstruction covers them too."""
    outputs = d(fake, alpha)
    _, id_logits, exp_logits = outputs
    exp_term, acc_exp = expression_loss(exp_logits, exp_targets)
    every_fake, every_real = (fake, real) if others is None else (torch.cat([fake, others[0].flatten(0, 1)]),
                                                                 torch.cat([real, others[1].flatten(0, 1)]))
    recon = ((every_fake - every_real).abs().mean()
             + tcfg.recon_detail_weight * (fine_detail(every_fake) - fine_detail(every_real)).abs().mean())
    loss = (-conditioned_score(outputs, id_labels, exp_targets, tcfg.projection).mean()
            + tcfg.id_weight * F.cross_entropy(id_logits, id_labels) + tcfg.exp_weight * exp_term
            + tcfg.recon_weight * recon)
    terms = {"acc_id_fake": (id_logits.argmax(1) == id_labels).float().mean(), "acc_exp_fake": acc_exp, "l1": recon}
    if others is not None:
        fake_others, real_others = others
        terms["pair_mse"] = ((fake_others - fake[:, None]) - (real_others - real[:, None])).pow(2).mean()
        loss = loss + tcfg.pair_weight * terms["pair_mse"]
    return {"g": loss, **terms}


def person_rows(id_labels: torch.Tensor) -> torch.Tensor | None:
    """(identities, E): every training row of each identity, when all have the same count (a FaceScape-like set:
    every expression); None otherwise."""
    counts = torch.bincount(id_labels)
    if len(counts) == 0 or (counts != counts[0]).any():
        return None
    return torch.argsort(id_labels, stable=True).view(len(counts), int(counts[0]))


def partner_rows(id_labels: torch.Tensor, seed: int, epoch: int) -> torch.Tensor:
    """For every training row, another row of the same identity (a pair for the pair term), drawn afresh each
    epoch from (seed, epoch) alone, so a resumed run pairs as an uninterrupted one."""
    g = torch.Generator().manual_seed(seed * 100003 + epoch + 31_000_001)
    out = torch.empty_like(id_labels)
    for identity in torch.unique(id_labels):
        rows = torch.nonzero(id_labels == identity)[:, 0]
        if len(rows) < 2:
            raise ValueError(f"texture.train.pair_weight: training identity {int(identity)} has one texture, and a "
                             f"pair needs two of one person")
        shift = torch.randint(1, len(rows), (len(rows),), generator=g)  # never the row itself
        out[rows] = rows[(torch.arange(len(rows)) + shift) % len(rows)]
    return out


# A run started beside other training (train/demo.py: the shape models) with one thread takes this many threads once
# the file named by WIDEN_WHEN exists: the cores the other steps no longer use
WIDEN_TO, WIDEN_WHEN = "FACECAM_WIDEN_TO_THREADS", "FACECAM_WIDEN_WHEN"


def widen_threads_if_signalled() -> bool:
    """Takes FACECAM_WIDEN_TO_THREADS threads when the file FACECAM_WIDEN_WHEN exists; True once it has."""
    when, threads = os.environ.get(WIDEN_WHEN), os.environ.get(WIDEN_TO)
    if not when or not threads or not Path(when).exists():
        return False
    torch.set_num_threads(int(threads))
    return True


def _average_gradients(module: torch.nn.Module, world_size: int) -> None:
    for p in module.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad /= world_size


@torch.no_grad()
def check_ranks_agree(modules: dict[str, torch.nn.Module], world_size: int) -> None:
    """Every rank must hold the same weights after data-parallel training (the gradients were averaged, the
    optimisers saw the same steps); a rank that drifted would make the saved model one rank's private result."""
    for name, module in modules.items():
        mine = torch.cat([p.detach().double().flatten() for p in module.parameters()])
        checksum = torch.stack([mine.sum(), mine.abs().sum(), (mine * torch.arange(len(mine), dtype=mine.dtype,
                                                                                   device=mine.device)).sum()])
        every = [torch.zeros_like(checksum) for _ in range(world_size)]
        dist.all_gather(every, checksum)
        if any(not torch.equal(every[0], other) for other in every[1:]):
            raise RuntimeError(f"data-parallel texture training: the ranks' {name} weights differ after training "
                               f"({[c.tolist() for c in every]}); the gradients were not averaged identically")


@torch.no_grad()
def _update_ema(ema: TextureGenerator, g: TextureGenerator, beta: float) -> None:
    for pe, p in zip(ema.parameters(), g.parameters()):
        pe.lerp_(p, 1 - beta)


def sample_codes(n_ids: int, num_expressions: int, z_ids: torch.Tensor, noise_dim: int, au: bool, seed: int = 0):
    """The fixed grid the sample PNGs show: up to 4 identities x up to 6 expressions (AU models: single units at
    intensity 3)."""
    ids = torch.arange(min(4, n_ids))
    exps = torch.arange(min(6, num_expressions))
    z_exp = torch.eye(num_expressions)[exps] * (3 / AU_MAX_INTENSITY if au else 1.0)
    noise = torch.randn(len(ids), noise_dim, generator=torch.Generator().manual_seed(seed))
    return (z_ids[ids].repeat_interleave(len(exps), 0), z_exp.repeat(len(ids), 1),
            noise.repeat_interleave(len(exps), 0), (len(ids), len(exps)))


def image_grid(images: np.ndarray, shape: tuple[int, int], cell: int = 96) -> np.ndarray:
    """(N, R, R, 3) uint8 -> one (rows*cell, cols*cell, 3) image, nearest-neighbour upscaled."""
    rows, cols = shape
    r = images.shape[1]
    k = max(1, cell // r)
    big = images.repeat(k, axis=1).repeat(k, axis=2)
    return big.reshape(rows, cols, r * k, r * k, 3).transpose(0, 2, 1, 3, 4).reshape(rows * r * k, cols * r * k, 3)


def open_texture_run(cfg: dict, stored, out_dir: str | Path, resume: bool, device: str):
    """(shape section, train settings, network config, run, checkpoint or None, place, device) of a texture run of
    either architecture."""
    texture = texture_section(cfg)
    # the cGAN settings its z_id codes come from: those of the shape model trained on the same set
    shape = shape_section(cfg, action_units=holds_action_units(stored))
    tcfg = texture["train"]
    net_cfg = network_config(texture, shape, stored)
    snapshot = {"config": cfg["name"], "network": net_cfg.to_dict(), "train": tcfg.__dict__, "data": str(stored.path)}
    return (shape, tcfg, net_cfg, *open_run(out_dir, snapshot, resume, device))


def train_texture(cfg: dict, stored, out_dir: str | Path, resume: bool = False, device: str = "cpu",
                  progress: bool = True, data_workers: int | None = None) -> Path:
    """data_workers: processes synthesising crops for a set that stores none (default: one per core but one)."""
    if texture_section(cfg)["network"].get("architecture") == "appearance":
        raise ValueError("train_texture trains the progressive architecture; the appearance one trains with "
                         "train.texture_run.train_texture_model (`python -m train texture` chooses)")
    shape, tcfg, net_cfg, run, state, place, dev = open_texture_run(cfg, stored, out_dir, resume, device)
    if finished_already(run, state, sum(length for *_, length in phase_epochs(net_cfg, tcfg)),
                        ("texture.safetensors", "texture_discriminator.safetensors", "template_crop.png",
                         "texture.json")):
        return run.path

    seed_everything(tcfg.seed)
    if data_workers is None:  # the ranks of a data-parallel run share the cores
        data_workers = max(1, default_workers() // place.world_size)
    images, id_labels, exp_targets = training_textures(stored, data_config(cfg), data_workers)
    try:
        return _train_phases(run, state, place, dev, tcfg, net_cfg, shape, stored, images, id_labels, exp_targets,
                             progress)
    finally:
        images.close()


def _train_phases(run, state, place, dev, tcfg, net_cfg, shape, stored, images, id_labels, exp_targets,
                  progress) -> Path:
    au = net_cfg.expression_labels == "au_intensities"
    z_ids = identity_codes(net_cfg.num_identities, net_cfg.z_id_dim, shape["cgan"].z_id, shape["cgan"].seed)
    template = to_unit_range(stored.template_texture("crop"))[None]
    g, d, g_ema = TextureGenerator(net_cfg), TextureDiscriminator(net_cfg), TextureGenerator(net_cfg)
    if net_cfg.expression_templates:
        names = [] if au else list(stored.expression_names)
        neutral = names.index(NEUTRAL_EXPRESSION) if NEUTRAL_EXPRESSION in names else None
        if not au and neutral is None:
            raise ValueError(f"{stored.path}: texture.network.expression_templates measures every expression against "
                             f"{NEUTRAL_EXPRESSION!r}, which this set lacks (its expressions: {names})")
        g.expression_offsets.copy_(measure_expression_offsets(images, id_labels, exp_targets,
                                                              net_cfg.num_expressions, net_cfg.max_resolution,
                                                              neutral))
    g_ema.load_state_dict(g.state_dict())
    for m in (g, d, g_ema):
        m.to(dev)
    opt_g = torch.optim.Adam(g.parameters(), lr=tcfg.lr, betas=(0.0, 0.99), eps=1e-8)
    opt_d = torch.optim.Adam(d.parameters(), lr=tcfg.lr, betas=(0.0, 0.99), eps=1e-8)
    start = 0
    if state is not None:
        for m, key in ((g, "g"), (d, "d"), (g_ema, "g_ema"), (opt_g, "opt_g"), (opt_d, "opt_d")):
            m.load_state_dict(state[key])
        start = int(state["epoch"])
    plan = phase_epochs(net_cfg, tcfg)
    epochs = sum(length for *_, length in plan)
    n = min(len(images), tcfg.epoch_samples) if tcfg.epoch_samples else len(images)
    steps_per_epoch = math.ceil((n - n % place.world_size) // place.world_size / tcfg.batch_size)
    templates = {r: downsample(template, r).to(dev) for r in net_cfg.stages}
    z_ids_dev, eye = z_ids.to(dev), torch.eye(net_cfg.num_expressions, device=dev)
    grid_codes = sample_codes(net_cfg.num_identities, net_cfg.num_expressions, z_ids, net_cfg.z_noise_dim, au)
    bar = tqdm(range(start, epochs), desc="texture epochs", disable=not (progress and place.is_main),
               initial=start, total=epochs)
    widened = False
    for epoch in bar:
        started = time.perf_counter()
        widened = widened or widen_threads_if_signalled()
        resolution, kind, in_phase, phase_length = phase_at(plan, epoch)
        torch.manual_seed(tcfg.seed * 100003 + epoch + 70_000_001 + 1009 * place.rank)  # noise: same after a resume
        order = epoch_order(len(images), tcfg.seed, epoch, place, tcfg.epoch_samples)
        sums, steps = {}, 0
        # the minibatch standard deviation needs a pair: a last batch of one is dropped
        batches = [idx for idx in (order[b:b + tcfg.batch_size] for b in range(0, len(order), tcfg.batch_size))
                   if len(idx) >= 2]
        # the pair term's other textures of each row's person: with expression_maps all of them (one generator
        # pass gives every expression), otherwise one partner row drawn per epoch
        others = None
        # not in the start resolution's phase: it learns identity colour, which the pair term's sparse changes slow
        # down (the L1 to the real textures stayed at the mean face's for 300 steps with it, fell by 40% without)
        if tcfg.pair_weight and epoch >= plan[0][2]:
            everyone = person_rows(id_labels) if net_cfg.expression_maps else None
            partner = partner_rows(id_labels, tcfg.seed, epoch)[:, None] if everyone is None else None
            others = [everyone[id_labels[idx]] if everyone is not None else partner[idx] for idx in batches]
        reads = [idx if others is None else torch.cat([idx, o.flatten()]) for idx, o in
                 zip(batches, others or batches)]
        for step_index, (idx, crops) in enumerate(zip(batches, images.stream([r.numpy() for r in reads]))):
            alpha = 1.0
            if kind == "fade":
                alpha = (in_phase * steps_per_epoch + steps + 1) / (phase_length * steps_per_epoch)
            real_all = faded_reals(to_unit_range(crops).to(dev), resolution, alpha)
            real = real_all[:len(idx)]
            ids, exps = id_labels[idx].to(dev), exp_targets[idx].to(dev)
            z_exp = exps if au else eye[exps]
            z_noise = torch.randn(len(idx), net_cfg.z_noise_dim, device=dev)
            rgb = g.to_rgb_output(z_ids_dev[ids], z_exp, z_noise, resolution, alpha) if net_cfg.expression_maps else None
            fake = templates[resolution] + (g.weigh(rgb, z_exp) if rgb is not None
                                            else g(z_ids_dev[ids], z_exp, z_noise, resolution, alpha))
            pair = None
            if others is not None:
                rows = others[step_index]
                other_exps = exp_targets[rows.flatten()].to(dev)
                z_others = (other_exps if au else eye[other_exps]).view(*rows.shape, -1)
                fake_others = templates[resolution] + generate_others(g, rgb, z_ids_dev[ids], z_others, z_noise,
                                                                      resolution, alpha)
                pair = (fake_others, real_all[len(idx):].view(*rows.shape, *real.shape[1:]))
            d_terms = critic_loss(d, real, fake, ids, exps, alpha, tcfg)
            opt_d.zero_grad(set_to_none=True)
            d_terms["d"].backward()
            if place.active:
                _average_gradients(d, place.world_size)
            opt_d.step()
            g_terms = generator_loss(d, fake, real, ids, exps, alpha, tcfg, pair)
            opt_g.zero_grad(set_to_none=True)
            g_terms["g"].backward()
            if place.active:
                _average_gradients(g, place.world_size)
            opt_g.step()
            _update_ema(g_ema, g, tcfg.ema_beta)
            for k, v in {**d_terms, **g_terms}.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
            steps += 1
        row = {"epoch": epoch, "resolution": resolution, "phase": kind, "alpha": alpha,
               **{k: v / max(steps, 1) for k, v in sums.items()}, "seconds": time.perf_counter() - started}
        if place.is_main:
            run.log_row(row, epoch)  # before the checkpoint, as in train/sae.py
            run.save_checkpoint({"epoch": epoch + 1, "g": g.state_dict(), "d": d.state_dict(),
                                 "g_ema": g_ema.state_dict(), "opt_g": opt_g.state_dict(),
                                 "opt_d": opt_d.state_dict()})
            # a grid per resolution, once it trained stable (a fade's end samples the same net at alpha 1)
            if in_phase == phase_length - 1 and kind == "stable":
                write_sample_grid(g_ema, templates[resolution], grid_codes, resolution,
                                  run.path / "samples" / f"{resolution:03d}_{kind}.png")
            bar.set_postfix(res=resolution, alpha=f"{alpha:.2f}", acc_exp_fake=f"{row.get('acc_exp_fake', 0):.2f}")
    if place.active:
        check_ranks_agree({"generator": g, "critic": d, "moving-average generator": g_ema}, place.world_size)
    if place.is_main:
        export_texture(g_ema.cpu(), d.cpu(), net_cfg, stored, run.path)
    shutdown_distributed()
    return run.path


@torch.no_grad()
def write_sample_grid(g: TextureGenerator, template: torch.Tensor, codes, resolution: int, path: Path) -> None:
    z_id, z_exp, z_noise, shape = codes
    dev = template.device
    chunk = images_per_batch(resolution)
    images = torch.cat([template + g(z_id[i:i + chunk].to(dev), z_exp[i:i + chunk].to(dev),
                                     z_noise[i:i + chunk].to(dev), resolution) for i in range(0, len(z_id), chunk)])
    path.parent.mkdir(parents=True, exist_ok=True)
    write_png_atomic(path, image_grid(to_uint8(images), shape))


def export_texture(g_ema: TextureGenerator, d: TextureDiscriminator, net_cfg: TextureNetConfig, stored,
                   folder: Path) -> None:
    for name, module in (("texture", g_ema), ("texture_discriminator", d)):
        if module is None:  # the appearance architecture has no critic
            continue
        state = module.state_dict()
        if net_cfg.is_appearance:
            # half precision: its bases are 0.1 GB in float32 at 128 px, and the model ships inside the extension
            # zip; the error (about 1e-3 relative) is far below an 8-bit step, and readers widen it to float32
            state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
        write_safetensors_atomic(folder / f"{name}.safetensors", state)
    with atomic_path(folder / "template_crop.png") as tmp:
        shutil.copyfile(stored.path / "template_crop.png", tmp)
    write_text_atomic(folder / "texture.json", json.dumps(net_cfg.to_dict(), indent=1))


def check_expression_route(cfg: dict, run: Path) -> None:
    """Refuses a config whose texture.network asks for an expression route (the network's change maps, the measured
    templates) that the texture model trained in `run` lacks or has, naming the field."""
    texture = texture_section(cfg)
    saved = TextureNetConfig.from_dict(json.loads((run / "texture.json").read_text()))
    for field, default in (("architecture", "progressive"), ("expression_maps", False),
                           ("expression_templates", False), ("change_bases", "shared")):
        wanted = texture["network"].get(field, default)
        if wanted != getattr(saved, field):
            said = lambda v: str(v).lower() if isinstance(v, bool) else repr(v)
            raise ValueError(f"{texture['where']}.network.{field} is {said(wanted)}, but the texture model in "
                             f"{run} was trained with {field} {said(getattr(saved, field))} (expressions from "
                             f"{saved.expression_route}); retrain it (delete the folder, or `python -m train "
                             f"texture --config {cfg['name']}` into another --out) or set the field back")
