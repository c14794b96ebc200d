"""The main job's Blender step, run by train/demo.py in a fresh bpy process (Blender as a Python module, in a venv with
nothing else: no torch, no pillow, as a stock Blender's Python):

    python train/blender_scene.py EXTENSION_ZIP MODEL_FOLDER OUT_DIR RESOLUTION SAMPLES

Installs the add-on zip, which bundles the exported model (into BLENDER_USER_RESOURCES, which the demo points inside
outputs/), and with no preference touched loads that model through the add-on (core.FaceModel.from_pretrained, the
code path hub weights take), makes three faces
with the Generate Face operator, bakes an intensity sweep on each, renders each with Render Preview and one sweep
as a strip of renders at its baked levels; bakes the second face's ARKit rig (when the model has one) and renders it
at rest and at a few ARKit poses; saves the .blend. Prints "RESULT {json}" with the paths.
"""
import json
import sys
from pathlib import Path

import bpy
import numpy as np

MODULE = "bl_ext.user_default.facecam"
FACES = ((1, 1, 1.0), (2, 2, 1.2), (3, 3, 0.9))  # (identity seed, expression index, intensity)
SWEEP_LEVELS = (0.5, 1.0, 1.5, 2.0)
# ARKit poses the rig strip shows, after the face at rest: {key: weight}
ARKIT_POSES = ({"jawOpen": 1.0}, {"mouthSmileLeft": 1.0, "mouthSmileRight": 1.0, "cheekSquintLeft": 0.5,
                                   "cheekSquintRight": 0.5},
               {"eyeBlinkLeft": 1.0, "browDownLeft": 0.8, "browDownRight": 0.8}, {"browInnerUp": 1.0, "mouthFunnel": 0.8})


def read_png(path: Path) -> np.ndarray:
    """(H, W, 4) uint8, top row first, through Blender's own image loader (this Python has no pillow)."""
    image = bpy.data.images.load(str(path))
    width, height = image.size
    pixels = np.empty(width * height * 4, np.float32)
    image.pixels.foreach_get(pixels)
    bpy.data.images.remove(image)
    return np.round(pixels.reshape(height, width, 4)[::-1] * 255).astype(np.uint8)


def write_png(path: Path, rgba: np.ndarray) -> None:
    image = bpy.data.images.new("facecam strip", rgba.shape[1], rgba.shape[0], alpha=True)
    image.pixels.foreach_set((rgba[::-1].astype(np.float32) / 255).ravel())
    image.filepath_raw, image.file_format = str(path), "PNG"
    image.save()
    bpy.data.images.remove(image)


def save_preview(path: Path) -> str:
    image = bpy.data.images["facecam Preview"]
    image.filepath_raw, image.file_format = str(path), "PNG"
    image.save()
    return str(path)


def main(zip_path: str, model: str, out_dir: str, resolution: str, samples: str) -> dict:
    out = Path(out_dir)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default", enable_on_install=True)
    prefs = bpy.context.preferences.addons[MODULE].preferences
    weights = prefs.source_kind  # untouched: the zip bundles the model, which a fresh install uses by default
    bpy.ops.facecam.load_model()
    loaded = sys.modules[MODULE + ".model_session"].current()
    if loaded is None or loaded.name != json.loads((Path(model) / "config.json").read_text())["name"]:
        raise SystemExit(f"the installed extension did not load the bundled model {model} (weights: {weights})")
    names = loaded.expression_names
    settings = bpy.context.scene.facecam
    settings.sweep_count, settings.sweep_max = len(SWEEP_LEVELS), SWEEP_LEVELS[-1]
    settings.preview_resolution, settings.preview_samples = int(resolution), int(samples)
    faces, renders = [], []
    for i, (seed, expression, intensity) in enumerate(FACES):
        for obj in bpy.context.view_layer.objects.selected:
            obj.select_set(False)
        settings.identity_seed, settings.intensity = seed, intensity
        settings.expression = names[expression % len(names)]
        bpy.ops.facecam.generate_face()
        face = bpy.context.active_object
        bpy.ops.facecam.render_preview()  # before the bake: the face at its chosen intensity
        renders.append(save_preview(out / f"face_{i + 1}.png"))
        bpy.ops.facecam.bake_sweep()
        face["facecam_intensity"] = intensity  # the baked rig showing the chosen intensity
        face.update_tag()
        face.location.x = 0.3 * i  # side by side in the saved scene
        faces.append({"object": face.name, "identity_seed": seed, "expression": settings.expression,
                      "intensity": intensity, "keys": [k.name for k in face.data.shape_keys.key_blocks]})
    first = bpy.data.objects[faces[0]["object"]]
    bpy.context.view_layer.objects.active = first  # Render Preview renders the active face
    frames = []
    for level in (0.0, *SWEEP_LEVELS):
        first["facecam_intensity"] = level
        first.update_tag()
        bpy.ops.facecam.render_preview()
        frames.append(read_png(Path(save_preview(out / "sweep_frame.png"))))
    strip = out / "sweep_strip.png"
    write_png(strip, np.concatenate(frames, axis=1))
    (out / "sweep_frame.png").unlink()
    first["facecam_intensity"] = FACES[0][2]
    rig = arkit_strip(bpy.data.objects[faces[1]["object"]], out) if loaded.has_arkit_rig else None
    bpy.ops.wm.save_as_mainfile(filepath=str(out / "faces.blend"))
    return {"faces": faces, "renders": renders, "strip": str(strip), "sweep_levels": [0.0, *SWEEP_LEVELS],
            "blend": str(out / "faces.blend"), "weights": weights, "extension": zip_path,
            "materials": [m.name for m in first.data.materials], "arkit": rig}


def arkit_strip(face, out: Path) -> dict:
    """Bake the face's ARKit rig and render it at rest and at ARKIT_POSES (key values set as a mocap take would)."""
    for obj in bpy.context.view_layer.objects.selected:
        obj.select_set(False)
    bpy.context.view_layer.objects.active = face
    face.select_set(True)
    face["facecam_intensity"] = 0.0  # the sweep at rest: the rig's poses alone
    face.update_tag()
    bpy.ops.facecam.bake_arkit_rig()
    blocks = face.data.shape_keys.key_blocks
    frames = []
    for pose in ({}, *ARKIT_POSES):
        for name, weight in pose.items():
            blocks[name].value = weight
        bpy.ops.facecam.render_preview()
        frames.append(read_png(Path(save_preview(out / "arkit_frame.png"))))
        for name in pose:
            blocks[name].value = 0.0
    strip = out / "arkit_strip.png"
    write_png(strip, np.concatenate(frames, axis=1))
    (out / "arkit_frame.png").unlink()
    keys = json.loads(face["facecam_arkit_rig"])["keys"]
    return {"object": face.name, "keys": len(keys), "strip": str(strip), "poses": [{}, *ARKIT_POSES]}


if __name__ == "__main__":
    print("RESULT " + json.dumps(main(*sys.argv[-5:])))
