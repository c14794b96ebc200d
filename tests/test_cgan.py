"""The conditional GANs (Eq. 2-4): each head learns its own labels, generators get their own heads, resume is exact."""
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from conftest import interrupt_after_epoch, log_rows
from train.cgan import train_cgan
from train.config import data_config, load_config
from train.data.synthetic_sets import StoredSet, build_set
from train.shape_runs import load_discriminator
from train.sae import train_sae


@pytest.fixture(scope="module")
def sae_run(tmp_path_factory):
    from conftest import tiny_config_dict
    folder = tmp_path_factory.mktemp("cgan")
    (folder / "tiny.json").write_text(json.dumps(tiny_config_dict()))
    cfg = load_config(folder / "tiny.json")
    stored = StoredSet(build_set("facescape", data_config(cfg), folder / "set", progress=False))
    return cfg, train_sae(cfg, stored, folder / "sae", progress=False)


def test_heads_learn_their_own_labels_and_generators_follow(sae_run, tmp_path):
    cfg, sae = sae_run
    run = train_cgan(cfg, sae, tmp_path / "gan", progress=False)
    d = load_discriminator(run)
    emb = np.load(sae / "embeddings.npz")
    with torch.no_grad():
        _, id_logits, exp_logits = d(torch.from_numpy(emb["mu_id"]), torch.from_numpy(emb["mu_exp"]))
    ids, exps = torch.from_numpy(emb["id_labels"]), torch.from_numpy(emb["exp_labels"])
    assert (ids != exps).float().mean() > 0.8  # a head fed the other head's labels fails below
    assert (id_logits.argmax(1) == ids).float().mean() > 0.9
    assert (exp_logits.argmax(1) == exps).float().mean() > 0.9
    last = log_rows(run)[-1]
    assert float(last["acc_id_fake"]) > 0.9 and float(last["acc_exp_fake"]) > 0.6
    z = load_file(run / "z_id.safetensors")["z_id"]
    cfg_z = json.loads((run / "cgan.json").read_text())["z_id_dim"]
    assert z.shape == (int(emb["id_labels"].max()) + 1, cfg_z)


def test_onehot_identity_codes(sae_run, tmp_path):
    cfg, sae = sae_run
    onehot = dict(cfg, shape=dict(cfg["shape"], cgan=dict(cfg["shape"]["cgan"], z_id="onehot", epochs=2)))
    run = train_cgan(onehot, sae, tmp_path / "onehot", progress=False)
    z = load_file(run / "z_id.safetensors")["z_id"]
    torch.testing.assert_close(z, torch.eye(len(z)))


def test_interrupted_and_resumed_equals_uninterrupted(sae_run, tmp_path, monkeypatch):
    cfg, sae = sae_run
    short = dict(cfg, shape=dict(cfg["shape"], cgan=dict(cfg["shape"]["cgan"], epochs=8, lr_decay_fraction=0.5)))
    whole = train_cgan(short, sae, tmp_path / "whole", progress=False)
    interrupt_after_epoch(monkeypatch, 4)
    with pytest.raises(KeyboardInterrupt):
        train_cgan(short, sae, tmp_path / "cut", progress=False)
    monkeypatch.undo()
    resumed = train_cgan(short, sae, tmp_path / "cut", resume=True, progress=False)
    assert [int(r["epoch"]) for r in log_rows(resumed)] == list(range(8))
    # lr_decay_fraction 0.5: constant for 4 epochs, then linearly down, resumed mid-decay
    assert [float(r["lr_factor"]) for r in log_rows(resumed)] == [1.0] * 5 + [0.75, 0.5, 0.25]
    for name in ("generators", "discriminator"):
        a, b = load_file(whole / f"{name}.safetensors"), load_file(resumed / f"{name}.safetensors")
        for k in a:
            torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


@pytest.mark.parametrize("sees_identity", [False, True])
def test_each_generator_follows_only_its_own_head(sees_identity):
    """G_id steps on the gradient of L_s + CE_id only, G_exp on that of L_s + L_exp only (Eq. 3-4), with D judging
    the pair (G_id, G_exp) as a whole: the step's gradients are each loss's own, computed the paper's way on D(fake)."""
    import torch.nn.functional as F
    from core.shape_networks import ShapeNetConfig
    from train.cgan import ShapeGAN, _step_generators, generate_with_noise, generator_losses
    from train.losses import expression_loss
    cfg = ShapeNetConfig(num_vertices=10, num_identities=3, num_expressions=4, id_dim=5, exp_dim=3, z_id_dim=6,
                         z_noise_dim=2, generator=(8,), discriminator=(8,), expression_sees_identity=sees_identity)
    torch.manual_seed(0)
    gan = ShapeGAN(cfg)
    z_id, z_exp = torch.randn(5, 6), torch.eye(4)[torch.tensor([0, 1, 2, 3, 1])]
    ids, exps = torch.tensor([0, 1, 2, 0, 1]), torch.tensor([0, 1, 2, 3, 1])

    class NoStep(torch.optim.SGD):
        def step(self, closure=None):
            return None

    opt = NoStep([*gan.g_id.parameters(), *gan.g_exp.parameters()], lr=0.0)
    noise = torch.randn(5, 2)
    _step_generators(gan, generator_losses(gan, generate_with_noise(gan, z_id, z_exp, noise), ids, exps), opt)
    got = [p.grad.clone() for p in [*gan.g_exp.parameters(), *gan.g_id.parameters()]]
    # the expected gradients: the paper's losses on D(G_id, G_exp), each differentiated for its own generator only
    rf, id_logits, exp_logits = gan.d(*generate_with_noise(gan, z_id, z_exp, noise))
    adversarial = F.binary_cross_entropy_with_logits(rf, torch.ones_like(rf))
    want = [*torch.autograd.grad(adversarial + expression_loss(exp_logits, exps)[0], list(gan.g_exp.parameters()),
                                 retain_graph=True),
            *torch.autograd.grad(adversarial + F.cross_entropy(id_logits, ids), list(gan.g_id.parameters()),
                                 retain_graph=True)]
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w)
    # and they differ from the gradient of the plain summed loss (which would leak each head into the other generator)
    leaked = torch.autograd.grad(2 * adversarial + expression_loss(exp_logits, exps)[0]
                                 + F.cross_entropy(id_logits, ids), list(gan.g_exp.parameters()))
    assert max(float((a - b).abs().max()) for a, b in zip(leaked, got)) > 1e-6


@pytest.mark.parametrize("with_noise", [False, True])
def test_paired_term_reaches_the_noisy_samples_only_when_asked(with_noise):
    """paired_with_noise: the noisy samples D judges are pulled onto the real embeddings too (the term is the mean
    over both passes), not only the zero-noise pass."""
    from core.shape_networks import ShapeNetConfig
    from train.cgan import ShapeGAN, cgan_step, generate_with_noise
    from train.shape_config import CGANTrainConfig
    cfg = ShapeNetConfig(num_vertices=10, num_identities=3, num_expressions=4, id_dim=5, exp_dim=3, z_id_dim=6,
                         z_noise_dim=2, generator=(8,), discriminator=(8,), expression_sees_identity=True)
    torch.manual_seed(0)
    gan = ShapeGAN(cfg)
    z_id, z_exp = torch.randn(5, 6), torch.eye(4)[torch.tensor([0, 1, 2, 3, 1])]
    torch.manual_seed(1)
    noise = torch.randn(5, 2)  # what cgan_step draws after the same seed
    with torch.no_grad():
        scales = (gan.d.id_scale.standardise, gan.d.exp_scale.standardise)
        # targets: the zero-noise pass itself, so that pass adds 0 and only the noisy rows can make the term
        targets = generate_with_noise(gan, z_id, z_exp, torch.zeros(5, 2))
        at_noise = generate_with_noise(gan, z_id, z_exp, noise)
        want = [(s(a) - s(t)).abs().mean() / 2 if with_noise else torch.tensor(0.0)
                for s, a, t in zip(scales, at_noise, targets)]
    assert min(float((s(a) - s(t)).abs().mean()) for s, a, t in zip(scales, at_noise, targets)) > 1e-2
    frozen = [torch.optim.SGD(m.parameters(), lr=0.0) for m in (gan.d, gan)]
    train_cfg = CGANTrainConfig(epochs=1, batch_size=5, lr_g=0.0, lr_d=0.0, seed=0, z_id="gaussian",
                                lr_decay_fraction=0.0, paired_weight=1.0, paired_with_noise=with_noise)
    batch = {"z_id": z_id, "z_exp": z_exp, "real": targets, "ids": torch.tensor([0, 1, 2, 0, 1]),
             "exps": torch.tensor([0, 1, 2, 3, 1]), "targets": targets}
    torch.manual_seed(1)
    terms = cgan_step(gan, *frozen, batch, 2, train_cfg)
    torch.testing.assert_close(terms["paired_id"], want[0], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(terms["paired_exp"], want[1], atol=1e-6, rtol=1e-5)


def test_action_unit_settings_merge_over_the_shape_settings(tmp_path):
    from conftest import tiny_config_dict
    from train.config import ConfigError
    from train.shape_config import shape_section
    d = tiny_config_dict()
    d["shape"]["action_units"] = {"cgan": {"paired_with_noise": True, "epochs": 7}, "sae": {"lr": 0.5}}
    (tmp_path / "au.json").write_text(json.dumps(d))
    cfg = load_config(tmp_path / "au.json")
    holistic, au = shape_section(cfg), shape_section(cfg, action_units=True)
    assert (holistic["cgan"].paired_with_noise, holistic["cgan"].epochs, holistic["sae"].lr) == (False, 60, 0.003)
    assert (au["cgan"].paired_with_noise, au["cgan"].epochs, au["sae"].lr) == (True, 7, 0.5)
    assert au["cgan"].lr_g == holistic["cgan"].lr_g and au["sae"].epochs == holistic["sae"].epochs
    # a config extending it may add override fields its base does not name
    (tmp_path / "more.json").write_text(json.dumps({"extends": str(tmp_path / "au.json"), "name": "more", "shape": {
        "action_units": {"cgan": {"batch_size": 8}, "sae": {"epochs": 3}}}}))
    more = shape_section(load_config(tmp_path / "more.json"), action_units=True)
    assert (more["cgan"].batch_size, more["cgan"].epochs, more["sae"].epochs, more["sae"].lr) == (8, 7, 3, 0.5)

    def with_overrides(overrides, **cgan):
        return dict(cfg, shape=dict(cfg["shape"], action_units=overrides, cgan=dict(cfg["shape"]["cgan"], **cgan)))
    # a bad override fails the holistic model's commands too, naming the field
    with pytest.raises(ConfigError, match=r"shape.action_units.cgan: .*unknown: \['paired_with_nose'\]"):
        shape_section(with_overrides({"cgan": {"paired_with_nose": True}}))
    with pytest.raises(ConfigError, match=r"shape.action_units.cgan.z_id: expected 'gaussian' or 'onehot'"):
        shape_section(with_overrides({"cgan": {"z_id": "uniform"}}))
    with pytest.raises(ConfigError, match=r"shape.action_units: expected an object with 'sae' and/or 'cgan'"):
        shape_section(with_overrides({"gan": {}}))
    with pytest.raises(ConfigError, match=r"shape.action_units.cgan.paired_with_noise: true needs paired_weight > 0"):
        shape_section(with_overrides({"cgan": {"paired_with_noise": True}}, paired_weight=0.0))
