"""FaceModel: what `train export` writes loads through the same code from a folder and from a (loopback) hub, and
generates the faces the training-side generator makes, from seeds, on any machine."""
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from core import hub
from core.face_model import FaceModel, ModelFormatError
from core.obj_io import read_obj
from core.seeds import standard_normal
from hub_server import HubServer
from train.cgan import train_cgan
from train.config import data_config, load_config
from train.data.synthetic_sets import StoredSet, build_set
from train.shape_runs import load_generator
from train.export import export_model
from train.sae import train_sae
from train.texture import train_texture

ROOT = Path(__file__).resolve().parents[1]


def test_export_holds_only_what_generation_needs(exported):
    out, sae, gan, _ = exported
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "shape.safetensors",
                                                     "template.safetensors", "template_texture.png",
                                                     "texture.safetensors"]
    from safetensors.torch import load_file
    keys = set(load_file(out / "shape.safetensors"))
    assert not any(k.startswith(("id_encoder", "exp_encoder", "id_classifier", "exp_classifier")) for k in keys)
    assert {"decoder.0.weight", "coder.basis", "g_id.net.0.weight", "g_exp.net.0.weight", "z_id"} <= keys
    card = (out / "README.md").read_text()
    assert "license: mit" in card and "the tiny test set" in card


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_generated_mesh_is_the_training_side_generator(exported, backend):
    out, sae, gan, stored = exported
    model = FaceModel(out, backend=backend)
    assert model.backend.name == backend and not model.backend_note
    face = model.generate(identity_seed=7, expression="2_smile", intensity=1.3, noise_seed=3)
    gen, _, cfg = load_generator(sae, gan)
    z_id = torch.from_numpy(standard_normal(7, cfg.z_id_dim))[None]  # the seeds' one definition (core.seeds)
    unit, neutral = torch.eye(cfg.num_expressions)[1][None], torch.eye(cfg.num_expressions)[0]
    noise = torch.from_numpy(standard_normal(3, model.noise_code(3).shape[0]))[None]
    full_precision = gen.calibrated(z_id, unit, noise[:, :cfg.z_noise_dim], neutral, 1.3)[0].numpy()
    # the export stores the PCA basis in float16: the training side with that rounding is the same function
    basis = gen.sae.coder.basis
    basis.copy_(basis.half().float())
    expected = gen.calibrated(z_id, unit, noise[:, :cfg.z_noise_dim], neutral, 1.3)[0].numpy()
    np.testing.assert_allclose(face.vertices, expected, atol=1e-5)
    assert 0 < np.abs(full_precision - expected).max() < 1e-3  # float16's price: under 10 micrometres here
    model.intensity_mode = "paper"  # the paper's z_exp scaling, still there
    paper = gen(z_id, unit * 1.3, noise[:, :cfg.z_noise_dim])[0].numpy()
    np.testing.assert_allclose(model.generate(7, "2_smile", 1.3, 3).vertices, paper, atol=1e-5)
    assert np.abs(paper - expected).max() > 1e-3
    with pytest.raises(ValueError, match="intensity_mode 'linear': expected one of calibrated, paper"):
        model.intensity_mode = "linear"
    model.intensity_mode = "calibrated"
    assert face.vertices.shape == (stored.template.num_vertices, 3)
    assert (face.polygon_sizes == 4).sum() > 0 and len(face.polygon_sizes) == stored.template.num_polygons
    assert face.texture.shape == (*model.template_texture.shape[:2], 3) and face.texture.dtype == np.uint8
    assert face.metadata == {"model": "facecam-tiny", "identity_seed": 7, "noise_seed": 3, "expression": "2_smile",
                             "intensity": 1.3, "intensity_mode": "calibrated"}


def test_calibrated_intensity_scales_the_displacement_and_mixes_add(exported):
    """Intensity 0 of any expression is the one neutral face; the displacement from it is proportional to the
    intensity, past 1 too; a mix adds each expression's change with its weight; textures follow the same rule."""
    model = FaceModel(exported[0])
    levels = [0.0, 0.5, 1.0, 2.0, 3.0]
    faces = model.sweep(3, "3_mouth_stretch", levels, noise_seed=1)
    neutral = model.generate(3, "1_neutral", 1.0, noise_seed=1)
    np.testing.assert_allclose(faces[0].vertices, neutral.vertices, atol=1e-5)
    np.testing.assert_allclose(model.generate(3, "2_smile", 0.0, noise_seed=1).vertices, neutral.vertices, atol=1e-5)
    moved = [np.linalg.norm(f.vertices - faces[0].vertices, axis=1).mean() for f in faces]
    np.testing.assert_allclose(np.array(moved) / moved[2], levels, rtol=1e-4)
    a, b = model.generate(3, "2_smile", 1.0, 1), model.generate(3, "19_brow_raiser", 1.0, 1)
    mix = model.generate(3, {"2_smile": 0.5, "19_brow_raiser": 0.5}, 2.0, 1)
    np.testing.assert_allclose(mix.vertices, a.vertices + b.vertices - neutral.vertices, atol=1e-5)
    half = model.generate(3, "2_smile", 0.5, 1)
    expected = (neutral.texture.astype(float) + a.texture) / 2
    assert np.abs(half.texture - expected).mean() < 1.0  # uint8 rounding and the [-1, 1] clamp aside


def test_texture_is_the_crop_over_the_template_with_the_tone_carried_outside(exported):
    model = FaceModel(exported[0])
    size = model.template_texture.shape[0]
    offsets = np.zeros((1, 8, 8, 3), np.float32)
    offsets[..., 0] = 0.2  # redder everywhere in the crop, edge included
    offsets[:, 3:5, 3:5, 1] = -0.4  # a darker green patch inside it only
    texture = model._compose_textures(offsets)[0].astype(int)
    template = model.template_texture.astype(int)
    u0, u1, v0, v1 = model.crop_window
    inside = (round((1 - v1) * size) + round((1 - v0) * size)) // 2, (round(u0 * size) + round(u1 * size)) // 2
    assert texture[inside][1] < template[inside][1] - 30  # the patch lands in the crop
    assert abs(texture[0, 0, 0] - min(255, template[0, 0, 0] + 25.5)) <= 1  # the edge's tone outside the crop
    assert abs(texture[0, 0, 1] - template[0, 0, 1]) <= 1  # the patch is not on the edge: no green shift outside


def test_seeds_decide_the_face(exported):
    model = FaceModel(exported[0])
    a = model.generate(1, "2_smile", 1.0, 0)
    assert np.array_equal(a.vertices, model.generate(1, "2_smile", 1.0, 0).vertices)
    assert not np.allclose(a.vertices, model.generate(2, "2_smile", 1.0, 0).vertices)
    assert not np.allclose(a.vertices, model.generate(1, "2_smile", 0.0, 0).vertices)
    assert not np.array_equal(a.texture, model.generate(2, "2_smile", 1.0, 0).texture)
    # another process (its own thread count and allocator) makes the same face, bit for bit
    code = (f"import numpy as np; from threadpoolctl import threadpool_limits; threadpool_limits(1); "
            f"from core.face_model import FaceModel; "
            f"np.save('{exported[0]}/../other.npy', FaceModel('{exported[0]}').generate(1, '2_smile', 1.0, 0).vertices)")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
    assert np.array_equal(a.vertices, np.load(exported[0].parent / "other.npy"))


def test_a_seed_is_numpys_pcg64_stream_made_normal_by_box_muller():
    """The codes' definition, computed here a second way (Python's math on PCG64's raw words): what keeps seed 7 the
    same person on every numpy Blender ships, with or without torch."""
    import math
    words = np.random.PCG64(7).random_raw(6)
    expected = []
    for u1, u2 in zip(words[0::2], words[1::2]):
        r = math.sqrt(-2 * math.log(1 - (int(u1) >> 11) * 2 ** -53))
        expected += [r * math.cos(2 * math.pi * (int(u2) >> 11) * 2 ** -53),
                     r * math.sin(2 * math.pi * (int(u2) >> 11) * 2 ** -53)]
    np.testing.assert_allclose(standard_normal(7, 5), expected[:5], rtol=1e-6)
    assert standard_normal(7, 5).dtype == np.float32 and np.array_equal(standard_normal(7, 6)[:5], standard_normal(7, 5))
    assert not np.allclose(standard_normal(8, 5), standard_normal(7, 5))


def test_sweep_is_one_batch_of_the_single_faces(exported):
    model = FaceModel(exported[0])
    levels = [0.0, 0.5, 1.0, 2.5]
    faces = model.sweep(4, "3_mouth_stretch", levels, noise_seed=2)
    for a, face in zip(levels, faces):
        single = model.generate(4, "3_mouth_stretch", a, noise_seed=2)
        np.testing.assert_allclose(face.vertices, single.vertices, atol=1e-5)
        assert face.metadata["intensity"] == a
    moved = [np.abs(f.vertices - faces[0].vertices).mean() for f in faces]
    assert moved[0] == 0 and moved[1] < moved[2] < moved[3]


def test_texture_alone_and_expression_sets_match_single_faces(exported):
    model = FaceModel(exported[0])
    face = model.generate(4, "2_smile", 1.4, noise_seed=2)
    np.testing.assert_array_equal(model.texture_image(4, "2_smile", 1.4, noise_seed=2), face.texture)
    names = model.expression_names[:3]
    for name, f in zip(names, model.expression_set(4, names, 1.4, noise_seed=2, texture=False)):
        np.testing.assert_allclose(f.vertices, model.generate(4, name, 1.4, noise_seed=2).vertices, atol=1e-5)
        assert f.texture is None and f.metadata["expression"] == name
    with pytest.raises(ValueError, match="at least one"):
        model.expression_set(4, [])


def test_device_choice(exported):
    model = FaceModel(exported[0])
    assert model.backend_line() == "numpy on cpu"  # the default on the CPU: no torch import
    face = model.generate(1, 1)
    np.testing.assert_array_equal(model.to("cpu").generate(1, 1).vertices, face.vertices)
    assert model.to("cpu", backend="torch").backend_line() == "torch on cpu"
    np.testing.assert_allclose(model.generate(1, 1).vertices, face.vertices, atol=1e-4)
    assert model.to("cpu").backend_line() == "torch on cpu"  # the backend asked for stays until another is
    assert model.to("cpu", backend="auto").backend_line() == "numpy on cpu"
    with pytest.raises(ValueError, match="backend 'jax': expected one of auto, numpy, torch"):
        FaceModel(exported[0], backend="jax")
    with pytest.raises(ValueError, match="device 'cuda' needs the torch backend"):
        FaceModel(exported[0], backend="numpy", device="cuda")
    with pytest.raises(ValueError, match="device 'nonsense' is not usable"):
        model.to("nonsense")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device 'cuda'"):
            model.to("cuda")


def test_expression_codes_mixes_and_errors(exported):
    model = FaceModel(exported[0])
    names = model.expression_names
    np.testing.assert_array_equal(model.expression_code({names[1]: 0.5, names[2]: 0.5}, 2.0),
                                  np.eye(len(names))[1] + np.eye(len(names))[2])
    # one rule: the name, FaceScape's own number (1-based, as in the names) or the name without the number
    for key in (2, "2", "smile"):
        np.testing.assert_array_equal(model.expression_code(key), model.expression_code("2_smile"))
    assert names[1] == "2_smile" and model.generate(0, "2", texture=False).metadata["expression"] == "2_smile"
    with pytest.raises(ValueError, match="unknown expression 'smiling'.*1_neutral, 2_smile"):
        model.generate(0, "smiling")
    for number in (0, 99):  # never a 0-based index
        with pytest.raises(ValueError, match=f"no name here starts with {number}_.*known: 1_neutral"):
            model.generate(0, number)
    for seed, what in ((-5, "identity seed -5: expected 0..2147483647"), (2 ** 31, "identity seed 2147483648"),
                       (1.5, "identity seed 1.5: expected a whole number")):
        with pytest.raises(ValueError, match=what):
            model.generate(seed, "2_smile")
    with pytest.raises(ValueError, match="noise seed -1: expected 0..2147483647"):
        model.generate(0, "2_smile", noise_seed=-1)
    with pytest.raises(ValueError, match="finite"):
        model.sweep(0, 1, [float("nan")])


def test_broken_model_folders_are_named(exported, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(exported[0], bad)
    config = json.loads((bad / "config.json").read_text())
    (bad / "config.json").write_text(json.dumps(dict(config, format_version=99)))
    with pytest.raises(ModelFormatError, match="format_version 99 is newer"):
        FaceModel(bad)
    shape = dict(config["shape"], decoder=[config["shape"]["decoder"][0] + 1])
    (bad / "config.json").write_text(json.dumps(dict(config, shape=shape)))
    with pytest.raises(ModelFormatError, match=r"shape.safetensors: tensor 'decoder.0.weight' has shape"):
        FaceModel(bad)


def test_loads_from_a_hub_and_downloads_only_what_it_needs(exported, tmp_path, loopback_only, monkeypatch):
    out = exported[0]
    with HubServer() as server:
        commit = server.add_repo("facecam/tiny")
        files = {p.name: server.add_file("facecam/tiny", p.name, p.read_bytes()) for p in out.iterdir()}
        local = FaceModel(out).generate(3, "2_smile", 1.2, 1)
        with pytest.raises(hub.WeightsOfflineError, match="offline mode is on"):  # the caller's offline flag
            FaceModel.from_pretrained(f"facecam/tiny@{commit}", cache_dir=tmp_path / "cache", endpoint=server.url,
                                      offline=True)
        assert server.requests == []
        fetched = []
        remote = FaceModel.from_pretrained(f"facecam/tiny@{commit}", cache_dir=tmp_path / "cache",
                                           endpoint=server.url, on_file=lambda *a: fetched.append(a))
        assert fetched == [("config.json", 0, 1), ("shape.safetensors", 0, 4), ("template.safetensors", 1, 4),
                           ("template_texture.png", 2, 4), ("texture.safetensors", 3, 4)]
        np.testing.assert_array_equal(remote.generate(3, "2_smile", 1.2, 1).vertices, local.vertices)
        asked = {path.rsplit("/", 1)[-1] for _, path in server.requests}
        assert "README.md" not in asked and "texture.safetensors" in asked
        # a manifest entry pins the sha256 of each file: a tampered download is refused
        entry = {"repo_id": "facecam/tiny", "revision": commit, "license": "MIT", "description": "tiny test model",
                 "files": {name: {"sha256": hashlib.sha256((out / name).read_bytes()).hexdigest(),
                                  "size": (out / name).stat().st_size} for name in files}}
        manifest_path = tmp_path / "manifest.json"
        manifest_path.write_text(json.dumps({"format_version": 1, "models": {"tiny": entry}}))
        manifest = hub.load_manifest(manifest_path)
        model = FaceModel.from_pretrained("tiny", cache_dir=tmp_path / "cache2", endpoint=server.url,
                                          manifest=manifest)
        assert model.name == "facecam-tiny"
        server.tamper("facecam/tiny", "shape.safetensors", b"x" * (out / "shape.safetensors").stat().st_size)
        with pytest.raises(hub.ChecksumMismatchError, match="shape.safetensors"):
            FaceModel.from_pretrained("tiny", cache_dir=tmp_path / "cache3", endpoint=server.url, manifest=manifest)
    # the hub is gone: the pinned files come from the cache, with or without HF_HUB_OFFLINE
    again = FaceModel.from_pretrained("tiny", cache_dir=tmp_path / "cache2", endpoint=server.url, manifest=manifest)
    np.testing.assert_array_equal(again.generate(3, "2_smile", 1.2, 1).vertices, local.vertices)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    FaceModel.from_pretrained("tiny", cache_dir=tmp_path / "cache2", endpoint=server.url, manifest=manifest)
    with pytest.raises(hub.WeightsOfflineError, match="HF_HUB_OFFLINE"):
        FaceModel.from_pretrained("tiny", cache_dir=tmp_path / "empty", endpoint=server.url, manifest=manifest)


def test_command_line_writes_obj_mtl_png(exported, tmp_path):
    out = exported[0]
    cmd = [sys.executable, "-m", "core", "generate", "--model", str(out), "--seed", "7", "--expression", "2_smile",
           "--intensity", "1.3", "--out", str(tmp_path / "face.obj")]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    mesh = read_obj(tmp_path / "face.obj")
    face = FaceModel(out).generate(7, "2_smile", 1.3)
    np.testing.assert_allclose(mesh.vertices, face.vertices * 0.01, atol=1e-6)  # metres by default
    text = (tmp_path / "face.obj").read_text()
    assert "# units: m (y up)" in text and "# expression: 2_smile" in text and text.count("\nvn ") == len(face.vertices)
    mtl = (tmp_path / "face.mtl").read_text()
    assert "newmtl skin\nKd 1.0000 1.0000 1.0000\nd 1\nmap_Kd face.png" in mtl and (tmp_path / "face.png").is_file()
    for part in ("sclera", "iris", "teeth", "gums_and_tongue", "eyelashes"):  # a material per part of the head
        assert f"newmtl {part}\n" in mtl and f"usemtl {part}\n" in text
    assert "newmtl eye_wetness\nKd 1.0000 1.0000 1.0000\nd 0\n" in mtl  # transparent
    parts = read_obj(tmp_path / "face.obj")
    names = [face.part_names.index(n.replace("_", " ")) for n in parts.material_names]
    np.testing.assert_array_equal(np.asarray(names)[parts.polygon_materials], face.polygon_parts)
    cm = subprocess.run(cmd[:-2] + ["--units", "cm", "--out", str(tmp_path / "cm.obj")], cwd=ROOT,
                        capture_output=True, text=True)
    assert cm.returncode == 0, cm.stderr
    np.testing.assert_allclose(read_obj(tmp_path / "cm.obj").vertices, face.vertices, atol=2e-6)
    sweep = subprocess.run(cmd[:-4] + ["--sweep", "0", "1", "2", "--out", str(tmp_path / "s.obj")], cwd=ROOT,
                           capture_output=True, text=True)
    assert sweep.returncode == 0 and all((tmp_path / f"s_2_smile@{a}.obj").is_file() for a in ("0.00", "1.00", "2.00"))
    by_number = subprocess.run(cmd[:9] + ["1", "--out", str(tmp_path / "n.obj")], cwd=ROOT, capture_output=True,
                               text=True)
    assert by_number.returncode == 0 and "# expression: 1_neutral" in (tmp_path / "n.obj").read_text()
    helped = subprocess.run(cmd[:4] + ["--model", str(out), "--help"], cwd=ROOT, capture_output=True, text=True)
    assert helped.returncode == 0 and "1_neutral, 2_smile" in " ".join(helped.stdout.split()), helped.stdout
    for args, message in ((["--expression", "smirk"], "unknown expression 'smirk'"),
                          (["--expression", "0"], "no name here starts with 0_"),
                          (["--intensity", "11"], "intensity 11 outside 0..10"),
                          (["--seed", "-5"], "seed -5: expected 0..2147483647"),
                          (["--noise-seed", "99999999999999999999999"], "expected 0..2147483647"),
                          (["--seed", "x"], "'x': expected a whole number"),
                          (["--intensity", "1.3", "--sweep", "0.5", "1"], "not allowed with argument"),
                          (["--units", "cm", "--out", str(tmp_path / "x.glb")], "--units applies to OBJ"),
                          (["--model", "no-such-model"], "unknown model 'no-such-model'")):
        bad = cmd[:4] + ["--model", str(out), "--seed", "1", "--expression", "2_smile", "--out",
                         str(tmp_path / "x.obj")] + args
        proc = subprocess.run(bad, cwd=ROOT, capture_output=True, text=True)
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr


def test_export_refuses_to_clobber_and_names_missing_runs(exported, tmp_path):
    out, sae, gan, stored = exported
    card = {"trained_on": "x", "license": "MIT", "metrics": None}
    with pytest.raises(ValueError, match="not empty"):
        export_model(stored, sae, gan, None, out, "again", card)
    replaced = export_model(stored, sae, gan, None, tmp_path / "copy", "shape-only", card)
    assert not (replaced / "texture.safetensors").exists() and FaceModel(replaced).generate(0, 1).texture is None
    from conftest import tiny_config_dict
    (tmp_path / "tiny.json").write_text(json.dumps(tiny_config_dict()))
    proc = subprocess.run([sys.executable, "-m", "train", "export", "--config", str(tmp_path / "tiny.json")],
                          cwd=tmp_path, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.returncode == 2 and "no finished run" in proc.stderr and "python -m train sae" in proc.stderr, \
        proc.stderr


GLB_IMPORT = r'''
import json, sys
import bpy
bpy.ops.wm.read_factory_settings(use_empty=True)
if sys.argv[-1].endswith(".obj"):
    bpy.ops.wm.obj_import(filepath=sys.argv[-1])
else:
    bpy.ops.import_scene.gltf(filepath=sys.argv[-1])
obj = [o for o in bpy.context.scene.objects if o.type == "MESH"][0]
me = obj.data
# smooth: faces not flagged sharp, and corner normals that vary across a face (flat shading gives one per face)
smooth = sum(p.use_smooth for p in me.polygons) / len(me.polygons)
corner = [tuple(round(c, 4) for c in n.vector) for n in me.corner_normals]
varying = sum(len(set(corner[p.loop_start:p.loop_start + p.loop_total])) > 1 for p in me.polygons) / len(me.polygons)
keys = me.shape_keys.key_blocks if me.shape_keys else []
mats = [m for m in me.materials if m]
images = [n.image.size[:] for m in mats for n in m.node_tree.nodes if n.type == "TEX_IMAGE" and n.image]
print("RESULT " + json.dumps({"keys": [k.name for k in keys], "uv_layers": len(me.uv_layers), "images": images,
      "materials": [m.name for m in mats],
      "smooth": smooth, "varying_normals": varying,
      "dims": list(obj.dimensions), "key_dims": [[max(p.co[i] for p in k.data) - min(p.co[i] for p in k.data)
                                                  for i in range(3)] for k in keys]}))
'''


def test_glb_sweep_imports_into_blender_with_named_morph_targets(exported, tmp_path):
    out = exported[0]
    glb = tmp_path / "sweep.glb"
    proc = subprocess.run([sys.executable, "-m", "core", "generate", "--model", str(out), "--seed", "3",
                           "--expression", "3_mouth_stretch", "--sweep", "0.5", "2", "--out", str(glb)],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    script = tmp_path / "import.py"
    script.write_text(GLB_IMPORT)
    proc = subprocess.run([sys.executable, str(script), str(glb)], capture_output=True, text=True, timeout=300)
    result = json.loads(proc.stdout.split("RESULT ", 1)[1].splitlines()[0])
    assert result["keys"] == ["Basis", "3_mouth_stretch@0.50", "3_mouth_stretch@2.00"]
    assert result["uv_layers"] == 1 and len(result["images"]) == 1 and result["images"][0][0] > 0
    model = FaceModel(out)
    # glTF is y-up in metres; Blender turns it z-up: Blender (x, y, z) extents = model (x, z, y) extents / 100
    for key, a in zip(result["key_dims"], (0.0, 0.5, 2.0)):
        v = model.generate(3, "3_mouth_stretch", a).vertices
        extent = (v.max(0) - v.min(0)) * 0.01
        np.testing.assert_allclose(key, extent[[0, 2, 1]], rtol=1e-4)


@pytest.mark.parametrize("suffix", [".obj", ".glb"])
def test_exports_import_into_blender_in_metres_and_smooth(exported, tmp_path, suffix):
    path = tmp_path / f"face{suffix}"
    proc = subprocess.run([sys.executable, "-m", "core", "generate", "--model", str(exported[0]), "--seed", "5",
                           "--expression", "2_smile", "--out", str(path)], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    script = tmp_path / "import.py"
    script.write_text(GLB_IMPORT)
    proc = subprocess.run([sys.executable, str(script), str(path)], capture_output=True, text=True, timeout=300)
    result = json.loads(proc.stdout.split("RESULT ", 1)[1].splitlines()[0])
    assert 0.2 <= result["dims"][2] <= 0.35, result["dims"]  # a head's height in metres, Blender's z
    assert result["smooth"] == 1.0 and result["varying_normals"] > 0.9, result
    assert {"sclera", "iris", "teeth"} <= {m.replace("_", " ") for m in result["materials"]}, result["materials"]
    assert len(result["images"]) == 1  # the skin's texture


def _publish(folder: Path, repo_id: str, endpoint: str, token: str | None, *extra: str):
    """`python -m train publish` in a fresh process against the loopback hub, through huggingface_hub's LFS
    route (the hub's default, Xet, needs its own storage service)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_ENDPOINT=endpoint, HF_HUB_DISABLE_XET="1", HF_HUB_DISABLE_TELEMETRY="1",
               HF_HOME=str(folder.parent / "hf-home"), **({"HF_TOKEN": token} if token else {}))
    return subprocess.run([sys.executable, "-m", "train", "publish", "--model", str(folder), "--repo-id", repo_id,
                           *extra], cwd=ROOT, capture_output=True, text=True, env=env, timeout=120)


def test_publish_uploads_the_folder_and_pins_the_commit_it_made(exported, tmp_path, loopback_only):
    from train.publish import manifest_entry
    out = tmp_path / "facecam-tiny"
    shutil.copytree(exported[0], out)
    manifest = tmp_path / "weights_manifest.json"
    shutil.copyfile(ROOT / "weights_manifest.json", manifest)
    with pytest.raises(hub.SourceError, match="not a commit sha"):
        manifest_entry(out, "you/facecam-tiny", "main")
    with HubServer() as server:
        refused = _publish(out, "you/facecam-tiny", server.url, "hf_wrong_token")
        assert refused.returncode == 2 and "uploading" in refused.stderr and "HF_TOKEN" in refused.stderr
        assert "you/facecam-tiny" not in server.repos

        done = _publish(out, "you/facecam-tiny", server.url, server.write_token, "--name", "facecam-tiny",
                        "--update-manifest", "--manifest", str(manifest))
        assert done.returncode == 0, done.stderr
        repo = server.repos["you/facecam-tiny"]
        assert sorted(repo.files) == sorted(p.name for p in out.iterdir())
        for name, f in repo.files.items():  # every byte arrived; weights through LFS, the rest inline
            assert f.data == (out / name).read_bytes() and f.lfs == name.endswith(".safetensors")
        assert any(p.startswith("cdn:/upload/") for m, p in server.requests if m == "PUT")
        assert server.commits[-1]["summary"] == f"facecam: {json.loads((out / 'config.json').read_text())['name']}"
        loaded = hub.load_manifest(manifest)
        entry = loaded.models["facecam-tiny"]
        assert entry.revision == repo.commit and not loaded.status  # pinned to the commit the upload made
        assert json.loads(done.stdout[:done.stdout.rindex("}") + 1])["facecam-tiny"]["revision"] == repo.commit
        model = FaceModel.from_pretrained("facecam-tiny", cache_dir=tmp_path / "cache", endpoint=server.url,
                                          manifest=loaded)
        np.testing.assert_array_equal(model.generate(2, 1).vertices, FaceModel(out).generate(2, 1).vertices)

        # publishing again pins the commit that upload returns (this stand-in always makes a new one)
        again = _publish(out, "you/facecam-tiny", server.url, server.write_token, "--name", "facecam-tiny",
                         "--update-manifest", "--manifest", str(manifest))
        assert again.returncode == 0, again.stderr
        assert hub.load_manifest(manifest).models["facecam-tiny"].revision == repo.commit != entry.revision

        server.stop()
        down = _publish(out, "you/facecam-tiny", server.url, server.write_token)  # the hub unreachable
        assert down.returncode == 2 and "the hub must be reachable" in down.stderr, down.stderr[-2000:]

        (out / "extra.pt").write_bytes(b"not weights")  # refused before anything is uploaded
        stray = _publish(out, "you/facecam-tiny", server.url, server.write_token)
        assert stray.returncode == 2 and "extra.pt" in stray.stderr and "uploading" not in stray.stderr


def test_publish_without_a_model_folder_or_network_is_a_clear_error(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "train", "publish", "--model", str(tmp_path), "--repo-id", "a/b"],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2 and "not an exported model folder" in proc.stderr, proc.stderr


def test_identity_interpolation_and_style_editing(exported):
    model = FaceModel(exported[0])
    ends = model.interpolate_identities(1, 2, [0.0, 0.5, 1.0], "2_smile")
    np.testing.assert_allclose(ends[0].vertices, model.generate(1, "2_smile").vertices, atol=1e-5)
    np.testing.assert_allclose(ends[2].vertices, model.generate(2, "2_smile").vertices, atol=1e-5)
    assert not np.allclose(ends[1].vertices, ends[0].vertices) and not np.allclose(ends[1].vertices, ends[2].vertices)
    own = model.generate(1, "2_smile")
    styled = model.style_edit(1, 2, "2_smile")
    assert np.array_equal(model.style_edit(1, 1, "2_smile").vertices, own.vertices)
    assert not np.allclose(styled.vertices, own.vertices)
    # only the expression changes hands: G_id still gets identity 1, so the neutral is identity 1's
    z1, noise = model.identity_code(1)[None], model.noise_code(0)[None, :model.shape_cfg.z_noise_dim]
    shape = model.backend.shape
    assert np.array_equal(shape.identity(z1, noise), shape.embeddings(z1, model.expression_code("2_smile")[None], noise,
                                                                      style_z_id=model.identity_code(2)[None])[0])


@pytest.mark.parametrize("linear_skip", [False, True])
def test_packed_decoder_gives_the_plain_decoders_meshes(linear_skip):
    from core.shape_networks import MeshDecoder, ShapeNetConfig
    torch.manual_seed(0)
    decoder = MeshDecoder(ShapeNetConfig(num_vertices=500, num_identities=4, num_expressions=3, decoder=(32, 64),
                                         linear_skip=linear_skip))
    assert (decoder.decoder_skip is not None) == linear_skip
    mu_id, mu_exp = torch.randn(10, 100), torch.randn(10, 30)
    with torch.no_grad():
        plain = decoder.coder.decode(decoder.decode_code(torch.cat([mu_id, mu_exp], 1)))
    decoder.prepare_for_inference()
    for batch in (1, 3, 10, 10):  # packed for batches of 10; every size gives the same meshes
        with torch.inference_mode():
            packed = decoder.decode(mu_id[:batch], mu_exp[:batch])
        assert packed.shape == (batch, 500, 3)
        torch.testing.assert_close(packed, plain[:batch], rtol=1e-5, atol=1e-5)
    if torch.backends.mkldnn.is_available():
        assert decoder._packed_last is not None and decoder._packed_last[0] == "batch"
    with torch.enable_grad():  # training never goes through the packed copy
        assert decoder.decode(mu_id, mu_exp).requires_grad


def test_action_unit_model_takes_named_intensities(exported_au):
    folder, stored = exported_au
    model = FaceModel(folder)
    assert model.au_model and model.expression_names == list(stored.au_names)
    au = stored.au_names[0]
    np.testing.assert_array_equal(model.expression_code({au: 5.0}), np.eye(len(stored.au_names))[0])  # trained /5
    smile = model.generate(1, {au: 4.0, stored.au_names[1]: 2.0})
    assert smile.vertices.shape == (stored.template.num_vertices, 3) and smile.texture is None
    assert not np.allclose(smile.vertices, model.generate(1, {}).vertices)
    assert "action units" in (folder / "README.md").read_text()
    with pytest.raises(ValueError, match="unknown expression 'AU99'"):
        model.generate(1, {"AU99": 1.0})


def test_model_card_keeps_no_empty_sections_and_names_the_data_license():
    from train.export import card_metrics, model_card
    report = "# Shape model evaluation\n\n## Reconstruction\n\n| a |\n\n## Embeddings\n\n![t-SNE](tsne.png)\n"
    metrics = card_metrics(report)
    assert "### Reconstruction" in metrics and "| a |" in metrics
    assert "Embeddings" not in metrics and "![" not in metrics and "# Shape" not in metrics
    card = model_card({"license": "MIT", "name": "m", "expression_labels": "classes", "expressions": ["1_neutral"],
                       "texture": None}, {"trained_on": "x", "metrics": metrics})
    assert "Copyright (c) 2020 USC Institute for Creative Technologies" in card


def test_damaged_files_are_named_and_described(exported, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(exported[0], bad)
    shape = bad / "shape.safetensors"
    whole = shape.read_bytes()
    shape.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ModelFormatError, match=r"shape.safetensors: cannot be loaded, truncated: \d+ bytes where its "
                                               r"header describes \d+") as caught:
        FaceModel(bad)
    assert caught.value.path == shape
    shape.write_bytes(b"<html>not found</html>")
    with pytest.raises(ModelFormatError, match="shape.safetensors: cannot be loaded, (truncated or )?not a safetensors"):
        FaceModel(bad)
    shape.write_bytes(whole)
    (bad / "template_texture.png").write_bytes(b"\x89PNG\r\n")
    with pytest.raises(ModelFormatError, match="template_texture.png: cannot be read as a PNG image"):
        FaceModel(bad)
    (bad / "template_texture.png").unlink()
    with pytest.raises(ModelFormatError, match="template_texture.png: cannot be read"):
        FaceModel(bad)
    proc = subprocess.run([sys.executable, "-m", "core", "generate", "--model", str(bad), "--expression", "2",
                           "--out", str(tmp_path / "x.obj")], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2 and "template_texture.png" in proc.stderr and "Traceback" not in proc.stderr


def test_a_damaged_download_is_named_and_not_kept(exported, tmp_path, loopback_only):
    out = exported[0]
    with HubServer() as server:
        commit = server.add_repo("facecam/tiny")
        for p in out.iterdir():
            data = p.read_bytes()
            server.add_file("facecam/tiny", p.name, data[: len(data) // 3] if p.name == "shape.safetensors" else data)
        source = f"facecam/tiny@{commit}"  # pinned by commit, no manifest sha256 to catch it
        with pytest.raises(ModelFormatError, match="shape.safetensors: cannot be loaded, truncated"):
            FaceModel.from_pretrained(source, cache_dir=tmp_path / "cache", endpoint=server.url)
        cached = {p.name for p in (tmp_path / "cache").rglob("*") if p.is_file() or p.is_symlink()}
        assert "shape.safetensors" not in cached and "config.json" in cached
