"""The progressive texture GAN: growth and fade-in, WGAN-GP with class heads, shared z_id, resume after a kill,
data parallel with torchrun."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file

from core.texture_networks import TextureDiscriminator, TextureGenerator, TextureNetConfig, latent, minibatch_stddev
from core.network_configs import TEXTURE_FORMAT_VERSION
from conftest import interrupt_after_epoch, log_rows
from train.cgan import identity_codes
from train.config import data_config, load_config
from train.data.synthetic_sets import StoredSet, build_set
from train.evaluate_texture import load_texture_generator
from train.texture_swd import laplacian_pyramid, swd_per_level
from train.texture import conditioned_score, gradient_penalty, phases, train_texture


def small_cfg(**kw) -> TextureNetConfig:
    return TextureNetConfig(**{"num_identities": 3, "num_expressions": 4, "z_id_dim": 5, "z_noise_dim": 7,
                               "start_resolution": 8, "max_resolution": 32, "channels": (16, 16, 8, 8), **kw})


def codes(cfg, n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, cfg.z_id_dim, generator=g), torch.eye(cfg.num_expressions)[torch.arange(n) % 4],
            torch.randn(n, cfg.z_noise_dim, generator=g))


def test_generator_grows_and_fades_in_from_the_previous_resolution():
    cfg = small_cfg()
    torch.manual_seed(0)
    g = TextureGenerator(cfg)
    z = codes(cfg)
    for r in (4, 8, 16, 32):
        assert g(*z, resolution=r).shape == (4, 3, r, r)
    # alpha 0: exactly the previous resolution's image, upsampled; alpha 1: the new block alone
    faded = g(*z, resolution=32, alpha=0.0)
    torch.testing.assert_close(faded, F.interpolate(g(*z, resolution=16), scale_factor=2, mode="nearest"))
    half = g(*z, resolution=32, alpha=0.5)
    torch.testing.assert_close(half, 0.5 * faded + 0.5 * g(*z, resolution=32), rtol=1e-5, atol=1e-6)
    assert phases(cfg) == [(8, "stable"), (16, "fade"), (16, "stable"), (32, "fade"), (32, "stable")]


def test_discriminator_heads_and_fade_in():
    cfg = small_cfg()
    torch.manual_seed(0)
    d = TextureDiscriminator(cfg)
    for r in (8, 16, 32):
        score, ids, exps = d(torch.randn(6, 3, r, r))
        assert score.shape == (6,) and ids.shape == (6, 3) and exps.shape == (6, 4)
    x = torch.randn(4, 3, 32, 32)
    # alpha 0 at 32 px: the 16 px path on the pooled image
    torch.testing.assert_close(d(x, alpha=0.0)[0], d(F.avg_pool2d(x, 2))[0], rtol=1e-5, atol=1e-5)


def test_minibatch_stddev_sees_the_batch():
    x = torch.zeros(4, 2, 3, 3)
    assert minibatch_stddev(x)[:, -1].abs().max() < 1e-3
    x[0] += 1.0
    assert (minibatch_stddev(x)[:, -1] > 0.1).all()  # every sample of the group sees the spread


def test_gradient_penalty_is_zero_for_a_unit_slope_critic():
    real, fake = torch.randn(5, 3, 4, 4), torch.randn(5, 3, 4, 4)
    assert float(gradient_penalty(lambda x: x.flatten(1)[:, 0] * 1.0, real, fake)) < 1e-10
    assert float(gradient_penalty(lambda x: x.flatten(1)[:, 0] * 3.0, real, fake)) == pytest.approx(4.0)


def test_projection_adds_the_labelled_class_outputs_to_the_score():
    score, ids, exps = torch.tensor([0.5, -1.0]), torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.tensor([[5.0, 6.0, 7.0], [8.0, 9.0, 10.0]])
    id_labels, exp_labels = torch.tensor([1, 0]), torch.tensor([2, 0])
    assert conditioned_score((score, ids, exps), id_labels, exp_labels, False).tolist() == [0.5, -1.0]
    assert conditioned_score((score, ids, exps), id_labels, exp_labels, True).tolist() == [0.5 + 2 + 7, -1 + 3 + 8]
    au_targets = torch.tensor([[0.2, 0.0, 0.4], [0.0, 1.0, 0.0]])  # an AU model: outputs dotted with intensities
    assert conditioned_score((score, ids, exps), id_labels, au_targets, True).tolist() == pytest.approx(
        [0.5 + 2 + 1.0 + 2.8, -1 + 3 + 9])


def test_the_first_phase_has_its_own_length():
    from train.texture import phase_at, phase_epochs
    from train.texture_config import TextureTrainConfig
    tcfg = TextureTrainConfig(**{f: 0 for f in TextureTrainConfig.__annotations__} | {"epochs_per_phase": 2,
                                                                                       "first_phase_epochs": 5})
    plan = phase_epochs(small_cfg(), tcfg)
    assert plan == [(8, "stable", 5), (16, "fade", 2), (16, "stable", 2), (32, "fade", 2), (32, "stable", 2)]
    assert [phase_at(plan, e)[:3] for e in (0, 4, 5, 6, 7, 12)] == [
        (8, "stable", 0), (8, "stable", 4), (16, "fade", 0), (16, "fade", 1), (16, "stable", 0), (32, "stable", 1)]
    with pytest.raises(ValueError, match="beyond the schedule's 13 epochs"):
        phase_at(plan, 13)


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="channels needs one width per resolution"):
        small_cfg(channels=(8, 8))
    with pytest.raises(ValueError, match="max_resolution must be a power of two"):
        small_cfg(max_resolution=48)


def test_swd_tells_different_textures_apart():
    g = torch.Generator().manual_seed(0)
    smooth = F.avg_pool2d(torch.rand(40, 3, 68, 68, generator=g), 5, stride=1)[..., :64, :64] * 2 - 1
    other = F.avg_pool2d(torch.rand(40, 3, 68, 68, generator=g), 5, stride=1)[..., :64, :64] * 2 - 1
    noisy = torch.rand(40, 3, 64, 64, generator=g) * 2 - 1
    assert [lv.shape[-1] for lv in laplacian_pyramid(smooth)] == [64, 32, 16]
    same, different = swd_per_level(smooth, other), swd_per_level(smooth, noisy)
    # the finest level holds the difference (pixel noise against smooth noise); the descriptors are normalised
    # per set, so amplitude alone would not count
    assert different[64] > 1.5 * same[64], (same, different)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from conftest import tiny_config_dict
    folder = tmp_path_factory.mktemp("texture")
    (folder / "tiny.json").write_text(json.dumps(tiny_config_dict()))
    cfg = load_config(folder / "tiny.json")
    return cfg, StoredSet(build_set("facescape", data_config(cfg), folder / "set", progress=False))


def test_training_runs_every_phase_and_exports(tiny, tmp_path):
    cfg, stored = tiny
    run = train_texture(cfg, stored, tmp_path / "tex", progress=False)
    log = log_rows(run)
    assert [(int(r["resolution"]), r["phase"]) for r in log] == [(8, "stable"), (16, "fade"), (16, "stable")]
    assert float(log[1]["alpha"]) == pytest.approx(1.0)  # the fade ends at alpha 1
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["008_stable.png", "016_stable.png"]
    for name in ("008_stable", "016_stable"):
        grid = np.asarray(Image.open(run / "samples" / f"{name}.png"))
        assert grid.std() > 1  # not blank
    g, template = load_texture_generator(run)
    assert template.shape == (1, 3, 16, 16)
    # the z_id codes are the shape cGAN's: the same function, seed and kind as its config says
    shape_cgan = cfg["shape"]["cgan"]
    z = identity_codes(g.cfg.num_identities, g.cfg.z_id_dim, shape_cgan["z_id"], shape_cgan["seed"])
    assert g.cfg.z_id_dim == cfg["shape"]["network"]["z_id_dim"] and z.shape[0] == len(stored.splits["train"])
    weights = load_file(run / "texture.safetensors")
    assert set(weights) == set(g.state_dict())


def test_interrupted_and_resumed_equals_uninterrupted(tiny, tmp_path, monkeypatch):
    cfg, stored = tiny
    whole = train_texture(cfg, stored, tmp_path / "whole", progress=False)
    interrupt_after_epoch(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        train_texture(cfg, stored, tmp_path / "cut", progress=False)
    monkeypatch.undo()
    resumed = train_texture(cfg, stored, tmp_path / "cut", resume=True, progress=False)
    assert [int(r["epoch"]) for r in log_rows(resumed)] == [0, 1, 2]
    a, b = load_file(whole / "texture.safetensors"), load_file(resumed / "texture.safetensors")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


def test_data_parallel_with_torchrun_on_cpu(tiny, tmp_path):
    """Two CPU ranks (gloo): every phase runs, each rank takes half the batches, the ranks end with the same weights
    (the trainer all-gathers checksums and fails otherwise) and rank 0 exports a model that loads."""
    from conftest import tiny_config_dict
    (tmp_path / "tiny.json").write_text(json.dumps(tiny_config_dict()))
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(root), OMP_NUM_THREADS="1")
    out = tmp_path / "ddp"
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "train", "texture", "--config", str(tmp_path / "tiny.json"), "--out", str(out)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = log_rows(out)
    assert [(int(r["resolution"]), r["phase"]) for r in log] == [(8, "stable"), (16, "fade"), (16, "stable")]
    g, template = load_texture_generator(out)
    z = identity_codes(g.cfg.num_identities, g.cfg.z_id_dim, "gaussian", 0)
    with torch.no_grad():
        images = template + g(z[:2], torch.eye(g.cfg.num_expressions)[:2], torch.randn(2, g.cfg.z_noise_dim))
    assert images.shape == (2, 3, 16, 16) and torch.isfinite(images).all()


def test_a_set_without_stored_crops_trains_on_the_same_crops_synthesised(tiny, tmp_path):
    from train.data.crops import SynthesisedCrops
    cfg, stored = tiny
    data_cfg = data_config(cfg)
    stored_flat = np.asarray(stored.textures).reshape(-1, *stored.textures.shape[2:])
    rows = np.array([0, 7, 23, 41, 42])
    for workers in (0, 2):  # in this process, or in worker processes: the same bits
        crops = SynthesisedCrops(stored, data_cfg, rows, workers)
        try:
            batches = list(crops.stream([np.array([0, 1]), np.array([2]), np.array([3, 4])], ahead=1))
        finally:
            crops.close()
        np.testing.assert_array_equal(np.concatenate(batches), stored_flat[rows])
    with_stored = train_texture(cfg, stored, tmp_path / "stored", progress=False)
    stored.textures, saved = None, stored.textures
    try:
        synthesised = train_texture(cfg, stored, tmp_path / "synthesised", progress=False, data_workers=1)
    finally:
        stored.textures = saved
    a, b = load_file(with_stored / "texture.safetensors"), load_file(synthesised / "texture.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_crops_are_not_synthesised_for_a_set_built_from_another_config(tiny):
    import dataclasses
    from train.data.crops import SynthesisedCrops
    cfg, stored = tiny
    other = dataclasses.replace(data_config(cfg), seed=99)
    with pytest.raises(ValueError, match="built from another config.*rebuild it"):
        SynthesisedCrops(stored, other, np.arange(3), workers=0)


def test_intensity_reaches_the_generator_unnormalised():
    cfg = small_cfg(exp_gain=3.0)
    z_id, z_exp, z_noise = codes(cfg)
    a, b = latent(cfg, z_id, z_exp, z_noise), latent(cfg, z_id, 2.5 * z_exp, z_noise)
    n = cfg.z_id_dim
    torch.testing.assert_close(b[:, n:n + cfg.num_expressions], 2.5 * cfg.exp_gain * z_exp)
    torch.testing.assert_close(a[:, n + cfg.num_expressions:], b[:, n + cfg.num_expressions:])  # the noise part


def test_expression_templates_add_linearly_in_z_exp():
    cfg = small_cfg(expression_templates=True)
    g = TextureGenerator(cfg)
    with torch.no_grad():
        g.expression_offsets.normal_()
        g.to_rgb[-1].weight.normal_()
    z_id, z_exp, z_noise = codes(cfg)
    with torch.no_grad():
        plain = TextureGenerator(small_cfg())
        plain.load_state_dict({k: v for k, v in g.state_dict().items() if k != "expression_offsets"})
        for r in (8, 32):
            added = g(z_id, z_exp, z_noise, r) - plain(z_id, z_exp, z_noise, r)
            pooled = F.avg_pool2d(g.expression_offsets, 32 // r)
            torch.testing.assert_close(added, torch.einsum("be,ecyx->bcyx", z_exp, pooled))
        twice = g(z_id, 2 * z_exp, z_noise) - plain(z_id, 2 * z_exp, z_noise)
        torch.testing.assert_close(twice, 2 * torch.einsum("be,ecyx->bcyx", z_exp, g.expression_offsets))
    assert "expression_offsets" in g.state_dict() and "expression_offsets" not in plain.state_dict()


def _images_with_known_offsets(n_ids: int, z: torch.Tensor, offsets: torch.Tensor, seed: int = 0):
    """uint8 crops (n_ids * len(z), R, R, 3): each identity's own base plus z @ offsets, in whole uint8 steps."""
    g = torch.Generator().manual_seed(seed)
    r = offsets.shape[1]  # offsets are (E, R, R, 3)
    base = torch.randint(100, 150, (n_ids, r, r, 3), generator=g)
    z = z.expand(n_ids, *z.shape[-2:])  # (K, E) shared by every identity, or (n_ids, K, E)
    change = torch.einsum("ike,eyxc->ikyxc", z, offsets)
    images = (base[:, None] + change).round().clamp(0, 255).to(torch.uint8)
    return images.reshape(-1, r, r, 3).numpy()


def test_measured_expression_offsets_are_the_mean_change_from_neutral():
    from train.texture import measure_expression_offsets
    g = torch.Generator().manual_seed(1)
    offsets = torch.randint(-20, 21, (4, 8, 8, 3), generator=g).float()
    offsets[2] = 0  # class 2 is the neutral one
    images = _images_with_known_offsets(5, torch.eye(4), offsets)
    ids, classes = torch.arange(5).repeat_interleave(4), torch.arange(4).repeat(5)
    measured = measure_expression_offsets(images, ids, classes, 4, 8, neutral=2)
    torch.testing.assert_close(measured, offsets.permute(0, 3, 1, 2) / 127.5)  # in [-1, 1] units
    half = measure_expression_offsets(images, ids, classes, 4, 4, neutral=2)  # at a lower resolution: pooled
    torch.testing.assert_close(half, F.avg_pool2d(offsets.permute(0, 3, 1, 2) / 127.5, 2))
    with pytest.raises(ValueError, match="neutral"):
        measure_expression_offsets(images, ids, classes, 4, 8, neutral=None)


def test_measured_action_unit_offsets_are_a_least_squares_fit():
    from train.texture import measure_expression_offsets
    g = torch.Generator().manual_seed(2)
    offsets = torch.randint(-8, 9, (3, 8, 8, 3), generator=g).float()
    # six frames per identity, three AU intensities each, drawn per identity and higher for the later (darker,
    # see the base below) identities, so one intercept for all identities would fit them badly
    z = torch.rand(4, 6, 3, generator=g) + 0.5 * torch.arange(4.0)[:, None, None]
    images = _images_with_known_offsets(4, z, offsets)
    images = np.clip(images.astype(int) - 10 * np.repeat(np.arange(4), 6)[:, None, None, None], 0, 255).astype(np.uint8)
    ids, targets = torch.arange(4).repeat_interleave(6), z.reshape(-1, 3)
    measured = measure_expression_offsets(images, ids, targets, 3, 8, neutral=None, chunk=4)  # chunks split identities
    # rounding to uint8 is the only error: within a few uint8 steps per unit of AU intensity
    assert float((measured - offsets.permute(0, 3, 1, 2) / 127.5).abs().max()) < 0.06


def test_training_measures_the_templates_and_exports_them(tiny, tmp_path):
    from train.texture import measure_expression_offsets, training_textures
    cfg, stored = tiny
    cfg = {**cfg, "texture": {**cfg["texture"], "network": {**cfg["texture"]["network"],
                                                            "expression_templates": True}}}
    run = train_texture(cfg, stored, tmp_path / "tex", progress=False)
    g, _ = load_texture_generator(run)
    images, ids, classes = training_textures(stored, data_config(cfg), workers=0)
    expected = measure_expression_offsets(images, ids, classes, g.cfg.num_expressions, 16,
                                          neutral=list(stored.expression_names).index("1_neutral"))
    torch.testing.assert_close(g.expression_offsets, expected)
    assert g.expression_offsets.abs().max() > 0.01 and g.expression_offsets[0].abs().max() == 0


def test_critic_input_is_the_image_split_into_tone_and_detail():
    from core.texture_networks import tone_and_detail
    x = torch.rand(3, 3, 8, 8) * 2 - 1
    split = tone_and_detail(x)
    assert split.shape == (3, 6, 8, 8)
    torch.testing.assert_close(split[:, :3] + split[:, 3:], x)  # nothing lost
    torch.testing.assert_close(split[:, 3:], x.mean(dim=(2, 3), keepdim=True).expand_as(x))
    assert split[:, :3].mean(dim=(2, 3)).abs().max() < 1e-6  # detail carries no tone


def test_expression_maps_train_on_pairs_and_export_their_route(tiny, tmp_path):
    """The network's own change maps with the pair term: every pair is one person's (never a texture with itself),
    training logs the pair term, and the exported texture.json names format version 2 or later."""
    from train.texture import partner_rows, training_textures
    cfg, stored = tiny
    texture = cfg["texture"]
    cfg = {**cfg, "texture": {"network": {**texture["network"], "expression_maps": True},
                              "train": {**texture["train"], "pair_weight": 5.0}}}
    _, ids, _ = training_textures(stored, data_config(cfg), workers=0)
    partner = partner_rows(ids, seed=0, epoch=0)
    assert (ids[partner] == ids).all() and (partner != torch.arange(len(ids))).all()
    assert not torch.equal(partner, partner_rows(ids, seed=0, epoch=1))  # drawn afresh every epoch
    run = train_texture(cfg, stored, tmp_path / "tex", progress=False)
    log = log_rows(run)  # the pair term starts after the start resolution's phase, which learns identity colour
    assert not log[0].get("pair_mse") and all(float(r["pair_mse"]) > 0 for r in log[1:])
    saved = json.loads((run / "texture.json").read_text())
    # a version 1 reader would drop the maps; the appearance fields of version 3 are not written (a 0.6.0 reads it)
    assert saved["format_version"] == 2 and saved["expression_maps"] is True and "architecture" not in saved
    g, _ = load_texture_generator(run)
    assert g.to_rgb[-1].weight.shape[0] == 3 * (1 + g.cfg.num_expressions)
    from train.texture import check_expression_route
    check_expression_route(cfg, run)  # the config it was trained with
    without = {**cfg, "texture": {**cfg["texture"], "network": texture["network"]}}
    with pytest.raises(ValueError, match=r"texture.network.expression_maps is false, but the texture model in .* "
                                         r"was trained with expression_maps true"):
        check_expression_route(without, run)


def test_a_version_1_texture_config_still_loads_and_newer_ones_are_named():
    old = {k: v for k, v in small_cfg(expression_templates=True).to_dict().items()
           if k not in ("format_version", "expression_maps", "pixel_bias", "architecture", "identity_components",
                        "change_components", "mapping")}
    cfg = TextureNetConfig.from_dict(old)  # as texture.json was written before format version 2
    assert cfg.expression_templates and not cfg.expression_maps and cfg.latent_dim == 5 + 4 + 7
    newer = TEXTURE_FORMAT_VERSION + 1  # written by a facecam newer than this one
    with pytest.raises(ValueError, match=f"format_version {newer} is not one this facecam reads"):
        TextureNetConfig.from_dict({**old, "format_version": newer})
    with pytest.raises(ValueError, match="expression_maps is a format_version 2 field"):
        TextureNetConfig.from_dict({**old, "format_version": 1, "expression_maps": True})


def test_texture_evaluation_reports_every_bar_and_each_persons_change(tiny, tmp_path):
    """`train evaluate-texture` on a tiny set: paired change and crispness against the mean change and another
    person's, the network-alone expression accuracy, identity on unseen views, new z_id, the bars with their
    verdicts, and the report names what it missed."""
    from train.cgan import identity_codes
    from train.data.synthetic_sets import SyntheticFaceScape
    from train.evaluate_texture import evaluate_texture, missed_bars_line, report_markdown
    cfg, stored = tiny
    texture = cfg["texture"]
    # the quick config's route (measured templates), its reconstruction weight
    cfg = {**cfg, "texture": {"network": {**texture["network"], "expression_templates": True},
                              "train": {**texture["train"], "first_phase_epochs": 4, "epochs_per_phase": 2,
                                        "recon_weight": 300.0}}}
    run = train_texture(cfg, stored, tmp_path / "tex", progress=False)
    shape_cgan = cfg["shape"]["cgan"]
    z_ids = identity_codes(len(stored.splits["train"]), cfg["shape"]["network"]["z_id_dim"], shape_cgan["z_id"],
                           shape_cgan["seed"])
    new = identity_codes(2, z_ids.shape[1], "gaussian", 99)
    r = evaluate_texture(stored, SyntheticFaceScape(data_config(cfg)), run, z_ids, tmp_path / "eval", "tiny", new)
    # Stated limits for this tiny pipeline (measured: skin tone 1.0, consistency 0.98, identity 0.67 on unseen views,
    # paired change 0.60, SWD 57 against held-out real 86): a change that makes the model or the evaluation worse
    # past them fails here
    assert r["skin_tone_accuracy"] >= 0.9 and r["identity_consistency"] >= 0.9
    assert r["identity_accuracy"] >= 0.5 and r["paired_change"]["generated"]["mean"] >= 0.45
    assert r["swd_generated_vs_train"][16] <= 2 * r["swd_heldout_real_vs_train"][16]
    pc = r["paired_change"]
    assert len(pc["generated"]["per_expression"]) == len(stored.expression_names) - 1
    assert set(r["crispness"]) == {"generated", "mean_change"} and r["new_identities"]["count"] == 2
    # the data's own baselines: a person's change is closer to the mean change than to another person's
    assert pc["mean_change"]["mean"] > pc["other_person"]["mean"]
    names = [b["bar"] for b in r["bars"]]
    assert "paired change correlation" in names and "expression accuracy of the network alone" in names
    markdown = report_markdown(r)
    line = missed_bars_line(r)
    assert (line is None) == all(b["met"] for b in r["bars"])
    assert ("MISSED" in markdown) == (line is not None)
    for png in ("texture_grid.png", "texture_wrinkles.png"):
        assert np.asarray(Image.open(tmp_path / "eval" / png)).std() > 1
