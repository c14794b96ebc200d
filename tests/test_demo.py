"""The main job end to end on the tiny config: every step from the data to faces rendered in Blender, then a
second run that reuses everything."""
import json

import numpy as np
import pytest
from PIL import Image

from conftest import run_demo, tiny_arkit_dict, tiny_config_dict
from train.config import ConfigError
from train.demo import demo_section


def test_demo_trains_exports_and_renders_faces_then_reuses_every_step(tmp_path):
    spec = tiny_arkit_dict()
    spec["demo"] = {"render_resolution": 48, "render_samples": 1, "contact_sheets": True, "texture_beside_shape": True,
                    "max_extension_mib": 50}
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(spec))
    first = run_demo(tmp_path, config)
    assert first.returncode == 0, (first.stdout[-3000:], first.stderr[-3000:])
    root = tmp_path / "outputs" / "tiny"
    demo = root / "demo"
    result = json.loads((demo / "result.json").read_text())
    assert [f["identity_seed"] for f in result["faces"]] == [1, 2, 3]
    # made in Blender Pythons without torch, every version the extension claims
    assert result["blender"] == "bpy 5.0.1 without torch" and 0 < result["extension_mib"] < 50
    assert result["other_blenders"] == {v: "3 faces generated, swept and rendered" for v in ("4.2.23", "4.5.15")}
    assert all(len(f["keys"]) == 5 for f in result["faces"])  # basis + a 4-level sweep on each face
    for path in result["renders"]:
        image = np.asarray(Image.open(path))
        assert image.shape == (48, 48, 4) and image[..., 3].max() == 255  # the face is in the frame
    strip = np.asarray(Image.open(result["strip"]))
    assert strip.shape == (48, 48 * 5, 4)
    frames = [strip[:, i * 48:(i + 1) * 48].astype(float) for i in range(5)]
    assert np.abs(frames[-1] - frames[0]).mean() > 0.5  # the sweep moves the face
    assert (demo / "faces.blend").stat().st_size > 0
    model = root / "export" / "facecam-tiny"
    assert {"config.json", "shape.safetensors", "texture.safetensors"} <= {p.name for p in model.iterdir()}
    assert (root / "eval" / "report.md").is_file() and (root / "eval" / "texture_report.md").is_file()
    assert "Outputs:" in first.stdout and str((demo / "faces.blend").resolve()) in first.stdout
    # the ARKit rig: fitted, evaluated, shipped in the model, written as glTF, baked and posed in Blender
    assert (model / "arkit_rig.safetensors").is_file() and (root / "eval" / "report_arkit.md").is_file()
    assert (demo / "face_arkit.glb").stat().st_size > 0
    assert result["arkit"]["keys"] == 51
    rig_strip = np.asarray(Image.open(result["arkit"]["strip"]))
    assert rig_strip.shape == (48, 48 * 5, 4)
    rest = rig_strip[:, :48].astype(float)
    assert all(np.abs(rig_strip[:, i * 48:(i + 1) * 48] - rest).mean() > 0.2 for i in range(1, 5))  # poses move it
    steps = json.loads((demo / "steps.json").read_text())
    assert steps["fresh"] and steps["total_seconds"] >= sum(s["seconds"] for s in steps["steps"]) > 0
    page = (root / "results.md").read_text()  # every number of the run in one page, stamped
    assert "commit " in page and "machine: " in page and "## Shape model" in page and "| SAE |" in page
    assert "(images/demo_face_1.png)" in page and (root / "images" / "demo_face_1.png").is_file()

    second = run_demo(tmp_path, config)
    assert second.returncode == 0, second.stderr[-3000:]
    table = [line for line in second.stdout.splitlines() if line.startswith("| ") and "| step |" not in line]
    reused = {line.split("|")[1].strip(): line.split("|")[2].strip() for line in table}
    for step in ("contact sheets", "SAE", "AE baseline", "shape cGANs", "ARKit SAE", "ARKit cGANs", "texture model",
                 "shape evaluation", "texture evaluation", "ARKit rig", "ARKit evaluation", "export", "ARKit rig as glTF",
                 "Blender: faces, sweeps, renders"):
        assert reused[step] == "reused", (step, reused)
    assert not json.loads((demo / "steps.json").read_text())["fresh"]


def test_demo_section_is_checked():
    assert demo_section({"name": "x"}).render_resolution == 384  # absent: the defaults
    with pytest.raises(ConfigError, match="demo.render_samples: missing"):
        demo_section({"name": "x", "demo": {"render_resolution": 64}})
    with pytest.raises(ValueError, match="render_resolution must be >= 16"):
        demo_section({"name": "x", "demo": {"render_resolution": 8, "render_samples": 1, "contact_sheets": True,
                                            "texture_beside_shape": False, "max_extension_mib": 0}})


def test_a_run_older_than_its_config_or_inputs_is_set_aside_not_reused(tmp_path, capsys):
    import os
    from train.runs import set_aside_if_stale
    config = tmp_path / "c.json"
    config.write_text('{"name": "c"}')
    run = tmp_path / "texture"
    run.mkdir()
    (run / "config.json").write_text("{}")
    (run / "texture.safetensors").write_bytes(b"weights")
    assert set_aside_if_stale(run, str(config)) is None and run.is_dir()  # as new as the config: kept
    os.utime(run / "config.json", (1_000_000_000, 1_000_000_000))  # started long before the config changed
    aside = set_aside_if_stale(run, str(config))
    assert not run.exists() and aside.name.startswith("texture.before-")
    assert (aside / "texture.safetensors").read_bytes() == b"weights"  # nothing lost
    assert set_aside_if_stale(run, str(config)) is None  # no run: nothing to do

    smaller = tmp_path / "smaller.json"  # a config that extends c.json: a change to c.json counts too
    smaller.write_text('{"name": "smaller", "extends": "c"}')
    run.mkdir()
    (run / "config.json").write_text("{}")
    assert set_aside_if_stale(run, str(smaller)) is None
    os.utime(smaller, (1_000_000_000, 1_000_000_000))
    os.utime(run / "config.json", (1_500_000_000, 1_500_000_000))  # newer than smaller.json, older than c.json
    assert set_aside_if_stale(run, str(smaller)).name.startswith("texture.before-")

    # a run trained from a file that was rewritten since (a cGAN on an SAE retrained after it started)
    run.mkdir()
    (run / "config.json").write_text("{}")
    sae = tmp_path / "sae.safetensors"
    sae.write_bytes(b"sae")
    os.utime(sae, (1_000_000_000, 1_000_000_000))
    assert set_aside_if_stale(run, str(config), [sae, tmp_path / "absent"]) is None  # older input: kept
    os.utime(config, (1_000_000_000, 1_000_000_000))
    os.utime(run / "config.json", (1_600_000_000, 1_600_000_000))  # newer than the config, older than the SAE
    os.utime(sae, None)
    assert set_aside_if_stale(run, str(config), [sae]).name.startswith("texture.before-")
    assert f"predates {sae}, which was rewritten since" in capsys.readouterr().out

