"""Trained shape runs read back for evaluation, and the error measures every shape report shares."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from core.shape_control import ShapeGenerator
from core.shape_networks import (EmbeddingDiscriminator, ExpressionGenerator, IdentityGenerator, ShapeNetConfig,
                                 SupervisedAutoEncoder)


def load_sae(run: Path) -> SupervisedAutoEncoder:
    model = SupervisedAutoEncoder(ShapeNetConfig.from_dict(json.loads((run / "sae.json").read_text())))
    model.load_state_dict(load_file(run / "sae.safetensors"))
    return model.eval()


def load_generator(sae_run: Path, gan_run: Path) -> tuple[ShapeGenerator, torch.Tensor, ShapeNetConfig]:
    cfg = ShapeNetConfig.from_dict(json.loads((gan_run / "cgan.json").read_text()))
    g_id, g_exp = IdentityGenerator(cfg), ExpressionGenerator(cfg)
    weights = load_file(gan_run / "generators.safetensors")
    g_id.load_state_dict({k[5:]: v for k, v in weights.items() if k.startswith("g_id.")})
    g_exp.load_state_dict({k[6:]: v for k, v in weights.items() if k.startswith("g_exp.")})
    z_ids = load_file(gan_run / "z_id.safetensors")["z_id"]
    return ShapeGenerator(load_sae(sae_run), g_id.eval(), g_exp.eval()), z_ids, cfg


def load_discriminator(gan_run: Path) -> EmbeddingDiscriminator:
    model = EmbeddingDiscriminator(ShapeNetConfig.from_dict(json.loads((gan_run / "cgan.json").read_text())))
    model.load_state_dict(load_file(gan_run / "discriminator.safetensors"))
    return model.eval()


def reconstruction_table(rows: dict) -> list[str]:
    """Markdown rows of {model: {mean_mm, median_mm}}."""
    return ["| model | mean mm | median mm |", "|---|---|---|"] + [
        f"| {k} | {v['mean_mm']:.3f} | {v['median_mm']:.3f} |" for k, v in rows.items()]


def vertex_errors_mm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.linalg.norm(a - b, dim=-1) * 10
