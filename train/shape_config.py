"""The `shape` section of a config: network widths and the SAE / cGAN training settings."""
from __future__ import annotations

from dataclasses import dataclass

from train.config import ConfigError, model_section, typed_section

NETWORK_FIELDS = ("code_dim", "id_encoder", "exp_encoder", "decoder", "id_dim", "exp_dim", "z_id_dim",
                  "z_noise_dim", "generator", "id_generator", "discriminator", "linear_skip",
                  "expression_sees_identity")


@dataclass(frozen=True)
class SAETrainConfig:
    epochs: int
    batch_size: int
    lr: float
    recon_weight: float
    id_weight: float
    exp_weight: float
    seed: int
    # Not in the paper (which gives no schedule): the learning rate follows a half cosine from lr to 0 over the
    # epochs, set per epoch (the same after a resume)
    cosine_decay: bool
    # Not in the paper: each training mesh is blended with a random other training identity's mesh of the same
    # expression (any frame, for action units), weight ~ U(0, 1), and the identity head's cross-entropy with the
    # two identities' by the same weights (mixup). Faces in correspondence blend into plausible faces (the
    # morphable-model assumption), so the networks see people between the training identities, not 200 points.
    identity_mix: bool
    # AdamW's decoupled weight decay (0: Adam, as the paper)
    weight_decay: float
    # Not in the paper: the weight of an L1 term on the mesh decoded from the identity embedding of the same
    # person's other expression (one drawn per sample and epoch) with the sample's own expression embedding. An
    # identity embedding that moves with expression cannot pass it, whatever the classification weights (0: off)
    identity_swap_weight: float


@dataclass(frozen=True)
class CGANTrainConfig:
    epochs: int
    batch_size: int
    lr_g: float
    lr_d: float
    seed: int
    z_id: str  # "gaussian": a fixed N(0, I) code per training identity; "onehot": its one-hot class vector
    # Both learning rates fall linearly to 0 over this last fraction of the epochs (0: constant). The paper gives no
    # schedule; on the quick set 0.5 lifts generated expression accuracy from 0.70 to 0.93.
    lr_decay_fraction: float
    # Not in the paper: an L1 term (in the embeddings' standardised units) pulling each training identity's
    # generated embeddings at zero noise onto its real ones: G_id(z_id, 0) onto the identity's mean mu_id, G_exp(z_id,
    # z_exp, 0) onto that person's mu_exp for the expression. The adversarial terms alone leave 200 identities
    # to an auxiliary classifier, whose accuracy then depends on the SAE instance (0.59-0.66 identity accuracy
    # on 32 identities); 0 is the paper's loss.
    paired_weight: float
    # Not in the paper: the paired term also on the samples D judges (drawn noise), not only at zero noise, so the
    # noise cannot move a training identity's generated embedding off its real one. Where the data hold one mesh per
    # (identity, condition), noise has nothing there to model: on the BP4D-like set G_exp used it to move the
    # action units (read back 0.44 levels off with noise, 0.23 at zero noise); on the FaceScape-like set the noise
    # costs no control, and pinning it doubled the error at intensity 1 (0.08 -> 0.17 mm), so it stays off there.
    # The term is then the mean over both passes (zero noise and drawn noise) at the same paired_weight.
    paired_with_noise: bool


# Overrides of the SAE / cGAN settings for the weight-conditioned models: `shape.action_units` for both the
# action-unit and the ARKit model (one mesh per identity and condition), `shape.arkit` on top for the ARKit model.
OVERRIDES = ("action_units", "arkit")


def shape_section(cfg: dict, action_units: bool = False, arkit: bool = False) -> dict:
    """The network widths and the SAE / cGAN settings; for the action-unit model (action_units) with
    `shape.action_units` ({"sae": {...}, "cgan": {...}}, the fields that differ) merged over them, for the ARKit
    model (arkit) with `shape.arkit` merged over those. Every version is checked whichever is asked for: a bad
    override fails every command, not only the ones that use it."""
    shape, network, where = model_section(cfg, "shape", NETWORK_FIELDS)
    layers = []
    for name in OVERRIDES:
        overrides = shape.get(name, {})
        if not isinstance(overrides, dict) or set(overrides) - {"sae", "cgan"}:
            raise ConfigError(f"{where}.{name}: expected an object with 'sae' and/or 'cgan' settings, got "
                              f"{overrides!r}")
        for key, fields in overrides.items():
            known = {"sae": SAETrainConfig, "cgan": CGANTrainConfig}[key].__dataclass_fields__
            unknown = sorted(set(fields) - set(known)) if isinstance(fields, dict) else None
            if unknown is None or unknown:
                raise ConfigError(f"{where}.{name}.{key}: expected an object of {key} fields, got "
                                  f"{fields!r}" + (f" (unknown: {unknown}; known: {sorted(known)})" if unknown else ""))
            if not isinstance(shape.get(key), dict):
                raise ConfigError(f"{where}.{name}.{key}: overrides {where}.{key}, which is missing")
        layers.append((name, overrides))
    versions, merged = {}, dict(shape)
    versions["holistic"] = _training_settings(shape, lambda key: f"{where}.{key}")
    for name, overrides in layers:
        merged = {**merged, **{key: {**merged[key], **fields} for key, fields in overrides.items()}}
        versions[name] = _training_settings(merged, lambda key, n=name: f"{where}.{n}.{key}")
    chosen = "arkit" if arkit else "action_units" if action_units else "holistic"
    sae, cgan = versions[chosen]
    used = [n for n, o in layers[:OVERRIDES.index(chosen) + 1] if o] if chosen != "holistic" else []
    return {"network": network, "sae": sae, "cgan": cgan,
            "where": f"{where} ({' + '.join(used)})" if used else where}


def _training_settings(shape: dict, where) -> tuple[SAETrainConfig, CGANTrainConfig | None]:
    """(SAE settings, cGAN settings or None) of a shape section; where(key): the name its errors start with."""
    if "sae" not in shape:
        raise ConfigError(f"{where('sae')}: missing")
    sae = typed_section(shape["sae"], SAETrainConfig, where("sae"))
    if sae.epochs < 1 or sae.batch_size < 1 or sae.lr <= 0 or sae.weight_decay < 0 or sae.identity_swap_weight < 0:
        raise ConfigError(f"{where('sae')}: epochs and batch_size must be >= 1, lr > 0, weight_decay and "
                          f"identity_swap_weight >= 0")
    if "cgan" not in shape:
        return sae, None
    cgan = typed_section(shape["cgan"], CGANTrainConfig, where("cgan"))
    if cgan.z_id not in ("gaussian", "onehot"):
        raise ConfigError(f"{where('cgan')}.z_id: expected 'gaussian' or 'onehot', got {cgan.z_id!r}")
    if cgan.epochs < 1 or cgan.batch_size < 1 or cgan.lr_g <= 0 or cgan.lr_d <= 0:
        raise ConfigError(f"{where('cgan')}: epochs and batch_size must be >= 1, learning rates > 0")
    if cgan.paired_weight < 0:
        raise ConfigError(f"{where('cgan')}.paired_weight: expected >= 0, got {cgan.paired_weight!r}")
    if cgan.paired_with_noise and cgan.paired_weight == 0:
        raise ConfigError(f"{where('cgan')}.paired_with_noise: true needs paired_weight > 0 (there is no paired "
                          f"term to extend)")
    if not 0 <= cgan.lr_decay_fraction <= 1:
        raise ConfigError(f"{where('cgan')}.lr_decay_fraction: expected a fraction in [0, 1], got "
                          f"{cgan.lr_decay_fraction!r}")
    return sae, cgan
