"""The add-on in real Blender: the zip build_addon.py makes is installed and every operator driven as a user would
(tests/blender_drive_addon.py, in a fresh process), against models the tests train and export, one of them served
by a loopback hub. In the project's venv (bpy 5.0.1 beside torch) and in Blender Pythons as users have them: bpy
4.2 LTS, 4.5 LTS and 5.0.1, each in a venv of its own with nothing but bpy (numpy, requests; no torch, pillow,
safetensors or huggingface_hub: the zip's bundled wheels bring the hub client). `make test` creates those venvs."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hub_server import HubServer
from train.demo import BLENDER_VERSIONS

ROOT = Path(__file__).resolve().parents[1]
PYTHONS = {"project-venv": Path(sys.executable),
           **{f"stock-{v}": ROOT / f".venv-blender-{v}" / "bin" / "python" for v in BLENDER_VERSIONS}}


TAKE_RATE, SCENE_FPS, SCENE_START = 30, 24, 10
SWAPPED = {"mouthRight": "mouthLeft", "mouthLeft": "mouthRight", "mouthSmileLeft": "mouthSmileRight"}
CHECKED_KEYS = ("jawOpen", "eyeBlinkLeft", "mouthLeft", "mouthRight", "mouthSmileLeft", "browInnerUp")


def write_takes(folder: Path) -> dict:
    """take.csv with every quirk of a Live Link Face take (capitalised names, TongueOut, rotations, an unknown column,
    values outside 0..1, a 30 fps take for a 24 fps scene, mouth columns to swap), the long take the import is timed
    on, and broken ones; returns what the take's keys must read at which scene frames."""
    from core.arkit_rig import ARKIT_NAMES
    from core.live_link import format_take
    folder.mkdir(parents=True)
    rows = 40  # past a second: the take's own rate (30) shows in its timecodes
    rng = np.random.default_rng(4)
    weights = rng.uniform(0, 1, (rows, len(ARKIT_NAMES)))
    weights[3, ARKIT_NAMES.index("jawOpen")], weights[5, ARKIT_NAMES.index("eyeBlinkLeft")] = 1.3, -0.2
    rotations = {"HeadYaw": rng.uniform(-0.5, 0.5, rows), "LeftEyePitch": rng.uniform(-0.2, 0.2, rows)}
    text = format_take(ARKIT_NAMES, weights, TAKE_RATE, rotations=rotations)
    lines = text.splitlines()
    lines = [lines[0] + ",Foo"] + [line + ",7" for line in lines[1:]]  # a column nobody knows
    (folder / "take.csv").write_text("\n".join(lines) + "\n")
    clipped = np.clip(weights, 0, 1)
    frames = [SCENE_START + i / TAKE_RATE * SCENE_FPS for i in range(rows)]
    expected = {"frames": frames, "keys": list(CHECKED_KEYS), "rotations": list(rotations),
                "values": {str(f): {**{k: float(clipped[i, ARKIT_NAMES.index(SWAPPED.get(k, k))]) for k in CHECKED_KEYS},
                                    **{r: float(v[i]) for r, v in rotations.items()}} for i, f in enumerate(frames)}}
    (folder / "take.json").write_text(json.dumps(expected))
    long = np.random.default_rng(5).uniform(0, 1, (3600, len(ARKIT_NAMES)))
    (folder / "long.csv").write_text(format_take(ARKIT_NAMES, long, 60))
    (folder / "bad_empty.csv").write_text("")
    (folder / "bad_no_timecode.csv").write_text("Time,JawOpen\n0,0.5\n")
    (folder / "bad_no_arkit.csv").write_text("Timecode,BlendShapeCount,Foo\n12:00:00:00.000,1,0.5\n")
    broken = text.splitlines()
    cells = broken[3].split(",")
    cells[2 + ARKIT_NAMES.index("jawOpen")] = "abc"
    broken[3] = ",".join(cells)
    (folder / "bad_number.csv").write_text("\n".join(broken) + "\n")
    return expected


@pytest.fixture(scope="module", params=list(PYTHONS))
def session(request, exported, exported_au, exported_rig, tmp_path_factory):
    python = PYTHONS[request.param]
    if not python.is_file():
        pytest.fail(f"{python}: no Blender venv; `make test` (or `make blender-venvs`) creates it")
    tmp = tmp_path_factory.mktemp("blender_addon")
    build = subprocess.run([sys.executable, str(ROOT / "build_addon.py"), "--out", str(tmp / "dist")],
                           capture_output=True, text=True, check=True)
    zip_path = build.stdout.split("extension: ", 1)[1].splitlines()[0].strip()
    model_dir, au_dir = exported[0], exported_au[0]
    with HubServer() as server:
        commit = server.add_repo("facecam/tiny")
        for p in model_dir.iterdir():
            server.add_file("facecam/tiny", p.name, p.read_bytes())
        env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp / "home"), "BLENDER_USER_RESOURCES": str(tmp / "user"),
               "HF_ENDPOINT": server.url, "HF_HUB_DISABLE_TELEMETRY": "1"}
        write_takes(tmp / "takes")
        proc = subprocess.run([str(python), str(ROOT / "tests" / "blender_drive_addon.py"), zip_path,
                               str(model_dir), str(au_dir), server.url, f"facecam/tiny@{commit}", str(tmp),
                               str(exported_rig), str(tmp / "takes")],
                              capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0 and "RESULT " in proc.stdout, (proc.stdout[-3000:], proc.stderr[-3000:])
    return json.loads(proc.stdout.split("RESULT ", 1)[1]), tmp


def test_without_a_model_every_failure_is_a_clear_report_and_builds_nothing(session):
    r, _ = session
    assert r["install"] == ["FINISHED"] and not r["torch_loaded_at_enable"]  # enabling stays light
    assert "No published facecam weights yet" in r["no_published"][1] and "Local folder" in r["no_published"][1]
    assert "No model folder set" in r["no_folder"][1]
    assert "missing" in r["missing_folder"][1] and "not an existing folder" in r["missing_folder"][1]
    damaged = r["damaged_folder"]  # named and described, not reported as a bug
    assert damaged[0] == ["CANCELLED"] and "shape.safetensors" in damaged[1] and "truncated" in damaged[1], damaged
    assert "system console" not in damaged[1]
    assert "not in the local cache" in r["offline_not_cached"][1] and "offline" in r["offline_not_cached"][1]
    assert "online access is off" in r["download_offline"][1]
    assert all(r[k][0] == ["CANCELLED"] for k in ("no_published", "no_folder", "missing_folder", "damaged_folder",
                                                   "offline_not_cached", "download_offline"))
    assert r["after_errors_unchanged"]


def test_download_respects_online_access_and_the_cache_then_serves_offline(session):
    r, _ = session
    assert r["download"] == [["FINISHED"], None]
    assert r["cached_files"] == ["config.json", "shape.safetensors", "template.safetensors", "template_texture.png",
                                 "texture.safetensors"]  # only what generation needs: no model card
    assert r["load_cached_offline"] == [["FINISHED"], None]  # online access off again: the cache serves


def test_generate_face_builds_the_models_mesh_uvs_and_textured_material(session):
    r, _ = session
    m, model = r["mesh"], r["model"]
    assert r["generate"] == ["FINISHED"] and not r["torch_loaded_after_load"]  # numpy by default, torch or not
    assert r["backend_line"] == "numpy on cpu"
    assert r["expression_items"] == model["expressions"]  # the enum comes from the model's config
    assert (m["vertices"], m["polygons"], m["loops"]) == (model["vertices"], model["polygons"], model["loops"])
    assert m["quads"] == m["model_quads"] > 0  # quads kept
    assert m["max_vertex_error"] < 1e-6 and m["max_uv_error"] < 1e-6 and m["all_smooth"]
    assert 0.1 < m["z_extent"] < 0.6  # metres, z up: a head is a few decimetres tall
    assert m["texture_size"] == m["model_texture_size"] and m["max_texture_error"] < 0.51  # uint8 exact
    assert m["image_packed"] and m["base_color_linked"] and m["subsurface"] > 0
    # a material per part of the head, each on the model's polygons of that part
    mats = r["materials"]
    assert {"skin", "sclera", "iris", "teeth", "gums and tongue", "eyelashes", "eye wetness"} <= set(mats["model_parts"])
    assert len(mats["names"]) == len(mats["model_parts"]) >= 6
    assert all(name.endswith(part) for name, part in zip(mats["names"], mats["model_parts"]))
    assert mats["polygons"] == mats["model_polygons"] and min(mats["polygons"]) > 0


def test_undo_and_update_in_place_keep_the_users_work(session):
    r, _ = session
    assert r["undo_removed"] and r["redo_restored"]
    assert r["update"] == [["FINISHED"], None]
    assert r["in_place"] == {"same_object": True, "modifier_kept": True, "material_kept": True,
                             "max_vertex_error": r["in_place"]["max_vertex_error"]}
    assert r["in_place"]["max_vertex_error"] < 1e-6
    assert r["mix"] == [["FINISHED"], None] and r["mix_vertex_error"] < 1e-6  # 0.75 smile + 0.25 mouth stretch
    assert r["repeat"]["after"] == r["repeat"]["before"] and r["repeat"]["orphans"] == 0  # 20 generates


def test_sweep_keys_and_their_control_follow_the_model(session):
    r, _ = session
    assert r["bake_sweep"] == [["FINISHED"], None]
    # the Basis key's value does nothing (it is the reference) and Blender 4.2 sets it to 0, 5.0 to 1
    assert [r["sweep_keys"][0][0], *r["sweep_keys"][0][2:]] == ["Basis", 0.0, 1.0]
    assert r["sweep_keys"][1:] == [["2_smile@0.50", 0.0, 0.0, 1.0],
                               ["2_smile@1.00", 0.0, 0.0, 1.0], ["2_smile@1.50", 0.0, -10.0, 1.0],
                               ["2_smile@2.00", 0.0, 0.0, 10.0]]
    assert max(r["sweep_key_errors"]) < 1e-6 and r["basis_error"] < 1e-6  # basis: the neutral face
    assert r["drivers"] == {"count": 4, "simple": True, "valid": True}  # no Python needed to evaluate them
    # the control reproduces each baked level, blends neighbours between, extrapolates the last segment past 2
    assert max(r["control_errors"].values()) < 1e-5, r["control_errors"]
    assert r["control_range"]["soft_max"] == 2.0 and r["control_range"]["max"] > 2.0
    assert r["rebake_keys"] == ["Basis", "2_smile@0.67", "2_smile@1.33", "2_smile@2.00"]  # replaced
    assert r["rebake_drivers"] == 3


def test_bake_all_expressions_and_regenerating_a_baked_face(session):
    r, _ = session
    expressions = r["model"]["expressions"]
    assert r["bake_all"] == r["bake_all_again"] == [["FINISHED"], None]
    assert r["all_keys"] == ["Basis", "2_smile@0.67", "2_smile@1.33", "2_smile@2.00",
                             *[f"{e}@1.00" for e in expressions]]  # baked twice, listed once
    assert r["set_key_error"] < 1e-6
    assert r["regenerate_baked"] == [["FINISHED"], None] and max(r["rebaked_errors"]) < 1e-6
    assert r["control_after_regenerate"] == 1.5  # the sweep's expression: the control shows the chosen intensity
    assert "unknown expression 'no_such_expression'" in r["bad_expression"][1]
    assert r["bad_expression_unchanged"]


def test_cycles_preview_shows_the_face_and_leaves_the_users_scene_alone(session):
    r, tmp = session
    p = r["preview"]
    assert r["render"] == [["FINISHED"], None] and p["size"] == [128, 128] and p["packed"]
    assert p["centre_alpha"] > 0.99 and p["corner_alpha"] < 0.01 and 0.15 < p["coverage"] < 0.9
    assert p["rgb_std"] > 0.02  # lit and textured, not a flat silhouette
    assert p["user_scene_untouched"]
    saved = np.asarray(Image.open(tmp / "preview.png"))
    assert saved.shape[:2] == (128, 128)


def test_action_unit_models_get_one_slider_per_unit(session):
    r, _ = session
    assert r["load_au"] == [["FINISHED"], None] and r["au_sliders"]
    assert r["generate_au"] == [["FINISHED"], None] and r["au_vertex_error"] < 1e-6


def test_live_update_and_the_torch_backend_where_there_is_one(session):
    r, _ = session
    assert r["live_update_error"] < 1e-6
    assert r["load_torch"] == [["FINISHED"], None]
    if r["torch_installed"]:
        assert r["torch_backend_line"] == "torch on cpu" and r["torch_backend_error_mm"] < 1e-3
    else:
        assert r["torch_backend_line"] == "numpy on cpu (torch is not installed: generating with numpy on the CPU)"
        assert r["torch_backend_error_mm"] == 0.0


def test_bake_arkit_rig_gives_a_face_or_a_brought_mesh_its_own_keys_named_as_apple_does(session):
    from core.arkit_rig import ARKIT_NAMES
    r, _ = session
    assert r["load_rig"] == r["generate_for_rig"] == r["bake_rig"] == [["FINISHED"], None]
    names = [k[0] for k in r["rig_keys"]]
    assert names == ["Basis", *[n for n in ARKIT_NAMES if n != "tongueOut"]]
    assert all(k[1:] == [0.0, 0.0, 1.0] for k in r["rig_keys"][1:])  # values 0, sliders 0..1
    assert r["rig_key_error"] < 1e-6 and r["rig_basis_error"] < 1e-6 and r["rig_materials_kept"]
    assert r["rebake_rig"] == [["FINISHED"], None] and r["rebake_rig_keys"] == names  # replaced, no ".001"
    assert r["regenerate_rigged"] == [["FINISHED"], None] and r["regenerated_rig_error"] < 1e-6
    assert r["bake_brought"] == [["FINISHED"], None] and r["brought_rig_error"] < 1e-5
    assert r["bake_cube"][0] == ["CANCELLED"] and "has 8 vertices and 6 polygons" in r["bake_cube"][1]
    assert "26719" in r["bake_cube"][1] and r["cube_untouched"]
    assert r["bake_over_user_keys"][0] == ["CANCELLED"] and "jawOpen" in r["bake_over_user_keys"][1]
    assert r["user_keys_kept"] == ["Basis", "jawOpen"]


def test_a_live_link_face_take_keys_the_rig_at_the_scenes_frames(session):
    from core.arkit_rig import ARKIT_NAMES
    r, tmp = session
    expected = json.loads((tmp / "takes" / "take.json").read_text())
    assert r["import_take"] == [["FINISHED"], None]
    for frame, values in expected["values"].items():
        got = r["take_sampled"][frame]
        for name, value in values.items():
            assert abs(got[name] - value) < 1e-4, (frame, name, got[name], value)
    # every rig key the take has is keyed once per row; tongueOut has no key, so no curve
    assert r["take_action"]["paths"] == sorted(f'key_blocks["{n}"].value' for n in ARKIT_NAMES if n != "tongueOut")
    assert r["take_action"]["keyframes"] == [40] and r["take_frame_end"] >= 10 + 39 / 30 * 24
    assert r["import_long_take"] == [["FINISHED"], None]
    for name, line in (("bad_empty.csv", "empty"), ("bad_no_timecode.csv", "line 1: no Timecode column"),
                       ("bad_no_arkit.csv", "line 1: no ARKit blendshape column"),
                       ("bad_number.csv", "line 4: column JawOpen: 'abc' is not a number")):
        result, message = r[f"import_{name}"]
        assert result == ["CANCELLED"] and name in message and line in message, (name, message)
    assert r["bad_takes_wrote_nothing"]
    # nothing of the user's is lost: the first take's action, the object's own animation, the take across a re-bake
    assert r["first_take_kept"] and r["import_again"] == [["FINISHED"], None] and r["object_animation_kept"]
    assert r["rebake_after_take"] == [["FINISHED"], None] and r["take_kept_after_rebake"]
    frame = str(expected["frames"][7])
    assert abs(r["take_value_after_rebake"] - expected["values"][frame]["jawOpen"]) < 1e-4
    # a model without a rig takes the old identity's keys off the face it regenerates
    assert r["regenerate_without_rig"] == [["FINISHED"], None] and r["rig_after_model_without_rig"] == [False, False]


def test_disable_and_uninstall_leave_nothing_registered(session):
    r, tmp = session
    assert (tmp / "scene.blend").stat().st_size > 0
    assert r["left_registered"] == [] and r["uninstall"] == ["FINISHED"] and r["left_files"] == []
