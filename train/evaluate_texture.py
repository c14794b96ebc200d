"""Evaluate a trained texture GAN: `python -m train evaluate-texture --config quick` -> texture_report.md + PNGs.

  realism      sliced Wasserstein distance (Karras et al. 2018, appendix D) between 7x7 patches of the Laplacian
               pyramids of generated and training textures, per pyramid level, x 1e3; beside it the same distance
               between held-out real textures and the training ones (what "as real as real" scores)
  control      expression accuracy of generated textures under a classifier trained on real training textures
               (PCA-200 of the pixels + linear; its accuracy on real held-out textures beside it; with expression
               templates also without them, and of the templates alone on the template texture); skin-tone bin
               accuracy (the identity's melanin quartile, from the data generator) under a linear classifier on
               real training textures' mean colour (beside it, under the pixel classifier); identity consistency:
               the share of one z_id's expressions that a real-texture identity classifier gives the same identity
  grid.png     identities x expressions at intensities 0.5, 1, 1.5 (rows: identity and intensity)
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from core.atomic import write_png_atomic, write_text_atomic
from core.texture_appearance import texture_generator
from core.texture_networks import TextureGenerator, TextureNetConfig
from core.shape_control import interpolate
from train.evaluate import fit_linear_classifier
from train.evaluate_intensity import NEUTRAL
from train.data.crops import crop_rows, identity_rows
from train.texture import downsample, images_per_batch, image_grid, to_uint8, to_unit_range
from train.texture_change import changes_from_neutral, crispness, paired_change
from train.texture_swd import swd_per_level


def load_texture_generator(run: Path) -> tuple[TextureGenerator, torch.Tensor]:
    """(the moving-average generator, the template crop in [-1, 1] as (1, 3, R, R))."""
    g = texture_generator(TextureNetConfig.from_dict(json.loads((run / "texture.json").read_text())))
    g.load_state_dict(load_file(run / "texture.safetensors"))
    from PIL import Image
    template = to_unit_range(np.asarray(Image.open(run / "template_crop.png").convert("RGB")))[None]
    return g.eval(), downsample(template, g.cfg.max_resolution)


# --- classifiers trained on real textures ---------------------------------------------------------------------

class RealTextureClassifier:
    """A linear classifier on the leading principal components of real textures (at the model's resolution)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, components: int = 200, seed: int = 0):
        x = images.flatten(1)
        self.mean = x.mean(0)
        with torch.random.fork_rng():  # pca_lowrank is randomised: seeded, so a report does not depend on what ran before
            torch.manual_seed(seed)
            _, _, v = torch.pca_lowrank(x - self.mean, q=min(components, len(x) - 1), center=False, niter=4)
            self.basis = v
            codes = (x - self.mean) @ v
            self.std = codes.std(0).clamp_min(1e-8)
            self.head = fit_linear_classifier(codes / self.std, labels)

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(((images.flatten(1) - self.mean) @ self.basis) / self.std).argmax(1)


class MeanColourClassifier:
    """A linear classifier on an image's mean colour, for the skin-tone bin (a melanin quartile): on held-out real
    textures it scores 0.93 where the pixel classifier above scores 0.60 (quick set), because the pixel one learns
    the 32 training identities themselves rather than their tone."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, seed: int = 0):
        colours = images.mean(dim=(2, 3))
        self.mean, self.std = colours.mean(0), colours.std(0).clamp_min(1e-8)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.head = fit_linear_classifier((colours - self.mean) / self.std, labels, epochs=1000)

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> torch.Tensor:
        return self.head((images.mean(dim=(2, 3)) - self.mean) / self.std).argmax(1)


# Real and generated textures per split are held as float32 tensors: at most this many values each (2 GiB), so a
# 512 px model is evaluated on its first identities (34 of them) instead of needing tens of GB; 64 px sets fit whole.
EVAL_VALUES = 2 ** 29


def identities_within_budget(resolution: int, num_expressions: int) -> int:
    return max(4, EVAL_VALUES // (num_expressions * 3 * resolution * resolution))


def _real(stored, data_cfg, split: str | tuple[str, ...], resolution: int, limit: int
          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The first `limit` identities of the split(s): crops (stored, or synthesised), identities, expressions."""
    ids = np.concatenate([stored.splits[s] for s in ((split,) if isinstance(split, str) else split)])[:limit]
    e = len(stored.expression_names)
    crops = crop_rows(stored, data_cfg, identity_rows(ids, e))
    try:
        batches = [np.arange(i, min(i + 64, len(crops))) for i in range(0, len(crops), 64)]
        x = torch.cat([downsample(to_unit_range(batch), resolution) for batch in crops.stream(batches)])
    finally:
        crops.close()
    return x, torch.from_numpy(ids).repeat_interleave(e), torch.arange(e).repeat(len(ids))


@torch.no_grad()
def generate_textures(g: TextureGenerator, template: torch.Tensor, z_id, z_exp, noise: torch.Tensor,
                      batch: int | None = None) -> torch.Tensor:
    """template + the generator's output for each row."""
    if batch is None:
        batch = images_per_batch(g.cfg.max_resolution)
    return torch.cat([template + g(z_id[i:i + batch], z_exp[i:i + batch], noise[i:i + batch])
                      for i in range(0, len(z_id), batch)])


def people_in_every_expression(g: TextureGenerator, template: torch.Tensor, z_ids: torch.Tensor, seed: int
                               ) -> torch.Tensor:
    """(N, E, 3, R, R): each z_id in every expression at intensity 1, one noise draw per person (as a face's
    textures share it)."""
    n, n_exp = len(z_ids), g.cfg.num_expressions
    noise = torch.randn(n, g.cfg.z_noise_dim, generator=torch.Generator().manual_seed(seed))
    x = generate_textures(g, template, z_ids.repeat_interleave(n_exp, 0), torch.eye(n_exp).repeat(n, 1),
                          noise.repeat_interleave(n_exp, 0))
    return x.view(n, n_exp, *x.shape[1:])


@torch.no_grad()
def network_alone(g: TextureGenerator, people: torch.Tensor) -> torch.Tensor:
    """people_in_every_expression's textures (N, E, 3, R, R) without the measured expression templates: what the
    network itself generates, flattened to (N x E, 3, R, R)."""
    offsets = g.expression_offset(torch.eye(g.cfg.num_expressions), people.shape[-1])
    return (people if offsets is None else people - offsets).flatten(0, 1)


NEW_IDENTITIES = 50  # sampled z_id evaluated beside the training ones


def texture_bars(r: dict) -> list[dict]:
    """Every bar with its measured value, its limit and whether it is met."""
    bars = []

    def bar(name, value, limit, ok):
        bars.append({"bar": name, "value": round(float(value), 4), "limit": limit, "met": bool(ok)})

    for level, generated in r["swd_generated_vs_train"].items():
        real = r["swd_heldout_real_vs_train"][level]
        bar(f"SWD x 1e3 at {level} px, generated vs training", generated, f"<= 2 x held-out real ({2 * real:.1f})",
            generated <= 2 * real)
    bar("skin-tone bin accuracy", r["skin_tone_accuracy"], ">= 0.90", r["skin_tone_accuracy"] >= 0.90)
    bar("identity consistency across expressions", r["identity_consistency"], ">= 0.90",
        r["identity_consistency"] >= 0.90)
    reference = r["identity_accuracy_real_heldout_views"]
    bar("identity accuracy, training z_id (held-out views)", r["identity_accuracy"],
        f">= real held-out views - 0.10 ({reference - 0.10:.3f})", r["identity_accuracy"] >= reference - 0.10)
    bar("expression accuracy of the network alone", r["expression_accuracy_network"], ">= 0.90",
        r["expression_accuracy_network"] >= 0.90)
    if "paired_change" in r:
        pc = r["paired_change"]
        bar("paired change correlation", pc["generated"]["mean"],
            f">= mean change + 0.10 ({pc['mean_change']['mean'] + 0.10:.3f})",
            pc["generated"]["mean"] >= pc["mean_change"]["mean"] + 0.10)
        cr = r["crispness"]
        bar("crispness: change SWD x 1e3 at the finest level", cr["generated"]["mean"],
            f"<= half the mean change's ({cr['mean_change']['mean'] / 2:.1f})",
            cr["generated"]["mean"] <= cr["mean_change"]["mean"] / 2)
    return bars


def evaluate_texture(stored, source, run: Path, z_ids: torch.Tensor, out_dir: Path, config: str,
                     new_identity_codes: torch.Tensor | None = None) -> dict:
    """new_identity_codes: sampled z_id to evaluate beside the training ones (None: training identities only)."""
    g, template = load_texture_generator(run)
    res, n_exp = g.cfg.max_resolution, g.cfg.num_expressions
    names = list(stored.expression_names)
    neutral = names.index(NEUTRAL) if NEUTRAL in names else None
    limit = identities_within_budget(res, n_exp)
    train_x, train_person, train_exp = _real(stored, source.cfg, "train", res, limit)
    # the texture model trains on neither validation nor test identities
    held_x, held_person, held_exp = _real(stored, source.cfg, ("val", "test"), res, limit)
    z_ids = z_ids[:limit]  # the same training identities as train_x
    n_ids = len(z_ids)
    people = people_in_every_expression(g, template, z_ids, seed=0)
    fake = people.flatten(0, 1)
    fake_exp = torch.arange(n_exp).repeat(n_ids)

    exp_clf = RealTextureClassifier(train_x, train_exp)
    bins = lambda persons: torch.tensor([source.skin(int(p)).skin_tone_bin for p in persons])
    tone_clf = MeanColourClassifier(train_x, bins(train_person))
    tone_pixels = RealTextureClassifier(train_x, bins(train_person))
    id_labels = torch.from_numpy(np.searchsorted(stored.splits["train"], train_person.numpy()))
    # identity: a classifier trained on half of each training identity's expressions (its "views"), scored on the
    # other half, real and generated alike
    seen = train_exp % 2 == 0
    id_clf = RealTextureClassifier(train_x[seen], id_labels[seen])
    id_pred = id_clf.predict(fake).reshape(n_ids, n_exp)
    unseen_views = torch.arange(n_exp) % 2 == 1
    mode = torch.mode(id_pred, dim=1).values
    train_tone = bins(stored.splits["train"]).repeat_interleave(n_exp)
    results = {
        "config": config,
        "resolution": res,
        "expression_route": g.cfg.expression_route,
        "identities_evaluated": n_ids,  # training identities (and at most as many held-out ones)
        "swd_generated_vs_train": swd_per_level(fake, train_x[:len(fake)]),
        "swd_heldout_real_vs_train": swd_per_level(held_x, train_x[:len(held_x)]),
        "expression_accuracy": float((exp_clf.predict(fake) == fake_exp).float().mean()),
        "expression_accuracy_network": float((exp_clf.predict(network_alone(g, people)) == fake_exp).float().mean()),
        "expression_accuracy_real_heldout": float((exp_clf.predict(held_x) == held_exp).float().mean()),
        "skin_tone_accuracy": float((tone_clf.predict(fake) == train_tone).float().mean()),
        "skin_tone_accuracy_real_heldout": float((tone_clf.predict(held_x) == bins(held_person)).float().mean()),
        "skin_tone_accuracy_pixels": float((tone_pixels.predict(fake) == train_tone).float().mean()),
        "skin_tone_accuracy_pixels_real_heldout": float((tone_pixels.predict(held_x) == bins(held_person)).float()
                                                         .mean()),
        "identity_accuracy": float((id_pred == torch.arange(n_ids)[:, None])[:, unseen_views].float().mean()),
        "identity_accuracy_real_heldout_views": float((id_clf.predict(train_x[~seen]) == id_labels[~seen]).float()
                                                      .mean()),
        "identity_consistency": float((id_pred == mode[:, None]).float().mean()),
    }
    if g.cfg.expression_templates:  # the template texture plus each expression's template alone
        results["expression_accuracy_templates_alone"] = float((exp_clf.predict(
            template + g.expression_offset(torch.eye(n_exp), res)) == torch.arange(n_exp)).float().mean())
    if neutral is not None:
        real_changes = changes_from_neutral(train_x.view(n_ids, n_exp, *train_x.shape[1:]), neutral)
        generated_changes = changes_from_neutral(people, neutral)
        results["changed_expressions"] = [name for name in names if name != NEUTRAL]
        results["paired_change"] = paired_change(generated_changes, real_changes)
        results["crispness"] = crispness(generated_changes, real_changes)
    if new_identity_codes is not None:  # as many as the training identities evaluated, at most
        results["new_identities"] = _new_identities(g, template, new_identity_codes[:n_ids], train_x, exp_clf, id_clf)
    results["bars"] = texture_bars(results)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_png_atomic(out_dir / "texture_grid.png", intensity_grid(g, template, z_ids, neutral or 0))
    if neutral is not None:
        write_png_atomic(out_dir / "texture_wrinkles.png", wrinkle_grid(people, train_x.view(people.shape),
                                                                         neutral, names))
    write_text_atomic(out_dir / "texture_report.json", json.dumps(results, indent=1))
    write_text_atomic(out_dir / "texture_report.md", report_markdown(results))
    return results


def _new_identities(g, template, z_new: torch.Tensor, train_x, exp_clf, id_clf) -> dict:
    """Sampled z_id: realism against the training textures, the network's expressions, and whether one person
    stays one person (the same nearest training identity across expressions)."""
    n_exp = g.cfg.num_expressions
    people = people_in_every_expression(g, template, z_new, seed=1)
    fake = people.flatten(0, 1)
    pred = id_clf.predict(fake).view(len(z_new), n_exp)
    out = {"count": len(z_new),
           "swd_generated_vs_train": swd_per_level(fake, train_x[:len(fake)]),
           "expression_accuracy_network": float((exp_clf.predict(network_alone(g, people)) == torch.arange(n_exp)
                                                 .repeat(len(z_new))).float().mean()),
           "identity_consistency": float((pred == torch.mode(pred, dim=1).values[:, None]).float().mean())}
    return out


def wrinkle_grid(generated: torch.Tensor, real: torch.Tensor, neutral: int, names: list[str], people: int = 3,
                 gain: float = 4.0) -> np.ndarray:
    """One expression (the one whose real change is largest) on `people` training identities, a row each:
    real texture, generated texture, real change and generated change (mid grey = no change, x gain)."""
    strength = (real - real[:, neutral:neutral + 1]).abs().mean(dim=(0, 2, 3, 4))
    e = int(strength.argmax())
    rows = []
    for k in range(min(people, len(generated))):
        real_change = real[k, e] - real[k, neutral]
        generated_change = generated[k, e] - generated[k, neutral]
        rows += [real[k, e], generated[k, e], (gain * real_change).clamp(-1, 1), (gain * generated_change).clamp(-1, 1)]
    return image_grid(to_uint8(torch.stack(rows)), (len(rows) // 4, 4), cell=generated.shape[-1])


def intensity_grid(g: TextureGenerator, template: torch.Tensor, z_ids: torch.Tensor, neutral: int,
                   identities: int = 3, expressions: int = 6, intensities=(0.5, 1.0, 1.5)) -> np.ndarray:
    """Rows: identity x intensity; columns: expressions. Calibrated intensity, as FaceModel textures a face: the
    identity's neutral texture plus alpha times each expression's change from it (so the grid generates one neutral
    and one intensity-1 texture per identity and expression, not one per cell). One noise draw per identity."""
    n_exp = g.cfg.num_expressions
    ids = torch.arange(min(identities, len(z_ids)))
    exps = torch.arange(min(expressions, n_exp))
    columns = torch.cat([torch.tensor([neutral]), exps])  # each identity's neutral, then its expressions
    noise = torch.randn(len(ids), g.cfg.z_noise_dim, generator=torch.Generator().manual_seed(0))
    k = len(columns)
    unit = generate_textures(g, template, z_ids[ids].repeat_interleave(k, 0), torch.eye(n_exp)[columns].repeat(
        len(ids), 1), noise.repeat_interleave(k, 0)).reshape(len(ids), k, *template.shape[-3:])
    rows = [interpolate(unit[i, :1], unit[i, 1:], a) for i in ids for a in intensities]
    return image_grid(to_uint8(torch.cat(rows)), (len(rows), len(exps)))


def _swd_rows(r: dict, levels) -> list[str]:
    rows = [("generated vs training (training z_id)", r["swd_generated_vs_train"])]
    if "new_identities" in r:
        rows.append((f"generated vs training ({r['new_identities']['count']} new z_id)",
                     r["new_identities"]["swd_generated_vs_train"]))
    rows.append(("held-out real vs training", r["swd_heldout_real_vs_train"]))
    return [f"| {name} | " + " | ".join(f"{values[lv]:.1f}" for lv in levels) + " |" for name, values in rows]


def _change_rows(r: dict) -> list[str]:
    if "paired_change" not in r:
        return []
    names = [n.split("_", 1)[-1] for n in r["changed_expressions"]]
    pc, cr = r["paired_change"], r["crispness"]
    table = lambda rows: ["| | mean | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)] + [
        f"| {label} | {row['mean']:.3f} | " + " | ".join(f"{v:.2f}" for v in row["per_expression"]) + " |"
        for label, row in rows]
    return ["", "## Each person's own expression change (training identities)", "",
            "Pearson correlation of a change (an expression's texture minus the same person's neutral) with that "
            "person's real change; higher is better:", "",
            *table([("generated", pc["generated"]), ("mean change (what the templates reach)", pc["mean_change"]),
                    ("another person's real change", pc["other_person"])]), "",
            "Crispness: SWD x 1e3 between change maps and the real ones at the finest pyramid level; lower is better:",
            "", *table([("generated", cr["generated"]), ("mean change", cr["mean_change"])])]


def report_markdown(r: dict) -> str:
    levels = list(r["swd_generated_vs_train"])
    bars = r.get("bars", [])
    missed = [b for b in bars if not b["met"]]
    new = r.get("new_identities")
    lines = ["# Texture model evaluation", "", f"Command: `python -m train evaluate-texture --config {r['config']}`.", "",
             f"Expressions from: {r.get('expression_route', 'measured templates')}. On the first "
             f"{r.get('identities_evaluated', '?')} training identities' textures and as many held-out ones at most.",
             "", "## Bars", "",
             (f"**{len(missed)} of {len(bars)} bars MISSED.**" if missed else f"All {len(bars)} bars met."), "",
             "| bar | measured | limit | |", "|---|---|---|---|",
             *[f"| {b['bar']} | {b['value']:.3f} | {b['limit']} | {'met' if b['met'] else '**MISSED**'} |"
               for b in bars],
             "", f"## Realism: sliced Wasserstein distance x 1e3 per Laplacian pyramid level ({r['resolution']} px "
             f"crops; lower is better)", "",
             "| | " + " | ".join(f"{lv} px" for lv in levels) + " |", "|---|" + "---|" * len(levels),
             *_swd_rows(r, levels),
             "", "## Control (classifiers trained on real training textures)", "",
             f"- expression accuracy of generated textures: {r['expression_accuracy']:.3f}; of what the network "
             f"itself generates (without expression templates): {r['expression_accuracy_network']:.3f} (real "
             f"held-out: {r['expression_accuracy_real_heldout']:.3f})"
             + (f"; new z_id: {new['expression_accuracy_network']:.3f}" if new else ""),
             *([f"- the template texture plus each expression's template alone: "
                f"{r['expression_accuracy_templates_alone']:.3f}"] if "expression_accuracy_templates_alone" in r else []),
             f"- skin-tone bin accuracy (linear classifier on the mean colour): {r['skin_tone_accuracy']:.3f} (real "
             f"held-out: {r['skin_tone_accuracy_real_heldout']:.3f}); under the pixel classifier: "
             f"{r['skin_tone_accuracy_pixels']:.3f} (real held-out: {r['skin_tone_accuracy_pixels_real_heldout']:.3f})",
             f"- identity accuracy on the views (expressions) the identity classifier did not see: "
             f"{r['identity_accuracy']:.3f} (real textures of those views: "
             f"{r['identity_accuracy_real_heldout_views']:.3f}); identity consistency across expressions: "
             f"{r['identity_consistency']:.3f}" + (f" (new z_id, same nearest training identity: "
                                                   f"{new['identity_consistency']:.3f})" if new else ""),
             *_change_rows(r), "",
             "![identities x expressions at intensity 0.5, 1, 1.5](texture_grid.png)", ""]
    if "paired_change" in r:
        lines += ["![one expression on three people: real, generated, real change, generated change]"
                  "(texture_wrinkles.png)", ""]
    return "\n".join(lines)


def missed_bars_line(r: dict) -> str | None:
    """One loud line naming every missed bar, or None."""
    missed = [b for b in r.get("bars", []) if not b["met"]]
    if not missed:
        return None
    return (f"TEXTURE BARS MISSED ({len(missed)} of {len(r['bars'])}): "
            + "; ".join(f"{b['bar']} {b['value']:.3f} (limit {b['limit']})" for b in missed))


def main(args) -> int:
    from train.cgan import identity_codes
    from train.config import data_config, load_config
    from train.data.cli import output_root, set_dir
    from train.data.synthetic_sets import StoredSet, SyntheticFaceScape
    from train.shape_config import shape_section
    from train.texture import check_expression_route

    cfg = load_config(args.config)
    data_cfg = data_config(cfg)
    root = output_root(data_cfg.config_name)
    run = root / "texture" / "texture"
    if not (run / "texture.safetensors").is_file():
        raise FileNotFoundError(f"{run}: no trained texture model; run `python -m train texture --config "
                                f"{args.config}` first")
    check_expression_route(cfg, run)
    stored = StoredSet(set_dir(data_cfg.config_name, "facescape"))
    cgan = shape_section(cfg)["cgan"]
    g_cfg = json.loads((run / "texture.json").read_text())
    z_ids = identity_codes(g_cfg["num_identities"], g_cfg["z_id_dim"], cgan.z_id, cgan.seed)
    new_z = identity_codes(NEW_IDENTITIES, g_cfg["z_id_dim"], cgan.z_id, cgan.seed + 1) if cgan.z_id != "onehot" else None
    results = evaluate_texture(stored, SyntheticFaceScape(data_cfg), run, z_ids, root / "eval", args.config, new_z)
    print(report_markdown(results))
    if missed_bars_line(results):
        print(missed_bars_line(results), file=sys.stderr)
    print(f"report: {root / 'eval' / 'texture_report.md'}")
    return 0
