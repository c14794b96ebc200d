"""The action-unit variant: the SAE's expression head regresses AU intensities, the cGAN is conditioned on them."""
import json

import numpy as np
import torch

from train.cgan import train_cgan
from train.config import data_config, load_config
from train.data.expressions import AU_MAX_INTENSITY
from train.data.synthetic_sets import StoredSet, build_set
from train.shape_runs import load_discriminator, load_sae
from train.sae import train_sae, training_meshes


def test_au_sae_and_cgan(tmp_path):
    from conftest import tiny_config_dict
    d = tiny_config_dict()
    d["data"]["bp4d"].update(num_identities=8, split=[0.6, 0.2, 0.2])
    d["shape"]["cgan"]["epochs"] = 250
    d["shape"]["action_units"] = {"cgan": {"paired_with_noise": True}, "sae": {"seed": 1}}
    (tmp_path / "au.json").write_text(json.dumps(d))
    cfg = load_config(tmp_path / "au.json")
    stored = StoredSet(build_set("bp4d", data_config(cfg), tmp_path / "bp4d", progress=False))
    run = train_sae(cfg, stored, tmp_path / "sae", progress=False)
    assert json.loads((run / "config.json").read_text())["sae"]["seed"] == 1  # action_units merged
    model = load_sae(run)
    assert model.cfg.expression_labels == "au_intensities" and model.cfg.num_expressions == len(stored.au_names)
    meshes, id_labels, targets = training_meshes(stored)
    assert len(meshes) == 4 * 8 * 2 and targets.shape == (len(meshes), len(stored.au_names))
    with torch.no_grad():
        mu_id, mu_exp = model.encode(meshes)
        au_pred = model.exp_classifier(mu_exp)
    assert (model.id_classifier(mu_id).argmax(1) == id_labels).float().mean() > 0.9
    err_levels = (au_pred - targets).abs() * AU_MAX_INTENSITY
    assert float(err_levels.mean()) < 0.5  # intensity levels
    gan = train_cgan(cfg, run, tmp_path / "gan", progress=False)
    assert json.loads((gan / "config.json").read_text())["cgan"]["paired_with_noise"] is True  # action_units merged
    d_net = load_discriminator(gan)
    emb = np.load(run / "embeddings.npz")
    with torch.no_grad():
        _, _, au_real = d_net(torch.from_numpy(emb["mu_id"]), torch.from_numpy(emb["mu_exp"]))
    baseline = float((torch.from_numpy(emb["exp_labels"]) - torch.from_numpy(emb["exp_labels"]).mean(0)).abs().mean())
    assert float((au_real - torch.from_numpy(emb["exp_labels"])).abs().mean()) < 0.6 * baseline

    # the evaluation: reconstruction rows, a regressor that beats predicting the mean, a report
    from train.evaluate_au import evaluate_au
    r = evaluate_au(cfg, stored, run, gan, tmp_path / "eval")
    assert set(r["reconstruction"]) == {"SAE", "PCA-130"}
    test_au = stored.au_intensities[np.isin(stored.frame_identity, stored.splits["test"])]
    assert r["regressor_mae_levels_real_test"] < np.abs(test_au - test_au.mean(0)).mean()
    assert np.isfinite(r["generated_mae_levels"]) and len(r["au_response_levels"]) == len(stored.au_names)
    assert "## Control" in (tmp_path / "eval/report_au.md").read_text()


def test_au_texture_model_takes_its_codes_from_the_action_unit_cgan_settings(tmp_path, monkeypatch):
    """The AU texture model must use the z_id codes of the AU shape cGAN (shape.action_units.cgan merged), else a
    face's mesh and texture would come from different codes."""
    import train.texture as texture
    from conftest import tiny_config_dict
    calls = []
    real_codes = texture.identity_codes

    def recording_codes(*args):
        calls.append(args)
        return real_codes(*args)

    monkeypatch.setattr(texture, "identity_codes", recording_codes)
    d = tiny_config_dict()
    d["shape"]["action_units"] = {"cgan": {"z_id": "onehot", "seed": 5}}
    (tmp_path / "au.json").write_text(json.dumps(d))
    cfg = load_config(tmp_path / "au.json")
    data = data_config(cfg)
    au_set = StoredSet(build_set("bp4d", data, tmp_path / "bp4d", progress=False))
    run = texture.train_texture(cfg, au_set, tmp_path / "tex_au", progress=False)
    subjects = len(au_set.splits["train"])
    assert json.loads((run / "texture.json").read_text())["z_id_dim"] == subjects  # one-hot: one slot per subject
    assert calls == [(subjects, subjects, "onehot", 5)]

    calls.clear()  # the holistic set keeps the shared settings
    faces = StoredSet(build_set("facescape", data, tmp_path / "facescape", progress=False))
    run = texture.train_texture(cfg, faces, tmp_path / "tex", progress=False)
    z_id_dim = d["shape"]["network"]["z_id_dim"]
    assert json.loads((run / "texture.json").read_text())["z_id_dim"] == z_id_dim
    assert calls == [(len(faces.splits["train"]), z_id_dim, "gaussian", 0)]
