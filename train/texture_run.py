"""`python -m train texture`: build (or reuse) the config's set, then train the texture model of the config's
architecture: the paper's progressive GAN (train/texture.py) or the appearance model (train/texture_appearance.py).
"""
from __future__ import annotations

from pathlib import Path

from train.texture import train_texture
from train.texture_appearance import train_appearance
from train.texture_config import texture_section


def train_texture_model(cfg: dict, stored, out_dir: str | Path, resume: bool = False, device: str = "cpu",
                        progress: bool = True, data_workers: int | None = None) -> Path:
    """The texture run of cfg's texture.network.architecture, in out_dir."""
    architecture = texture_section(cfg)["network"].get("architecture", "progressive")
    train = train_appearance if architecture == "appearance" else train_texture
    return train(cfg, stored, out_dir, resume=resume, device=device, progress=progress, data_workers=data_workers)


def main(args) -> int:
    from train.config import data_config, load_config
    from train.data.cli import output_root, set_dir
    from train.data.synthetic_sets import StoredSet, build_set

    cfg = load_config(args.config)
    data_cfg = data_config(cfg)
    texture_section(cfg)  # config errors before any work
    if args.set == "arkit":
        raise ValueError("--set arkit: the ARKit-like set trains the ARKit shape model and rig; the texture model "
                         "trains on the FaceScape-like (expressions) or BP4D-like (action units) set")
    stored = StoredSet(build_set(args.set, data_cfg, set_dir(data_cfg.config_name, args.set)))
    out = Path(args.out) if args.out else output_root(data_cfg.config_name) / "texture" / (
        "texture" + ("_bp4d" if args.set == "bp4d" else ""))
    path = train_texture_model(cfg, stored, out, resume=args.resume, device=args.device,
                               data_workers=args.data_workers)
    print(f"texture run: {path}")
    return 0
