"""Run in a fresh Blender (bpy) process by tests/test_blender_addon.py: installs the extension zip and drives the
add-on as a user would, recording what it sees. Prints one line "RESULT {json}".

argv: zip path, textured model folder, AU model folder, hub endpoint, hub repo "owner/name@sha", output folder, the
textured model exported with an ARKit rig, a folder of Live Link Face takes (take.csv and broken ones, bad_*.csv)
"""
import json
import os
import sys
import time
from pathlib import Path

import bpy  # first: addon_utils is on the path only once bpy is imported
import addon_utils
import numpy as np

zip_path, model_dir, au_dir, endpoint, hub_repo, out_dir, rig_dir, takes_dir = sys.argv[-8:]
out = {}
MODULE = "bl_ext.user_default.facecam"


def call(op, **kw):
    """Run an operator; (result, error report or None). Reports of level ERROR raise RuntimeError in scripts."""
    try:
        return sorted(op(**kw)), None
    except RuntimeError as e:
        return ["CANCELLED"], str(e)


def datablocks():
    return {"objects": len(bpy.data.objects), "meshes": len(bpy.data.meshes), "images": len(bpy.data.images),
            "materials": len(bpy.data.materials)}


def orphans():
    return sum(1 for coll in (bpy.data.meshes, bpy.data.images, bpy.data.materials) for d in coll if d.users == 0)


def evaluated_vertices(obj):
    bpy.context.scene.frame_set(bpy.context.scene.frame_current)  # evaluates drivers
    dg = bpy.context.evaluated_depsgraph_get()
    ev = obj.evaluated_get(dg)
    mesh = ev.to_mesh()
    co = np.empty(len(mesh.vertices) * 3, np.float32)
    mesh.vertices.foreach_get("co", co)
    ev.to_mesh_clear()
    return co.reshape(-1, 3)


def action_curves(action):
    """An action's F-curves: Blender 4.4+'s slotted actions (one layer, one strip here), or 4.2's legacy list."""
    if getattr(action, "layers", None):
        return [c for bag in action.layers[0].strips[0].channelbags for c in bag.fcurves]
    return list(action.fcurves)


def action_paths(action):
    return [c.data_path for c in action_curves(action)]


def key_co(key):
    co = np.empty(len(key.data) * 3, np.float32)
    key.data.foreach_get("co", co)
    return co.reshape(-1, 3)


def mesh_co(obj):
    co = np.empty(len(obj.data.vertices) * 3, np.float32)
    obj.data.vertices.foreach_get("co", co)
    return co.reshape(-1, 3)


bpy.ops.wm.read_factory_settings(use_empty=True)
out["install"] = sorted(bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default",
                                                                  enable_on_install=True))
mod = sys.modules[MODULE]
core = sys.modules[MODULE + ".core.face_model"] if MODULE + ".core.face_model" in sys.modules else None
out["torch_loaded_at_enable"] = "torch" in sys.modules
prefs = bpy.context.preferences.addons[MODULE].preferences
settings = bpy.context.scene.facecam

# --- no model yet: clear reports, nothing made ---------------------------------------------------------------
before = datablocks()
prefs.source_kind = "MANIFEST"
out["no_published"] = call(bpy.ops.facecam.generate_face)
prefs.source_kind = "FOLDER"
prefs.folder = ""
out["no_folder"] = call(bpy.ops.facecam.generate_face)
prefs.folder = str(Path(out_dir) / "missing")
out["missing_folder"] = call(bpy.ops.facecam.generate_face)
import shutil  # noqa: E402
damaged = Path(out_dir) / "damaged"
shutil.copytree(model_dir, damaged)
with open(damaged / "shape.safetensors", "r+b") as f:  # a download or copy cut short
    f.truncate(f.seek(0, 2) // 2)
prefs.folder = str(damaged)
out["damaged_folder"] = call(bpy.ops.facecam.generate_face)
prefs.source_kind = "REPO"
prefs.repo = hub_repo
prefs.cache_dir = str(Path(out_dir) / "cache")
out["offline_not_cached"] = call(bpy.ops.facecam.generate_face)
out["download_offline"] = call(bpy.ops.facecam.download_weights)
out["after_errors_unchanged"] = datablocks() == before

# --- download through the hub with online access on -----------------------------------------------------------
bpy.context.preferences.system.use_online_access = True
out["download"] = call(bpy.ops.facecam.download_weights)
out["cached_files"] = sorted(p.name for p in (Path(out_dir) / "cache").rglob("snapshots/*/*"))
bpy.context.preferences.system.use_online_access = False
from importlib import import_module  # noqa: E402  (the add-on's own core, as bundled in the zip)

session = import_module(MODULE + ".model_session")
session.unload()
out["load_cached_offline"] = call(bpy.ops.facecam.load_model)

# --- generate from the local folder -------------------------------------------------------------------------
prefs.source_kind = "FOLDER"
prefs.folder = model_dir
out["load"] = call(bpy.ops.facecam.load_model)
model = session.current()
out["torch_loaded_after_load"] = "torch" in sys.modules
out["backend_line"] = model.backend_line()
try:
    import torch  # noqa: F401  (present in the project's own venv, absent in a stock Blender's Python)
    out["torch_installed"] = True
except ImportError:
    out["torch_installed"] = False
out["expression_items"] = [i[0] for i in sys.modules[MODULE + ".properties"].expression_items(settings, None)]
settings.expression = "2_smile"
settings.identity_seed, settings.noise_seed, settings.intensity = 3, 1, 1.3
bpy.ops.ed.undo_push(message="before generate")
count_before_generate = len(bpy.data.objects)
try:  # undo=True: push an undo step as a click in the UI does (operators run from scripts push none)
    out["generate"] = sorted(bpy.ops.facecam.generate_face("EXEC_DEFAULT", True))
except RuntimeError as e:
    out["generate"] = str(e)
obj = bpy.context.active_object
name = obj.name
face = model.generate(3, "2_smile", 1.3, 1)
coords = import_module(MODULE + ".core.coordinates")
expected = coords.y_up_to_z_up_metres(face.vertices, model.units)
mesh = obj.data
loop_totals = np.empty(len(mesh.polygons), np.int32)
mesh.polygons.foreach_get("loop_total", loop_totals)
uv = np.empty(len(mesh.loops) * 2, np.float32)
mesh.uv_layers.active.uv.foreach_get("vector", uv)
smooth = np.empty(len(mesh.polygons), bool)
mesh.polygons.foreach_get("use_smooth", smooth)
image = bpy.data.images.get(obj["facecam_image"])
pixels = np.empty(image.size[0] * image.size[1] * 4, np.float32)
image.pixels.foreach_get(pixels)
pixels = pixels.reshape(image.size[1], image.size[0], 4)[::-1, :, :3]
material = mesh.materials[0]
bsdf = next(n for n in material.node_tree.nodes if n.type == "BSDF_PRINCIPLED")
out["mesh"] = {
    "vertices": len(mesh.vertices), "polygons": len(mesh.polygons), "loops": len(mesh.loops),
    "quads": int((loop_totals == 4).sum()), "model_quads": int((face.polygon_sizes == 4).sum()),
    "max_vertex_error": float(np.abs(mesh_co(obj) - expected).max()),
    "max_uv_error": float(np.abs(uv.reshape(-1, 2) - face.uvs[face.polygon_uv_indices]).max()),
    "all_smooth": bool(smooth.all()),
    "texture_size": list(image.size), "model_texture_size": list(face.texture.shape[:2]),
    "max_texture_error": float(np.abs(pixels * 255 - face.texture).max()),
    "image_packed": image.packed_file is not None,
    "base_color_linked": bsdf.inputs["Base Color"].is_linked,
    "subsurface": bsdf.inputs["Subsurface Weight"].default_value,
    "z_extent": float(expected[:, 2].max() - expected[:, 2].min()),
}
material_index = np.empty(len(mesh.polygons), np.int32)
mesh.polygons.foreach_get("material_index", material_index)
out["materials"] = {"names": [m.name for m in mesh.materials],
                    "polygons": np.bincount(material_index, minlength=len(mesh.materials)).tolist(),
                    "model_parts": list(face.part_names), "model_polygons": np.bincount(face.polygon_parts).tolist()}
out["model"] = {"vertices": int(len(face.vertices)), "polygons": int(len(face.polygon_sizes)),
                "loops": int(len(face.polygon_vertices)), "expressions": model.expression_names}

# --- undo removes the new face ------------------------------------------------------------------------------
bpy.ops.ed.undo()
out["undo_removed"] = name not in bpy.data.objects and len(bpy.data.objects) == count_before_generate
bpy.ops.ed.redo()
settings = bpy.context.scene.facecam  # undo replaces the scene's data: references taken before are stale
obj = bpy.data.objects.get(name)
out["redo_restored"] = obj is not None

# --- update in place: same object, modifier and material edits kept -------------------------------------------
bpy.context.view_layer.objects.active = obj
obj.select_set(True)
obj.modifiers.new("user subsurf", "SUBSURF")
material = obj.data.materials[0]
bsdf = next(n for n in material.node_tree.nodes if n.type == "BSDF_PRINCIPLED")
bsdf.inputs["Roughness"].default_value = 0.123
iris = next(m for m in obj.data.materials if m.name.endswith(" iris"))
iris_bsdf = next(n for n in iris.node_tree.nodes if n.type == "BSDF_PRINCIPLED")
iris_bsdf.inputs["Base Color"].default_value = (0.1, 0.3, 0.8, 1.0)  # the user makes the eyes blue
settings.identity_seed = 8
out["update"] = call(bpy.ops.facecam.generate_face)
updated = model.generate(8, "2_smile", 1.3, 1)
out["in_place"] = {
    "same_object": bpy.context.active_object == obj and len([o for o in bpy.data.objects if "facecam" in o]) == 1,
    "modifier_kept": [m.name for m in obj.modifiers] == ["user subsurf"],
    "material_kept": obj.data.materials[0] == material and abs(bsdf.inputs["Roughness"].default_value - 0.123) < 1e-6
    and obj.data.materials[:].count(iris) == 1 and abs(iris_bsdf.inputs["Base Color"].default_value[2] - 0.8) < 1e-6,
    "max_vertex_error": float(np.abs(mesh_co(obj) - coords.y_up_to_z_up_metres(updated.vertices, model.units)).max()),
}
settings.use_mix, settings.second_expression, settings.mix_weight = True, "3_mouth_stretch", 0.25
out["mix"] = call(bpy.ops.facecam.generate_face)
mixed = model.generate(8, {"2_smile": 0.75, "3_mouth_stretch": 0.25}, 1.3, 1)
out["mix_vertex_error"] = float(np.abs(mesh_co(obj) - coords.y_up_to_z_up_metres(mixed.vertices, model.units)).max())
settings.use_mix = False

# --- live update: changing a control regenerates the active face ---------------------------------------------------
settings.live_update = True
settings.intensity = 0.7
live = model.generate(8, "2_smile", 0.7, 1)
out["live_update_error"] = float(np.abs(mesh_co(obj) - coords.y_up_to_z_up_metres(live.vertices, model.units)).max())
settings.live_update = False
settings.intensity = 1.3
bpy.ops.facecam.generate_face()
base = datablocks()
for seed in range(20):
    settings.identity_seed = 100 + seed
    bpy.ops.facecam.generate_face()
out["repeat"] = {"before": base, "after": datablocks(), "orphans": orphans()}

# --- bake an intensity sweep, walk it with the control ---------------------------------------------------------
settings.identity_seed = 8
bpy.ops.facecam.generate_face()
settings.sweep_count, settings.sweep_max = 4, 2.0
out["bake_sweep"] = call(bpy.ops.facecam.bake_sweep)
keys = obj.data.shape_keys
sweep = model.sweep(8, "2_smile", [0.0, 0.5, 1.0, 1.5, 2.0], 1, texture=False)
blender = [coords.y_up_to_z_up_metres(f.vertices, model.units) for f in sweep]
drivers = keys.animation_data.drivers
out["sweep_keys"] = [(k.name, k.value, k.slider_min, k.slider_max) for k in keys.key_blocks]
out["sweep_key_errors"] = [float(np.abs(key_co(keys.key_blocks[i + 1]) - blender[i + 1]).max()) for i in range(4)]
out["basis_error"] = float(np.abs(key_co(keys.reference_key) - blender[0]).max())
out["drivers"] = {"count": len(drivers), "simple": all(d.driver.is_simple_expression for d in drivers),
                  "valid": all(d.driver.is_valid for d in drivers)}
control = {}
obj.modifiers["user subsurf"].show_viewport = False  # compare the shape keys' result, not its subdivision
for t, target in ((0.0, blender[0]), (1.0, blender[2]), (1.5, blender[3]), (1.25, (blender[2] + blender[3]) / 2),
                  (2.5, blender[4] + (blender[4] - blender[3]))):
    obj["facecam_intensity"] = t
    obj.update_tag()  # as the sidebar's slider does when a user drags it
    control[str(t)] = float(np.abs(evaluated_vertices(obj) - target).max())
out["control_errors"] = control
out["control_range"] = dict(obj.id_properties_ui("facecam_intensity").as_dict())

settings.sweep_count = 3
out["rebake"] = call(bpy.ops.facecam.bake_sweep)
out["rebake_keys"] = [k.name for k in obj.data.shape_keys.key_blocks]
out["rebake_drivers"] = len(obj.data.shape_keys.animation_data.drivers)

# --- bake all expressions -------------------------------------------------------------------------------------
settings.set_intensity = 1.0
out["bake_all"] = call(bpy.ops.facecam.bake_expressions)
out["bake_all_again"] = call(bpy.ops.facecam.bake_expressions)
names = [k.name for k in obj.data.shape_keys.key_blocks]
out["all_keys"] = names
expected_smile = coords.y_up_to_z_up_metres(model.generate(8, "2_smile", 1.0, 1).vertices, model.units)
out["set_key_error"] = float(np.abs(key_co(obj.data.shape_keys.key_blocks["2_smile@1.00"]) - expected_smile).max())

# --- a new identity re-bakes the keys; a bad stored expression changes nothing ---------------------------------------
settings.identity_seed = 9
settings.intensity = 1.5
out["regenerate_baked"] = call(bpy.ops.facecam.generate_face)
new_sweep = model.sweep(9, "2_smile", [0.0, 2 / 3, 4 / 3, 2.0], 1, texture=False)
keys = obj.data.shape_keys.key_blocks
out["rebaked_errors"] = [float(np.abs(key_co(keys[n]) - coords.y_up_to_z_up_metres(f.vertices, model.units)).max())
                         for n, f in zip(["2_smile@0.67", "2_smile@1.33", "2_smile@2.00"], new_sweep[1:])]
out["control_after_regenerate"] = obj["facecam_intensity"]
record = json.loads(obj["facecam_sweep"])
record["expression"] = "no_such_expression"
obj["facecam_sweep"] = json.dumps(record)
snapshot = (mesh_co(obj).copy(), [k.name for k in keys], datablocks())
settings.identity_seed = 10
out["bad_expression"] = call(bpy.ops.facecam.generate_face)
out["bad_expression_unchanged"] = (bool(np.array_equal(snapshot[0], mesh_co(obj)))
                                   and snapshot[1] == [k.name for k in obj.data.shape_keys.key_blocks]
                                   and snapshot[2] == datablocks())

# --- Cycles preview ----------------------------------------------------------------------------------------------
scene = bpy.context.scene
engine = scene.render.engine
settings.preview_resolution, settings.preview_samples = 128, 4
out["render"] = call(bpy.ops.facecam.render_preview)
preview = bpy.data.images["facecam Preview"]
px = np.empty(preview.size[0] * preview.size[1] * 4, np.float32)
preview.pixels.foreach_get(px)
px = px.reshape(preview.size[1], preview.size[0], 4)
preview.filepath_raw = str(Path(out_dir) / "preview.png")
preview.file_format = "PNG"
preview.save()
out["preview"] = {"size": list(preview.size), "packed": preview.packed_file is not None,
                  "centre_alpha": float(px[54:74, 54:74, 3].mean()), "coverage": float((px[..., 3] > 0.5).mean()),
                  "corner_alpha": float(px[:8, :8, 3].mean()), "rgb_std": float(px[..., :3][px[..., 3] > 0.5].std()),
                  "user_scene_untouched": bpy.context.scene == scene and scene.render.engine == engine}

# --- an action-unit model: one slider per unit ---------------------------------------------------------------------
prefs.folder = au_dir
out["load_au"] = call(bpy.ops.facecam.load_model)
au_model = session.current()
out["au_sliders"] = [a.name for a in settings.action_units] == au_model.expression_names
settings.action_units[0].value = 4.0
for o in bpy.context.view_layer.objects.selected:
    o.select_set(False)
out["generate_au"] = call(bpy.ops.facecam.generate_face)
au_face = au_model.generate(settings.identity_seed, {au_model.expression_names[0]: 4.0}, settings.intensity, 1)
au_obj = bpy.context.active_object
out["au_vertex_error"] = float(np.abs(mesh_co(au_obj) - coords.y_up_to_z_up_metres(au_face.vertices,
                                                                                   au_model.units)).max())
bpy.ops.wm.save_as_mainfile(filepath=str(Path(out_dir) / "scene.blend"))

# --- the ARKit rig: baked on a facecam face, re-baked, on a mesh brought in ICT's topology; a Live Link Face take ---
prefs.folder = rig_dir
out["load_rig"] = call(bpy.ops.facecam.load_model)
rig_model = session.current()
for o in bpy.context.view_layer.objects.selected:
    o.select_set(False)
settings.identity_seed, settings.noise_seed, settings.intensity = 5, 1, 1.0
out["generate_for_rig"] = call(bpy.ops.facecam.generate_face)
face_obj = bpy.context.active_object
materials_before = [m.name for m in face_obj.data.materials]
started = time.perf_counter()
out["bake_rig"] = call(bpy.ops.facecam.bake_arkit_rig)
out["bake_rig_seconds"] = time.perf_counter() - started
blocks = face_obj.data.shape_keys.key_blocks
out["rig_keys"] = [(k.name, k.value, k.slider_min, k.slider_max) for k in blocks]
rest = rig_model.neutral_face(5, 1, texture=False).vertices
rig_names, rig_shapes = rig_model.arkit_key_shapes(rest)
out["rig_key_error"] = max(float(np.abs(key_co(blocks[n]) - coords.y_up_to_z_up_metres(v, rig_model.units)).max())
                           for n, v in zip(rig_names, rig_shapes))
out["rig_basis_error"] = float(np.abs(key_co(blocks[0]) - coords.y_up_to_z_up_metres(rest, rig_model.units)).max())
out["rig_materials_kept"] = [m.name for m in face_obj.data.materials] == materials_before
out["rebake_rig"] = call(bpy.ops.facecam.bake_arkit_rig)
out["rebake_rig_keys"] = [k.name for k in face_obj.data.shape_keys.key_blocks]
settings.identity_seed = 6
out["regenerate_rigged"] = call(bpy.ops.facecam.generate_face)
rest6 = rig_model.neutral_face(6, 1, texture=False).vertices
_, shapes6 = rig_model.arkit_key_shapes(rest6)
out["regenerated_rig_error"] = float(np.abs(key_co(face_obj.data.shape_keys.key_blocks["jawOpen"])
                                            - coords.y_up_to_z_up_metres(shapes6[rig_names.index("jawOpen")],
                                                                         rig_model.units)).max())
# a mesh someone brings in ICT-FaceKit's topology (here: a facecam face at rest, without facecam's record), and one
# that is not
brought = bpy.data.objects.new("brought scan", bpy.data.meshes.new("brought scan"))
bpy.context.collection.objects.link(brought)
brought.data.from_pydata(coords.y_up_to_z_up_metres(rest6, rig_model.units).tolist(), [],
                         [p.vertices[:] for p in face_obj.data.polygons])
for o in bpy.context.view_layer.objects.selected:
    o.select_set(False)
bpy.context.view_layer.objects.active = brought
brought.select_set(True)
out["bake_brought"] = call(bpy.ops.facecam.bake_arkit_rig)
out["brought_rig_error"] = float(np.abs(key_co(brought.data.shape_keys.key_blocks["jawOpen"])
                                        - key_co(face_obj.data.shape_keys.key_blocks["jawOpen"])).max())
bpy.ops.mesh.primitive_cube_add()
cube = bpy.context.active_object
out["bake_cube"] = call(bpy.ops.facecam.bake_arkit_rig)
out["cube_untouched"] = cube.data.shape_keys is None
# a user's own key with an ARKit name blocks the bake (nothing changed)
user_obj = bpy.data.objects.new("user rig", brought.data.copy())
bpy.context.collection.objects.link(user_obj)
user_obj.shape_key_clear()
user_obj.shape_key_add(name="Basis")
user_obj.shape_key_add(name="jawOpen")
bpy.context.view_layer.objects.active = user_obj
out["bake_over_user_keys"] = call(bpy.ops.facecam.bake_arkit_rig)
out["user_keys_kept"] = [k.name for k in user_obj.data.shape_keys.key_blocks]

# the take: keyframes at the scene's frame rate, columns matched without case, quirks handled
scene = bpy.context.scene
scene.render.fps, scene.render.fps_base, scene.frame_start = 24, 1.0, 10
bpy.context.view_layer.objects.active = face_obj
actions_before = len(bpy.data.actions)
for name in sorted(os.listdir(takes_dir)):
    if name.startswith("bad_"):
        out[f"import_{name}"] = call(bpy.ops.facecam.import_live_link, filepath=str(Path(takes_dir) / name))
out["bad_takes_wrote_nothing"] = len(bpy.data.actions) == actions_before and \
    face_obj.data.shape_keys.animation_data is None
out["import_take"] = call(bpy.ops.facecam.import_live_link, filepath=str(Path(takes_dir) / "take.csv"),
                          swap_left_right=True)
expected = json.loads((Path(takes_dir) / "take.json").read_text())
sampled = {}
for frame in expected["frames"]:
    whole = int(np.floor(frame))
    scene.frame_set(whole, subframe=frame - whole)
    sampled[str(frame)] = {n: face_obj.data.shape_keys.key_blocks[n].value for n in expected["keys"]} | \
        {r: face_obj.get("livelink_" + r) for r in expected["rotations"]}
out["take_sampled"] = sampled
out["take_frame_end"] = scene.frame_end
action = face_obj.data.shape_keys.animation_data.action
out["take_action"] = {"name": action.name, "paths": sorted(action_paths(action)),
                      "keyframes": sorted({len(c.keyframe_points) for c in action_curves(action)})}
started = time.perf_counter()
out["import_long_take"] = call(bpy.ops.facecam.import_live_link, filepath=str(Path(takes_dir) / "long.csv"))
out["import_long_seconds"] = time.perf_counter() - started
first_take = action.name
# the object's own animation stays when a take keys the rotations; the first take's action stays in the file
out["first_take_kept"] = first_take in bpy.data.actions and bpy.data.actions[first_take].use_fake_user
face_obj.keyframe_insert("location", frame=1)
out["import_again"] = call(bpy.ops.facecam.import_live_link, filepath=str(Path(takes_dir) / "take.csv"))
object_paths = action_paths(face_obj.animation_data.action)
out["object_animation_kept"] = "location" in object_paths and '["livelink_HeadYaw"]' in object_paths
# a re-bake keeps the take driving the keys; a model without a rig takes the rig off the face it regenerates
take_action = face_obj.data.shape_keys.animation_data.action.name
out["rebake_after_take"] = call(bpy.ops.facecam.bake_arkit_rig)
animation = face_obj.data.shape_keys.animation_data
out["take_kept_after_rebake"] = animation is not None and animation.action is not None and \
    animation.action.name == take_action
frame = expected["frames"][7]
scene.frame_set(int(np.floor(frame)), subframe=frame - np.floor(frame))
out["take_value_after_rebake"] = face_obj.data.shape_keys.key_blocks["jawOpen"].value
prefs.folder = model_dir
out["load_without_rig"] = call(bpy.ops.facecam.load_model)
for o in bpy.context.view_layer.objects.selected:
    o.select_set(False)
face_obj.select_set(True)
bpy.context.view_layer.objects.active = face_obj
out["regenerate_without_rig"] = call(bpy.ops.facecam.generate_face)
out["rig_after_model_without_rig"] = ("facecam_arkit_rig" in face_obj,
                                      "jawOpen" in face_obj.data.shape_keys.key_blocks if face_obj.data.shape_keys
                                      else False)

# --- the PyTorch backend: used where torch imports, else numpy runs and the model box says why -------------------
prefs.folder = model_dir
prefs.backend = "torch"
out["load_torch"] = call(bpy.ops.facecam.load_model)
torch_model = session.current()
out["torch_backend_line"] = torch_model.backend_line()
out["torch_backend_error_mm"] = 10 * float(np.abs(torch_model.generate(3, "2_smile", 1.3, 1).vertices
                                                  - model.generate(3, "2_smile", 1.3, 1).vertices).max())
prefs.backend = "auto"

# --- disable and uninstall ------------------------------------------------------------------------------------
addon_utils.disable(MODULE, default_set=True)
out["left_registered"] = [n for n in dir(bpy.types) if "facecam" in n.lower()] + (
    ["Scene.facecam"] if hasattr(bpy.types.Scene, "facecam") else [])
repo = bpy.utils.user_resource("EXTENSIONS", path="user_default")
out["uninstall"] = sorted(bpy.ops.extensions.package_uninstall(repo_directory=repo, pkg_id="facecam"))
out["left_files"] = sorted(n for n in os.listdir(repo) if not n.startswith("."))
print("RESULT " + json.dumps(out))
