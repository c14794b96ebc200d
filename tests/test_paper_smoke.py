"""The paper configuration end to end at sizes a CPU affords (configs/paper-smoke.json: the paper's networks, full 3V
input, 16 -> 512 px texture growth with the paper's channels, Gaussian z_id, crops synthesised while training), then
a paper-size texture run killed in its 256 px phase and resumed."""
import json
import math
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from conftest import interrupt_after_epoch, log_rows, run_demo
from core.face_model import FaceModel
from train.config import ConfigError, load_config
from train.data.synthetic_sets import StoredSet

STEPS = ("synthetic sets", "SAE", "AE baseline", "shape cGANs", "ARKit SAE", "ARKit cGANs", "texture model",
         "shape evaluation", "texture evaluation", "ARKit rig", "ARKit evaluation", "export", "ARKit rig as glTF",
         "Blender: faces, sweeps, renders")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("paper_smoke")
    proc = run_demo(cwd, "paper-smoke")
    yield cwd / "outputs" / "paper-smoke", proc
    # paper-size weights and checkpoints (about 8 GB): not kept among pytest's retained temporary folders
    shutil.rmtree(cwd / "outputs", ignore_errors=True)


def test_the_smoke_config_is_the_paper_config_with_only_sizes_changed():
    paper, smoke = load_config("paper"), load_config("paper-smoke")
    sizes = {("data", "facescape", "num_identities"), ("data", "facescape", "split"),
             ("data", "bp4d", "num_identities"), ("data", "bp4d", "frames_per_task"), ("data", "bp4d", "split"),
             ("data", "arkit", "num_identities"), ("data", "arkit", "frames_per_identity"), ("data", "arkit", "split"),
             ("arkit_rig", "identity_components"), ("arkit_rig", "offset_components"),
             ("shape", "sae", "epochs"), ("shape", "sae", "batch_size"), ("shape", "cgan", "epochs"),
             ("shape", "cgan", "batch_size"), ("texture", "train", "epochs_per_phase"), ("texture", "train", "first_phase_epochs"),
             ("texture", "train", "epoch_samples"), ("texture", "train", "batch_size"),
             ("demo", "render_resolution"), ("demo", "render_samples"), ("demo", "contact_sheets")}

    def leaves(d, path=()):
        for k, v in d.items():
            if k in ("name", "description", "extends", "_path", "_files"):
                continue
            yield from (leaves(v, path + (k,)) if isinstance(v, dict) else [(path + (k,), v)])
    a, b = dict(leaves(paper)), dict(leaves(smoke))
    assert a.keys() == b.keys()
    changed = {k for k in a if a[k] != b[k]}
    assert changed and changed <= sizes, changed - sizes
    assert smoke["shape"]["network"] == paper["shape"]["network"] and smoke["texture"]["network"] == \
        paper["texture"]["network"]


def test_a_config_extending_another_names_only_existing_fields(tmp_path):
    (tmp_path / "typo.json").write_text(json.dumps({"name": "typo", "extends": "paper",
                                                    "shape": {"sae": {"epoch": 1}}}))
    with pytest.raises(ConfigError, match=r"typo.json: shape: sae: epoch: not in the config it extends"):
        load_config(tmp_path / "typo.json")
    (tmp_path / "loop.json").write_text(json.dumps({"name": "loop", "extends": "loop"}))
    with pytest.raises(ConfigError, match="extends itself"):
        load_config(tmp_path / "loop.json")


def test_every_paper_step_runs_and_the_add_on_generates_with_its_model(smoke):
    root, proc = smoke
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])
    steps = {s["step"]: s["how"] for s in json.loads((root / "demo" / "steps.json").read_text())["steps"]}
    assert all(steps[s] in ("trained", "done") for s in STEPS), steps
    paper = load_config("paper")
    sae = json.loads((root / "shape" / "sae" / "sae.json").read_text())
    assert sae["code_dim"] is None and sae["num_vertices"] == 26719  # every coordinate in, every one out
    assert all(sae[k] == paper["shape"]["network"][k] for k in ("id_encoder", "exp_encoder", "decoder", "id_dim",
                                                               "exp_dim"))
    for run in ("shape/sae", "shape/ae", "shape/cgan", "texture/texture"):  # losses finite in every epoch
        for row in log_rows(root / run):
            assert all(math.isfinite(float(v)) for k, v in row.items() if k != "phase"), (run, row)
    texture_log = log_rows(root / "texture" / "texture")
    assert [(int(r["resolution"]), r["phase"]) for r in texture_log] == [(16, "stable")] + [
        (r, p) for r in (32, 64, 128, 256, 512) for p in ("fade", "stable")]
    assert json.loads((root / "texture" / "texture" / "texture.json").read_text())["channels"] == \
        paper["texture"]["network"]["channels"]
    assert StoredSet(root / "data" / "facescape").textures is None  # trained on crops synthesised on the fly

    from train.evaluate import report_markdown
    from train.evaluate_texture import report_markdown as texture_markdown
    from train.seeds import BARS
    report = json.loads((root / "eval" / "report.json").read_text())
    for label, read, _, _ in BARS:  # every field the bars and the reports read is there and a number
        assert np.isfinite(np.asarray(read(report), float)).all(), label
    assert "## " in report_markdown(report)
    texture_report = json.loads((root / "eval" / "texture_report.json").read_text())
    assert texture_report["resolution"] == 512 and "512 px" in texture_markdown(texture_report)

    model = FaceModel.from_pretrained(str(root / "export" / "facecam-paper-smoke"))
    faces = model.sweep(7, "2_smile", [0.0, 1.0, 2.0])
    assert [f.vertices.shape for f in faces] == [(26719, 3)] * 3 and all(np.isfinite(f.vertices).all() for f in faces)
    assert faces[0].texture is not None and faces[0].texture.ndim == 3
    assert np.abs(faces[2].vertices - faces[0].vertices).max() > 0  # the sweep moves the face
    result = json.loads((root / "demo" / "result.json").read_text())  # generated in bpy by the installed add-on
    assert [f["identity_seed"] for f in result["faces"]] == [1, 2, 3] and all(len(f["keys"]) > 1
                                                                              for f in result["faces"])


def test_a_paper_size_texture_run_killed_at_256_px_resumes_to_the_same_weights(smoke, tmp_path, monkeypatch):
    from train.texture import train_texture
    root, proc = smoke
    assert proc.returncode == 0
    cfg = load_config("paper-smoke")
    stored = StoredSet(root / "data" / "facescape")
    kill_at = 7
    assert [(int(r["resolution"]), r["phase"]) for r in log_rows(root / "texture" / "texture")][kill_at] == (256,
                                                                                                          "fade")
    interrupt_after_epoch(monkeypatch, kill_at)
    with pytest.raises(KeyboardInterrupt):
        train_texture(cfg, stored, tmp_path / "cut", progress=False)
    monkeypatch.undo()
    resumed = train_texture(cfg, stored, tmp_path / "cut", resume=True, progress=False)
    assert [int(r["epoch"]) for r in log_rows(resumed)] == list(range(11))
    whole = load_file(root / "texture" / "texture" / "texture.safetensors")  # the demo's uninterrupted run
    cut = load_file(resumed / "texture.safetensors")
    assert whole.keys() == cut.keys() and all(torch.equal(whole[k], cut[k]) for k in whole)
