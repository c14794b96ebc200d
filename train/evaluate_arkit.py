"""`python -m train evaluate --config quick --set arkit`: the ARKit rig and the ARKit SAE + cGAN, against the data's
ground truth (each person's keys: ICT's shapes carried onto their face by the data generator).

Errors are per-vertex distances in mm, averaged over ICT's face region (where the keys act) and then over keys.
- keys: the learned rig (train/arkit_rig.py), ICT's identity-agnostic offsets (what a generic rig gives), and the
  SAE + cGAN's keys through its identity route (the SAE's identity encoder on the neutral, G_exp at zero noise and
  z_id 0), for training identities, held-out identities and faces of the main (FaceScape-expression) model;
  the fraction of the generic rig's error the learned rig removes on held-out identities (bar: > 0.5);
- takes: the held-out identities' recorded co-activations (frames after the range of motion), played by the rig
  (neutral + sum w_k key_k) beside the SAE + cGAN's own direct generation at the same weights (its displacement
  from its neutral, on the person's neutral) and the generic rig (bar: rig <= 1.25 x direct generation).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from core.atomic import write_text_atomic
from train.arkit_rig import load_rig
from train.data.arkit import ARKIT_RECIPES, MISSING_KEYS, RIG_NAMES, ROM_FRAMES
from train.data.expressions import FACESCAPE_EXPRESSIONS
from train.data.synthetic_sets import SyntheticARKit
from train.shape_runs import load_generator

GAP_BAR = 0.5
TAKE_BAR = 1.25
MAIN_MODEL_FACES = 6
_BROUGHT_INDEX = -1000  # the main model's faces, as identities of the data generator (negative: not sampled ones)


def generic_keys(source: SyntheticARKit) -> np.ndarray:
    """(51, V, 3) ICT's own offsets for each key: the same on every face."""
    ict = source.ict
    return np.stack([sum(w * ict.expression_basis[ict.expression_index(s)] for s, w in ARKIT_RECIPES[k].items())
                     for k in RIG_NAMES]).astype(np.float32)


class ModelRoute:
    """The ARKit SAE + cGAN as a rig: identity from the neutral by the SAE's identity encoder, G_exp at z_id 0 and
    zero noise (a person outside training has no z_id), meshes by the SAE's decoder."""

    def __init__(self, sae_dir: Path, gan_dir: Path):
        self.gen, _, self.cfg = load_generator(sae_dir, gan_dir)

    @torch.no_grad()
    def displacements(self, neutral: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """(B, V, 3) the model's mesh at each weight vector minus its mesh at rest, for this person."""
        sae = self.gen.sae
        mu_id = sae.encode_identity(sae.coder.encode(torch.from_numpy(np.asarray(neutral, np.float32))[None]))
        w = torch.cat([torch.zeros(1, weights.shape[1]), torch.from_numpy(np.asarray(weights, np.float32))])
        mu_exp = self.gen.g_exp(torch.zeros(len(w), self.cfg.z_id_dim), w, torch.zeros(len(w), self.cfg.z_noise_dim),
                                mu_id.expand(len(w), -1))
        meshes = sae.decode(mu_id.expand(len(w), -1), mu_exp).numpy()
        return meshes[1:] - meshes[:1]

    def keys(self, neutral: np.ndarray) -> np.ndarray:
        return self.displacements(neutral, np.eye(len(RIG_NAMES), dtype=np.float32))


def _key_errors(pred: np.ndarray, truth: np.ndarray, face: np.ndarray) -> np.ndarray:
    """(K,) mm per key."""
    return 10 * np.linalg.norm(pred[:, face] - truth[:, face], axis=-1).mean(1)


def main_model_neutrals(main_shape: Path, count: int, seed: int = 0) -> list[np.ndarray]:
    """Neutral faces of the main model's generator (identity seeds 0..count-1 as FaceModel draws them)."""
    from core.seeds import standard_normal
    gen, _, cfg = load_generator(main_shape / "sae", main_shape / "cgan")
    neutral_code = torch.zeros(count, cfg.num_expressions)
    neutral_code[:, FACESCAPE_EXPRESSIONS.index("1_neutral")] = 1.0
    z_id = torch.from_numpy(np.stack([standard_normal(s, cfg.z_id_dim) for s in range(seed, seed + count)]))
    with torch.no_grad():
        return list(gen(z_id, neutral_code, torch.zeros(count, cfg.z_noise_dim)).numpy())


def evaluate_arkit(cfg: dict, source: SyntheticARKit, sae_dir: Path, gan_dir: Path, rig_dir: Path, out_dir: Path,
                   main_shape: Path | None = None, people: int = 30) -> dict:
    rig = load_rig(rig_dir)
    model = ModelRoute(sae_dir, gan_dir)
    generic = generic_keys(source)
    face = source.template.region_vertices("face")
    groups: dict[str, list] = {}
    for split in ("train", "test"):
        groups[split] = [(source.identity(int(i)).neutral, source.true_keys(int(i)))
                         for i in source.splits[split][:people]]
    if main_shape is not None and (main_shape / "cgan" / "generators.safetensors").is_file():
        groups["main model"] = []
        for n, neutral in enumerate(main_model_neutrals(main_shape, MAIN_MODEL_FACES)):
            ident = source.shapes.identity_from_neutral(neutral, _BROUGHT_INDEX - n)
            groups["main model"].append((neutral, source.true_keys(ident)))
    keys = {}
    for group, faces in groups.items():
        errors = {"learned rig": [], "generic (ICT offsets)": [], "SAE + cGAN": []}
        for neutral, truth in faces:
            errors["learned rig"].append(_key_errors(rig.keys(neutral), truth, face))
            errors["generic (ICT offsets)"].append(_key_errors(generic, truth, face))
            errors["SAE + cGAN"].append(_key_errors(model.keys(neutral), truth, face))
        keys[group] = {k: {"mean_mm": float(np.mean(v)), "worst_key_mm": float(np.mean(v, 0).max()),
                           "worst_key": RIG_NAMES[int(np.mean(v, 0).argmax())],
                           "per_key_mm": dict(zip(RIG_NAMES, np.mean(v, 0).round(4).tolist()))}
                       for k, v in errors.items()}
    held = keys["test"]
    gap_closed = 1 - held["learned rig"]["mean_mm"] / held["generic (ICT offsets)"]["mean_mm"]

    takes = {"learned rig": [], "SAE + cGAN direct": [], "generic (ICT offsets)": []}
    frames = 0
    for i in source.splits["test"][:people]:
        i = int(i)
        rows = np.flatnonzero(source.frame_identity == i)[ROM_FRAMES:]
        w = source.arkit_weights[rows]
        neutral = source.identity(i).neutral
        truth = np.stack([source.mesh_for(i, x) for x in w]) - neutral
        learned = np.tensordot(w, rig.keys(neutral), axes=1)
        for name, pred in (("learned rig", learned), ("SAE + cGAN direct", model.displacements(neutral, w)),
                           ("generic (ICT offsets)", np.tensordot(w, generic, axes=1))):
            takes[name].append(_key_errors(pred, truth, face))
        frames += len(rows)
    takes = {k: float(np.mean(np.concatenate(v))) for k, v in takes.items()}
    take_ratio = takes["learned rig"] / takes["SAE + cGAN direct"]
    results = {"config": cfg["name"], "people_per_group": people, "keys": keys, "takes_mm": takes, "take_frames": frames,
               "gap_closed_held_out": float(gap_closed), "rig_over_direct": float(take_ratio),
               "bars": {"gap_closed_held_out": {"value": float(gap_closed), "bar": f"> {GAP_BAR}",
                                                "met": bool(gap_closed > GAP_BAR)},
                        "rig_over_direct": {"value": float(take_ratio), "bar": f"<= {TAKE_BAR}",
                                            "met": bool(take_ratio <= TAKE_BAR)}},
               "rig": {"keys": len(rig.names), "missing": dict(MISSING_KEYS),
                       "identity_components": rig.cfg.identity_components,
                       "offset_components": rig.cfg.offset_components}}
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out_dir / "report_arkit.json", json.dumps(results, indent=1))
    write_text_atomic(out_dir / "report_arkit.md", report_markdown(results))
    return results


def report_markdown(r: dict) -> str:
    def mark(bar: dict) -> str:
        return "met" if bar["met"] else "**MISSED**"

    bars = r["bars"]
    lines = [f"# ARKit rig evaluation ({r['config']} config)", "",
             f"Command: `python -m train evaluate --config {r['config']} --set arkit`. Errors: mm per vertex over "
             f"ICT's face region, mean over the {r['rig']['keys']} keys and {r['people_per_group']} people per group; "
             f"truth: the data generator's keys for that person.", "",
             f"The rig has {r['rig']['keys']} of ARKit's 52 keys; missing: " + "; ".join(
                 f"`{k}` ({why})" for k, why in r["rig"]["missing"].items()) + ".", "",
             "## Bars", "", "| bar | value | limit | |", "|---|---|---|---|",
             f"| generic rig's error removed on held-out people | {bars['gap_closed_held_out']['value']:.3f} | "
             f"{bars['gap_closed_held_out']['bar']} | {mark(bars['gap_closed_held_out'])} |",
             f"| rig on held-out takes / SAE + cGAN direct | {bars['rig_over_direct']['value']:.3f} | "
             f"{bars['rig_over_direct']['bar']} | {mark(bars['rig_over_direct'])} |", "",
             "## Keys", "", "| people | rig | mean mm | worst key |", "|---|---|---|---|"]
    for group, rows in r["keys"].items():
        label = {"train": "training identities", "test": "held-out identities"}.get(group, "faces of the main model")
        for name, v in rows.items():
            lines.append(f"| {label} | {name} | {v['mean_mm']:.3f} | {v['worst_key']} {v['worst_key_mm']:.3f} |")
    lines += ["", f"## Held-out takes ({r['take_frames']} frames of co-activations)", "", "| played by | mean mm |",
              "|---|---|"] + [f"| {k} | {v:.3f} |" for k, v in r["takes_mm"].items()]
    return "\n".join(lines) + "\n"
