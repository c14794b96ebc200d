"""Export trained runs as a model folder in the hub layout that core.FaceModel loads.

    python -m train export --config quick [--set facescape|bp4d] [--out DIR] [--overwrite]

Takes the SAE's decoder and coder (not its encoders), G_id and G_exp with the training identities' z_id codes (not
the discriminator), the texture generator when one is trained, the learned ARKit rig when one is fitted (the
holistic model only), the template topology, UVs and texture, and writes config.json and a model card. The folder appears whole or not at all (written beside it, then renamed).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from core.atomic import write_safetensors_atomic, write_text_atomic
from core.face_model import FORMAT_VERSION
from core.shape_networks import MeshDecoder
from train.data.eyes import split_eye_materials
from train.data.layout import export_folder
from train.runs import run_suffix
from train.data.synthetic_sets import frame_weights, holds_weights

CARD_MARKER = "README.md"  # written last: marks a complete export


COMPACT = ("coder.basis",)  # stored as float16: half the model's size (inference reads them back as float32)


def _decoder_tensors(sae_dir: Path) -> dict[str, torch.Tensor]:
    """The SAE's tensors that MeshDecoder holds (its coder and decoder), not the encoders or heads; the PCA basis
    (the bulk of a quick model: 256 x 80,157 numbers) in float16, which moves vertices by micrometres
    (docs/benchmarks.md) where float32 would double the download."""
    return {k: (v.half() if k in COMPACT else v) for k, v in load_file(sae_dir / "sae.safetensors").items()
            if k.startswith(MeshDecoder.PARTS)}


def export_model(stored, sae_dir: Path, gan_dir: Path, texture_dir: Path | None, out: Path, name: str,
                 card: dict, overwrite: bool = False, rig_dir: Path | None = None) -> Path:
    """rig_dir: a fitted ARKit rig (train/arkit_rig.py) to ship with the model, so its faces can be rigged."""
    shape_cfg = json.loads((gan_dir / "cgan.json").read_text())
    gan_run = json.loads((gan_dir / "config.json").read_text())
    weights = holds_weights(stored)
    tensors = {**_decoder_tensors(sae_dir), **load_file(gan_dir / "generators.safetensors"),
               **load_file(gan_dir / "z_id.safetensors")}
    template = stored.template
    # the eyes drawn without ICT's eye textures: transparent outer shell, inner eyeball split into white, iris, pupil
    materials, material_names = split_eye_materials(template, np.asarray(stored.vertices[0, 0] if not weights
                                                                         else stored.vertices[0]))
    texture_cfg = json.loads((texture_dir / "texture.json").read_text()) if texture_dir else None
    config = {
        "format_version": FORMAT_VERSION, "name": name,
        "expression_labels": {"bp4d": "action_units", "arkit": "arkit_weights"}.get(stored.kind, "classes"),
        "expressions": list(frame_weights(stored)[0] if weights else stored.expression_names),
        # calibrated intensity measures every expression from this one (a weight-conditioned model: from all at 0)
        "neutral_expression": None if weights else next((n for n in stored.expression_names
                                                         if n.endswith("neutral")), None),
        "shape": shape_cfg, "texture": texture_cfg, "z_id": gan_run["cgan"]["z_id"],
        "texture_window": list(stored.meta["texture_windows"]["crop"]), "units": template.units,
        "trained_on": card["trained_on"], "license": card["license"],
        "materials": list(material_names),  # names of template.safetensors' polygon_materials
    }
    rig = None
    if rig_dir is not None:
        from train.arkit_rig import load_rig
        rig = load_rig(rig_dir)
        if rig.cfg.num_vertices != template.num_vertices:
            raise ValueError(f"{rig_dir}: the ARKit rig has {rig.cfg.num_vertices} vertices, the model "
                             f"{template.num_vertices}")
        config["arkit_rig"] = rig.cfg.to_dict()
    with export_folder(out, overwrite, CARD_MARKER) as work:
        write_safetensors_atomic(work / "shape.safetensors", tensors)
        write_safetensors_atomic(work / "template.safetensors", {
            "polygon_sizes": torch.from_numpy(template.polygon_sizes.astype("int32")),
            "polygon_vertices": torch.from_numpy(template.polygon_vertices.astype("int32")),
            "polygon_uv_indices": torch.from_numpy(template.polygon_uv_indices.astype("int32")),
            "uvs": torch.from_numpy(template.uvs.astype("float32")),
            **({"polygon_materials": torch.from_numpy(materials.astype("int32"))} if len(materials) else {})})
        shutil.copyfile(stored.path / "template_texture.png", work / "template_texture.png")
        if texture_dir:
            shutil.copyfile(texture_dir / "texture.safetensors", work / "texture.safetensors")
        if rig is not None:
            from train.arkit_rig import save_rig
            save_rig(rig, work, compact=True)
            (work / "arkit_rig.json").unlink()  # config.json holds its config
        write_text_atomic(work / "config.json", json.dumps(config, indent=1))
        write_text_atomic(work / CARD_MARKER, model_card(config, card))
    return out


def card_metrics(report: str) -> str:
    """An evaluation report as the card's Evaluation section: its title dropped, its headings one level down, no
    images (the card travels without them), and no heading left without content."""
    lines = [f"#{line}" if line.startswith("## ") else line for line in report.splitlines()
             if not line.startswith(("![", "# "))]
    kept = []
    for i, line in enumerate(lines):
        if line.startswith("#"):
            rest = next((x for x in lines[i + 1:] if x.strip()), "#")
            if rest.startswith("#"):
                continue  # a heading whose section was only images
        kept.append(line)
    return "\n".join(kept).strip()


def model_card(config: dict, card: dict) -> str:
    metrics = card.get("metrics") or "No evaluation report was found when this model was exported."
    kind = {"action_units": "action units (BP4D-like)", "arkit_weights": "ARKit blendshape weights (ARKit-like)"}.get(
        config["expression_labels"], "holistic expressions")
    return "\n".join([
        "---", f"license: {config['license'].lower()}", "library_name: facecam", "tags: [3d, face, gan, blender]",
        "---", "", f"# {config['name']}", "",
        f"A facecam model (3DFaceCAM: controllable 3D face generation) for {kind}: "
        f"{len(config['expressions'])} {'expressions' if config['expression_labels'] == 'classes' else 'weights'}, "
        f"{'with' if config['texture'] else 'without'} a texture model.", "",
        "## Training data", "", card["trained_on"], "",
        "## Evaluation", "", metrics, "",
        "## Intended use", "",
        "Generating stylised, synthetic head meshes for art, animation tests and research on controllable face "
        "models. The identities are synthetic; the model is not for identifying or imitating real people.", "",
        "## License", "", f"{config['license']}. The training data derive from ICT-FaceKit (MIT License, Copyright (c) "
        "2020 USC Institute for Creative Technologies; https://github.com/ICT-VGL/ICT-FaceKit).", ""])


def main(args) -> int:
    from train.config import data_config, load_config
    from train.data.cli import output_root, set_dir
    from train.data.synthetic_sets import StoredSet

    cfg = load_config(args.config)
    data_cfg = data_config(cfg)
    root = output_root(data_cfg.config_name)
    suffix = run_suffix(args.set)
    sae, gan = root / "shape" / f"sae{suffix}", root / "shape" / f"cgan{suffix}"
    texture = root / "texture" / f"texture{suffix}"
    for run, file, cmd in ((sae, "sae.safetensors", "sae"), (gan, "generators.safetensors", "cgan")):
        if not (run / file).is_file():
            raise FileNotFoundError(f"{run}: no finished run ({file}); run `python -m train {cmd} --config "
                                    f"{args.config} --set {args.set}` first")
    has_texture = (texture / "texture.safetensors").is_file()
    if not has_texture:
        print(f"note: no texture model at {texture}; exporting a shape-only model")
    else:
        from train.texture import check_expression_route
        check_expression_route(cfg, texture)
    report = root / "eval" / {"bp4d": "report_au.md", "arkit": "report_arkit.md"}.get(args.set, "report.md")
    card = {"trained_on": f"The synthetic {args.set} set of the `{data_cfg.config_name}` config, built from "
                          f"ICT-FaceKit by facecam's data generator (no FaceScape or BP4D data).",
            "license": "MIT", "metrics": card_metrics(report.read_text()) if report.is_file() else None}
    name = f"facecam-{data_cfg.config_name}{suffix.replace('_', '-')}"
    out = Path(args.out) if args.out else root / "export" / name
    stored = StoredSet(set_dir(data_cfg.config_name, args.set))
    rig = root / "shape" / "arkit_rig"
    has_rig = args.set == "facescape" and (rig / "arkit_rig.json").is_file()
    if args.set == "facescape" and not has_rig:
        print(f"note: no ARKit rig at {rig} (`python -m train arkit-rig`); exporting a model without one")
    export_model(stored, sae, gan, texture if has_texture else None, out, name, card, overwrite=args.overwrite,
                 rig_dir=rig if has_rig else None)
    print(f"model folder: {out}")
    return 0
