"""Train the supervised auto-encoder (Eq. 1) or, without its classification terms, the plain auto-encoder.

    python -m train sae --config quick [--unsupervised] [--resume] [--device cpu|cuda|auto]
    torchrun --nproc_per_node 2 -m train sae --config paper     # data parallel (gloo on CPU, nccl on GPUs)

Loss (Eq. 1): recon_weight * L1 reconstruction in the coder's normalised space (every vertex coordinate, or the PCA code for a
config with code_dim) + id_weight * CE(identity head,
identity label) + exp_weight * CE(expression head, expression label). Each head gets its own labels.
Beyond the paper, each switched in the config's `shape.sae` (the paper config keeps them off): a cosine learning-rate
decay, identity mixup (identity_mix: a mesh blended with another person's same expression, the identity
cross-entropy blended alike), AdamW weight decay; and, in `shape.network`, a linear path beside each MLP
(linear_skip). Measured on the quick set, `python -m train seeds`; see the README.
Writes, in the run folder: config.json, log.csv, checkpoint.pt (every epoch), and at the end sae.safetensors
with sae.json (the network config), plus embeddings.npz (mu_id, mu_exp and labels of the training set) for the
cGAN.
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from core.atomic import atomic_path, write_safetensors_atomic, write_text_atomic
from core.shape_networks import MeshCoder, ShapeNetConfig, SupervisedAutoEncoder
from train.data.synthetic_sets import frame_weights, holds_weights
from train.losses import expression_loss
from train.runs import epoch_order, run_suffix, finished_already, open_run, seed_everything, shutdown_distributed
from train.shape_config import shape_section


def training_meshes(stored) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(N, V, 3) meshes of the training identities, identity labels 0..n_train-1, and expression targets: class
    indices for a FaceScape-like set, action-unit intensities / 5 (N, A) for a BP4D-like one."""
    train_ids = stored.splits["train"]
    if holds_weights(stored):
        frames = np.flatnonzero(np.isin(stored.frame_identity, train_ids))
        meshes = torch.from_numpy(np.ascontiguousarray(stored.vertices[frames]))
        id_labels = torch.from_numpy(np.searchsorted(train_ids, stored.frame_identity[frames])).long()
        targets = torch.from_numpy(frame_weights(stored)[1][frames])
        return meshes, id_labels, targets
    n_exp = stored.vertices.shape[1]
    meshes = torch.from_numpy(np.ascontiguousarray(stored.vertices[train_ids])).reshape(-1, stored.vertices.shape[2], 3)
    id_labels = torch.arange(len(train_ids)).repeat_interleave(n_exp)
    exp_labels = torch.arange(n_exp).repeat(len(train_ids))
    return meshes, id_labels, exp_labels


def network_config(shape: dict, stored) -> ShapeNetConfig:
    labels = {"bp4d": "au_intensities", "arkit": "arkit_weights"}.get(getattr(stored, "kind", None), "classes")
    num_expressions = len(frame_weights(stored)[0]) if holds_weights(stored) else stored.vertices.shape[1]
    return ShapeNetConfig(num_vertices=stored.vertices.shape[-2], num_identities=len(stored.splits["train"]),
                          num_expressions=num_expressions, expression_labels=labels, **shape["network"])


# The most training meshes the coder's PCA is fitted on. Its Gram matrix grows with their square and its float64
# copy with their number: 14,400 ARKit-like meshes took 20 GB and minutes, 4,096 take 2.6 GB (the FaceScape-like and
# BP4D-like quick sets are below it and fit on every mesh).
CODER_FIT_MESHES = 4096


def fit_coder(coder: MeshCoder, meshes: torch.Tensor, stored) -> None:
    """Fit the coder to the training meshes, or load the fit that this set's training meshes gave before: the same
    bits, without the minute a 256-component PCA of 4,000 meshes takes here (the SAE, the plain AE and every seed
    share it). Kept in the set's folder, which a rebuild replaces whole; a normalise-only coder is not worth keeping."""
    folder = getattr(stored, "path", None)
    if len(meshes) > CODER_FIT_MESHES:  # an even subsample: the principal directions settle long before
        meshes = meshes[np.linspace(0, len(meshes) - 1, CODER_FIT_MESHES).round().astype(np.int64)]
    if not len(coder.basis) or folder is None:
        coder.fit(meshes)
        return
    cache = Path(folder) / f"coder-pca{len(coder.basis)}.safetensors"
    split = np.asarray(stored.splits["train"], dtype=np.int64)
    key = {"meshes": str(len(meshes)), "vertices": str(meshes.shape[1]),
           "train_identities": hashlib.sha256(split.tobytes()).hexdigest()}
    try:
        with safe_open(str(cache), "pt") as f:
            if f.metadata() == key:
                coder.load_state_dict({k: f.get_tensor(k) for k in f.keys()})
                return
    except Exception:  # noqa: BLE001 - missing or damaged: fit again and replace it
        pass
    coder.fit(meshes)
    try:
        write_safetensors_atomic(cache, coder.state_dict(), metadata=key)
    except OSError:  # a read-only set folder: no cache, same result
        pass


def sae_loss(out: dict, code, id_labels, exp_labels, sae_cfg, supervised: bool, mix=None) -> dict:
    """Eq. 1. mix = (the partner identities, the weights (B,) of the sample's own): identity cross-entropy blended."""
    # L1 in the coder's normalised space: every vertex coordinate over the data's spread for the paper config; for
    # a config with a PCA code, the principal coordinates (decoding all 80k coordinates each step would cost 20x
    # the network). Vertex errors in mm are the evaluation's job.
    l1 = (out["recon_code"] - code).abs().mean()
    ce_id = F.cross_entropy(out["id_logits"], id_labels)
    if mix is not None:
        partner, own = mix
        ce_id = (own * F.cross_entropy(out["id_logits"], id_labels, reduction="none")
                 + (1 - own) * F.cross_entropy(out["id_logits"], partner, reduction="none")).mean()
    exp_term, acc_exp = expression_loss(out["exp_logits"], exp_labels)
    total = sae_cfg.recon_weight * l1 + (sae_cfg.id_weight * ce_id + sae_cfg.exp_weight * exp_term if supervised else 0.0)
    return {"loss": total, "l1": l1, "ce_id": ce_id, "exp_loss": exp_term,
            "acc_id": (out["id_logits"].argmax(1) == id_labels).float().mean(), "acc_exp": acc_exp}


def train_sae(cfg: dict, stored, out_dir: str | Path, supervised: bool = True, resume: bool = False,
              device: str = "cpu", progress: bool = True) -> Path:
    shape = shape_section(cfg, action_units=holds_weights(stored), arkit=getattr(stored, "kind", None) == "arkit")
    sae_cfg = shape["sae"]
    net_cfg = network_config(shape, stored)
    snapshot = {"config": cfg["name"], "supervised": supervised, "network": net_cfg.to_dict(),
                "sae": sae_cfg.__dict__, "data": str(stored.path)}
    run, state, dist_info, dev = open_run(out_dir, snapshot, resume, device)
    if finished_already(run, state, sae_cfg.epochs, ("sae.safetensors", "sae.json", "embeddings.npz")):
        return run.path

    seed_everything(sae_cfg.seed)
    meshes, id_labels, exp_labels = training_meshes(stored)
    model = SupervisedAutoEncoder(net_cfg)
    fit_coder(model.coder, meshes, stored)  # deterministic from the data, so every rank has the same coder
    model.to(dev)
    trainable = {k: v for k, v in model.state_dict().items() if not k.startswith("coder.")}
    # fused: one kernel for all parameters (the quick SAE's step spent 2.7 of its ~10 ms in the per-tensor update)
    optimizer = (torch.optim.AdamW(model.parameters(), lr=sae_cfg.lr, weight_decay=sae_cfg.weight_decay, fused=True)
                 if sae_cfg.weight_decay else torch.optim.Adam(model.parameters(), lr=sae_cfg.lr, fused=True))
    start_epoch = 0
    if state is not None:
        missing, unexpected = model.load_state_dict(state["model"], strict=False)
        if unexpected or any(not k.startswith("coder.") for k in missing):  # only the coder is refitted
            raise ValueError(f"{out_dir}: checkpoint does not match the network (missing {missing}, "
                             f"unexpected {unexpected})")
        if "optimizer" in state:  # the last epoch's checkpoint has none: nothing is left to train
            optimizer.load_state_dict(state["optimizer"])
        start_epoch = int(state["epoch"])
    # The plain AE leaves the classification heads out of its loss: DDP must not wait for their gradients.
    trained = DistributedDataParallel(model, find_unused_parameters=not supervised) if dist_info.active else model

    with torch.no_grad():
        codes = model.coder.encode(meshes.to(dev))
    id_labels, exp_labels = id_labels.to(dev), exp_labels.to(dev)
    n = len(codes)
    # The plain AE uses no labels: identity mixup (partners with the same expression) and the identity swap (a
    # partner of the same person) both need them, so they belong to the SAE only.
    mixing_on = sae_cfg.identity_mix and supervised
    swap_weight = sae_cfg.identity_swap_weight if supervised else 0.0
    bar = tqdm(range(start_epoch, sae_cfg.epochs), desc=f"{'SAE' if supervised else 'AE'} epochs",
               disable=not (progress and dist_info.is_main), initial=start_epoch, total=sae_cfg.epochs)
    for epoch in bar:
        started = time.perf_counter()
        if sae_cfg.cosine_decay:
            for group in optimizer.param_groups:
                group["lr"] = sae_cfg.lr * 0.5 * (1 + math.cos(math.pi * epoch / sae_cfg.epochs))
        order = epoch_order(n, sae_cfg.seed, epoch, dist_info).to(dev)
        sums: dict[str, float] = {}
        steps = 0
        model.train()
        mixing = torch.Generator().manual_seed(sae_cfg.seed * 100003 + epoch + 90_000_001)  # same after a resume
        for b in range(0, len(order), sae_cfg.batch_size):
            idx = order[b:b + sae_cfg.batch_size]
            code, targets, mix = codes[idx], exp_labels[idx], None
            if mixing_on:
                partner = mix_partners(idx.cpu(), id_labels.cpu(), exp_labels.cpu(), mixing).to(dev)
                own = torch.rand(len(idx), generator=mixing).to(dev)
                code = own[:, None] * code + (1 - own[:, None]) * codes[partner]
                if targets.dtype.is_floating_point:  # action-unit intensities blend as the meshes do
                    targets = own[:, None] * targets + (1 - own[:, None]) * exp_labels[partner]
                mix = (id_labels[partner], own)
            out = trained(code)
            terms = sae_loss(out, code, id_labels[idx], targets, sae_cfg, supervised, mix)
            if swap_weight:
                own_code = codes[idx]
                other = same_person_partners(idx.cpu(), id_labels.cpu(), exp_labels.cpu(), mixing).to(dev)
                mu_exp = out["mu_exp"] if mix is None else model.encode_expression(own_code)
                swapped = model.decode_code(torch.cat([model.encode_identity(codes[other]), mu_exp], dim=1))
                terms["swap_l1"] = (swapped - own_code).abs().mean()
                terms["loss"] = terms["loss"] + swap_weight * terms["swap_l1"]
            optimizer.zero_grad(set_to_none=True)
            terms["loss"].backward()
            optimizer.step()
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
            steps += 1
        row = {"epoch": epoch, **{k: v / steps for k, v in sums.items()}, "seconds": time.perf_counter() - started}
        if dist_info.is_main:
            # The coder (82 MB in the quick config) is a fixed function of the data: refitted on resume, not saved
            # every epoch.
            weights = {k: v for k, v in model.state_dict().items() if k in trainable}
            # Log first: a kill between the two redoes this epoch and rewrites its row; the other order could
            # lose the row of an epoch the checkpoint already holds.
            run.log_row(row, epoch)
            # The last epoch's checkpoint only has to mark the run finished (and keep the weights until the export
            # is written): no optimizer state, two thirds of the paper SAE's 2.8 GB and 10 s of writing.
            last = epoch + 1 == sae_cfg.epochs
            run.save_checkpoint({"epoch": epoch + 1, "model": weights,
                                 **({} if last else {"optimizer": optimizer.state_dict()})})
            bar.set_postfix(l1=f"{row['l1']:.3f}", acc_id=f"{row['acc_id']:.2f}", acc_exp=f"{row['acc_exp']:.2f}")
    if dist_info.is_main:
        model.cpu().eval()
        export_sae(model, run.path)
        write_embeddings(model, meshes, id_labels.cpu(), exp_labels.cpu(), run.path / "embeddings.npz")
    shutdown_distributed()
    return run.path


def mix_partners(idx: torch.Tensor, id_labels: torch.Tensor, exp_labels: torch.Tensor,
                 generator: torch.Generator) -> torch.Tensor:
    """For each training sample, a random sample of another identity: with the same expression class when the
    labels are classes (the samples form an identity x expression grid, identity-major), any sample else."""
    n_ids = int(id_labels.max()) + 1
    shift = torch.randint(1, n_ids, (len(idx),), generator=generator)  # never the sample's own identity
    if exp_labels.dtype.is_floating_point:
        starts = torch.searchsorted(id_labels, torch.arange(n_ids))  # frames are grouped by identity
        counts = torch.bincount(id_labels, minlength=n_ids)
        other = (id_labels[idx] + shift) % n_ids
        return starts[other] + (torch.rand(len(idx), generator=generator) * counts[other]).long()
    n_exp = int(exp_labels.max()) + 1
    return ((id_labels[idx] + shift) % n_ids) * n_exp + exp_labels[idx]


def same_person_partners(idx: torch.Tensor, id_labels: torch.Tensor, exp_labels: torch.Tensor,
                          generator: torch.Generator) -> torch.Tensor:
    """For each training sample, a random other sample of the same person: another expression class (the grid is
    identity-major), or any other frame of the subject for action units."""
    n_ids = int(id_labels.max()) + 1
    if exp_labels.dtype.is_floating_point:
        starts = torch.searchsorted(id_labels, torch.arange(n_ids))
        counts = torch.bincount(id_labels, minlength=n_ids)
        person = id_labels[idx]
        shift = 1 + (torch.rand(len(idx), generator=generator) * (counts[person] - 1).clamp_min(1)).long()
        return starts[person] + (idx - starts[person] + shift) % counts[person]
    n_exp = int(exp_labels.max()) + 1
    shift = torch.randint(1, n_exp, (len(idx),), generator=generator)  # never the sample's own expression
    return id_labels[idx] * n_exp + (exp_labels[idx] + shift) % n_exp


def export_sae(model: SupervisedAutoEncoder, folder: Path) -> None:
    write_safetensors_atomic(folder / "sae.safetensors", model.state_dict())
    write_text_atomic(folder / "sae.json", json.dumps(model.cfg.to_dict(), indent=1))


@torch.no_grad()
def write_embeddings(model: SupervisedAutoEncoder, meshes, id_labels, exp_labels, path: Path) -> None:
    mu_id, mu_exp = zip(*(model.encode(meshes[i:i + 256]) for i in range(0, len(meshes), 256)))
    with atomic_path(path) as tmp:
        np.savez(tmp, mu_id=torch.cat(mu_id).numpy(), mu_exp=torch.cat(mu_exp).numpy(),
                 id_labels=id_labels.numpy(), exp_labels=exp_labels.numpy())


def main(args) -> int:
    """`python -m train sae`: build (or reuse) the config's FaceScape-like (or, --set bp4d, BP4D-like) set, then
    train."""
    from train.config import data_config, load_config
    from train.data.cli import output_root, set_dir
    from train.data.synthetic_sets import StoredSet, build_set

    cfg = load_config(args.config)
    data_cfg = data_config(cfg)
    shape_section(cfg)  # config errors before any work
    stored = StoredSet(build_set(args.set, data_cfg, set_dir(data_cfg.config_name, args.set)))
    out = Path(args.out) if args.out else output_root(data_cfg.config_name) / "shape" / (
        ("ae" if args.unsupervised else "sae") + run_suffix(args.set))
    path = train_sae(cfg, stored, out, supervised=not args.unsupervised, resume=args.resume, device=args.device)
    print(f"{'AE' if args.unsupervised else 'SAE'} run: {path}")
    return 0
