"""Preview renders of the real ICT face and the contact sheets that show them."""
import os

import numpy as np
import pytest
from PIL import Image

from train.data.ict import load_ict_model
from train.data.preview import (BACKGROUND, SHEET_PADDING, FaceCamera, contact_sheet, default_polygons,
                                render_face)

SIZE = 96  # small renders keep the file fast; the shading is the same at any size


@pytest.fixture(scope="module")
def model():
    return load_ict_model()


@pytest.fixture(scope="module")
def camera(model):
    return FaceCamera.framing(model.neutral, model.template)


@pytest.fixture(scope="module")
def neutral_image(model, camera):
    return render_face(model.neutral, model.template, camera, size=SIZE)


def pixel_of(model, camera, vertex, size=SIZE):
    (x, y), = camera.project(model.neutral[[vertex]], size)[0]
    return int(y), int(x)


def test_neutral_face_is_shaded_and_fills_the_centre(neutral_image):
    img = neutral_image
    assert img.shape == (SIZE, SIZE, 3) and img.dtype == np.uint8
    background = (img == np.array(BACKGROUND, np.uint8)).all(axis=2)
    assert background[0, 0] and background[-1, 0]
    centre = background[SIZE // 3: 2 * SIZE // 3, SIZE // 3: 2 * SIZE // 3]
    assert not centre.any(), "the face should cover the middle of the image"
    face = img[~background].astype(float).mean(axis=1)
    assert face.std() > 10, "shading should vary across the face"


def test_framing_keeps_the_face_region_inside_the_image(model, camera):
    points, depth = camera.project(model.neutral[model.template.region_vertices("face")], SIZE)
    assert points.min() >= 0 and points.max() <= SIZE
    nose = model.landmarks[30]
    assert depth[nose] < np.median(depth), "the nose tip is nearer to the camera than most of the face"


def test_positive_yaw_turns_the_face_towards_the_image_right(model):
    cam = FaceCamera.framing(model.neutral, model.template, yaw_degrees=20)
    (x, _), = cam.project(model.neutral[[model.landmarks[30]]], SIZE)[0]
    assert x > SIZE / 2 + 2
    img = render_face(model.neutral, model.template, cam, size=SIZE)
    assert (img != np.array(BACKGROUND, np.uint8)).any(axis=2).mean() > 0.3


def test_jaw_open_changes_the_mouth_more_than_elsewhere(model, camera, neutral_image):
    jaw = model.neutral + model.expression_basis[model.expression_index("jawOpen")]
    diff = np.abs(render_face(jaw, model.template, camera, size=SIZE).astype(float) - neutral_image).sum(axis=2)
    mouth_points, _ = camera.project(jaw[model.landmarks[48:68]], SIZE)
    (c0, r0), (c1, r1) = mouth_points.min(axis=0).astype(int) - 2, mouth_points.max(axis=0).astype(int) + 3
    mouth = np.zeros(diff.shape, bool)
    mouth[r0:r1, c0:c1] = True
    assert diff[mouth].mean() > 4 * diff[~mouth].mean()
    # Inside the open mouth it is dark: the darkest pixels of the mouth box are far below the skin.
    jaw_img = render_face(jaw, model.template, camera, size=SIZE)
    assert np.percentile(jaw_img[mouth].mean(axis=1), 10) < 0.5 * neutral_image[mouth].mean()


def test_eyes_have_a_dark_iris(model, camera):
    size = 192
    img = render_face(model.neutral, model.template, camera, size=size)
    for name in ("eyeball_left", "eyeball_right"):
        ids = model.template.region_vertices(name)
        apex = ids[np.argmax(model.neutral[ids, 2])]
        r, c = pixel_of(model, camera, apex, size)
        assert img[r, c].mean() < 60, f"the pupil of {name} should be dark"


def test_red_texture_colours_the_face(model, camera, neutral_image):
    red = np.zeros((8, 8, 3), np.uint8)
    red[..., 0] = 255
    img = render_face(model.neutral, model.template, camera, size=SIZE, texture=red)
    changed = (img != neutral_image).any(axis=2)
    assert changed[SIZE // 2, SIZE // 2]
    r, g, b = (img[changed].astype(float).T)
    assert np.mean(r > 2 * np.maximum(g, b)) > 0.9
    eye = pixel_of(model, camera, model.template.region_vertices("eyeball_left")[0])
    assert not changed[eye], "the texture applies only to the face region"


def test_texture_orientation_follows_uv_convention(model, camera):
    # Row 0 is v = 1 (top), column 0 is u = 0: red marks the top half, green the right half of the UV tile.
    texture = np.zeros((64, 64, 3), np.uint8)
    texture[:32, :, 0] = 255
    texture[:, 32:, 1] = 255
    img = render_face(model.neutral, model.template, camera, size=192, texture=texture)
    brow_right_side, brow_left_side = (img[pixel_of(model, camera, model.landmarks[i], 192)] for i in (19, 24))
    jaw_right_side = img[pixel_of(model, camera, model.landmarks[5], 192)]
    assert brow_right_side[0] > 100 and brow_right_side[1] < 30  # top (v > 0.5), u < 0.5: red only
    assert brow_left_side[0] > 100 and brow_left_side[1] > 100  # top, u > 0.5: red and green
    assert jaw_right_side[0] < 30 and jaw_right_side[1] < 30  # bottom, u < 0.5: dark


def test_polygons_choose_what_is_drawn(model, camera, neutral_image):
    eyes_only = np.concatenate([model.template.region_polygons(n) for n in ("eyeball_left", "eyeball_right")])
    img = render_face(model.neutral, model.template, camera, size=SIZE, polygons=eyes_only)
    drawn = (img != np.array(BACKGROUND, np.uint8)).any(axis=2)
    assert 0 < drawn.mean() < 0.05
    assert len(default_polygons(model.template)) < model.template.num_polygons  # helper layers left out


def test_bad_inputs_name_what_was_expected(model, camera):
    with pytest.raises(ValueError, match="vertices must have shape"):
        render_face(model.neutral[:100], model.template, camera)
    with pytest.raises(ValueError, match="texture must be an"):
        render_face(model.neutral, model.template, camera, texture=np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match="unknown region"):
        FaceCamera.framing(model.neutral, model.template, regions=("nose",))


def tile(value, h=20, w=30):
    return np.full((h, w, 3), value, np.uint8)


def test_contact_sheet_grid_size_and_content(tmp_path):
    rows = [[tile(10), tile(20), tile(30)], [tile(40), tile(50), tile(60)]]
    path = contact_sheet(rows, tmp_path / "sheet.png")
    img = np.asarray(Image.open(path))
    pad = SHEET_PADDING
    assert img.shape == (2 * 20 + 3 * pad, 3 * 30 + 4 * pad, 3)
    assert (img[pad + 20 + pad + 5, pad + 2 * (30 + pad) + 5] == 60).all()  # row 1, column 2

    labelled = contact_sheet(rows, tmp_path / "labelled.png", row_labels=["a", "b"],
                             col_labels=["x", "y", "z"], title="title")
    h, w = np.asarray(Image.open(labelled)).shape[:2]
    assert h > img.shape[0] and w > img.shape[1]


def test_contact_sheet_checks_its_inputs(tmp_path):
    with pytest.raises(ValueError, match="row 0, column 1 has shape"):
        contact_sheet([[tile(0), tile(0, h=21)]], tmp_path / "s.png")
    with pytest.raises(ValueError, match="2 row labels for 1 rows"):
        contact_sheet([[tile(0)]], tmp_path / "s.png", row_labels=["a", "b"])
    with pytest.raises(ValueError, match="uint8"):
        contact_sheet([[tile(0).astype(np.float32)]], tmp_path / "s.png")
    assert not list(tmp_path.iterdir())


def test_failed_rendering_leaves_the_previous_sheet_intact(tmp_path):
    path = contact_sheet([[tile(7)]], tmp_path / "sheet.png")
    before = path.read_bytes()

    def rows_that_fail():
        yield [tile(1), tile(2)]
        raise RuntimeError("render failed")

    with pytest.raises(RuntimeError, match="render failed"):
        contact_sheet(rows_that_fail(), path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["sheet.png"]


def test_failed_write_leaves_no_partial_file(tmp_path, monkeypatch):
    path = tmp_path / "sheet.png"

    def half_write(self, fp, *args, **kwargs):
        with open(fp, "wb") as f:
            f.write(b"\x89PNG half")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", half_write)
    with pytest.raises(OSError, match="disk full"):
        contact_sheet([[tile(1)]], path)
    assert not list(tmp_path.iterdir())
