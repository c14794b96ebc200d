"""A model folder with networks of any size at random weights, for speed, memory and equality checks where no
model of that size has been trained (the paper configuration): an exported model's template, materials and
config, with shape and texture networks of the given sizes drawn at random, saved as the export saves them (the
PCA basis in float16). Random biases too: zeros would hide a lost or misplaced bias."""
from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

from core.network_configs import ShapeNetConfig, TextureNetConfig, shape_tensor_shapes, texture_tensor_shapes


def _draw(shapes: dict, rng: np.random.Generator) -> dict[str, np.ndarray]:
    out = {}
    for name, shape in shapes.items():
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        out[name] = (rng.standard_normal(shape, np.float32) / np.float32(np.sqrt(fan_in)))
    return out


def random_model(exported: Path, out: Path, shape: dict, texture: dict | None, seed: int = 0) -> Path:
    """A copy of the exported model folder `exported` at `out` whose networks are `shape` and `texture` (network
    sections as in configs/*.json; texture None: shape only) at random weights."""
    shutil.copytree(exported, out)
    config = json.loads((out / "config.json").read_text())
    n_exp = len(config["expressions"])
    rng = np.random.default_rng(seed)
    shape_cfg = ShapeNetConfig(num_vertices=config["shape"]["num_vertices"], num_identities=8, num_expressions=n_exp,
                               expression_labels=config["shape"].get("expression_labels", "classes"), **shape)
    tensors = _draw(shape_tensor_shapes(shape_cfg), rng)
    tensors["coder.scale"] = np.array(0.5, np.float32)
    for name in [k for k in tensors if k.endswith(".std")]:
        tensors[name] = np.abs(tensors[name]) + np.float32(0.5)
    tensors["coder.basis"] = tensors["coder.basis"].astype(np.float16)
    save_file(tensors, str(out / "shape.safetensors"))
    config["shape"] = shape_cfg.to_dict()
    (out / "texture.safetensors").unlink(missing_ok=True)
    config["texture"] = None
    if texture is not None:
        texture_cfg = TextureNetConfig(num_identities=8, num_expressions=n_exp, **texture)
        regions = None
        if texture_cfg.per_expression_changes:
            texture_cfg, regions = _random_regions(texture_cfg, rng)
        tensors = _draw(texture_tensor_shapes(texture_cfg), rng)
        if regions is not None:
            tensors["change_pixels"], tensors["change_offsets"] = regions
        save_file(tensors, str(out / "texture.safetensors"))
        config["texture"] = texture_cfg.to_dict()
    (out / "config.json").write_text(json.dumps(config, indent=1))
    return out


def _random_regions(cfg: TextureNetConfig, rng: np.random.Generator
                    ) -> tuple[TextureNetConfig, tuple[np.ndarray, np.ndarray]]:
    """Per-expression change regions as the quick model's are: none for the first expression (a neutral), 40% of
    the crop's pixels (all three channels) for each other one."""
    r2 = cfg.max_resolution ** 2
    parts = [np.zeros(0, np.int32)]
    for _ in range(1, cfg.num_expressions):
        where = np.sort(rng.choice(r2, size=int(0.4 * r2), replace=False))
        parts.append(np.concatenate([where + c * r2 for c in range(3)]).astype(np.int32))
    offsets = np.cumsum([0] + [len(p) for p in parts]).astype(np.int64)
    return replace(cfg, change_region_size=int(offsets[-1])), (np.concatenate(parts), offsets)


def config_networks(name: str) -> tuple[dict, dict]:
    """(shape network, texture network) sections of configs/NAME.json."""
    from train.config import load_config
    cfg = load_config(name)
    return cfg["shape"]["network"], cfg["texture"]["network"]
