"""facecam's Blender add-on, run from the extension zip that `build_addon.py` builds (which bundles `core/`
beside this file, so `from .core import ...` resolves there; in the repository `core/` is a sibling instead).

A sidebar tab to generate faces (identity, expression, intensity), bake intensity sweeps and expression sets as
shape keys, and render Cycles previews. It holds no model math: everything goes through core.FaceModel.
"""
import bpy

from . import model_session, operators, panel, preferences, properties
from .core import __version__
from .model_session import weights_status

_CLASSES = (preferences.FacecamPreferences, *operators.CLASSES, *panel.CLASSES)


def register():
    properties.register()
    for cls in _CLASSES:
        bpy.utils.register_class(cls)


def unregister():
    for cls in reversed(_CLASSES):
        bpy.utils.unregister_class(cls)
    properties.unregister()
    model_session.unload()


__all__ = ["__version__", "register", "unregister", "weights_status"]
