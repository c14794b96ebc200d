"""Looking at the data: shaded orthographic face renders and labelled contact sheets of them."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from core.atomic import write_png_atomic
from core.template import FaceTemplate
from train.data.layout import check_texture
from train.data.raster import rasterize

# Regions a viewer should see; the transparent helper layers (lacrimal fluid, eye blend, eye occlusion) and the
# eyelashes (strips that render as dark smears without alpha) are left out, and so are the eye sockets, which sit
# behind the eyeballs and only show as dark rims.
DEFAULT_REGIONS = ("face", "head_and_neck", "mouth_socket", "gums_and_tongue", "teeth",
                   "eyeball_left", "eyeball_right")
TEXTURED_REGION = "face"  # the only region whose UVs lie in the [0, 1] tile (material M_Face)

SKIN_GREY = (0.80, 0.76, 0.72)
REGION_ALBEDO = {  # linear RGB in [0, 1]; regions not listed get SKIN_GREY
    "mouth_socket": (0.28, 0.10, 0.10),
    "gums_and_tongue": (0.72, 0.28, 0.28),
    "teeth": (0.95, 0.93, 0.86),
    "eyeball_left": (0.93, 0.93, 0.91),
    "eyeball_right": (0.93, 0.93, 0.91),
}
# The mouth has no light inside; without occlusion its parts would shine like the cheeks, so they are darkened.
REGION_OCCLUSION = {"mouth_socket": 0.45, "gums_and_tongue": 0.6, "teeth": 0.8}
# ICT's eyeballs have no geometric iris (it is painted in a texture), so the iris and pupil are drawn as caps
# around each eyeball's front axis: within these angles of the axis, seen from the eyeball's centre.
EYEBALL_REGIONS = ("eyeball_left", "eyeball_right")
IRIS_ANGLE_DEGREES, PUPIL_ANGLE_DEGREES = 32.0, 13.0
IRIS_ALBEDO, PUPIL_ALBEDO = (0.33, 0.24, 0.17), (0.04, 0.04, 0.04)
BACKGROUND = (212, 212, 212)
LIGHT_DIRECTION = np.array([-0.45, 0.55, 0.70])  # towards the key light, camera space: upper front-left
AMBIENT, DIFFUSE = 0.30, 0.75
SHEET_PADDING = 4
SHEET_FONT_SIZE = 12
SHEET_BACKGROUND = (255, 255, 255)


def _yaw_matrix(yaw_degrees: float) -> np.ndarray:
    """Rotation about the vertical axis; positive yaw turns the face towards the image's right."""
    t = np.deg2rad(yaw_degrees)
    return np.array([[np.cos(t), 0.0, np.sin(t)], [0.0, 1.0, 0.0], [-np.sin(t), 0.0, np.cos(t)]])


@dataclass(frozen=True)
class FaceCamera:
    """Orthographic camera looking down -z at a face (y up, face towards +z), framed once for a whole sheet."""

    center: np.ndarray  # (3,) world point at the image centre
    half_extent: float  # world distance from the image centre to its edge
    yaw_degrees: float = 0.0

    @classmethod
    def framing(cls, reference_vertices: np.ndarray, template: FaceTemplate, regions=("face",),
                yaw_degrees: float = 0.0, margin: float = 0.06) -> "FaceCamera":
        """Frame the vertices of `regions` of a reference mesh (e.g. the neutral face) with a relative margin."""
        reference_vertices = _check_vertices(reference_vertices, template, "reference_vertices")
        polygons = _region_polygons(template, regions)
        used = np.unique(template.polygon_vertices[_corner_indices(template, polygons)])
        points = reference_vertices[used].astype(np.float64)
        center = (points.min(axis=0) + points.max(axis=0)) / 2
        view = (points - center) @ _yaw_matrix(yaw_degrees).T
        half = float(np.abs(view[:, :2]).max()) * (1.0 + margin)
        if not half > 0:
            raise ValueError(f"FaceCamera.framing: regions {regions} of the reference mesh have no extent")
        return cls(center=center, half_extent=half, yaw_degrees=float(yaw_degrees))

    def rotate(self, directions: np.ndarray) -> np.ndarray:
        """World directions (N, 3) -> camera space (x right, y up, z towards the camera)."""
        return np.asarray(directions, np.float64) @ _yaw_matrix(self.yaw_degrees).T

    def to_view(self, vertices: np.ndarray) -> np.ndarray:
        """World points (N, 3) -> camera space, centred on the framing."""
        return self.rotate(np.asarray(vertices, np.float64) - self.center)

    def project(self, vertices: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
        """Pixel coordinates (V, 2) for a size x size image and depth (V,), smaller = nearer."""
        view = self.to_view(vertices)
        scale = size / (2.0 * self.half_extent)
        points = np.stack([size / 2 + view[:, 0] * scale, size / 2 - view[:, 1] * scale], axis=1)
        return points, -view[:, 2]


def _check_vertices(vertices, template: FaceTemplate, name: str) -> np.ndarray:
    vertices = np.asarray(vertices)
    if vertices.shape != (template.num_vertices, 3):
        raise ValueError(f"{name} must have shape ({template.num_vertices}, 3), got {vertices.shape}")
    if not np.isfinite(vertices).all():
        raise ValueError(f"{name} contains NaN or infinite coordinates")
    return vertices


def _corner_indices(template: FaceTemplate, polygons: np.ndarray) -> np.ndarray:
    starts, sizes = template.polygon_starts[polygons], template.polygon_sizes[polygons]
    return np.repeat(starts, sizes) + (np.arange(int(sizes.sum())) - np.repeat(np.cumsum(sizes) - sizes, sizes))


def _region_polygons(template: FaceTemplate, regions) -> np.ndarray:
    missing = [r for r in regions if r not in template.region_names]
    if missing:
        raise ValueError(f"unknown region(s) {missing}; the template has {list(template.region_names)}")
    return np.concatenate([template.region_polygons(r) for r in regions] or [np.zeros(0, np.int64)])


def default_polygons(template: FaceTemplate) -> np.ndarray:
    """Polygons of DEFAULT_REGIONS that the template has; all polygons when it has none of them."""
    present = [r for r in DEFAULT_REGIONS if r in template.region_names]
    return _region_polygons(template, present) if present else np.arange(template.num_polygons)


def _triangles_by_region(template: FaceTemplate, polygons: np.ndarray):
    """Triangulate `polygons`: vertex and UV triangles plus each triangle's region index (-1: in no region)."""
    polygons = np.asarray(polygons, np.int64)
    if polygons.ndim != 1 or not len(polygons):
        raise ValueError(f"polygons must be a non-empty 1-D index array, got shape {polygons.shape}")
    if polygons.min() < 0 or polygons.max() >= template.num_polygons:
        raise ValueError(f"polygon index outside [0, {template.num_polygons})")
    ranges = np.asarray(template.region_polygon_ranges).reshape(-1, 2)
    inside = (polygons[:, None] >= ranges[None, :, 0]) & (polygons[:, None] < ranges[None, :, 1])
    region = np.where(inside.any(axis=1), inside.argmax(axis=1), -1)
    tri_v, tri_uv, tri_region = [], [], []
    for r in np.unique(region):  # a handful of regions; triangulation itself is vectorised
        v, uv = template.triangles(polygons[region == r])
        tri_v.append(v)
        tri_uv.append(uv)
        tri_region.append(np.full(len(v), r))
    return np.concatenate(tri_v), np.concatenate(tri_uv), np.concatenate(tri_region)


def vertex_normals(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Smooth unit normals: area-weighted sums of the normals of the triangles around each vertex."""
    corners = vertices[triangles]
    face_normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    normals = np.stack([np.bincount(triangles.ravel(), np.repeat(face_normals[:, k], 3), len(vertices))
                        for k in range(3)], axis=1)
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    return normals / np.where(length > 0, length, 1.0)


def eye_axis_cosines(vertices: np.ndarray, template: FaceTemplate) -> np.ndarray:
    """Per vertex: cosine of its angle from its eyeball's front axis (centre -> cornea apex); -1 off the eyeballs.

    The apex is the eyeball vertex farthest forward (+z); the centre is the middle of the eyeball's bounding box.
    """
    cosines = np.full(len(vertices), -1.0)
    for name in EYEBALL_REGIONS:
        if name not in template.region_names:
            continue
        ids = template.region_vertices(name)
        points = vertices[ids].astype(np.float64)
        center = (points.min(axis=0) + points.max(axis=0)) / 2
        axis = points[np.argmax(points[:, 2])] - center
        offsets = points - center
        cosines[ids] = offsets @ axis / np.maximum(np.linalg.norm(offsets, axis=1) * np.linalg.norm(axis), 1e-12)
    return cosines


def sample_texture(texture: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Bilinear lookup of (N, 2) UVs in an image of the [0, 1] tile (row 0 is v = 1); RGB in [0, 1], (N, 3)."""
    h, w = texture.shape[:2]
    x = np.clip(uv[:, 0] * w - 0.5, 0, w - 1)
    y = np.clip((1.0 - uv[:, 1]) * h - 0.5, 0, h - 1)
    x0, y0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    tex = texture.astype(np.float32) / 255.0
    top = tex[y0, x0] * (1 - fx) + tex[y0, x1] * fx
    bottom = tex[y1, x0] * (1 - fx) + tex[y1, x1] * fx
    return top * (1 - fy) + bottom * fy


def _albedo(raster, tri_uv, tri_v, tri_region, vertices, template, texture):
    """Per covered pixel albedo (N, 3): region colours, the texture on the face region, irises on the eyeballs."""
    mask, names = raster.mask, tuple(template.region_names)
    region = tri_region[raster.triangle[mask]]
    table = np.array([REGION_ALBEDO.get(n, SKIN_GREY) for n in names] + [SKIN_GREY], np.float32)
    albedo = table[region]  # region -1 (in no region) picks the last row
    if texture is not None and TEXTURED_REGION in names:
        textured = region == names.index(TEXTURED_REGION)
        albedo[textured] = sample_texture(texture, raster.interpolate(template.uvs, tri_uv)[mask][textured])
    eyes = np.isin(region, [names.index(n) for n in EYEBALL_REGIONS if n in names])
    if eyes.any():
        eye_cos = raster.interpolate(eye_axis_cosines(vertices, template), tri_v)[mask][eyes, None]
        eye = albedo[eyes]
        eye = np.where(eye_cos > np.cos(np.deg2rad(IRIS_ANGLE_DEGREES)), IRIS_ALBEDO, eye)
        albedo[eyes] = np.where(eye_cos > np.cos(np.deg2rad(PUPIL_ANGLE_DEGREES)), PUPIL_ALBEDO, eye)
    return albedo


def _shading(raster, tri_v, tri_region, vertices, template, camera):
    """Per covered pixel brightness (N,): two-sided Lambert with ambient, darkened inside the mouth."""
    mask = raster.mask
    normals = raster.interpolate(camera.rotate(vertex_normals(vertices.astype(np.float64), tri_v)), tri_v)[mask]
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    normals *= np.where(normals[:, 2:] < 0, -1.0, 1.0)  # two-sided: we may look at the inside of the mouth
    light = LIGHT_DIRECTION / np.linalg.norm(LIGHT_DIRECTION)
    shade = AMBIENT + DIFFUSE * np.clip(normals @ light, 0.0, None)
    occlusion = np.array([REGION_OCCLUSION.get(n, 1.0) for n in template.region_names] + [1.0], np.float32)
    return shade * occlusion[tri_region[raster.triangle[mask]]]


def render_face(vertices: np.ndarray, template: FaceTemplate, camera: FaceCamera, size: int = 192,
                texture: np.ndarray | None = None, polygons: np.ndarray | None = None,
                supersample: int = 2) -> np.ndarray:
    """Lambert-shaded, z-buffered render of a face mesh: (size, size, 3) uint8 on a light grey background.

    With `texture` (an image of the [0, 1] UV tile, row 0 at v = 1) the face region takes its albedo from it; the
    other regions keep flat colours. `polygons` (indices) defaults to default_polygons(template). `supersample`
    renders at that multiple of `size` and box-filters down, smoothing edges.
    """
    vertices = _check_vertices(vertices, template, "vertices")
    if texture is not None:
        texture = check_texture(texture)
    if int(size) != size or size <= 0 or int(supersample) != supersample or supersample < 1:
        raise ValueError(f"size and supersample must be positive integers, got {size} and {supersample}")
    size, supersample = int(size), int(supersample)
    tri_v, tri_uv, tri_region = _triangles_by_region(
        template, default_polygons(template) if polygons is None else polygons)

    full = size * supersample
    points, depth = camera.project(vertices, full)
    raster = rasterize(points, tri_v, full, full, depth=depth)
    albedo = _albedo(raster, tri_uv, tri_v, tri_region, vertices, template, texture)
    shade = _shading(raster, tri_v, tri_region, vertices, template, camera)

    image = np.empty((full, full, 3), np.float32)
    image[:] = np.asarray(BACKGROUND, np.float32) / 255.0
    image[raster.mask] = albedo * shade[:, None]
    image = image.reshape(size, supersample, size, supersample, 3).mean(axis=(1, 3))
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _check_sheet(rows, row_labels, col_labels, captions):
    rows = [list(row) for row in rows]  # runs any lazy rendering now, before a file is touched
    if not rows or not any(rows):
        raise ValueError("contact_sheet: no images given")
    shape = None
    for i, row in enumerate(rows):
        for j, img in enumerate(row):
            if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
                raise ValueError(f"contact_sheet: image at row {i}, column {j} must be an (h, w, 3) uint8 array, "
                                 f"got {getattr(img, 'dtype', type(img).__name__)} {getattr(img, 'shape', '')}")
            shape = shape or img.shape
            if img.shape != shape:
                raise ValueError(f"contact_sheet: image at row {i}, column {j} has shape {img.shape}, "
                                 f"the first image has {shape}")
    if row_labels and len(row_labels) != len(rows):
        raise ValueError(f"contact_sheet: {len(row_labels)} row labels for {len(rows)} rows")
    num_cols = max(len(row) for row in rows)
    if col_labels and len(col_labels) != num_cols:
        raise ValueError(f"contact_sheet: {len(col_labels)} column labels for {num_cols} columns")
    captions = [list(c) for c in captions] if captions else [[""] * len(row) for row in rows]
    if len(captions) != len(rows):
        raise ValueError(f"contact_sheet: {len(captions)} caption rows for {len(rows)} rows")
    for i, (row, caps) in enumerate(zip(rows, captions)):
        if len(caps) != len(row):
            raise ValueError(f"contact_sheet: row {i} has {len(row)} images and {len(caps)} captions")
    return rows, shape, num_cols, captions


def _wrap(text: str, font, width: float) -> list[str]:
    """Greedy word wrap to `width` pixels (a single word wider than that keeps its own line)."""
    lines, line = [], ""
    for word in str(text).split():
        trial = f"{line} {word}" if line else word
        if line and font.getlength(trial) > width:
            lines.append(line)
            line = word
        else:
            line = trial
    return lines + [line] if line else lines


def contact_sheet(rows, out_path: str | os.PathLike, row_labels=(), col_labels=(), title: str = "",
                  captions=()) -> Path:
    """Write a PNG grid of equal-size images (rows may be ragged) with optional labels; returns its path.

    `captions`, when given, holds one string per image, row by row; each is word-wrapped to the image width and
    drawn in a strip under its image (a row whose captions are all empty gets no strip).
    Every image is gathered and checked before the file is written, and the write is atomic, so a failure
    leaves any earlier sheet at `out_path` untouched.
    """
    rows, (h, w, _), num_cols, captions = _check_sheet(rows, row_labels, col_labels, captions)
    font = ImageFont.load_default(size=SHEET_FONT_SIZE)
    pad = SHEET_PADDING
    ascent, descent = font.getmetrics()
    line_h = ascent + descent

    def text_size(text):
        left, top, right, bottom = font.getbbox(str(text))
        return right - left, bottom - top

    wrapped = [[_wrap(c, font, w) for c in caps] for caps in captions]
    strip_h = [max((len(lines) for lines in row), default=0) * line_h for row in wrapped]
    label_w = max((text_size(t)[0] for t in row_labels), default=-pad) + pad
    col_h = max((text_size(t)[1] for t in col_labels), default=-pad) + pad
    title_h = text_size(title)[1] + pad if title else 0
    left, top = pad + label_w, pad + title_h + col_h
    row_y = top + np.concatenate([[0], np.cumsum([h + s + pad for s in strip_h])]).astype(int)
    width = left + num_cols * (w + pad)
    height = int(row_y[-1])

    sheet = Image.new("RGB", (width, height), SHEET_BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((pad, pad), str(title), fill=(0, 0, 0), font=font, anchor="lt")
    for j, label in enumerate(col_labels):
        draw.text((left + j * (w + pad) + w / 2, pad + title_h), str(label), fill=(0, 0, 0), font=font, anchor="mt")
    for i, row in enumerate(rows):
        y = int(row_y[i])
        if row_labels:
            draw.text((pad, y + h / 2), str(row_labels[i]), fill=(0, 0, 0), font=font, anchor="lm")
        for j, img in enumerate(row):
            x = left + j * (w + pad)
            sheet.paste(Image.fromarray(img), (x, y))
            for k, line in enumerate(wrapped[i][j]):
                draw.text((x + w / 2, y + h + k * line_h), line, fill=(0, 0, 0), font=font, anchor="ma")
    return write_png_atomic(out_path, np.asarray(sheet))
