"""build_addon.py's zip installs, enables, disables and uninstalls in real Blender (bpy 5.0.1)."""
import json
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

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
    return Path(proc.stdout.split("extension: ", 1)[1].strip())


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
