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
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from core.atomic import write_png_atomic, write_text_atomic
from core.texture_networks import TextureGenerator, TextureNetConfig
from core.shape_control import interpolate
from train.evaluate import fit_linear_classifier
from train.evaluate_intensity import NEUTRAL
from train.data.crops import crop_rows, identity_rows
from train.texture import downsample, images_per_batch, image_grid, to_uint8, to_unit_range


def load_texture_generator(run: Path) -> tuple[TextureGenerator, torch.Tensor]:
    """(the moving-average generator, the template crop in [-1, 1] as (1, 3, R, R))."""
    g = TextureGenerator(TextureNetConfig.from_dict(json.loads((run / "texture.json").read_text())))
    g.load_state_dict(load_file(run / "texture.safetensors"))
    from PIL import Image
    template = to_unit_range(np.asarray(Image.open(run / "template_crop.png").convert("RGB")))[None]
    return g.eval(), downsample(template, g.cfg.max_resolution)


# --- sliced Wasserstein distance on Laplacian pyramids -------------------------------------------------------

def _blur_down(x: torch.Tensor) -> torch.Tensor:
    k = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16
    k2 = (k[:, None] * k[None, :]).expand(x.shape[1], 1, 5, 5)
    return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), k2, groups=x.shape[1])[..., ::2, ::2]


def laplacian_pyramid(x: torch.Tensor, min_resolution: int = 16) -> list[torch.Tensor]:
    levels = []
    while x.shape[-1] > min_resolution:
        down = _blur_down(x)
        levels.append(x - F.interpolate(down, scale_factor=2, mode="bilinear", align_corners=False))
        x = down
    return levels + [x]


def _patches(level: torch.Tensor, per_image: int, g: torch.Generator) -> torch.Tensor:
    n, c, h, w = level.shape
    ys = torch.randint(0, h - 6, (n, per_image), generator=g)
    xs = torch.randint(0, w - 6, (n, per_image), generator=g)
    off = torch.arange(7)
    rows = (ys[..., None, None] + off[:, None]).expand(n, per_image, 7, 7)
    cols = (xs[..., None, None] + off[None, :]).expand(n, per_image, 7, 7)
    batch = torch.arange(n)[:, None, None, None].expand_as(rows)
    return level.permute(0, 2, 3, 1)[batch, rows, cols].reshape(n * per_image, -1)


def _normalise(desc: torch.Tensor) -> torch.Tensor:
    d = desc.view(len(desc), 7 * 7, -1)
    d = (d - d.mean((0, 1))) / d.std((0, 1)).clamp_min(1e-8)  # per colour channel, as in the official code
    return d.reshape(len(desc), -1)


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, g: torch.Generator, directions: int = 512,
                       repeats: int = 4) -> float:
    n = min(len(a), len(b))
    a, b = a[:n], b[:n]
    total = 0.0
    for _ in range(repeats):
        d = torch.randn(a.shape[1], directions, generator=g)
        d /= d.norm(dim=0, keepdim=True)
        # numpy's sort: three times torch's on a CPU for these (descriptors x directions) columns
        pa, pb = np.sort((a @ d).numpy(), axis=0), np.sort((b @ d).numpy(), axis=0)
        total += float(np.abs(pa - pb).mean())
    return total / repeats


SWD_DESCRIPTORS = 2 ** 14  # 7x7 patches per pyramid level and side at most (Karras et al. use 2^21 on a GPU)
SWD_DESCRIPTORS_PER_IMAGE = 128  # as Karras et al.'s code draws: a few dozen images give fewer, not overlapping, patches


def _descriptors(level: torch.Tensor, count: int, g: torch.Generator) -> torch.Tensor:
    """`count` random 7x7 patches of a pyramid level, spread evenly over its images."""
    per_image = -(-count // len(level))
    patches = _patches(level, per_image, g)
    return patches[torch.randperm(len(patches), generator=g)[:count]]


def swd_per_level(x: torch.Tensor, y: torch.Tensor, seed: int = 0, descriptors: int = SWD_DESCRIPTORS
                  ) -> dict[int, float]:
    """{level resolution: SWD x 1e3} between image batches (N, 3, R, R) in [-1, 1]. Both sides get the same number
    of descriptors whatever their image counts (the distance's sampling bias depends on it), so rows measured on
    4,000 generated and on 1,000 held-out textures compare; it also bounds the cost (sorting 2^18 descriptors'
    projections on 2,048 directions per level took minutes at 4,000 images). At most 128 per image of the smaller
    batch: a batch of 40 gives 5,120 rather than 410 overlapping patches per image."""
    g = torch.Generator().manual_seed(seed)
    descriptors = min(descriptors, SWD_DESCRIPTORS_PER_IMAGE * min(len(x), len(y)))
    out = {}
    for lx, ly in zip(laplacian_pyramid(x), laplacian_pyramid(y)):
        out[lx.shape[-1]] = 1e3 * sliced_wasserstein(_normalise(_descriptors(lx, descriptors, g)),
                                                     _normalise(_descriptors(ly, descriptors, g)), g)
    return out


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
def generate_textures(g: TextureGenerator, template: torch.Tensor, z_id, z_exp, noise: torch.Tensor | None = None,
                      batch: int | None = None) -> torch.Tensor:
    if batch is None:
        batch = images_per_batch(g.cfg.max_resolution)
    if noise is None:
        noise = torch.randn(len(z_id), g.cfg.z_noise_dim, generator=torch.Generator().manual_seed(0))
    return torch.cat([template + g(z_id[i:i + batch], z_exp[i:i + batch], noise[i:i + batch])
                      for i in range(0, len(z_id), batch)])


def evaluate_texture(stored, source, run: Path, z_ids: torch.Tensor, out_dir: Path, config: str) -> dict:
    g, template = load_texture_generator(run)
    res, n_exp = g.cfg.max_resolution, g.cfg.num_expressions
    limit = identities_within_budget(res, n_exp)
    train_x, train_person, train_exp = _real(stored, source.cfg, "train", res, limit)
    # the texture model trains on neither validation nor test identities
    held_x, held_person, held_exp = _real(stored, source.cfg, ("val", "test"), res, limit)
    z_ids = z_ids[:limit]  # the same training identities as train_x
    n_ids = len(z_ids)
    fake = generate_textures(g, template, z_ids.repeat_interleave(n_exp, 0), torch.eye(n_exp).repeat(n_ids, 1))
    fake_exp = torch.arange(n_exp).repeat(n_ids)

    exp_clf = RealTextureClassifier(train_x, train_exp)
    bins = lambda persons: torch.tensor([source.skin(int(p)).skin_tone_bin for p in persons])
    tone_clf = MeanColourClassifier(train_x, bins(train_person))
    tone_pixels = RealTextureClassifier(train_x, bins(train_person))
    id_labels = torch.from_numpy(np.searchsorted(stored.splits["train"], train_person.numpy()))
    id_clf = RealTextureClassifier(train_x, id_labels)
    id_pred = id_clf.predict(fake).reshape(n_ids, n_exp)
    mode = torch.mode(id_pred, dim=1).values
    train_tone = bins(stored.splits["train"]).repeat_interleave(n_exp)
    results = {
        "config": config,
        "resolution": res,
        "identities_evaluated": n_ids,  # training identities (and at most as many held-out ones)
        "swd_generated_vs_train": swd_per_level(fake, train_x[:len(fake)]),
        "swd_heldout_real_vs_train": swd_per_level(held_x, train_x[:len(held_x)]),
        "expression_accuracy": float((exp_clf.predict(fake) == fake_exp).float().mean()),
        "expression_accuracy_real_heldout": float((exp_clf.predict(held_x) == held_exp).float().mean()),
        "skin_tone_accuracy": float((tone_clf.predict(fake) == train_tone).float().mean()),
        "skin_tone_accuracy_real_heldout": float((tone_clf.predict(held_x) == bins(held_person)).float().mean()),
        "skin_tone_accuracy_pixels": float((tone_pixels.predict(fake) == train_tone).float().mean()),
        "skin_tone_accuracy_pixels_real_heldout": float((tone_pixels.predict(held_x) == bins(held_person)).float()
                                                         .mean()),
        "identity_accuracy": float((id_pred == torch.arange(n_ids)[:, None]).float().mean()),
        "identity_consistency": float((id_pred == mode[:, None]).float().mean()),
    }
    if g.cfg.expression_templates:  # what the GAN's own output carries, apart from the measured templates
        with torch.no_grad():
            own = fake - g.expression_offset(torch.eye(n_exp).repeat(n_ids, 1), res)
        results["expression_accuracy_without_templates"] = float((exp_clf.predict(own) == fake_exp).float().mean())
        results["expression_accuracy_templates_alone"] = float((exp_clf.predict(
            template + g.expression_offset(torch.eye(n_exp), res)) == torch.arange(n_exp)).float().mean())
    out_dir.mkdir(parents=True, exist_ok=True)
    write_png_atomic(out_dir / "texture_grid.png", intensity_grid(
        g, template, z_ids, list(stored.expression_names).index(NEUTRAL)))
    write_text_atomic(out_dir / "texture_report.json", json.dumps(results, indent=1))
    write_text_atomic(out_dir / "texture_report.md", report_markdown(results))
    return results


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


def report_markdown(r: dict) -> str:
    levels = list(r["swd_generated_vs_train"])
    lines = ["# Texture model evaluation", "", f"Command: `python -m train evaluate-texture --config {r['config']}`.", "",
             f"On the first {r.get('identities_evaluated', '?')} training identities' textures and as many held-out "
             f"ones at most.", "",
             f"## Realism: sliced Wasserstein distance x 1e3 per Laplacian pyramid level ({r['resolution']} px "
             f"crops; lower is better)", "",
             "| | " + " | ".join(f"{lv} px" for lv in levels) + " |", "|---|" + "---|" * len(levels),
             "| generated vs training | " + " | ".join(f"{r['swd_generated_vs_train'][lv]:.1f}" for lv in levels) + " |",
             "| held-out real vs training | " + " | ".join(f"{r['swd_heldout_real_vs_train'][lv]:.1f}"
                                                        for lv in levels) + " |",
             "", "## Control (classifiers trained on real training textures)", "",
             f"- expression accuracy of generated textures: {r['expression_accuracy']:.3f} (real held-out: "
             f"{r['expression_accuracy_real_heldout']:.3f})",
             *([f"- with expression templates: the generator's output without them "
                f"{r['expression_accuracy_without_templates']:.3f}; the template texture plus each expression's "
                f"template alone {r['expression_accuracy_templates_alone']:.3f}"]
               if "expression_accuracy_without_templates" in r else []),
             f"- skin-tone bin accuracy (linear classifier on the mean colour): {r['skin_tone_accuracy']:.3f} (real "
             f"held-out: {r['skin_tone_accuracy_real_heldout']:.3f}); under the pixel classifier: "
             f"{r['skin_tone_accuracy_pixels']:.3f} (real held-out: {r['skin_tone_accuracy_pixels_real_heldout']:.3f})",
             f"- identity accuracy: {r['identity_accuracy']:.3f}; identity consistency across expressions: "
             f"{r['identity_consistency']:.3f}", "",
             "![identities x expressions at intensity 0.5, 1, 1.5](texture_grid.png)", ""]
    return "\n".join(lines)


def main(args) -> int:
    from train.cgan import identity_codes
    from train.config import data_config, load_config
    from train.data.cli import output_root, set_dir
    from train.data.synthetic_sets import StoredSet, SyntheticFaceScape
    from train.shape_config import shape_section

    cfg = load_config(args.config)
    data_cfg = data_config(cfg)
    root = output_root(data_cfg.config_name)
    run = root / "texture" / "texture"
    if not (run / "texture.safetensors").is_file():
        raise FileNotFoundError(f"{run}: no trained texture model; run `python -m train texture --config "
                                f"{args.config}` first")
    stored = StoredSet(set_dir(data_cfg.config_name, "facescape"))
    cgan = shape_section(cfg)["cgan"]
    g_cfg = json.loads((run / "texture.json").read_text())
    z_ids = identity_codes(g_cfg["num_identities"], g_cfg["z_id_dim"], cgan.z_id, cgan.seed)
    results = evaluate_texture(stored, SyntheticFaceScape(data_cfg), run, z_ids, root / "eval", args.config)
    print(report_markdown(results))
    print(f"report: {root / 'eval' / 'texture_report.md'}")
    return 0
