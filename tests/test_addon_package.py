"""build_addon.py's zip installs, enables, disables and uninstalls in real Blender (bpy 5.0.1)."""
import json
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

import core

ROOT = Path(__file__).resolve().parents[1]

BLENDER_SCRIPT = r'''
import json, os, sys
import bpy, addon_utils
zip_path = sys.argv[1]
repo = bpy.utils.user_resource("EXTENSIONS", path="user_default")
out = {"install": list(bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default",
                                                                enable_on_install=True))}
out["enabled"] = [a.module for a in bpy.context.preferences.addons if "facecam" in a.module]
out["panel"] = hasattr(bpy.types, "VIEW3D_PT_facecam")
mod = sys.modules.get("bl_ext.user_default.facecam")
out["version"] = getattr(mod, "__version__", None)
out["status"] = mod.weights_status() if mod else None
addon_utils.disable("bl_ext.user_default.facecam", default_set=True)
out["panel_after_disable"] = hasattr(bpy.types, "VIEW3D_PT_facecam")
out["uninstall"] = list(bpy.ops.extensions.package_uninstall(repo_directory=repo, pkg_id="facecam"))
out["left"] = sorted(n for n in os.listdir(repo) if not n.startswith("."))
print("RESULT " + json.dumps(out))
'''


def build(tmp_path) -> Path:
    proc = subprocess.run([sys.executable, str(ROOT / "build_addon.py"), "--out", str(tmp_path / "dist")],
                          capture_output=True, text=True, check=True)
    return Path(proc.stdout.split("extension: ", 1)[1].splitlines()[0].strip())


def test_zip_holds_manifest_addon_core_and_weights_manifest(tmp_path):
    zip_path = build(tmp_path)
    assert zip_path.name == f"facecam-{core.__version__}.zip"
    with zipfile.ZipFile(zip_path) as zf:
        names = set(zf.namelist())
        manifest = tomllib.loads(zf.read("blender_manifest.toml").decode())
    assert {"__init__.py", "core/__init__.py", "core/template.py", "weights_manifest.json"} <= names
    assert not any(n.startswith(("train/", "tests/")) for n in names)  # no training code in the add-on
    assert manifest["id"] == "facecam" and manifest["version"] == core.__version__
    assert manifest["type"] == "add-on" and manifest["license"] == ["SPDX:MIT"]
    assert set(manifest["permissions"]) == {"network", "files"}
    assert [p.name for p in (tmp_path / "dist").iterdir()] == [zip_path.name]  # no temporary file left


def test_the_default_zip_is_one_for_every_platform_with_a_pure_python_hub_client(tmp_path):
    with zipfile.ZipFile(build(tmp_path)) as zf:
        manifest = tomllib.loads(zf.read("blender_manifest.toml").decode())
        names = set(zf.namelist())
    wheels = [w.removeprefix("./wheels/") for w in manifest["wheels"]]
    assert "platforms" not in manifest and all(w.endswith("-py3-none-any.whl") for w in wheels)
    projects = {w.split("-")[0].lower() for w in wheels}
    assert {"huggingface_hub", "pyyaml", "httpx2", "tqdm"} <= projects  # the client and what it imports
    assert "threadpoolctl" in projects  # numpy's texture convolutions on every core
    assert not projects & {"torch", "numpy", "hf_xet", "pillow", "safetensors"}
    assert {f"wheels/{w}" for w in wheels} <= names


def test_installs_enables_and_uninstalls_in_blender(tmp_path):
    zip_path = build(tmp_path)
    env = {"PATH": "/usr/bin:/bin", "BLENDER_USER_RESOURCES": str(tmp_path / "blender_user"), "HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", BLENDER_SCRIPT, str(zip_path)], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.split("RESULT ", 1)[1])
    assert result["install"] == ["FINISHED"] and result["enabled"] == ["bl_ext.user_default.facecam"]
    assert result["panel"] and result["version"] == core.__version__
    assert result["status"].startswith("no published weights yet")
    assert not result["panel_after_disable"]  # disabling unregisters every class
    assert result["uninstall"] == ["FINISHED"] and result["left"] == []


def _probe_wheel(tmp_path) -> Path:
    """A tiny pure-Python wheel built offline, standing in for the runtime wheels --wheels downloads."""
    src = tmp_path / "probe_src"
    (src / "facecam_wheel_probe").mkdir(parents=True)
    (src / "facecam_wheel_probe" / "__init__.py").write_text("ANSWER = 42\n")
    (src / "pyproject.toml").write_text('[build-system]\nrequires = ["setuptools"]\nbuild-backend = '
                                        '"setuptools.build_meta"\n[project]\nname = "facecam_wheel_probe"\n'
                                        'version = "0.1"\n')
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(wheels), str(src)], check=True, capture_output=True)
    (wheels / "numpy-1.26.4-cp311-cp311-manylinux_2_17_x86_64.whl").write_bytes(b"")  # Blender has its own
    return wheels


def test_bundled_wheels_are_listed_and_installed_by_blender(tmp_path):
    wheels = _probe_wheel(tmp_path)
    proc = subprocess.run([sys.executable, str(ROOT / "build_addon.py"), "--out", str(tmp_path / "dist"),
                           "--wheel-dir", str(wheels)], capture_output=True, text=True, check=True)
    zip_path = Path(proc.stdout.split("extension: ", 1)[1].splitlines()[0].strip())
    with zipfile.ZipFile(zip_path) as zf:
        manifest = tomllib.loads(zf.read("blender_manifest.toml").decode())
        names = zf.namelist()
    assert "./wheels/facecam_wheel_probe-0.1-py3-none-any.whl" in manifest["wheels"]
    assert not any("numpy" in w for w in manifest["wheels"])  # Blender's own numpy is left alone
    assert "platforms" not in manifest  # pure Python: any platform
    assert "wheels/facecam_wheel_probe-0.1-py3-none-any.whl" in names
    no_hub = subprocess.run([sys.executable, str(ROOT / "build_addon.py"), "--out", str(tmp_path / "dist_no_hub"),
                             "--wheel-dir", str(wheels), "--no-hub"], capture_output=True, text=True, check=True)
    with zipfile.ZipFile(no_hub.stdout.split("extension: ", 1)[1].splitlines()[0].strip()) as zf:
        assert [w.split("-")[0] for w in tomllib.loads(zf.read("blender_manifest.toml").decode())["wheels"]] == [
            "./wheels/facecam_wheel_probe", "./wheels/threadpoolctl"]
    script = ("import bpy, json, sys\n"
              "r = list(bpy.ops.extensions.package_install_files(filepath=sys.argv[1], repo='user_default', "
              "enable_on_install=True))\n"
              "import facecam_wheel_probe\n"
              "print('RESULT ' + json.dumps([r, facecam_wheel_probe.ANSWER]))\n")
    env = {"PATH": "/usr/bin:/bin", "BLENDER_USER_RESOURCES": str(tmp_path / "blender_user"), "HOME": str(tmp_path)}
    run = subprocess.run([sys.executable, "-c", script, str(zip_path)], capture_output=True, text=True, env=env,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert json.loads(run.stdout.split("RESULT ", 1)[1]) == [["FINISHED"], 42]


def test_platform_wheels_name_the_platforms_they_need():
    import importlib.util
    spec = importlib.util.spec_from_file_location("build_addon", ROOT / "build_addon.py")
    build_addon = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build_addon)
    linux = Path("torch-2.13.0-cp311-cp311-manylinux_2_28_x86_64.whl")
    mac = Path("pillow-11.0.0-cp311-cp311-macosx_11_0_arm64.whl")
    assert build_addon.wheel_platforms([linux, Path("tqdm-4.67.1-py3-none-any.whl")]) == ["linux-x64"]
    assert build_addon.wheel_platforms([linux, mac]) == ["linux-x64", "macos-arm64"]
    with pytest.raises(SystemExit, match="not one Blender extensions support"):
        build_addon.wheel_platforms([Path("x-1-cp311-cp311-freebsd_14_amd64.whl")])
    assert 'platforms = ["linux-x64"]' in build_addon.manifest_toml([linux])


BUNDLED_SCRIPT = r'''
import json, sys
import bpy
bpy.ops.wm.read_factory_settings(use_empty=True)
r = list(bpy.ops.extensions.package_install_files(filepath=sys.argv[1], repo="user_default", enable_on_install=True))
prefs = bpy.context.preferences.addons["bl_ext.user_default.facecam"].preferences
out = {"install": r, "weights": prefs.source_kind}  # nothing set: a fresh install's defaults
out["generate"] = list(bpy.ops.facecam.generate_face())
obj = bpy.context.active_object
image = bpy.data.images.get(obj.get("facecam_image", ""))
out["textured"] = image is not None and max(image.pixels[:4096]) > 0
out["materials"] = [m.name for m in obj.data.materials]
print("RESULT " + json.dumps(out))
'''


def test_a_zip_with_a_bundled_model_makes_a_textured_face_on_install(exported, tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "build_addon.py"), "--out", str(tmp_path / "dist"),
                           "--model", str(exported[0])], capture_output=True, text=True, check=True)
    zip_path = Path(proc.stdout.split("extension: ", 1)[1].splitlines()[0].strip())
    assert f"size: {zip_path.stat().st_size / 2 ** 20:.1f} MiB" in proc.stdout
    with zipfile.ZipFile(zip_path) as zf:
        assert {"model/config.json", "model/shape.safetensors", "model/texture.safetensors",
                "model/README.md"} <= set(zf.namelist())
    env = {"PATH": "/usr/bin:/bin", "BLENDER_USER_RESOURCES": str(tmp_path / "blender_user"), "HOME": str(tmp_path)}
    run = subprocess.run([sys.executable, "-c", BUNDLED_SCRIPT, str(zip_path)], capture_output=True, text=True,
                         env=env, timeout=300)
    assert run.returncode == 0 and "RESULT " in run.stdout, run.stderr[-3000:]
    out = json.loads(run.stdout.split("RESULT ", 1)[1])
    assert out["install"] == ["FINISHED"] and out["weights"] == "BUNDLED" and out["generate"] == ["FINISHED"]
    assert out["textured"], out
    assert len(out["materials"]) >= 6 and any(m.endswith(" teeth") for m in out["materials"])
    bad = subprocess.run([sys.executable, str(ROOT / "build_addon.py"), "--out", str(tmp_path / "dist2"), "--model",
                          str(tmp_path)], capture_output=True, text=True)
    assert bad.returncode != 0 and "no config.json" in bad.stderr and not (tmp_path / "dist2").exists()
