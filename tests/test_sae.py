"""The supervised auto-encoder trains as Eq. 1 says, resumes after a kill, and runs data-parallel with torchrun."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from conftest import log_rows
from train.config import data_config, load_config
from train.data.synthetic_sets import StoredSet, build_set
from train.shape_runs import load_sae
from train.sae import mix_partners, same_person_partners, train_sae, training_meshes

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from conftest import tiny_config_dict
    folder = tmp_path_factory.mktemp("tiny")
    path = folder / "tiny.json"
    path.write_text(json.dumps(tiny_config_dict()))
    cfg = load_config(path)
    stored = StoredSet(build_set("facescape", data_config(cfg), folder / "outputs/tiny/data/facescape",
                                 progress=False))
    return cfg, stored, folder


def test_sae_learns_and_each_head_predicts_its_own_labels(tiny, tmp_path):
    cfg, stored, _ = tiny
    run = train_sae(cfg, stored, tmp_path / "sae", progress=False)
    rows = log_rows(run)
    assert len(rows) == 80 and float(rows[-1]["l1"]) < 0.5 * float(rows[0]["l1"])
    model = load_sae(run)
    meshes, id_labels, exp_labels = training_meshes(stored)
    with torch.no_grad():
        mu_id, mu_exp = model.encode(meshes)
        id_pred, exp_pred = model.id_classifier(mu_id).argmax(1), model.exp_classifier(mu_exp).argmax(1)
    # identity labels and expression labels are different numbers for most meshes, so a head trained on the
    # other head's labels fails here
    assert (id_labels != exp_labels).float().mean() > 0.8
    assert (id_pred == id_labels).float().mean() > 0.9
    assert (exp_pred == exp_labels).float().mean() > 0.9
    emb = np.load(run / "embeddings.npz")
    assert emb["mu_id"].shape == (len(meshes), 16) and emb["mu_exp"].shape == (len(meshes), 8)
    np.testing.assert_array_equal(emb["id_labels"], id_labels.numpy())
    # the decoder gives back every vertex
    assert model.decode(mu_id[:2], mu_exp[:2]).shape == (2, stored.vertices.shape[2], 3)


def test_plain_autoencoder_has_no_classification_terms(tiny, tmp_path):
    cfg, stored, _ = tiny
    run = train_sae(cfg, stored, tmp_path / "ae", supervised=False, progress=False)
    for row in log_rows(run):
        assert float(row["loss"]) == pytest.approx(float(row["l1"]), rel=1e-5)
    # nor the label-using options of the SAE's config: mixup partners and identity swaps need labels
    labelled = dict(cfg, shape=dict(cfg["shape"], sae=dict(cfg["shape"]["sae"], epochs=3, identity_mix=True,
                                                           identity_swap_weight=1.0)))
    run = train_sae(labelled, stored, tmp_path / "ae_options", supervised=False, progress=False)
    for row in log_rows(run):
        assert "swap_l1" not in row and float(row["loss"]) == pytest.approx(float(row["l1"]), rel=1e-5)
    sae = train_sae(labelled, stored, tmp_path / "sae_options", progress=False)  # the SAE does use them
    assert all(float(row["swap_l1"]) > 0 for row in log_rows(sae))


def test_refuses_to_overwrite_a_run_and_resume_needs_one(tiny, tmp_path):
    cfg, stored, _ = tiny
    with pytest.raises(FileNotFoundError, match="--resume: no checkpoint"):
        train_sae(cfg, stored, tmp_path / "none", resume=True, progress=False)
    short = dict(cfg, shape=dict(cfg["shape"], sae=dict(cfg["shape"]["sae"], epochs=2)))
    train_sae(short, stored, tmp_path / "run", progress=False)
    with pytest.raises(FileExistsError, match="already holds a run"):
        train_sae(short, stored, tmp_path / "run", progress=False)


def test_a_run_killed_before_its_export_exports_on_resume_without_training_again(tiny, tmp_path):
    cfg, stored, _ = tiny
    short = dict(cfg, shape=dict(cfg["shape"], sae=dict(cfg["shape"]["sae"], epochs=3)))
    run = train_sae(short, stored, tmp_path / "run", progress=False)
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 3 and "optimizer" not in state  # the last checkpoint keeps no optimizer state
    exported = (run / "sae.safetensors").read_bytes()
    embeddings = np.load(run / "embeddings.npz")["mu_id"]
    (run / "sae.safetensors").unlink()
    (run / "embeddings.npz").unlink()
    train_sae(short, stored, run, resume=True, progress=False)
    assert len(log_rows(run)) == 3  # no epoch trained again
    assert (run / "sae.safetensors").read_bytes() == exported
    np.testing.assert_array_equal(np.load(run / "embeddings.npz")["mu_id"], embeddings)


def _cli(args, cwd, **kw):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "train", *args], cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, **kw)


def test_resume_after_kill_matches_an_uninterrupted_run(tiny, tmp_path):
    cfg, stored, folder = tiny
    long_cfg = json.loads(Path(cfg["_path"]).read_text())
    long_cfg["shape"]["sae"]["epochs"] = 60
    # the options beyond the paper draw and schedule per epoch too: a resume must redo them exactly
    long_cfg["shape"]["sae"].update(identity_mix=True, cosine_decay=True)
    long_cfg["shape"]["network"]["linear_skip"] = True
    (folder / "long.json").write_text(json.dumps(long_cfg))
    args = ["sae", "--config", str(folder / "long.json")]
    killed = _cli(args + ["--out", str(tmp_path / "killed")], folder)
    deadline = time.time() + 300
    while time.time() < deadline:
        if (tmp_path / "killed/log.csv").is_file() and len(log_rows(tmp_path / "killed")) >= 5:
            break
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    done_before = len(log_rows(tmp_path / "killed"))
    assert 5 <= done_before < 60, "the run should have been killed midway"
    resumed = _cli(args + ["--out", str(tmp_path / "killed"), "--resume"], folder)
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()
    whole = _cli(args + ["--out", str(tmp_path / "whole")], folder)
    assert whole.wait(timeout=300) == 0, whole.stderr.read()
    rows = log_rows(tmp_path / "killed")
    assert [int(r["epoch"]) for r in rows] == list(range(60))  # at most the epoch in flight was redone
    a, b = load_file(tmp_path / "killed/sae.safetensors"), load_file(tmp_path / "whole/sae.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


def _torchrun(args, cwd):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "train", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_data_parallel_with_torchrun_on_cpu(tiny, tmp_path):
    cfg, stored, folder = tiny
    _torchrun(["sae", "--config", cfg["_path"], "--out", str(tmp_path / "ddp")], folder)
    rows = log_rows(tmp_path / "ddp")
    assert len(rows) == 80 and float(rows[-1]["l1"]) < float(rows[0]["l1"])
    model = load_sae(tmp_path / "ddp")
    meshes, id_labels, _ = training_meshes(stored)
    with torch.no_grad():
        assert (model.id_classifier(model.encode(meshes)[0]).argmax(1) == id_labels).float().mean() > 0.8


def test_data_parallel_plain_autoencoder(tiny, tmp_path):
    """The AE leaves its classification heads out of the loss; DDP must not wait for their gradients."""
    cfg, _, folder = tiny
    short = json.loads(Path(cfg["_path"]).read_text())
    short["shape"]["sae"]["epochs"] = 3
    (folder / "short.json").write_text(json.dumps(short))
    _torchrun(["sae", "--unsupervised", "--config", str(folder / "short.json"), "--out", str(tmp_path / "ae")], folder)
    assert len(log_rows(tmp_path / "ae")) == 3


def test_data_parallel_start_failure_stops_every_rank(tiny, tmp_path):
    cfg, _, folder = tiny
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "train", "sae", "--resume", "--config", cfg["_path"], "--out", str(tmp_path / "none")],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode != 0
    assert "--resume: no checkpoint" in proc.stderr


def test_mix_partners_are_other_people_making_the_same_expression():
    n_ids, n_exp = 7, 5
    ids, exps = torch.arange(n_ids).repeat_interleave(n_exp), torch.arange(n_exp).repeat(n_ids)
    idx = torch.arange(len(ids))
    partner = mix_partners(idx, ids, exps, torch.Generator().manual_seed(0))
    assert (exps[partner] == exps[idx]).all() and (ids[partner] != ids[idx]).all()
    assert len(set(ids[partner].tolist())) > 3  # not always the same neighbour
    # action units: any frame of another subject
    frames = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2])
    aus = torch.rand(len(frames), 4)
    partner = mix_partners(torch.arange(len(frames)), frames, aus, torch.Generator().manual_seed(1))
    assert (frames[partner] != frames).all() and partner.max() < len(frames)


def test_swap_partners_are_the_same_person_making_another_expression():
    n_ids, n_exp = 7, 5
    ids, exps = torch.arange(n_ids).repeat_interleave(n_exp), torch.arange(n_exp).repeat(n_ids)
    idx = torch.arange(len(ids)).repeat(4)
    other = same_person_partners(idx, ids, exps, torch.Generator().manual_seed(0))
    assert (ids[other] == ids[idx]).all() and (exps[other] != exps[idx]).all()
    assert len(set(exps[other[idx == 0]].tolist())) > 1  # not always the same expression
    frames = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2])  # action units: another frame of the subject
    other = same_person_partners(torch.arange(len(frames)), frames, torch.rand(len(frames), 4),
                                 torch.Generator().manual_seed(1))
    assert (frames[other] == frames).all() and (other != torch.arange(len(frames))).all()


def test_identity_swap_term_trains_and_is_logged(tiny, tmp_path):
    cfg, stored, folder = tiny
    spec = json.loads(Path(cfg["_path"]).read_text())
    spec["shape"]["sae"].update(epochs=3, identity_swap_weight=1.0, identity_mix=True)
    (folder / "swap.json").write_text(json.dumps(spec))
    run = train_sae(load_config(folder / "swap.json"), stored, tmp_path / "swap", progress=False)
    rows = log_rows(run)
    assert len(rows) == 3 and all(float(r["swap_l1"]) > 0 for r in rows)


def test_ctrl_c_says_how_to_resume_and_resuming_a_finished_run_changes_nothing(tiny, tmp_path):
    cfg, stored, folder = tiny
    spec = json.loads(Path(cfg["_path"]).read_text())
    spec["shape"]["sae"]["epochs"] = 400  # long enough (seconds) for the signal to land mid-run
    (folder / "ctrl_c.json").write_text(json.dumps(spec))
    args = ["sae", "--config", str(folder / "ctrl_c.json"), "--out", str(tmp_path / "run")]
    # a suite started in the background (`cmd &`) runs with SIGINT ignored, and children inherit that: give the
    # child the default disposition, as a terminal's Ctrl-C finds it
    proc = _cli(args, folder, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 300
    while time.time() < deadline and not (tmp_path / "run/checkpoint.pt").is_file():
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    err = proc.stderr.read()
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert f"resume with `python -m train {' '.join(args)} --resume`" in err, err
    finished = _cli(args + ["--resume"], folder)
    assert finished.wait(timeout=300) == 0, finished.stderr.read()
    assert len(log_rows(tmp_path / "run")) == 400
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "run").rglob("*")}
    again = _cli(args + ["--resume"], folder)
    assert again.wait(timeout=300) == 0
    assert "already finished (400 epochs); nothing to do" in again.stderr.read()
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "run").rglob("*")} == before


def test_the_coder_fit_is_kept_with_the_set_and_a_damaged_one_is_refitted(tiny, tmp_path):
    from core.shape_networks import MeshCoder
    from train.sae import fit_coder
    _, stored, _ = tiny
    meshes = training_meshes(stored)[0]
    cache = stored.path / "coder-pca12.safetensors"
    cache.unlink(missing_ok=True)
    fitted = MeshCoder(meshes.shape[1], 12)
    fit_coder(fitted, meshes, stored)
    assert cache.is_file()
    direct = MeshCoder(meshes.shape[1], 12).fit(meshes)
    loaded = MeshCoder(meshes.shape[1], 12)
    fit_coder(loaded, meshes, stored)
    for a, b, c in zip(direct.state_dict().values(), fitted.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b) and torch.equal(a, c)  # the same bits fitted or loaded
    fewer = MeshCoder(meshes.shape[1], 12)
    fit_coder(fewer, meshes[:-20], stored)  # other meshes: refitted, not loaded
    assert not torch.equal(fewer.basis, direct.basis)
    cache.write_bytes(cache.read_bytes()[:100])  # truncated
    again = MeshCoder(meshes.shape[1], 12)
    fit_coder(again, meshes, stored)
    assert torch.equal(again.basis, direct.basis)
    loaded = MeshCoder(meshes.shape[1], 12)
    fit_coder(loaded, meshes, stored)  # and the refit replaced the damaged file
    assert torch.equal(loaded.basis, direct.basis)
