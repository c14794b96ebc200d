"""The add-on's operators. Each gets everything from the model first and only then touches the scene, so a failure
leaves nothing half-built; every error reaches the user as a Blender report."""
from __future__ import annotations

import functools
import json
import random
import traceback

import bpy

from . import arkit, model_session, preview_render, shape_keys, texture_jobs
from .core.live_link import read_take
from .core.names import SEED_MAX
from .scene_mesh import FACE_TAG, is_face, write_face


def reporting(execute):
    @functools.wraps(execute)
    def wrapped(self, context):
        try:
            return execute(self, context)
        except (model_session.SessionError, ValueError, OSError) as e:  # core.live_link.TakeError is a ValueError
            self.report({"ERROR"}, str(e))
        except Exception as e:  # a bug: still a report, the traceback goes to the console for the bug report
            traceback.print_exc()
            self.report({"ERROR"}, f"facecam failed: {type(e).__name__}: {e} (details in the system console)")
        return {"CANCELLED"}
    return wrapped


def sync_action_units(settings, model) -> None:
    """One slider per action unit of an AU model (values kept for units that stay)."""
    names = model.expression_names if model.au_model else []
    if [a.name for a in settings.action_units] == names:
        return
    old = {a.name: a.value for a in settings.action_units}
    settings.action_units.clear()
    for name in names:
        item = settings.action_units.add()
        item.name, item.value = name, old.get(name, 0.0)


def load_model(context, download: bool = False, on_file=None):
    model = model_session.load(download, on_file)
    sync_action_units(context.scene.facecam, model)
    return model


def expression_spec(settings, model) -> tuple[object, str]:
    """(what FaceModel takes as the expression, a label for names) from the sidebar's settings."""
    if model.au_model:
        active = {a.name: a.value for a in settings.action_units if a.value > 0}
        return active, ("+".join(active) or "neutral")
    if settings.expression == "NONE":
        raise ValueError("No expression chosen: load a model first")
    if settings.use_mix and settings.mix_weight > 0:
        w = settings.mix_weight
        return {settings.expression: 1.0 - w, settings.second_expression: w}, \
            f"{settings.expression}+{settings.second_expression}"
    return settings.expression, settings.expression


def face_settings(obj) -> dict:
    return json.loads(obj[FACE_TAG])


def sweep_levels(count: int, maximum: float) -> list[float]:
    return [maximum * (i + 1) / count for i in range(count)]


def _sweep_faces(model, s: dict, expression, levels: list[float]):
    """(neutral face, faces at levels) for the identity in s, in one batch."""
    neutral, *faces = model.sweep(s["identity_seed"], expression, [0.0, *levels], s["noise_seed"], texture=False)
    return neutral, faces


def _set_faces(model, s: dict, intensity: float):
    """(neutral face, one face per expression) for the identity in s."""
    neutral = model.generate(s["identity_seed"], model.expression_names[0], 0.0, s["noise_seed"], texture=False)
    return neutral, model.expression_set(s["identity_seed"], model.expression_names, intensity, s["noise_seed"],
                                         texture=False)


def _rig_keys(model, s: dict):
    """(the face at rest, ARKit names, the face at each key's weight 1) of the identity in s."""
    neutral = model.neutral_face(s["identity_seed"], s["noise_seed"], texture=False).vertices
    names, shapes = model.arkit_key_shapes(neutral)
    return neutral, names, shapes


def generate_into(context, obj, model):
    """Generate the sidebar's face into obj (None: a new object). A face with baked keys keeps them, re-baked for
    the new identity, and rests at its neutral face; when its sweep is of the chosen expression, the sweep control
    is set to the chosen intensity so the face shows it."""
    settings = context.scene.facecam
    expression, label = expression_spec(settings, model)
    s = {"model": model.name, "identity_seed": settings.identity_seed, "noise_seed": settings.noise_seed,
         "expression": expression, "label": label, "intensity": settings.intensity}
    face = model.generate(s["identity_seed"], expression, s["intensity"], s["noise_seed"], texture=False)
    sweep, expression_set = shape_keys.baked(obj, shape_keys.SWEEP_TAG), shape_keys.baked(obj, shape_keys.SET_TAG)
    # everything from the model first: a failure leaves the scene as it was
    sweep_faces = _sweep_faces(model, s, sweep["expression"], sweep["levels"]) if sweep else None
    set_faces = _set_faces(model, s, expression_set["intensity"]) if expression_set else None
    control = obj.get(shape_keys.CONTROL, 0.0) if sweep else None
    rig_keys = _rig_keys(model, s) if arkit.baked_rig(obj) and model.has_arkit_rig else None
    if rig_keys is not None:
        arkit.check_rig_target(obj, rig_keys[1], len(face.vertices))
    obj = write_face(context, obj, face, model.units, name=f"facecam {s['identity_seed']}")
    if sweep_faces:
        shape_keys.bake_sweep(obj, *sweep_faces, sweep["levels"], sweep["label"], model.units, sweep["expression"])
        obj[shape_keys.CONTROL] = s["intensity"] if sweep["expression"] == expression else control
        obj.update_tag()  # an ID property set from Python does not re-run the drivers reading it by itself
    if set_faces:
        shape_keys.bake_expression_set(obj, *set_faces, model.expression_names, expression_set["intensity"],
                                       model.units)
    if rig_keys is not None:
        arkit.bake_arkit_rig(obj, *rig_keys, model.units, model.rig.cfg.missing)
    elif arkit.baked_rig(obj):  # this model has no rig: the old identity's keys would be wrong on the new face
        arkit.remove_rig(obj)
    obj[FACE_TAG] = json.dumps(s)
    if settings.use_texture and model.has_texture:
        texture_jobs.request(obj, s)
    return obj


def regenerate_active(context) -> None:
    """Live update: regenerate the active face after a control changed (an update callback cannot report)."""
    obj = context.active_object
    model = model_session.current()
    if model is None or not is_face(obj):
        return
    try:
        generate_into(context, obj, model)
    except (ValueError, OSError) as e:
        print(f"facecam: live update failed: {e}")


def active_face(context):
    obj = context.active_object
    if not is_face(obj):
        raise ValueError("Select a face made by facecam first (Generate Face makes one)")
    return obj


class FACECAM_OT_load_model(bpy.types.Operator):
    bl_idname = "facecam.load_model"
    bl_label = "Load Model"
    bl_description = "Load the model chosen in the add-on preferences (from its folder or the download cache)"

    @reporting
    def execute(self, context):
        model = load_model(context)
        self.report({"INFO"}, f"facecam: loaded {model.name} ({len(model.expression_names)} "
                              f"{'action units' if model.au_model else 'expressions'})")
        return {"FINISHED"}


class FACECAM_OT_download_weights(bpy.types.Operator):
    bl_idname = "facecam.download_weights"
    bl_label = "Download Weights"
    bl_description = "Download the chosen model's weights from the Hugging Face hub into the cache (needs online access)"

    @reporting
    def execute(self, context):
        prefs = model_session.preferences()
        if prefs.source_kind == "FOLDER":
            self.report({"INFO"}, "A local model folder needs no download")
            return {"FINISHED"}
        wm = context.window_manager
        progress = {"began": False}

        def on_file(name, index, total):
            if not progress["began"]:
                wm.progress_begin(0, total)
                progress["began"] = True
            wm.progress_update(index)
            print(f"facecam: fetching {name} ({index + 1}/{total})")
        try:
            model = load_model(context, download=True, on_file=on_file)
        finally:
            if progress["began"]:
                wm.progress_end()
        self.report({"INFO"}, f"facecam: {model.name} ready (cache: {model_session.cache_dir(prefs)})")
        return {"FINISHED"}


class FACECAM_OT_random_identity(bpy.types.Operator):
    bl_idname = "facecam.random_identity"
    bl_label = "Random Identity"
    bl_description = "Pick a random identity seed"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        model = model_session.current()
        top = model.shape_cfg.z_id_dim - 1 if model is not None and model.z_id_kind == "onehot" else SEED_MAX
        context.scene.facecam.identity_seed = random.randint(0, top)
        return {"FINISHED"}


class FACECAM_OT_generate_face(bpy.types.Operator):
    bl_idname = "facecam.generate_face"
    bl_label = "Generate Face"
    bl_description = ("Generate a face from the seeds, expression and intensity: updates the selected facecam face "
                      "in place, or makes a new one")
    bl_options = {"REGISTER", "UNDO"}

    @reporting
    def execute(self, context):
        model = load_model(context)
        target = context.active_object
        if not (is_face(target) and target.select_get()):
            target = None
        obj = generate_into(context, target, model)
        self.report({"INFO"}, f"facecam: {'updated' if target else 'made'} {obj.name}")
        return {"FINISHED"}


class FACECAM_OT_bake_sweep(bpy.types.Operator):
    bl_idname = "facecam.bake_sweep"
    bl_label = "Bake Intensity Sweep"
    bl_description = ("Shape keys of the chosen expression at evenly spaced intensities, and one control that walks "
                      "them (replaces an earlier sweep)")
    bl_options = {"REGISTER", "UNDO"}

    @reporting
    def execute(self, context):
        model = load_model(context)
        obj = active_face(context)
        settings = context.scene.facecam
        expression, label = expression_spec(settings, model)
        levels = sweep_levels(settings.sweep_count, settings.sweep_max)
        neutral, faces = _sweep_faces(model, face_settings(obj), expression, levels)
        names = shape_keys.bake_sweep(obj, neutral, faces, levels, label, model.units, expression)
        self.report({"INFO"}, f"facecam: {len(names)} keys, {names[0]} ... {names[-1]}; drive them with "
                              f"the '{shape_keys.CONTROL}' property")
        return {"FINISHED"}


class FACECAM_OT_bake_expressions(bpy.types.Operator):
    bl_idname = "facecam.bake_expressions"
    bl_label = "Bake All Expressions"
    bl_description = "One shape key per expression at the chosen intensity (replaces an earlier set)"
    bl_options = {"REGISTER", "UNDO"}

    @reporting
    def execute(self, context):
        model = load_model(context)
        obj = active_face(context)
        intensity = context.scene.facecam.set_intensity
        neutral, faces = _set_faces(model, face_settings(obj), intensity)
        names = shape_keys.bake_expression_set(obj, neutral, faces, model.expression_names, intensity, model.units)
        self.report({"INFO"}, f"facecam: {len(names)} expression keys")
        return {"FINISHED"}


class FACECAM_OT_render_preview(bpy.types.Operator):
    bl_idname = "facecam.render_preview"
    bl_label = "Render Preview"
    bl_description = "Render the active face with Cycles (its own scene, camera and lights) into 'facecam Preview'"

    @reporting
    def execute(self, context):
        obj = active_face(context)
        texture_jobs.run_pending()  # the preview shows the finished texture
        settings = context.scene.facecam
        image = preview_render.render_preview(obj, settings.preview_resolution, settings.preview_samples)
        for area in context.screen.areas if context.screen else []:
            if area.type == "IMAGE_EDITOR":
                area.spaces.active.image = image
                break
        self.report({"INFO"}, f"facecam: rendered into image '{image.name}' (Image Editor; Image > Save As)")
        return {"FINISHED"}


class FACECAM_OT_bake_arkit_rig(bpy.types.Operator):
    bl_idname = "facecam.bake_arkit_rig"
    bl_label = "Bake ARKit Rig"
    bl_description = ("This face's own ARKit rig as shape keys named as Apple spells them (eyeBlinkLeft, jawOpen, ...): "
                      "on a facecam face, or on a selected mesh in ICT-FaceKit's topology (replaces an earlier rig)")
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        return context.mode == "OBJECT"  # leaving Edit Mode would write the edit mesh over the keys

    @reporting
    def execute(self, context):
        model = load_model(context)
        obj = context.active_object
        if obj is None or obj.type != "MESH":
            raise ValueError("Select a facecam face, or a mesh in ICT-FaceKit's topology, first")
        if not model.has_arkit_rig:
            raise ValueError(f"The model {model.name} has no ARKit rig; choose a model exported with one")
        mesh, needed = obj.data, model.rig.cfg.num_vertices
        if len(mesh.vertices) != needed or len(mesh.polygons) != len(model.polygon_sizes):
            raise ValueError(f"'{obj.name}' has {len(mesh.vertices)} vertices and {len(mesh.polygons)} polygons; the "
                             f"ARKit rig needs a mesh in ICT-FaceKit's topology ({needed} vertices, "
                             f"{len(model.polygon_sizes)} polygons)")
        if is_face(obj):
            neutral, names, keys = _rig_keys(model, face_settings(obj))
        else:
            neutral = arkit.rest_vertices(obj, model.units)
            names, keys = model.arkit_key_shapes(neutral)
        written = arkit.bake_arkit_rig(obj, neutral, names, keys, model.units, model.rig.cfg.missing)
        missing = ", ".join(model.rig.cfg.missing)
        self.report({"INFO"}, f"facecam: {len(written)} ARKit keys on {obj.name}" +
                    (f" (no {missing}: see the add-on's notes)" if missing else ""))
        return {"FINISHED"}


class FACECAM_OT_import_live_link(bpy.types.Operator):
    bl_idname = "facecam.import_live_link"
    bl_label = "Import Live Link Face CSV"
    bl_description = ("Keyframe the active object's ARKit keys from a Live Link Face take (CSV), from the scene's "
                      "start frame at the scene's frame rate")
    bl_options = {"REGISTER", "UNDO"}

    filepath: bpy.props.StringProperty(subtype="FILE_PATH")
    filter_glob: bpy.props.StringProperty(default="*.csv", options={"HIDDEN"})
    take_fps: bpy.props.IntProperty(name="Take Frame Rate", default=0, min=0, max=240,
                                    description="The app's frame rate its timecodes count in (0: the take's own, "
                                                "read from its timecodes)")
    swap_left_right: bpy.props.BoolProperty(name="Swap Mouth/Jaw Left-Right", default=False,
                                            description="Swap the mouth and jaw Left/Right columns (some app versions "
                                                        "record them mirrored)")
    first_frame_neutral: bpy.props.BoolProperty(name="First Frame as Neutral", default=False,
                                                description="Subtract the first frame's weights from every frame")

    @classmethod
    def poll(cls, context):
        return context.mode == "OBJECT"

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    @reporting
    def execute(self, context):
        obj = context.active_object
        if obj is None or obj.type != "MESH":
            raise ValueError("Select the face whose ARKit rig the take should drive")
        take = read_take(self.filepath, self.take_fps or None, self.swap_left_right, self.first_frame_neutral)
        done = arkit.import_take(context, obj, take)
        extra = f"; not in the rig: {', '.join(done['not_in_rig'])}" if done["not_in_rig"] else ""
        self.report({"INFO"}, f"facecam: {take.report()}; keyed {len(done['keyed'])} keys on frames "
                              f"{done['first_frame']:.0f}-{done['last_frame']:.0f}{extra}")
        return {"FINISHED"}


CLASSES = (FACECAM_OT_load_model, FACECAM_OT_download_weights, FACECAM_OT_random_identity,
           FACECAM_OT_generate_face, FACECAM_OT_bake_sweep, FACECAM_OT_bake_expressions, FACECAM_OT_bake_arkit_rig,
           FACECAM_OT_import_live_link, FACECAM_OT_render_preview)
