"""The ARKit-like set, the learned ARKit rig (fit, core, export, files), and the ARKit SAE + cGAN's evaluation."""
import json
import shutil
import struct
import subprocess
import types
from pathlib import Path

import numpy as np
import pytest

from core.arkit_rig import ARKIT_NAMES, ARKitRig, RigConfig, RigFormatError
from train.config import ConfigError, data_config
from train.data.arkit import (ARKIT_RECIPES, EXCLUSIVE, MISSING_KEYS, RIG_NAMES, ROM_FRAMES, draw_weights,
                              ict_shape)
from train.data.synthetic_sets import SyntheticARKit

ROOT = Path(__file__).resolve().parents[1]


def test_the_rig_speaks_apples_names_and_says_which_one_it_lacks(ict):
    assert len(ARKIT_NAMES) == 52 and len(set(ARKIT_NAMES)) == 52
    assert all(n[0].islower() and "_" not in n for n in ARKIT_NAMES)  # camelCase as Apple spells them
    assert set(RIG_NAMES) == set(ARKIT_NAMES) - {"tongueOut"} and list(MISSING_KEYS) == ["tongueOut"]
    for recipe in ARKIT_RECIPES.values():
        assert set(recipe) <= set(ict.expression_names)
    assert ict_shape("eyeBlinkLeft") == "eyeBlink_L" and ict_shape("mouthSmileRight") == "mouthSmile_R"
    assert ict_shape("jawLeft") == "jawLeft" and ict_shape("mouthRight") == "mouthRight"  # directions, not sides
    assert ARKIT_RECIPES["browInnerUp"] == {"browInnerUp_L": 1.0, "browInnerUp_R": 1.0}
    assert ARKIT_RECIPES["cheekPuff"] == {"cheekPuff_L": 1.0, "cheekPuff_R": 1.0}
    # every ICT shape is reachable from some key
    assert set().union(*ARKIT_RECIPES.values()) == set(ict.expression_names)


def test_a_session_is_rest_then_every_key_alone_then_a_take_of_plausible_weights():
    w = draw_weights(np.random.default_rng(5), ROM_FRAMES + 40)
    assert w.shape == (ROM_FRAMES + 40, len(RIG_NAMES)) and w.dtype == np.float32
    assert not w[0].any() and np.array_equal(w[1:ROM_FRAMES], np.eye(len(RIG_NAMES)))
    take = w[ROM_FRAMES:]
    assert (take >= 0).all() and (take <= 1).all() and (take > 0).any(axis=1).all()
    assert (take > 0).sum(1)[1::2].mean() > 2  # the co-activations hold several keys
    for a, b in EXCLUSIVE:
        assert not ((take[:, RIG_NAMES.index(a)] > 0) & (take[:, RIG_NAMES.index(b)] > 0)).any(), (a, b)
    with pytest.raises(ValueError, match="at least 52"):
        draw_weights(np.random.default_rng(0), 10)


def test_the_ground_truth_is_each_persons_own_keys(tmp_path, ict):
    from conftest import tiny_arkit_config
    source = SyntheticARKit(data_config(tiny_arkit_config(tmp_path)), ict)
    neutral = source.identity(0).neutral
    assert np.array_equal(source.mesh_for(0, {}), neutral)
    keys = source.true_keys(0)
    assert keys.shape == (len(RIG_NAMES), ict.num_vertices if hasattr(ict, "num_vertices") else len(neutral), 3)
    smile = RIG_NAMES.index("mouthSmileLeft")
    # a tracker's weights: half a key is half its offset (no per-person response curve) ...
    np.testing.assert_allclose(source.mesh_for(0, {"mouthSmileLeft": 0.5}) - neutral, 0.5 * keys[smile], atol=2e-5)
    # ... except the jaw, which swings on its hinge
    jaw = RIG_NAMES.index("jawOpen")
    assert np.abs(source.mesh_for(0, {"jawOpen": 0.5}) - neutral - 0.5 * keys[jaw]).max() > 1e-3
    # another person's keys are their own: not the same offsets
    assert np.abs(source.true_keys(1)[smile] - keys[smile]).max() > 1e-3
    # a face brought as a mesh gets the same truth as the sampled identity it is
    brought = source.shapes.identity_from_neutral(neutral, -1)
    np.testing.assert_allclose(source.true_keys(brought), keys, atol=1e-4)
    with pytest.raises(KeyError, match="tongueOut"):
        source.mesh_for(0, {"tongueOut": 1.0})
    with pytest.raises(ValueError, match="negative"):
        source.shapes.identity_from_neutral(neutral, 3)


def test_the_rig_fitted_on_the_set_beats_icts_generic_offsets_on_its_people(arkit_rig, ict, tmp_path):
    from train.arkit_rig import fit_rig, load_rig, rig_fit_section, save_rig
    from train.evaluate_arkit import generic_keys
    cfg, stored, _ = arkit_rig
    tmp = tmp_path
    assert stored.kind == "arkit" and stored.arkit_weights.shape == (len(stored), len(RIG_NAMES))
    rig = fit_rig(stored, rig_fit_section(cfg))
    assert rig.names == RIG_NAMES
    source = SyntheticARKit(data_config(cfg), ict)
    face = ict.template.region_vertices("face")
    generic = generic_keys(source)
    for i in stored.splits["train"]:
        truth = source.true_keys(int(i))
        learned = rig.keys(source.identity(int(i)).neutral)
        err = lambda k: np.linalg.norm(k[:, face] - truth[:, face], axis=-1).mean()  # noqa: E731
        assert err(learned) < 0.7 * err(generic)
    # the rig plays weights linearly, and only the names it has
    neutral = source.identity(int(stored.splits["test"][0])).neutral
    keys = rig.keys(neutral)
    np.testing.assert_allclose(rig.pose(neutral, {"jawOpen": 0.5, "eyeBlinkLeft": 1.0}),
                               neutral + 0.5 * keys[RIG_NAMES.index("jawOpen")] + keys[RIG_NAMES.index("eyeBlinkLeft")],
                               atol=1e-5)
    with pytest.raises(KeyError, match="tongueOut"):
        rig.pose(neutral, {"tongueOut": 1.0})
    with pytest.raises(ValueError, match=r"26719 vertices|ICT-FaceKit's topology"):
        rig.keys(neutral[:100])
    save_rig(rig, tmp / "rig")
    again = load_rig(tmp / "rig")
    np.testing.assert_array_equal(again.keys(neutral), keys)
    bad = dict(rig.tensors, coefficients=rig.tensors["coefficients"][:, :2])
    with pytest.raises(RigFormatError, match="coefficients has shape"):
        ARKitRig(rig.cfg, bad)
    with pytest.raises(RigFormatError, match="ARKit names"):
        RigConfig.from_dict({**rig.cfg.to_dict(), "names": ["EyeBlinkLeft"]})
    too_many = {**cfg, "arkit_rig": {**cfg["arkit_rig"], "identity_components": 6}}
    with pytest.raises(ConfigError, match="identity_components 6"):
        fit_rig(stored, rig_fit_section(too_many))


def test_a_set_without_a_persons_range_of_motion_is_refused_by_name(arkit_rig):
    from train.arkit_rig import range_of_motion
    _, stored, _ = arkit_rig
    weights = np.array(stored.arkit_weights)
    person = int(stored.splits["train"][1])
    weights[np.flatnonzero(stored.frame_identity == person)[1 + RIG_NAMES.index("jawOpen")]] *= 0.5
    fake = types.SimpleNamespace(arkit_weights=weights, frame_identity=stored.frame_identity,
                                 weight_names=stored.weight_names, path=stored.path)
    with pytest.raises(ValueError, match=f"identity {person} has no a frame of jawOpen alone at 1"):
        range_of_motion(fake, stored.splits["train"])


def _glb_json(path: Path) -> dict:
    data = path.read_bytes()
    length, kind = struct.unpack("<II", data[12:20])
    assert kind == 0x4E4F534A
    return json.loads(data[20:20 + length])


def test_a_facecam_face_arrives_with_its_rig_as_glb_morph_targets_and_beside_an_obj(exported_rig, exported, tmp_path):
    """The main model exported with the rig; `python -m core generate --arkit-rig` writes the face at rest with
    51 morph targets named as Apple spells them; the Khronos validator finds no error and three.js's GLTFLoader
    reads every name."""
    from core.face_model import FaceModel, ModelFormatError
    model_dir = exported[0]
    out = tmp_path / "model"
    shutil.copytree(exported_rig, out)
    assert (out / "arkit_rig.safetensors").is_file() and not (out / "arkit_rig.json").exists()
    model = FaceModel(out)
    assert model.has_arkit_rig and not FaceModel(model_dir).has_arkit_rig
    face = model.neutral_face(4, texture=False)
    names, keys = model.arkit_keys(face.vertices)
    assert names == RIG_NAMES and keys.shape == (51, *face.vertices.shape) and np.abs(keys).max() > 0.1
    with pytest.raises(ValueError, match="has no ARKit rig"):
        FaceModel(model_dir).arkit_keys(face.vertices)

    from core.__main__ import main as core_main
    glb = tmp_path / "face.glb"
    assert core_main(["generate", "--model", str(out), "--seed", "4", "--arkit-rig", "--no-texture",
                      "--out", str(glb)]) == 0
    doc = _glb_json(glb)
    mesh = doc["meshes"][0]
    assert mesh["extras"]["targetNames"] == list(RIG_NAMES) and mesh["weights"] == [0.0] * 51
    assert all(len(p["targets"]) == 51 for p in mesh["primitives"])
    obj = tmp_path / "face.obj"
    assert core_main(["generate", "--model", str(out), "--seed", "4", "--arkit-rig", "--units", "cm",
                      "--out", str(obj)]) == 0
    with np.load(tmp_path / "face_arkit.npz") as z:
        assert list(z["names"]) == list(RIG_NAMES) and str(z["units"]) == "cm"
        np.testing.assert_allclose(z["offsets"], keys, atol=1e-6)  # the model's units are cm
    assert core_main(["generate", "--model", str(out), "--arkit-rig", "--expression", "2", "--out", str(glb)]) == 2

    if shutil.which("node") is None or not (ROOT / "tools/gltf/node_modules/three").is_dir():
        pytest.fail("node and tools/gltf's packages are needed (make gltf-tools)")
    checked = json.loads(subprocess.run(["node", str(ROOT / "tools/gltf/check.mjs"), str(glb)], capture_output=True,
                                        text=True, check=True, cwd=ROOT / "tools/gltf").stdout)
    assert checked["validator"]["numErrors"] == 0, checked["validator"]["messages"]
    assert checked["meshes"] and all(set(m["morphTargetDictionary"]) == set(RIG_NAMES) and m["influences"] == 51
                                     for m in checked["meshes"])

    # a damaged rig file is refused by name
    (out / "arkit_rig.safetensors").write_bytes((out / "arkit_rig.safetensors").read_bytes()[:200])
    with pytest.raises(ModelFormatError, match="arkit_rig.safetensors"):
        FaceModel(out)


def test_the_arkit_shape_model_trains_and_the_evaluation_reports_its_bars(arkit_rig, tmp_path):
    from train.cgan import train_cgan
    from train.evaluate_arkit import evaluate_arkit
    from train.sae import train_sae
    cfg, stored, rig = arkit_rig
    tmp = tmp_path
    sae = train_sae(cfg, stored, tmp / "sae", progress=False)
    assert json.loads((sae / "sae.json").read_text())["expression_labels"] == "arkit_weights"
    assert json.loads((sae / "config.json").read_text())["sae"]["epochs"] == 30  # shape.arkit merged
    gan = train_cgan(cfg, sae, tmp / "gan", progress=False)
    r = evaluate_arkit(cfg, SyntheticARKit(data_config(cfg)), sae, gan, rig, tmp / "eval", people=2)
    assert set(r["keys"]) == {"train", "test"}
    assert r["keys"]["train"]["learned rig"]["mean_mm"] < r["keys"]["train"]["generic (ICT offsets)"]["mean_mm"]
    assert set(r["bars"]) == {"gap_closed_held_out", "rig_over_direct"} and r["take_frames"] == 2 * 4
    text = (tmp / "eval" / "report_arkit.md").read_text()
    assert "tongueOut" in text and ("MISSED" in text) == (not all(b["met"] for b in r["bars"].values()))
