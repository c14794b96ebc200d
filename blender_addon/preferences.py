"""Add-on preferences: where the weights come from, which device runs them, where hub downloads are cached."""
from __future__ import annotations

import bpy

from . import model_session

_model_items = []  # Blender needs the enum items kept alive while it shows them


def _published_items(self, context):
    models = model_session.published_models()
    _model_items[:] = ([(name, name, entry.get("description", "")) for name, entry in models.items()]
                       or [("NONE", "(none published yet)", "No weights are published yet: use a local folder")])
    return _model_items


class FacecamPreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    source_kind: bpy.props.EnumProperty(
        name="Weights", default="BUNDLED" if model_session.has_bundled_model() else "FOLDER",
        items=[("BUNDLED", "Bundled model", "The model shipped inside this extension (its card: model/README.md)"),
               ("MANIFEST", "Published model", "A model listed in the bundled weights manifest (Hugging Face hub)"),
               ("FOLDER", "Local folder", "A folder written by `python -m train export`"),
               ("REPO", "Hub repo", "Any hub repo pinned to a commit: owner/name@<40-hex sha>")])
    model_name: bpy.props.EnumProperty(name="Model", items=_published_items)
    folder: bpy.props.StringProperty(name="Folder", subtype="DIR_PATH")
    repo: bpy.props.StringProperty(name="Repo", description="owner/name@<40-hex commit sha>")
    backend: bpy.props.EnumProperty(
        name="Backend", default="auto",
        items=[("auto", "Automatic", "NumPy on the CPU, PyTorch on a GPU"),
               ("numpy", "NumPy", "Built into Blender: works everywhere, on the CPU"),
               ("torch", "PyTorch", "Needs torch in Blender's Python (the extension built with --wheels); "
                                    "faster on large textures; without torch, NumPy runs and the model box says why")])
    device: bpy.props.EnumProperty(
        name="Device", default="cpu",
        items=[("cpu", "CPU", "Works everywhere"), ("cuda", "CUDA GPU", "An NVIDIA GPU (PyTorch with CUDA)"),
               ("mps", "Apple GPU", "Apple silicon (PyTorch with Metal)")])
    cache_dir: bpy.props.StringProperty(
        name="Cache folder", subtype="DIR_PATH",
        description="Where hub downloads are kept; empty: the extension's own user folder")

    def draw(self, context):
        layout = self.layout
        layout.prop(self, "source_kind")
        if self.source_kind == "MANIFEST":
            layout.prop(self, "model_name")
            layout.label(text=model_session.weights_status())
        elif self.source_kind == "FOLDER":
            layout.prop(self, "folder")
        elif self.source_kind == "REPO":
            layout.prop(self, "repo")
        else:
            layout.label(text="Bundled: " + model_session.bundled_model_line())
        row = layout.row()
        row.prop(self, "backend")
        row.prop(self, "device")
        layout.prop(self, "cache_dir")
        row = layout.row()
        row.operator("facecam.download_weights", icon="IMPORT")
        if not bpy.app.online_access:
            layout.label(text="Online access is off: only cached weights or a local folder", icon="INFO")
