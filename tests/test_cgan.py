"""The conditional GANs (Eq. 2-4): each head learns its own labels, generators get their own heads, resume is exact."""
import csv
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from core.shape_networks import EmbeddingDiscriminator, ShapeNetConfig
from train import runs
from train.cgan import train_cgan
from train.config import data_config, load_config
from train.data.synthetic_sets import StoredSet, build_set
from train.sae import train_sae


@pytest.fixture(scope="module")
def sae_run(tmp_path_factory):
    from conftest import tiny_config_dict
    folder = tmp_path_factory.mktemp("cgan")
    (folder / "tiny.json").write_text(json.dumps(tiny_config_dict()))
    cfg = load_config(folder / "tiny.json")
    stored = StoredSet(build_set("facescape", data_config(cfg), folder / "set", progress=False))
    return cfg, train_sae(cfg, stored, folder / "sae", progress=False)


def rows(run):
    with (run / "log.csv").open() as f:
        return list(csv.DictReader(f))


def test_heads_learn_their_own_labels_and_generators_follow(sae_run, tmp_path):
    cfg, sae = sae_run
    run = train_cgan(cfg, sae, tmp_path / "gan", progress=False)
    net = ShapeNetConfig.from_dict(json.loads((run / "cgan.json").read_text()))
    d = EmbeddingDiscriminator(net)
    d.load_state_dict(load_file(run / "discriminator.safetensors"))
    emb = np.load(sae / "embeddings.npz")
    with torch.no_grad():
        _, id_logits, exp_logits = d(torch.from_numpy(emb["mu_id"]), torch.from_numpy(emb["mu_exp"]))
    ids, exps = torch.from_numpy(emb["id_labels"]), torch.from_numpy(emb["exp_labels"])
    assert (ids != exps).float().mean() > 0.8  # a head fed the other head's labels fails below
    assert (id_logits.argmax(1) == ids).float().mean() > 0.9
    assert (exp_logits.argmax(1) == exps).float().mean() > 0.9
    last = rows(run)[-1]
    assert float(last["acc_id_fake"]) > 0.9 and float(last["acc_exp_fake"]) > 0.6
    z = load_file(run / "z_id.safetensors")["z_id"]
    assert z.shape == (int(emb["id_labels"].max()) + 1, net.z_id_dim)


def test_onehot_identity_codes(sae_run, tmp_path):
    cfg, sae = sae_run
    onehot = dict(cfg, shape=dict(cfg["shape"], cgan=dict(cfg["shape"]["cgan"], z_id="onehot", epochs=2)))
    run = train_cgan(onehot, sae, tmp_path / "onehot", progress=False)
    z = load_file(run / "z_id.safetensors")["z_id"]
    torch.testing.assert_close(z, torch.eye(len(z)))


def test_interrupted_and_resumed_equals_uninterrupted(sae_run, tmp_path, monkeypatch):
    cfg, sae = sae_run
    short = dict(cfg, shape=dict(cfg["shape"], cgan=dict(cfg["shape"]["cgan"], epochs=8)))
    whole = train_cgan(short, sae, tmp_path / "whole", progress=False)
    original = runs.RunFolder.log_row

    def crash_after_epoch_4(self, row, completed):
        original(self, row, completed)
        if row["epoch"] == 4:
            raise KeyboardInterrupt

    monkeypatch.setattr(runs.RunFolder, "log_row", crash_after_epoch_4)
    with pytest.raises(KeyboardInterrupt):
        train_cgan(short, sae, tmp_path / "cut", progress=False)
    monkeypatch.setattr(runs.RunFolder, "log_row", original)
    resumed = train_cgan(short, sae, tmp_path / "cut", resume=True, progress=False)
    assert [int(r["epoch"]) for r in rows(resumed)] == list(range(8))
    for name in ("generators", "discriminator"):
        a, b = load_file(whole / f"{name}.safetensors"), load_file(resumed / f"{name}.safetensors")
        for k in a:
            torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
