"""Expression sweeps and expression sets baked as shape keys, and the one control that walks a sweep.

A face with baked keys rests at its neutral face (intensity 0, the same for every expression): that is the basis,
so every key at 0 shows the neutral face and a key at 1 its own expression and intensity, as blend-shape rigs do.

A sweep's keys hold the model's mesh at levels 0 < l_1 < ... < l_n (the basis is level 0). The control (a custom
property on the object) drives every key with piecewise-linear "hat" weights, so at t = l_k the mesh is exactly the
baked key k and between levels it blends the two neighbours: the face follows the model's own (nonlinear) path
instead of scaling one key. Past l_n it continues the last segment's line (extrapolation), which is why the last
two keys' slider ranges go beyond 0..1. The expressions use only min/max/arithmetic, Blender's "simple expressions": they run
without Python, so they work in files opened with auto-run scripts off.
"""
from __future__ import annotations

import json

import bpy

from .core.names import intensity_key
from .scene_mesh import blender_vertices, key_points, set_vertices

SWEEP_TAG = "facecam_sweep"  # JSON: {"expression": ..., "levels": [...], "keys": [...]}
SET_TAG = "facecam_expression_set"  # JSON: {"intensity": ..., "keys": [...]}
CONTROL = "facecam_intensity"  # the custom property the sweep's drivers read
WEIGHT_LIMIT = 10.0  # Blender's largest slider range


def hat_expressions(levels: list[float]) -> list[str]:
    """Driver expressions in the control t, one per level (levels ascending and positive; the basis is level 0)."""
    points = [0.0, *levels]
    n = len(levels)
    out = []
    for k in range(1, n + 1):
        a, b = points[k - 1], points[k]
        rise = f"(t - {a!r}) / {b - a!r}"
        if k == n:
            out.append(f"max(0, {rise})")  # unbounded above: extrapolates past the last level
            continue
        c = points[k + 1]
        fall = f"({c!r} - t) / {c - b!r}"
        if k == n - 1:  # goes negative past the last level, so the line through the last two keys continues
            out.append(f"min(max(0, {rise}), {fall})")
        else:
            out.append(f"max(0, min({rise}, {fall}))")
    return out


def control_maximum(levels: list[float]) -> float:
    """The control's hard maximum: where the last key's weight reaches WEIGHT_LIMIT."""
    previous = levels[-2] if len(levels) > 1 else 0.0
    return levels[-1] + (WEIGHT_LIMIT - 1) * (levels[-1] - previous)


def set_neutral_basis(obj, neutral, units: str) -> None:
    """Make the neutral face the basis (and the mesh's own vertices), adding the basis key if there is none."""
    if obj.data.shape_keys is None:
        obj.shape_key_add(name="Basis", from_mix=False)
    set_vertices(obj, neutral, units)  # the mesh and its basis key


def add_key(obj, name: str, face, units: str):
    """A key holding face, value 0 (shape_key_add starts keys at 1). Blender renames a clashing name ("x.001"):
    callers record key.name, so removing one bake never removes another's key."""
    key = obj.shape_key_add(name=name, from_mix=False)
    key.value = 0.0
    key_points(key).foreach_set("co", blender_vertices(face, units))
    return key


def remove_keys(obj, tag: str, keep_basis: bool = False) -> None:
    """Remove the keys (and their drivers) a previous bake under `tag` made; keys the user made stay. With only the
    basis left it goes too (the mesh is as before), unless keep_basis: a re-bake keeps the shape-key block, and with
    it the animation (a take's action) that drives the keys by name."""
    record = json.loads(obj.get(tag, "{}"))
    blocks = obj.data.shape_keys.key_blocks if obj.data.shape_keys else {}
    for name in record.get("keys", []):
        key = blocks.get(name) if blocks else None
        if key is not None:
            key.driver_remove("value")
            obj.shape_key_remove(key)
    if tag in obj:
        del obj[tag]
    if tag == SWEEP_TAG and CONTROL in obj:
        del obj[CONTROL]
    keys = obj.data.shape_keys
    if keys is not None and len(keys.key_blocks) == 1 and not keep_basis:
        obj.shape_key_clear()


def bake_sweep(obj, neutral, faces, levels: list[float], label: str, units: str, expression) -> list[str]:
    """faces[i] is the model's mesh at levels[i] (ascending, positive), neutral at 0; returns the key names."""
    if not levels or levels[0] <= 0 or any(b <= a for a, b in zip(levels, levels[1:])):
        raise ValueError(f"sweep levels must be positive and rising, got {levels}")
    remove_keys(obj, SWEEP_TAG)
    set_neutral_basis(obj, neutral, units)
    names = []
    obj[CONTROL] = 0.0
    obj.id_properties_ui(CONTROL).update(min=0.0, max=control_maximum(levels), soft_min=0.0, soft_max=levels[-1],
                                        description=f"Intensity of {label}: walks the baked sweep keys")
    for level, face, expr in zip(levels, faces, hat_expressions(levels)):
        key = add_key(obj, intensity_key(label, level), face, units)
        names.append(key.name)
        last, second_last = level == levels[-1], len(levels) > 1 and level == levels[-2]
        key.slider_min = -WEIGHT_LIMIT if second_last else 0.0  # the extrapolating pair (module docstring)
        key.slider_max = WEIGHT_LIMIT if last else 1.0
        driver = key.driver_add("value").driver
        driver.type = "SCRIPTED"
        var = driver.variables.new()
        var.name, var.type = "t", "SINGLE_PROP"
        var.targets[0].id_type, var.targets[0].id = "OBJECT", obj
        var.targets[0].data_path = f'["{CONTROL}"]'
        driver.expression = expr
    obj[SWEEP_TAG] = json.dumps({"expression": expression, "label": label, "levels": levels, "keys": names})
    return names


def bake_expression_set(obj, neutral, faces, labels: list[str], intensity: float, units: str) -> list[str]:
    """One key per expression at one intensity, values 0, sliders allowing extrapolation to WEIGHT_LIMIT."""
    remove_keys(obj, SET_TAG)
    set_neutral_basis(obj, neutral, units)
    names = []
    for label, face in zip(labels, faces):
        key = add_key(obj, intensity_key(label, intensity), face, units)
        names.append(key.name)
        key.slider_min, key.slider_max = 0.0, WEIGHT_LIMIT
    obj[SET_TAG] = json.dumps({"intensity": intensity, "labels": labels, "keys": names})
    return names


def baked(obj, tag: str) -> dict | None:
    """What a bake under `tag` recorded on obj, or None."""
    return json.loads(obj[tag]) if obj is not None and tag in obj else None
