"""Write faces as binary glTF 2.0 (.glb): one mesh, its UVs and texture, and optionally an intensity sweep as
morph targets (shape keys in Blender, blend shapes elsewhere), named after their intensities.

glTF has no quads: polygons are fan-triangulated here (the OBJ export keeps quads). Positions are converted to
metres (glTF's unit) from the template's units; both are y-up, as glTF wants. Vertex normals (and their morph
deltas) are written, so importers shade the face smooth.
"""
from __future__ import annotations

import io
import json
import os
import struct

import numpy as np

from .atomic import write_bytes_atomic
from .coordinates import metres_per_unit
from .png_io import encode_png
from .template import PART_COLOURS, PART_OPACITY, FaceTemplate, vertex_normals

_FLOAT, _UINT32 = 5126, 5125
_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963


def face_glb(face, morph_faces=(), morph_names=(), units: str = "cm") -> bytes:
    """face: a core.face_model.Face; morph_faces: faces of the same mesh whose vertices become morph targets."""
    scale = metres_per_unit(units)
    template = FaceTemplate(len(face.vertices), face.polygon_sizes, face.polygon_vertices, face.polygon_uv_indices,
                            face.uvs)
    tri_vertices, tri_uvs = template.triangles()
    # glTF stores one UV per vertex: split vertices where a UV seam gives one vertex several UVs
    unique, corner_to_vertex = np.unique(np.stack([tri_vertices.ravel(), tri_uvs.ravel()], axis=1), axis=0,
                                         return_inverse=True)
    source_vertex = unique[:, 0]
    positions = (face.vertices[source_vertex] * scale).astype(np.float32)
    # normals of the unsplit mesh, so the split seam vertices shade as one surface
    normals = vertex_normals(face.vertices, face.polygon_sizes, face.polygon_vertices)[source_vertex]
    uvs = face.uvs[unique[:, 1]].astype(np.float32) * np.array([1, -1], np.float32) + np.array([0, 1], np.float32)

    blob, views, accessors = io.BytesIO(), [], []

    def add(array: np.ndarray, kind: str, target: int | None, minmax: bool = False) -> int:
        while blob.tell() % 4:
            blob.write(b"\0")
        view = {"buffer": 0, "byteOffset": blob.tell(), "byteLength": array.nbytes}
        if target:
            view["target"] = target
        blob.write(np.ascontiguousarray(array).tobytes())
        views.append(view)
        acc = {"bufferView": len(views) - 1, "componentType": _UINT32 if array.dtype == np.uint32 else _FLOAT,
               "count": len(array), "type": kind}
        if minmax:
            acc["min"], acc["max"] = array.min(0).tolist(), array.max(0).tolist()
        accessors.append(acc)
        return len(accessors) - 1

    attributes = {"POSITION": add(positions, "VEC3", _ARRAY_BUFFER, True),
                  "NORMAL": add(normals, "VEC3", _ARRAY_BUFFER),
                  "TEXCOORD_0": add(uvs, "VEC2", _ARRAY_BUFFER)}
    targets = [
        {"POSITION": add((m.vertices[source_vertex] * scale).astype(np.float32) - positions, "VEC3",
                         _ARRAY_BUFFER, True),
         "NORMAL": add(vertex_normals(m.vertices, m.polygon_sizes, m.polygon_vertices)[source_vertex] - normals,
                       "VEC3", _ARRAY_BUFFER)} for m in morph_faces]
    # one primitive per part of the head (skin, sclera, iris, teeth, ...), each with its material; all share the
    # vertex attributes and morph targets
    parts = face.polygon_parts if face.polygon_parts is not None else np.zeros(len(face.polygon_sizes), np.int32)
    triangle_part = parts[template.triangle_polygons()]
    triangles = corner_to_vertex.reshape(-1, 3).astype(np.uint32)
    primitives, materials = [], []
    for index, part in enumerate(face.part_names):
        chosen = triangles[triangle_part == index]
        if not len(chosen):
            continue
        primitive = {"attributes": attributes, "indices": add(chosen.reshape(-1), "SCALAR", _ELEMENT_ARRAY_BUFFER),
                     "material": len(materials)}
        if targets:
            primitive["targets"] = targets
        primitives.append(primitive)
        colour = PART_COLOURS.get(part, (0.5, 0.5, 0.5))
        material = {"name": part, "pbrMetallicRoughness": {"baseColorFactor": [*colour, PART_OPACITY.get(part, 1.0)],
                                                           "metallicFactor": 0.0, "roughnessFactor": 0.5}}
        if PART_OPACITY.get(part, 1.0) < 1.0:
            material["alphaMode"] = "BLEND"
        if part == "skin" and face.texture is not None:
            material["pbrMetallicRoughness"].update(baseColorTexture={"index": 0}, baseColorFactor=[1, 1, 1, 1])
        materials.append(material)
    mesh: dict = {"name": face.metadata.get("model", "face"), "primitives": primitives}
    if morph_faces:
        mesh["weights"] = [0.0] * len(morph_faces)
        mesh["extras"] = {"targetNames": list(morph_names)}  # Blender's importer names shape keys from these
    gltf: dict = {"asset": {"version": "2.0", "generator": "facecam"}, "scene": 0,
                  "scenes": [{"nodes": [0]}], "nodes": [{"mesh": 0, "name": mesh["name"]}], "meshes": [mesh],
                  "materials": materials}
    if face.texture is not None:
        png = encode_png(face.texture)
        while blob.tell() % 4:
            blob.write(b"\0")
        views.append({"buffer": 0, "byteOffset": blob.tell(), "byteLength": len(png)})
        blob.write(png)
        gltf.update(images=[{"bufferView": len(views) - 1, "mimeType": "image/png"}], samplers=[{}],
                    textures=[{"source": 0, "sampler": 0}])
    while blob.tell() % 4:
        blob.write(b"\0")
    gltf.update(buffers=[{"byteLength": blob.tell()}], bufferViews=views, accessors=accessors)
    text = json.dumps(gltf, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 4)
    body = blob.getvalue()
    return (struct.pack("<III", 0x46546C67, 2, 12 + 8 + len(text) + 8 + len(body))
            + struct.pack("<II", len(text), 0x4E4F534A) + text + struct.pack("<II", len(body), 0x004E4942) + body)


def write_glb(path: str | os.PathLike, face, morph_faces=(), morph_names=(), units: str = "cm") -> None:
    write_bytes_atomic(path, face_glb(face, morph_faces, morph_names, units))
