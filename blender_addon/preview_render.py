"""Render Preview: a scene of its own (camera, three-point lights, the face linked in) rendered with Cycles into an
image the user can look at and save. The user's scene, its camera and render settings are never touched."""
from __future__ import annotations

import math
import tempfile
from pathlib import Path

import bpy
from mathutils import Vector

PREVIEW_SCENE = "facecam Preview"
PREVIEW_IMAGE = "facecam Preview"
_RIG = ("facecam camera", "facecam key light", "facecam fill light", "facecam rim light")


def _object(scene, name: str, data):
    obj = bpy.data.objects.get(name)
    if obj is None:
        obj = bpy.data.objects.new(name, data)
    if obj.name not in scene.collection.objects:
        scene.collection.objects.link(obj)
    return obj


def _light(scene, name: str, energy: float, size: float, location: Vector, target: Vector):
    data = bpy.data.lights.get(name) or bpy.data.lights.new(name, "AREA")
    data.energy, data.size = energy, size
    obj = _object(scene, name, data)
    obj.location = location
    obj.rotation_euler = (target - location).to_track_quat("-Z", "Y").to_euler()
    return obj


def _gpu_available() -> bool:
    cycles = bpy.context.preferences.addons.get("cycles")
    if cycles is None or cycles.preferences.compute_device_type in ("", "NONE"):
        return False
    cycles.preferences.refresh_devices()
    return any(d.use and d.type != "CPU" for d in cycles.preferences.devices)


def preview_scene(face_obj, resolution: int, samples: int):
    """The preview scene framing face_obj (created on first use, re-framed each time)."""
    scene = bpy.data.scenes.get(PREVIEW_SCENE) or bpy.data.scenes.new(PREVIEW_SCENE)
    for obj in list(scene.collection.objects):  # only this face and the rig
        if obj.name not in _RIG and obj is not face_obj:
            scene.collection.objects.unlink(obj)
    if face_obj.name not in scene.collection.objects:
        scene.collection.objects.link(face_obj)
    corners = [face_obj.matrix_world @ Vector(c) for c in face_obj.bound_box]
    lo = Vector([min(c[i] for c in corners) for i in range(3)])
    hi = Vector([max(c[i] for c in corners) for i in range(3)])
    # frame the head, not the neck and shoulders below it: the top 60% of the mesh, as wide as it is
    height = (hi.z - lo.z) * 0.6
    centre = Vector(((lo.x + hi.x) / 2, (lo.y + hi.y) / 2, hi.z - height / 2))
    size = max(height, hi.x - lo.x)
    cam_data = bpy.data.cameras.get(_RIG[0]) or bpy.data.cameras.new(_RIG[0])
    cam_data.lens, cam_data.sensor_width = 85.0, 36.0
    distance = 1.1 * size * cam_data.lens / cam_data.sensor_width + (hi.y - lo.y) / 2
    camera = _object(scene, _RIG[0], cam_data)
    camera.location = centre + Vector((0.0, -distance, 0.0))  # generated faces look down -y
    camera.rotation_euler = (math.pi / 2, 0.0, 0.0)
    cam_data.clip_start, cam_data.clip_end = distance / 100, distance * 10
    scene.camera = camera
    front = Vector((0.0, -distance, 0.0))
    d2 = distance ** 2  # light power grows with the square of the distance: the same exposure at any scale
    _light(scene, _RIG[1], 15.0 * d2, size, centre + front + Vector((-0.6 * distance, 0, 0.5 * distance)), centre)
    _light(scene, _RIG[2], 5.0 * d2, size, centre + front + Vector((0.7 * distance, 0, 0.1 * distance)), centre)
    _light(scene, _RIG[3], 12.0 * d2, size, centre + Vector((0.3 * distance, distance, 0.8 * distance)), centre)
    world = bpy.data.worlds.get(PREVIEW_SCENE) or bpy.data.worlds.new(PREVIEW_SCENE)
    world.color = (0.05, 0.05, 0.05)
    scene.world = world
    scene.render.engine = "CYCLES"
    scene.cycles.device = "GPU" if _gpu_available() else "CPU"
    scene.cycles.samples = samples
    scene.cycles.use_denoising = False  # a few samples look grainy but honest, and OIDN is slow at first call
    scene.render.resolution_x = scene.render.resolution_y = resolution
    scene.render.resolution_percentage = 100
    scene.render.film_transparent = True
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGBA"
    return scene


def render_preview(face_obj, resolution: int = 256, samples: int = 16):
    """Render face_obj; returns the packed image "facecam Preview" (its pixels stay when the .blend is saved)."""
    scene = preview_scene(face_obj, resolution, samples)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "preview.png"
        scene.render.filepath = str(path)
        bpy.ops.render.render(write_still=True, scene=scene.name)
        old = bpy.data.images.get(PREVIEW_IMAGE)
        if old is not None:
            bpy.data.images.remove(old)
        image = bpy.data.images.load(str(path))
        image.name = PREVIEW_IMAGE
        image.pack()
        image.filepath = ""
    return image
