"""The ARKit rig as shape keys, and Live Link Face takes as their keyframes (the numbers come from core: the rig's keys
from core.arkit_rig through FaceModel, the take from core.live_link).

Baked keys are named as Apple spells them (eyeBlinkLeft, jawOpen, ...), each the face at that key's weight 1, value 0,
slider 0..1, over a basis that is the face at rest; a record on the object (ARKIT_TAG) lets a re-bake replace them
and only them. A take becomes an action on the mesh's shape keys (and one on the object for the head and eye
rotations, as custom properties, added to the object's own action when it has one), made through the slotted-action
API where Blender has it (4.4+) and the legacy one before; a take's earlier action stays in the file (fake user).
"""
from __future__ import annotations

import json

import math

import bpy

from .core.flat_arrays import filled, float_buffer, model_positions
from .core.live_link import Take, keyframe_points, scene_frames
from .scene_mesh import key_points, set_vertices
from .shape_keys import add_key, remove_keys

ARKIT_TAG = "facecam_arkit_rig"  # JSON: {"keys": [...], "missing": {...}}
ROTATION_PREFIX = "livelink_"  # custom properties holding a take's head and eye rotations


def rest_vertices(obj, units: str):
    """(V, 3) the mesh at rest in the model's units and axes: its basis key, or its vertices when it has none."""
    mesh = obj.data
    source = key_points(mesh.shape_keys.reference_key) if mesh.shape_keys is not None else mesh.vertices
    co = float_buffer(len(mesh.vertices) * 3)
    source.foreach_get("co", co)
    return model_positions(co, units)


class _Rest:
    """The face at rest as shape_keys' writers take faces (they read .vertices)."""

    def __init__(self, vertices):
        self.vertices = vertices


def check_rig_target(obj, names, vertex_count: int) -> None:
    """Refuse, before anything is touched, a mesh the rig cannot be baked on: another vertex count, or a key the
    user made that already has an ARKit name the rig writes."""
    if len(obj.data.vertices) != vertex_count:
        raise ValueError(f"'{obj.name}' has {len(obj.data.vertices)} vertices; the ARKit rig needs a mesh in "
                         f"ICT-FaceKit's topology ({vertex_count} vertices)")
    previous = set(json.loads(obj.get(ARKIT_TAG, "{}")).get("keys", []))
    blocks = obj.data.shape_keys.key_blocks if obj.data.shape_keys is not None else {}
    taken = [n for n in names if n in blocks and n not in previous]
    if taken:
        raise ValueError(f"'{obj.name}' already has shape keys named {', '.join(taken[:5])}"
                         f"{' ...' if len(taken) > 5 else ''} that facecam did not bake; rename or remove them first "
                         f"(the rig's keys must carry Apple's names exactly)")


def remove_rig(obj) -> None:
    remove_keys(obj, ARKIT_TAG, keep_basis=True)


def bake_arkit_rig(obj, neutral, names, shapes, units: str, missing: dict) -> list[str]:
    """Keys named `names` holding shapes[k] (the face at that key's weight 1) over a basis that is neutral; replaces
    an earlier rig, keeping the shape-key block (and a take's animation of the keys). Refuses (before touching
    anything) what check_rig_target refuses."""
    check_rig_target(obj, names, len(neutral))
    remove_rig(obj)
    if obj.data.shape_keys is None:
        obj.shape_key_add(name="Basis", from_mix=False)
    set_vertices(obj, _Rest(neutral), units)
    written = []
    for name, shape in zip(names, shapes):
        key = add_key(obj, name, _Rest(shape), units)
        key.slider_min, key.slider_max = 0.0, 1.0
        written.append(key.name)
    obj[ARKIT_TAG] = json.dumps({"keys": written, "missing": missing})
    return written


def baked_rig(obj) -> dict | None:
    return json.loads(obj[ARKIT_TAG]) if obj is not None and ARKIT_TAG in obj else None


def _fcurves(id_data, action, paths: list[str]) -> list:
    """The action's F-curve per data path for id_data, made where missing: Blender 4.4+ through the action's slot for
    id_data (an RNA function: found on the instance, not the class), 4.2-4.3 through the legacy list."""
    if hasattr(action, "fcurve_ensure_for_datablock"):
        return [action.fcurve_ensure_for_datablock(id_data, path) for path in paths]
    return [action.fcurves.find(path) or action.fcurves.new(path) for path in paths]


def _key_curves(fcurves, frames, columns) -> None:
    """Each F-curve gets one keyframe per frame, values from its column: in bulk, not a call per keyframe."""
    linear = filled(len(frames), _LINEAR)
    for k, curve in enumerate(fcurves):
        curve.keyframe_points.add(len(frames))
        curve.keyframe_points.foreach_set("co", keyframe_points(frames, columns[:, k]))
        curve.keyframe_points.foreach_set("interpolation", linear)
        curve.update()


_LINEAR = bpy.types.Keyframe.bl_rna.properties["interpolation"].enum_items["LINEAR"].value


def _new_action(id_data, name: str):
    """A new action for id_data; the one it had keeps a fake user, so it stays in the file."""
    if id_data.animation_data is None:
        id_data.animation_data_create()
    elif id_data.animation_data.action is not None:
        id_data.animation_data.action.use_fake_user = True
    action = bpy.data.actions.new(name)
    id_data.animation_data.action = action
    return action


def _own_action(id_data, name: str):
    """id_data's action (its own animation stays), or a new one when it has none."""
    if id_data.animation_data is not None and id_data.animation_data.action is not None:
        return id_data.animation_data.action
    return _new_action(id_data, name)


def _cleared(curves) -> list:
    """The curves without keyframes (a second take's rotations replace the first's)."""
    for curve in curves:
        while len(curve.keyframe_points):
            curve.keyframe_points.remove(curve.keyframe_points[-1], fast=True)
    return curves


def import_take(context, obj, take: Take) -> dict:
    """Keyframe obj's ARKit keys (and rotation properties) from the take, from the scene's start frame at its frame
    rate; returns what was done, for the report. Every key a column names must exist on obj (else nothing is
    written)."""
    blocks = obj.data.shape_keys.key_blocks if obj.data.shape_keys is not None else {}
    rig = baked_rig(obj) or {}
    absent = [n for n in take.names if n not in blocks]
    in_rig_missing = [n for n in absent if n in rig.get("missing", {})]
    unplayable = [n for n in absent if n not in in_rig_missing]
    if unplayable:
        raise ValueError(f"'{obj.name}' has no shape keys {', '.join(unplayable[:6])}{' ...' if len(unplayable) > 6 else ''}"
                         f" for the take's columns: bake the ARKit rig on it first")
    scene = context.scene
    fps = scene.render.fps / scene.render.fps_base
    frames = scene_frames(take, fps, scene.frame_start)
    keyed = [n for n in take.names if n in blocks]
    columns = take.columns(keyed)
    key_action = _new_action(obj.data.shape_keys, f"{take.path.stem} (ARKit)")
    _key_curves(_fcurves(obj.data.shape_keys, key_action, [f'key_blocks["{n}"].value' for n in keyed]), frames,
                columns)
    rotations = sorted(take.rotations)
    if rotations:
        for n in rotations:
            obj[ROTATION_PREFIX + n] = float(take.rotations[n][0])
        object_action = _own_action(obj, f"{take.path.stem} (head and eyes)")
        _key_curves(_cleared(_fcurves(obj, object_action, [f'["{ROTATION_PREFIX}{n}"]' for n in rotations])),
                    frames, take.rotation_columns(rotations))
    last = math.ceil(float(frames[-1]))
    if scene.frame_end < last:
        scene.frame_end = last
    return {"keyed": keyed, "not_in_rig": in_rig_missing, "rotations": rotations, "frames": len(frames),
            "first_frame": float(frames[0]), "last_frame": float(frames[-1]), "action": key_action.name}
