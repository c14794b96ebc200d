"""facecam's Blender add-on, run from the extension zip that `build_addon.py` builds (which bundles `core/`
beside this file, so `from .core import ...` resolves there; in the repository `core/` is a sibling instead).

So far a sidebar tab that tells which facecam this is and whether weights exist; generation, shape-key sweeps
and Cycles previews arrive with the add-on issue. It holds no model math: everything goes through core.
"""
import json
from pathlib import Path

import bpy

from .core import __version__


def weights_status() -> str:
    """One line on the weights this build knows about, from the bundled weights_manifest.json."""
    path = Path(__file__).with_name("weights_manifest.json")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        return f"weights manifest unreadable: {e}"
    models = manifest.get("models") or {}
    return f"{len(models)} published model(s)" if models else "no published weights yet: train and export locally"


class VIEW3D_PT_facecam(bpy.types.Panel):
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "facecam"
    bl_label = "facecam"

    def draw(self, context):
        col = self.layout.column()
        col.label(text=f"facecam {__version__}")
        col.label(text=weights_status())


CLASSES = (VIEW3D_PT_facecam,)


def register():
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister():
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
