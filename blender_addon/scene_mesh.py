"""Faces into Blender data: the mesh (quads kept, UVs, smooth), one material per part of the head (textured skin,
sclera, iris, teeth, gums and tongue, eyelashes, the transparent wet layers of the eyes) and the texture image.

Bulk data goes through foreach_set: a per-vertex Python loop over 26,719 vertices would take seconds.
"""
from __future__ import annotations

import bpy

from .core.flat_arrays import corner_uvs, loop_starts, rgba_bottom_up, z_up_positions
from .core.template import PART_COLOURS, PART_OPACITY

FACE_TAG = "facecam"  # custom property on every generated face object: the settings it was made with (JSON)
IMAGE_TAG = "facecam_image"  # the name of the face's texture image
TEXTURE_NODE = "facecam texture"  # the image node of the skin material


def blender_vertices(face, units: str):
    """Flat (V * 3,) z-up metres, for foreach_set."""
    return z_up_positions(face.vertices, units)


def is_face(obj) -> bool:
    return obj is not None and obj.type == "MESH" and FACE_TAG in obj


def same_topology(mesh, face) -> bool:
    return len(mesh.vertices) == len(face.vertices) and len(mesh.polygons) == len(face.polygon_sizes) \
        and len(mesh.loops) == len(face.polygon_vertices)


def build_mesh(name: str, face, units: str):
    mesh = bpy.data.meshes.new(name)
    mesh.vertices.add(len(face.vertices))
    mesh.vertices.foreach_set("co", blender_vertices(face, units))
    mesh.loops.add(len(face.polygon_vertices))
    mesh.loops.foreach_set("vertex_index", face.polygon_vertices)
    mesh.polygons.add(len(face.polygon_sizes))
    mesh.polygons.foreach_set("loop_start", loop_starts(face.polygon_sizes))
    uv_layer = mesh.uv_layers.new(name="UVMap")
    uv_layer.uv.foreach_set("vector", corner_uvs(face))
    mesh.polygons.foreach_set("use_smooth", [True] * len(face.polygon_sizes))
    if face.polygon_parts is not None:
        mesh.polygons.foreach_set("material_index", face.polygon_parts)
    mesh.update()
    return mesh


def add_part_materials(obj, face, name: str) -> None:
    """Give obj a material for each part of the face it has no slot for yet (a new face: all of them; a face made
    before parts existed: the ones after skin), and point its polygons at them. Slots that exist are the user's to
    edit: they are never replaced."""
    mesh = obj.data
    missing = face.part_names[len(mesh.materials):]
    for part in missing:
        mesh.materials.append(skin_material(f"{name} skin") if part == "skin" else part_material(f"{name} {part}", part))
    if missing and len(mesh.materials) > 1 and face.polygon_parts is not None:
        mesh.polygons.foreach_set("material_index", face.polygon_parts)
        mesh.update()


def key_points(key):
    """A shape key's points for foreach_set: `points` (Blender 4.1+) is the fast path; `data` took ~10x longer."""
    return key.points if hasattr(key, "points") else key.data


def set_vertices(obj, face, units: str) -> None:
    """Move the face's vertices; with shape keys, the basis key is what Blender shows, so it moves too."""
    co = blender_vertices(face, units)
    obj.data.vertices.foreach_set("co", co)
    if obj.data.shape_keys is not None:
        key_points(obj.data.shape_keys.reference_key).foreach_set("co", co)
    obj.data.update()


def write_face(context, obj, face, units: str, name: str = "facecam face"):
    """Update obj in place (same object, modifiers and material kept) or create a new face object with a skin
    material; returns it."""
    if obj is not None:
        if same_topology(obj.data, face):
            set_vertices(obj, face, units)
        else:  # another model's topology: a new mesh, the old one removed when nothing else uses it
            old = obj.data
            mesh = build_mesh(old.name, face, units)
            for material in old.materials:
                mesh.materials.append(material)
            obj.data = mesh
            if old.users == 0:
                bpy.data.meshes.remove(old)
        add_part_materials(obj, face, obj.name)
        return obj
    mesh = build_mesh(name, face, units)
    obj = bpy.data.objects.new(name, mesh)
    add_part_materials(obj, face, name)
    context.collection.objects.link(obj)
    for other in context.selected_objects:
        other.select_set(False)
    obj.select_set(True)
    context.view_layer.objects.active = obj
    return obj


def set_texture(obj, texture) -> None:
    """Put a (T, T, 3) uint8 texture into the face's image, packed so the .blend is self-contained, and into the
    base colour of the skin material facecam made (a material the user swapped in is left alone)."""
    height, width = texture.shape[:2]
    image = bpy.data.images.get(obj.get(IMAGE_TAG, ""))
    if image is None:
        image = bpy.data.images.new(f"{obj.name} texture", width, height, alpha=False)
        obj[IMAGE_TAG] = image.name
    elif tuple(image.size) != (width, height):
        image.scale(width, height)
    image.pixels.foreach_set(rgba_bottom_up(texture))
    image.update()
    image.pack()
    for material in obj.data.materials:
        node = material.node_tree.nodes.get(TEXTURE_NODE) if material and material.node_tree else None
        if node is not None and node.image is None:
            node.image = image
            bsdf = next(n for n in material.node_tree.nodes if n.type == "BSDF_PRINCIPLED")
            material.node_tree.links.new(node.outputs["Color"], bsdf.inputs["Base Color"])


def skin_material(name: str):
    """Principled BSDF with skin settings and an empty image node the texture goes into when it arrives."""
    material = bpy.data.materials.new(name)
    if bpy.app.version < (5, 0, 0):
        material.use_nodes = True  # from 5.0 materials always use nodes and the flag is deprecated
    nodes = material.node_tree.nodes
    bsdf = next(n for n in nodes if n.type == "BSDF_PRINCIPLED")
    tex = nodes.new("ShaderNodeTexImage")
    tex.name, tex.label, tex.location = TEXTURE_NODE, "facecam texture", (-400, 200)
    bsdf.inputs["Base Color"].default_value = (*PART_COLOURS["skin"], 1.0)  # until a texture arrives
    # a little subsurface scattering reaching millimetres, red deepest (Blender 4.0+ socket names)
    bsdf.inputs["Subsurface Weight"].default_value = 0.15
    bsdf.inputs["Subsurface Radius"].default_value = (1.0, 0.35, 0.2)
    bsdf.inputs["Subsurface Scale"].default_value = 0.005
    bsdf.inputs["Roughness"].default_value = 0.5
    return material


# How each part looks beyond its colour and opacity (core.template's, shared with OBJ and glTF files); the user's
# edits to these materials are kept on regeneration.
PART_FINISH = {
    "sclera": {"Roughness": 0.12, "Subsurface Weight": 0.1},
    "iris": {"Roughness": 0.15},  # brown; change its Base Color for other eyes
    "teeth": {"Roughness": 0.25, "Subsurface Weight": 0.1},
    "gums and tongue": {"Roughness": 0.3, "Subsurface Weight": 0.2},
    "eyelashes": {"Roughness": 0.6},
    "eye wetness": {"Roughness": 0.05},
    "pupil": {"Roughness": 0.3},
    "cornea": {"Roughness": 0.02},
}


def part_material(name: str, part: str):
    material = bpy.data.materials.new(name)
    if bpy.app.version < (5, 0, 0):
        material.use_nodes = True
    bsdf = next(n for n in material.node_tree.nodes if n.type == "BSDF_PRINCIPLED")
    colour = (*PART_COLOURS.get(part, (0.5, 0.5, 0.5)), 1.0)
    bsdf.inputs["Base Color"].default_value = colour
    material.diffuse_color = colour  # the viewport's solid-mode colour
    for socket, value in PART_FINISH.get(part, {}).items():
        bsdf.inputs[socket].default_value = value
    opacity = PART_OPACITY.get(part, 1.0)
    if opacity < 1.0:
        bsdf.inputs["Alpha"].default_value = opacity
        if hasattr(material, "surface_render_method"):
            material.surface_render_method = "BLENDED"  # EEVEE sees through it too (Cycles reads the alpha itself)
    return material
