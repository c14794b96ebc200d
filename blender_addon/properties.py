"""The sidebar's settings (scene.facecam): seeds, expression, intensity, mix, sweep and preview options."""
from __future__ import annotations

import bpy

from . import model_session
from .core.names import SEED_MAX

_expression_items = []  # kept alive while Blender shows them


def expression_items(self, context):
    model = model_session.current()
    names = model.expression_names if model is not None else []
    _expression_items[:] = ([(n, n.replace("_", " "), f"expression {i}: {n}", i) for i, n in enumerate(names)]
                            or [("NONE", "(load a model)", "Load a model to list its expressions", 0)])
    return _expression_items


def _live_update(self, context):
    if context.scene.facecam.live_update:  # self may be an action unit's slider
        from .operators import regenerate_active  # late: operators imports this module
        regenerate_active(context)


class FacecamActionUnit(bpy.types.PropertyGroup):
    value: bpy.props.FloatProperty(name="Intensity", min=0.0, max=5.0, soft_max=5.0, update=_live_update,
                                   description="Action-unit intensity on BP4D's 0-5 scale")


class FacecamSettings(bpy.types.PropertyGroup):
    identity_seed: bpy.props.IntProperty(name="Identity seed", min=0, max=SEED_MAX, description="Who the face is")
    noise_seed: bpy.props.IntProperty(name="Noise seed", min=0, max=SEED_MAX,
                                      description="Small variations of the same identity")
    expression: bpy.props.EnumProperty(name="Expression", items=expression_items, update=_live_update)
    intensity: bpy.props.FloatProperty(name="Intensity", default=1.0, min=0.0, max=10.0, soft_min=0.0, soft_max=2.0,
                                       update=_live_update,
                                       description="Scales the expression; past 1 extrapolates beyond the data")
    use_mix: bpy.props.BoolProperty(name="Mix a second expression", update=_live_update)
    second_expression: bpy.props.EnumProperty(name="Second", items=expression_items, update=_live_update)
    mix_weight: bpy.props.FloatProperty(name="Mix", default=0.5, min=0.0, max=1.0, subtype="FACTOR",
                                        update=_live_update, description="Weight of the second expression")
    action_units: bpy.props.CollectionProperty(type=FacecamActionUnit)
    use_texture: bpy.props.BoolProperty(name="Texture", default=True, description="Synthesise the UV texture")
    live_update: bpy.props.BoolProperty(name="Live update", default=False,
                                        description="Regenerate the active face whenever a control changes")
    sweep_count: bpy.props.IntProperty(name="Keys", default=8, min=1, max=32,
                                       description="Shape keys in the sweep, evenly spaced up to the maximum")
    sweep_max: bpy.props.FloatProperty(name="Max intensity", default=2.0, min=0.05, max=10.0, soft_max=3.0)
    set_intensity: bpy.props.FloatProperty(name="Intensity", default=1.0, min=0.05, max=10.0, soft_max=2.0,
                                           description="Intensity of every key Bake All Expressions makes")
    preview_resolution: bpy.props.IntProperty(name="Resolution", default=512, min=32, max=4096)
    preview_samples: bpy.props.IntProperty(name="Samples", default=16, min=1, max=4096)


CLASSES = (FacecamActionUnit, FacecamSettings)


def register():
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.facecam = bpy.props.PointerProperty(type=FacecamSettings)


def unregister():
    del bpy.types.Scene.facecam
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
