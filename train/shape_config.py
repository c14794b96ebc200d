"""The `shape` section of a config: network widths and the SAE / cGAN training settings."""
from __future__ import annotations

from dataclasses import dataclass

from train.config import ConfigError

NETWORK_FIELDS = ("code_dim", "id_encoder", "exp_encoder", "decoder", "id_dim", "exp_dim", "z_id_dim",
                  "z_noise_dim", "generator", "discriminator")


@dataclass(frozen=True)
class SAETrainConfig:
    epochs: int
    batch_size: int
    lr: float
    recon_weight: float
    id_weight: float
    exp_weight: float
    seed: int


@dataclass(frozen=True)
class CGANTrainConfig:
    epochs: int
    batch_size: int
    lr_g: float
    lr_d: float
    seed: int
    z_id: str  # "gaussian": a fixed N(0, I) code per training identity; "onehot": its one-hot class vector


def _typed(section: dict, cls, where: str):
    out = {}
    for name, typ in cls.__annotations__.items():
        if name not in section:
            raise ConfigError(f"{where}.{name}: missing")
        value = section[name]
        expected = {"int": int, "float": (int, float), "str": str}[typ]
        if not isinstance(value, expected) or isinstance(value, bool):
            raise ConfigError(f"{where}.{name}: expected {typ}, got {value!r}")
        out[name] = value
    unknown = set(section) - set(cls.__annotations__)
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {sorted(unknown)}")
    return cls(**out)


def shape_section(cfg: dict) -> dict:
    where = f"{cfg.get('_path', cfg['name'])}: shape"
    shape = cfg.get("shape")
    if not isinstance(shape, dict):
        raise ConfigError(f"{where}: section missing")
    network = shape.get("network", {})
    unknown = set(network) - set(NETWORK_FIELDS)
    if unknown:
        raise ConfigError(f"{where}.network: unknown field(s) {sorted(unknown)}; known: {list(NETWORK_FIELDS)}")
    if "sae" not in shape:
        raise ConfigError(f"{where}.sae: missing")
    sae = _typed(shape["sae"], SAETrainConfig, f"{where}.sae")
    if sae.epochs < 1 or sae.batch_size < 1 or sae.lr <= 0:
        raise ConfigError(f"{where}.sae: epochs and batch_size must be >= 1 and lr > 0")
    cgan = None
    if "cgan" in shape:
        cgan = _typed(shape["cgan"], CGANTrainConfig, f"{where}.cgan")
        if cgan.z_id not in ("gaussian", "onehot"):
            raise ConfigError(f"{where}.cgan.z_id: expected 'gaussian' or 'onehot', got {cgan.z_id!r}")
        if cgan.epochs < 1 or cgan.batch_size < 1 or cgan.lr_g <= 0 or cgan.lr_d <= 0:
            raise ConfigError(f"{where}.cgan: epochs and batch_size must be >= 1, learning rates > 0")
    return {"network": network, "sae": sae, "cgan": cgan, "where": where}
