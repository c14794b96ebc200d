"""The one loaded FaceModel, shared by every operator and panel, and where it comes from (the preferences).

Generation needs nothing but Blender's own numpy; torch is imported only when the preferences ask for it (the
PyTorch backend or a GPU device), and where it is missing or broken numpy runs instead and the model box says why.
"""
from __future__ import annotations

import json
from pathlib import Path

import bpy

_loaded = {"key": None, "model": None}
ADDON_DIR = Path(__file__).resolve().parent


class SessionError(Exception):
    """A problem the user can fix; shown as a Blender report."""


def preferences():
    return bpy.context.preferences.addons[__package__].preferences


def published_models() -> dict:
    """name -> {license, description} from the bundled weights_manifest.json (empty until weights are published)."""
    try:
        manifest = json.loads((ADDON_DIR / "weights_manifest.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return manifest.get("models") or {}


def weights_status() -> str:
    """One line on the weights this build knows about."""
    models = published_models()
    return f"{len(models)} published model(s)" if models else "no published weights yet: train and export locally"


def cache_dir(prefs) -> Path:
    if prefs.cache_dir:
        return Path(bpy.path.abspath(prefs.cache_dir))
    return Path(bpy.utils.extension_path_user(__package__, path="hub_cache", create=True))


BUNDLED_MODEL = ADDON_DIR / "model"  # build_addon.py --model puts an exported model folder here


def has_bundled_model() -> bool:
    return (BUNDLED_MODEL / "config.json").is_file()


def bundled_model_line() -> str:
    """What the bundled model is, what it was trained on and its license, from its config.json."""
    if not has_bundled_model():
        return "none in this build"
    try:
        config = json.loads((BUNDLED_MODEL / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return "unreadable config.json"
    return f"{config.get('name', '?')} ({config.get('license', '?')}): {config.get('trained_on', '')}"


def source(prefs) -> str:
    """The source string core.FaceModel.from_pretrained takes, from the preferences."""
    if prefs.source_kind == "BUNDLED":
        if not has_bundled_model():
            raise SessionError("This build of facecam has no bundled model (build it with `python build_addon.py "
                               "--model FOLDER`): choose Local folder in Preferences > Add-ons > facecam")
        return str(BUNDLED_MODEL)
    if prefs.source_kind == "FOLDER":
        if not prefs.folder:
            raise SessionError("No model folder set: choose one in Preferences > Add-ons > facecam (a folder "
                               "written by `python -m train export`)")
        return bpy.path.abspath(prefs.folder)
    if prefs.source_kind == "REPO":
        if not prefs.repo:
            raise SessionError("No hub repo set: enter owner/name@<commit sha> in Preferences > Add-ons > facecam")
        return prefs.repo.strip()
    if prefs.model_name in ("", "NONE") or prefs.model_name not in published_models():
        raise SessionError("No published facecam weights yet. Train and export a model locally "
                           "(`make demo` writes outputs/quick/export/facecam-quick), then choose 'Local folder' in "
                           "Preferences > Add-ons > facecam")
    return prefs.model_name


def current():
    """The loaded model, or None."""
    return _loaded["model"]


def load(download: bool = False, on_file=None):
    """Load (or return the already loaded) model the preferences point at. Hub files come from the cache unless
    download is True and Blender's online access is on."""
    prefs = preferences()
    src = source(prefs)
    key = (prefs.source_kind, src, prefs.backend, prefs.device)
    if _loaded["key"] == key and not download:
        return _loaded["model"]
    if download and not bpy.app.online_access:
        raise SessionError("Blender's online access is off (Preferences > System > Network > Allow Online Access); "
                           "facecam can only use weights already in its cache, or a local model folder")
    from .core import hub
    from .core.face_model import FaceModel
    try:
        model = FaceModel.from_pretrained(src, cache_dir=cache_dir(prefs), offline=not bpy.app.online_access,
                                          on_file=on_file, backend=prefs.backend, device=prefs.device)
    except (hub.WeightsError, ValueError, OSError) as e:
        raise SessionError(str(e)) from None
    _loaded.update(key=key, model=model)
    return model


def unload() -> None:
    _loaded.update(key=None, model=None)
