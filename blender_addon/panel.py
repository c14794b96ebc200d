"""The sidebar tab (View3D > Sidebar > facecam)."""
from __future__ import annotations

import bpy

from . import model_session, shape_keys
from .core import __version__
from .scene_mesh import is_face


class VIEW3D_PT_facecam(bpy.types.Panel):
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "facecam"
    bl_label = "facecam"

    def draw(self, context):
        layout = self.layout
        settings = context.scene.facecam
        model = model_session.current()

        box = layout.box()
        if model is None:
            box.label(text=f"facecam {__version__}: no model loaded", icon="ERROR")
            box.label(text=model_session.weights_status())
            row = box.row()
            row.operator("facecam.load_model", icon="FILE_FOLDER")
            row.operator("facecam.download_weights", icon="IMPORT")
        else:
            box.label(text=f"{model.name} ({model.license})", icon="CHECKMARK")
            if model.config.get("trained_on"):
                box.label(text=f"Trained on: {model.config['trained_on']}")
            box.label(text=f"{len(model.expression_names)} {'action units' if model.au_model else 'expressions'}"
                           f"{', textured' if model.has_texture else ''}")
            box.label(text=f"Runs on: {model.backend_line()}", icon="ERROR" if model.backend_note else "NONE")

        col = layout.column(align=True)
        row = col.row(align=True)
        row.prop(settings, "identity_seed")
        row.operator("facecam.random_identity", text="", icon="FILE_REFRESH")
        col.prop(settings, "noise_seed")

        col = layout.column()
        if model is not None and model.au_model:
            for unit in settings.action_units:
                col.prop(unit, "value", text=unit.name)
        else:
            col.prop(settings, "expression")
            col.prop(settings, "use_mix")
            if settings.use_mix:
                col.prop(settings, "second_expression")
                col.prop(settings, "mix_weight")
        col.prop(settings, "intensity")
        row = col.row()
        row.prop(settings, "use_texture")
        row.prop(settings, "live_update")
        layout.operator("facecam.generate_face", icon="USER")

        obj = context.active_object
        box = layout.box()
        box.label(text="Shape keys")
        row = box.row(align=True)
        row.prop(settings, "sweep_count")
        row.prop(settings, "sweep_max")
        box.operator("facecam.bake_sweep", icon="SHAPEKEY_DATA")
        if is_face(obj) and shape_keys.CONTROL in obj:
            box.prop(obj, f'["{shape_keys.CONTROL}"]', text="Sweep intensity", slider=True)
        row = box.row(align=True)
        row.prop(settings, "set_intensity")
        row.operator("facecam.bake_expressions")

        box = layout.box()
        box.label(text="ARKit rig")
        box.operator("facecam.bake_arkit_rig", icon="SHAPEKEY_DATA")
        box.operator("facecam.import_live_link", icon="IMPORT")
        if model is not None and model.has_arkit_rig and model.rig.cfg.missing:
            box.label(text="No " + ", ".join(model.rig.cfg.missing) + ": ICT-FaceKit has no tongue shape",
                      icon="INFO")

        box = layout.box()
        row = box.row(align=True)
        row.prop(settings, "preview_resolution")
        row.prop(settings, "preview_samples")
        box.operator("facecam.render_preview", icon="RENDER_STILL")


CLASSES = (VIEW3D_PT_facecam,)
