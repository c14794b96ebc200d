"""The data command line as a user runs it: build, preview, linearity, export into the real layouts and read back."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from train.config import data_config, load_config
from train.data.bp4d import BP4DFolder
from train.data.facescape import FaceScapeFolder
from train.data.synthetic_sets import SyntheticBP4D, SyntheticFaceScape

ROOT = Path(__file__).resolve().parents[1]


def run(args, cwd, ok=True):
    proc = subprocess.run([sys.executable, "-m", "train", *args], cwd=cwd, capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert (proc.returncode == 0) == ok, proc.stderr[-2000:]
    return proc


def test_build_and_preview(tiny_config_path, tmp_path):
    out = run(["data", "build", "--config", str(tiny_config_path)], tmp_path).stdout
    assert (tmp_path / "outputs/tiny/data/facescape/vertices.npy").is_file()
    assert (tmp_path / "outputs/tiny/data/bp4d/au_intensities.npy").is_file()
    assert "facescape-like set: outputs/tiny/data/facescape" in out
    run(["data", "preview", "--config", str(tiny_config_path), "--identities", "0", "1"], tmp_path)
    sheet = Image.open(tmp_path / "outputs/tiny/preview/facescape_sheet.png")
    assert sheet.width > 20 * 100 and np.asarray(sheet).std() > 10  # 20 expression columns, not blank
    assert (tmp_path / "outputs/tiny/preview/facescape_sweep.png").is_file()
    assert (tmp_path / "outputs/tiny/preview/bp4d_sheet.png").is_file()
    transfer = Image.open(tmp_path / "outputs/tiny/preview/transfer_sheet.png")
    assert transfer.width > 7 * 100 and np.asarray(transfer).std() > 10  # 7 expressions, transferred and added


def test_bad_input_gives_clear_errors(tiny_config_path, tmp_path):
    err = run(["data", "build", "--config", "nosuch"], tmp_path, ok=False).stderr
    assert "config 'nosuch' not found" in err and "quick" in err
    cfg = json.loads(tiny_config_path.read_text())
    cfg["data"]["facescape"]["texture_resolution"] = 100
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(cfg))
    err = run(["data", "build", "--config", str(bad)], tmp_path, ok=False).stderr
    assert "bad.json: data.facescape.texture_resolution" in err and "100" in err
    err = run(["data", "preview", "--config", str(tiny_config_path), "--identities", "7"], tmp_path, ok=False).stderr
    assert "--identities [7]" in err


def test_export_layouts_read_back_with_the_real_loaders(tiny_config_path, tmp_path):
    cfg = data_config(load_config(tiny_config_path))
    run(["data", "export", "--config", str(tiny_config_path), "--set", "facescape", "--identities", "3",
         "--out", str(tmp_path / "facescape")], tmp_path)
    folder = FaceScapeFolder(tmp_path / "facescape")
    synth = SyntheticFaceScape(cfg)
    assert list(folder.identity_ids) == ["1", "2", "3"] and tuple(folder.expression_names) == synth.expression_names
    for i, e in ((0, 0), (2, 15)):
        np.testing.assert_allclose(folder.mesh(i, e), synth.mesh(i, e), atol=1e-5)
        np.testing.assert_array_equal(folder.texture(i, e), synth.texture(i, e))
    assert folder.template.polygon_sizes.tolist() == synth.template.polygon_sizes.tolist()  # quads kept

    run(["data", "export", "--config", str(tiny_config_path), "--set", "bp4d", "--out", str(tmp_path / "bp4d")],
        tmp_path)
    frames = BP4DFolder(tmp_path / "bp4d")
    bp = SyntheticBP4D(cfg)
    assert len(frames) == len(bp) and list(frames.au_names) == list(bp.au_names)
    np.testing.assert_array_equal(frames.au_intensities, bp.au_intensities)
    np.testing.assert_allclose(frames.mesh(5), bp.mesh(5), atol=1e-5)


def test_linearity_report(tiny_config_path, tmp_path):
    out = run(["data", "linearity", "--config", str(tiny_config_path), "--identities", "12"], tmp_path).stdout
    report = tmp_path / "outputs/tiny/data/linearity.md"
    assert report.read_text().startswith("# How linear") and "| B. oracle" in out
    columns = json.loads(report.with_suffix(".json").read_text())
    assert columns["deformation transfer"]["transfer_residual_mm"] > 0.1 and set(columns) == {
        "deformation transfer", "added offsets", "linear"}


def test_config_values_are_checked_with_the_file_named(tiny_config_path, tmp_path):
    for section, field, value, message in [
        (None, "seed", "x", "data.seed: expected an integer >= 0"),
        ("style", "gain_sigma", -1, "data.style: gain_sigma: expected a number in [0, 1]"),
        ("facescape", "num_identities", 2, "leaves no training identity"),
    ]:
        cfg = json.loads(tiny_config_path.read_text())
        target = cfg["data"] if section is None else cfg["data"][section]
        target[field] = value
        bad = tmp_path / f"bad_{field}.json"
        bad.write_text(json.dumps(cfg))
        err = run(["data", "build", "--config", str(bad)], tmp_path, ok=False).stderr
        assert bad.name in err and message in err, err


def test_shape_config_values_are_checked_with_the_file_named(tiny_config_path, tmp_path):
    for section, field, value, message in [
        ("cgan", "lr_decay_fraction", 1.5, "shape.cgan.lr_decay_fraction: expected a fraction in [0, 1]"),
        ("cgan", "z_id", "uniform", "shape.cgan.z_id: expected 'gaussian' or 'onehot'"),
        ("sae", "epochs", "ten", "shape.sae.epochs: expected int"),
    ]:
        cfg = json.loads(tiny_config_path.read_text())
        cfg["shape"][section][field] = value
        bad = tmp_path / f"bad_{field}.json"
        bad.write_text(json.dumps(cfg))
        err = run(["cgan" if section == "cgan" else "sae", "--config", str(bad)], tmp_path, ok=False).stderr
        assert bad.name in err and message in err, err


def test_every_command_of_the_parser_has_a_step_that_runs_it():
    import argparse
    import importlib
    from train.cli import COMPOSITE, STEP_MODULES, build_parser
    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    assert set(commands) == {"data", *COMPOSITE, *STEP_MODULES}
    for module in STEP_MODULES.values():
        assert callable(importlib.import_module(module).main), module
