"""The `texture` section of a config: the network (the progressive GAN's widths, or the appearance architecture's
sizes) and its training schedule, whose fields depend on the architecture."""
from __future__ import annotations

from dataclasses import dataclass

from core.network_configs import CHANGE_BASES, TEXTURE_ARCHITECTURES
from train.config import ConfigError, model_section, typed_section

NETWORK_FIELDS = ("z_noise_dim", "id_gain", "exp_gain", "expression_templates", "expression_maps", "pixel_bias",
                  "start_resolution", "max_resolution", "channels", "architecture", "identity_components",
                  "change_components", "mapping", "change_bases")


@dataclass(frozen=True)
class TextureTrainConfig:
    epochs_per_phase: int  # a phase: one resolution's fade-in, or its stable training; an epoch: every image once
    first_phase_epochs: int  # the start resolution's (stable) phase: cheap, and where identity colour is learned
    # or, when > 0, this many images drawn afresh every epoch: a phase's length stays put as the set grows
    epoch_samples: int
    batch_size: int
    lr: float
    gp_weight: float  # WGAN-GP's lambda
    drift_weight: float  # Karras et al.'s epsilon_drift: keeps the critic's scores near 0
    id_weight: float
    exp_weight: float
    ema_beta: float  # the sampling generator follows the trained one with this moving-average decay per step
    # add the class heads' outputs for the given labels to the critic's score (a projection critic, Miyato & Koyama
    # 2018): realism is judged per identity and expression, so the generator cannot satisfy the class terms with
    # features real textures lack
    projection: bool
    # L1 between each generated texture and the real one of its identity and expression (every training identity is
    # scanned in every expression, so pairs exist). Not in the paper: the quick config needs it to learn the
    # conditioning within its CPU budget; the paper config keeps 0
    recon_weight: float
    # and on each image's fine detail (minus its 4x4-pixel block means), where wrinkles, the expressions' trace in
    # the texture, live; their share of a plain L1 is tiny next to skin tone
    recon_detail_weight: float
    # squared error between the generated and the real change from one of a person's textures to another of theirs
    # (another expression or frame of the same training identity, generated with the same noise): identity cancels
    # in the difference, so this term sees each person's own expression trace, which a plain L1 drowns in skin tone.
    # Squared, not L1: a change is sparse (most pixels of a fold-free region do not move), and L1's median pulls an
    # uncertain change to zero, where the squared error learns its mean first (a person's change correlated 0.04
    # with the real one after 2 minutes under L1 and 0.54 under the squared error, 8 identities at 128 px)
    pair_weight: float
    seed: int


@dataclass(frozen=True)
class AppearanceTrainConfig:
    """train/texture_appearance.py: the appearance space is fitted in closed form; these drive the MLP."""
    steps: int
    batch_identities: int  # a step takes every texture of this many training identities
    lr: float  # Adam's, decayed to 0 along a cosine over the steps (memorising coordinates wants a quiet end)
    seed: int


def texture_section(cfg: dict) -> dict:
    texture, network, where = model_section(cfg, "texture", NETWORK_FIELDS)
    if "train" not in texture:
        raise ConfigError(f"{where}.train: missing")
    architecture = network.get("architecture", "progressive")
    if architecture not in TEXTURE_ARCHITECTURES:
        raise ConfigError(f"{where}.network.architecture: expected one of {list(TEXTURE_ARCHITECTURES)}, got "
                          f"{architecture!r}")
    bases = network.get("change_bases", "shared")
    if bases not in CHANGE_BASES or (bases != "shared" and architecture != "appearance"):
        raise ConfigError(f"{where}.network.change_bases: expected one of {list(CHANGE_BASES)} (other than 'shared' "
                          f"only with architecture 'appearance'), got {bases!r}")
    if architecture == "appearance":
        train = typed_section(texture["train"], AppearanceTrainConfig, f"{where}.train")
        if train.steps < 1 or train.batch_identities < 1 or train.lr <= 0:
            raise ConfigError(f"{where}.train: steps and batch_identities must be >= 1 and lr > 0")
        return {"network": network, "train": train, "where": where}
    train = typed_section(texture["train"], TextureTrainConfig, f"{where}.train")
    if train.epochs_per_phase < 1 or train.first_phase_epochs < 1 or train.batch_size < 2 or train.lr <= 0 or train.epoch_samples < 0:
        raise ConfigError(f"{where}.train: epochs_per_phase and first_phase_epochs must be >= 1, batch_size >= 2 (the minibatch "
                          f"standard deviation needs pairs), lr > 0 and epoch_samples >= 0")
    if not 0 <= train.ema_beta < 1:
        raise ConfigError(f"{where}.train.ema_beta: expected a number in [0, 1), got {train.ema_beta!r}")
    return {"network": network, "train": train, "where": where}
