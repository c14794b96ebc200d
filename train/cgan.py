"""Train the conditional GANs that sample the SAE's embedding spaces (Eq. 2-4, an auxiliary-classifier GAN).

    python -m train cgan --config quick [--sae outputs/quick/shape/sae] [--resume] [--device cpu]

D sees (mu_id, mu_exp): real pairs from the SAE's training embeddings, fake pairs (G_id(z_id, z_noise),
G_exp(z_id, z_exp, z_noise)). D maximises L_s + L_id + L_exp (real/fake, identity and expression heads, on real
and fake). G_id minimises L_s - L_id and G_exp minimises L_s - L_exp: each generator gets the gradient of the
adversarial term and of its own head only. z_id is a fixed code per training identity (Gaussian, or one-hot);
z_exp is the expression's one-hot vector, or for an AU model the frame's action-unit intensities / 5 (and the
expression heads regress them).
Writes, in the run folder: config.json, log.csv, checkpoint.pt, and generators.safetensors (G_id, G_exp),
discriminator.safetensors, z_id.safetensors (the codes of the training identities), cgan.json.
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from core.atomic import write_safetensors_atomic, write_text_atomic
from core.shape_networks import EmbeddingDiscriminator, ExpressionGenerator, IdentityGenerator, ShapeNetConfig
from train.losses import expression_loss
from train.runs import epoch_order, finished_already, run_suffix, open_run, seed_everything, shutdown_distributed
from train.shape_config import CGANTrainConfig, shape_section


def identity_codes(num_identities: int, dim: int, kind: str, seed: int) -> torch.Tensor:
    """The fixed z_id of each training identity."""
    if kind == "onehot":
        return torch.eye(num_identities)
    return torch.randn(num_identities, dim, generator=torch.Generator().manual_seed(seed * 7919 + 1))


class ShapeGAN(nn.Module):
    def __init__(self, net_cfg: ShapeNetConfig):
        super().__init__()
        self.g_id = IdentityGenerator(net_cfg)
        self.g_exp = ExpressionGenerator(net_cfg)
        self.d = EmbeddingDiscriminator(net_cfg)


def generate_with_noise(gan: ShapeGAN, z_id, z_exp, z_noise):
    """(G_id, G_exp) for the codes. G_exp sees G_id's output detached (where it takes it at all): its loss must not
    move G_id, as the per-generator losses of Eq. 3 and 4 say."""
    mu_id = gan.g_id(z_id, z_noise)
    return mu_id, gan.g_exp(z_id, z_exp, z_noise, mu_id.detach())


def discriminator_loss(gan: ShapeGAN, real, fake, id_labels, exp_labels) -> dict:
    """L_s + L_id + L_exp as D maximises them (written as losses to minimise), on real and fake pairs."""
    rf_real, id_real, exp_real = gan.d(*real)
    rf_fake, id_fake, exp_fake = gan.d(fake[0].detach(), fake[1].detach())
    exp_real_loss, acc_exp = expression_loss(exp_real, exp_labels)
    loss = (F.binary_cross_entropy_with_logits(rf_real, torch.ones_like(rf_real))
            + F.binary_cross_entropy_with_logits(rf_fake, torch.zeros_like(rf_fake))
            + F.cross_entropy(id_real, id_labels) + exp_real_loss
            + F.cross_entropy(id_fake, id_labels) + expression_loss(exp_fake, exp_labels)[0])
    return {"d": loss, "acc_id_real": (id_real.argmax(1) == id_labels).float().mean(), "acc_exp_real": acc_exp}


def generator_losses(gan: ShapeGAN, fake, id_labels, exp_labels, paired=None, paired_weight: float = 0.0) -> dict:
    """G_id: L_s - L_id; G_exp: L_s - L_exp (as losses: the adversarial term plus its own head's CE). D judges each
    generator's output beside the other's detached, so each loss reaches only its own generator and one backward
    pass of the sum gives each the gradient of its own loss (Eq. 3 and 4). With `paired` = ((G_id, G_exp) at zero
    noise, and with drawn noise too where paired_with_noise; (target mu_id, target mu_exp)), each generator also gets
    paired_weight x the L1 distance to its target in standardised units."""
    mu_id, mu_exp = fake
    rf_id, id_logits, _ = gan.d(mu_id, mu_exp.detach())
    rf_exp, _, exp_logits = gan.d(mu_id.detach(), mu_exp)
    exp_term, acc_exp = expression_loss(exp_logits, exp_labels)
    out = {"g_id": F.binary_cross_entropy_with_logits(rf_id, torch.ones_like(rf_id)) + F.cross_entropy(id_logits,
                                                                                                         id_labels),
           "g_exp": F.binary_cross_entropy_with_logits(rf_exp, torch.ones_like(rf_exp)) + exp_term,
           "acc_id_fake": (id_logits.argmax(1) == id_labels).float().mean(), "acc_exp_fake": acc_exp}
    if paired is not None:
        (gen_id, gen_exp), (target_id, target_exp) = paired
        out["paired_id"] = (gan.d.id_scale.standardise(gen_id) - gan.d.id_scale.standardise(target_id)).abs().mean()
        out["paired_exp"] = (gan.d.exp_scale.standardise(gen_exp)
                             - gan.d.exp_scale.standardise(target_exp)).abs().mean()
        out["g_id"] = out["g_id"] + paired_weight * out["paired_id"]
        out["g_exp"] = out["g_exp"] + paired_weight * out["paired_exp"]
    return out


def _step_generators(gan: ShapeGAN, losses: dict, optimizer: torch.optim.Optimizer) -> None:
    """G_id follows L_s + CE_id only, G_exp follows L_s + CE_exp only (the paper's Eq. 3 and 4): generator_losses
    keeps each loss off the other generator, so the summed loss's gradient is each one's own. (D's parameters get
    gradients too; D's step clears them before its own backward pass.)"""
    optimizer.zero_grad(set_to_none=True)
    (losses["g_id"] + losses["g_exp"]).backward()
    optimizer.step()


def cgan_step(gan: ShapeGAN, opt_d, opt_g, batch: dict, noise_dim: int, train_cfg: CGANTrainConfig) -> dict:
    """One D step, then one generator step, on a batch: z_id, z_exp, real (mu_id, mu_exp), ids, exps and, with
    train_cfg.paired_weight > 0, targets (mu_id, mu_exp) for the generators at zero noise (and, paired_with_noise,
    for the noisy samples as well). The generators run once, on the codes with noise and (paired) the same codes at
    zero noise in one pass; D steps on the noisy samples detached, then the generators step on those same samples
    against the updated D."""
    z_id, z_exp = batch["z_id"], batch["z_exp"]
    n = len(z_id)
    noise = torch.randn(n, noise_dim, device=z_id.device)
    paired_weight = train_cfg.paired_weight
    if paired_weight > 0:
        mu_id, mu_exp = generate_with_noise(gan, z_id.repeat(2, 1), z_exp.repeat(2, 1),
                                            torch.cat([noise, torch.zeros_like(noise)]))
        fake = mu_id[:n], mu_exp[:n]
        if train_cfg.paired_with_noise:
            paired = (mu_id, mu_exp), tuple(t.repeat(2, 1) for t in batch["targets"])
        else:
            paired = (mu_id[n:], mu_exp[n:]), batch["targets"]
    else:
        fake, paired = generate_with_noise(gan, z_id, z_exp, noise), None
    d_terms = discriminator_loss(gan, batch["real"], fake, batch["ids"], batch["exps"])
    opt_d.zero_grad(set_to_none=True)
    d_terms["d"].backward()
    opt_d.step()
    g_terms = generator_losses(gan, fake, batch["ids"], batch["exps"], paired, paired_weight)
    _step_generators(gan, g_terms, opt_g)
    return {**d_terms, **g_terms}


def learning_rate_factor(epoch: int, epochs: int, decay_fraction: float) -> float:
    """1 until the last decay_fraction of the epochs, then falling linearly to 1/(decay epochs) at the last one."""
    if decay_fraction <= 0:
        return 1.0
    return min(1.0, (epochs - epoch) / (decay_fraction * epochs))


def train_cgan(cfg: dict, sae_dir: str | Path, out_dir: str | Path, resume: bool = False, device: str = "cpu",
               progress: bool = True) -> Path:
    sae_dir = Path(sae_dir)
    net_cfg = ShapeNetConfig.from_dict(json.loads((sae_dir / "sae.json").read_text()))
    shape = shape_section(cfg, action_units=net_cfg.weight_conditioned,
                          arkit=net_cfg.expression_labels == "arkit_weights")
    gcfg = shape["cgan"]
    if gcfg is None:
        raise ValueError(f"{shape['where']}.cgan: missing")
    emb = np.load(sae_dir / "embeddings.npz")
    n_ids = int(emb["id_labels"].max()) + 1
    z_ids = identity_codes(n_ids, net_cfg.z_id_dim, gcfg.z_id, gcfg.seed)
    net_cfg = dataclasses.replace(net_cfg, z_id_dim=z_ids.shape[1])
    snapshot = {"config": cfg["name"], "cgan": gcfg.__dict__, "network": net_cfg.to_dict(), "sae": str(sae_dir)}
    run, state, place, dev = open_run(out_dir, snapshot, resume, device)
    if finished_already(run, state, gcfg.epochs, ("generators.safetensors", "discriminator.safetensors",
                                                  "z_id.safetensors", "cgan.json")):
        return run.path
    if place.active:
        # The generators step on per-head gradients (autograd.grad), which DDP's all-reduce hooks never see, and
        # the data is a few thousand 130-d embeddings: one process is the right size.
        raise ValueError("the cGAN trains in one process; run `python -m train cgan` without torchrun")

    seed_everything(gcfg.seed)
    gan = ShapeGAN(net_cfg)
    scales = {"mu_id": [gan.g_id.scale, gan.d.id_scale], "mu_exp": [gan.g_exp.scale, gan.d.exp_scale]}
    if net_cfg.expression_sees_identity:
        scales["mu_id"].append(gan.g_exp.id_scale)
    for key, fitted in scales.items():
        for scale in fitted:
            scale.fit(torch.from_numpy(emb[key]))
    gan.to(dev)
    # fused: one kernel for all parameters (the quick generators' per-tensor update took 2.3 of a step's ~19 ms)
    opt_g = torch.optim.Adam([*gan.g_id.parameters(), *gan.g_exp.parameters()], lr=gcfg.lr_g, betas=(0.5, 0.999),
                             fused=True)
    opt_d = torch.optim.Adam(gan.d.parameters(), lr=gcfg.lr_d, betas=(0.5, 0.999), fused=True)
    start = 0
    if state is not None:
        gan.load_state_dict(state["model"])
        opt_g.load_state_dict(state["opt_g"])
        opt_d.load_state_dict(state["opt_d"])
        start = int(state["epoch"])
    mu_id, mu_exp = torch.from_numpy(emb["mu_id"]).to(dev), torch.from_numpy(emb["mu_exp"]).to(dev)
    id_labels = torch.from_numpy(emb["id_labels"]).long().to(dev)
    exp_labels = torch.from_numpy(emb["exp_labels"]).to(dev)
    au = exp_labels.dtype.is_floating_point  # action-unit intensities / 5: z_exp is that vector itself
    exp_labels = exp_labels if au else exp_labels.long()
    z_ids_dev, eye_exp = z_ids.to(dev), torch.eye(net_cfg.num_expressions, device=dev)
    # each identity's mean identity embedding: what G_id at zero noise (and with noise, paired_with_noise) is pulled
    # onto (paired_weight > 0)
    id_centroids = torch.zeros(n_ids, mu_id.shape[1], device=dev).index_add_(0, id_labels, mu_id) / torch.bincount(
        id_labels, minlength=n_ids).clamp_min(1)[:, None]
    bar = tqdm(range(start, gcfg.epochs), desc="cGAN epochs", disable=not (progress and place.is_main),
               initial=start, total=gcfg.epochs)
    for epoch in bar:
        started = time.perf_counter()
        factor = learning_rate_factor(epoch, gcfg.epochs, gcfg.lr_decay_fraction)  # from the epoch: same after a resume
        for optimizer, lr in ((opt_g, gcfg.lr_g), (opt_d, gcfg.lr_d)):
            for group in optimizer.param_groups:
                group["lr"] = lr * factor
        torch.manual_seed(gcfg.seed * 100003 + epoch + 50_000_017)  # z_noise: its own stream, same after a resume
        order = epoch_order(len(mu_id), gcfg.seed, epoch, place).to(dev)
        sums, steps = {}, 0
        for b in range(0, len(order), gcfg.batch_size):
            idx = order[b:b + gcfg.batch_size]
            ids, exps = id_labels[idx], exp_labels[idx]
            terms = cgan_step(gan, opt_d, opt_g, {"z_id": z_ids_dev[ids], "z_exp": exps if au else eye_exp[exps],
                                                  "real": (mu_id[idx], mu_exp[idx]), "ids": ids, "exps": exps,
                                                  "targets": (id_centroids[ids], mu_exp[idx])},
                              net_cfg.z_noise_dim, gcfg)
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
            steps += 1
        row = {"epoch": epoch, **{k: v / steps for k, v in sums.items()}, "lr_factor": factor,
               "seconds": time.perf_counter() - started}
        if place.is_main:
            run.log_row(row, epoch)  # before the checkpoint, as in train/sae.py
            run.save_checkpoint({"epoch": epoch + 1, "model": gan.state_dict(), "opt_g": opt_g.state_dict(),
                                 "opt_d": opt_d.state_dict()})
            bar.set_postfix(acc_exp_fake=f"{row['acc_exp_fake']:.2f}", acc_id_fake=f"{row['acc_id_fake']:.2f}")
    if place.is_main:
        export_cgan(gan.cpu(), z_ids, net_cfg, run.path)
    shutdown_distributed()
    return run.path


def export_cgan(gan: ShapeGAN, z_ids: torch.Tensor, net_cfg: ShapeNetConfig, folder: Path) -> None:
    for name, tensors in (("generators", {**{f"g_id.{k}": v for k, v in gan.g_id.state_dict().items()},
                                          **{f"g_exp.{k}": v for k, v in gan.g_exp.state_dict().items()}}),
                          ("discriminator", gan.d.state_dict()), ("z_id", {"z_id": z_ids})):
        write_safetensors_atomic(folder / f"{name}.safetensors", tensors)
    write_text_atomic(folder / "cgan.json", json.dumps(net_cfg.to_dict(), indent=1))


def main(args) -> int:
    from train.config import load_config
    from train.data.cli import output_root

    cfg = load_config(args.config)
    shape_section(cfg)
    root = output_root(cfg["name"]) / "shape"
    suffix = run_suffix(args.set)
    sae_dir = Path(args.sae) if args.sae else root / f"sae{suffix}"
    if not (sae_dir / "embeddings.npz").is_file():
        raise FileNotFoundError(f"{sae_dir}: no trained SAE (embeddings.npz); run `python -m train sae --config "
                                f"{args.config} --set {args.set}` first, or pass --sae")
    path = train_cgan(cfg, sae_dir, Path(args.out) if args.out else root / f"cgan{suffix}", resume=args.resume,
                      device=args.device)
    print(f"cGAN run: {path}")
    return 0
