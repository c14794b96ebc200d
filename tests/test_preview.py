"""Preview renders of the real ICT face, the contact sheets that show them, and the atomic PNG writer."""
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

import train.data.sheets as sheets
from core.atomic import write_png_atomic
from train.data.ict import load_ict_model
from train.data.preview import (BACKGROUND, SHEET_BACKGROUND, SHEET_PADDING, FaceCamera, contact_sheet,
                                default_polygons, render_face)
from train.data.sheets import apex_frames, au_caption, bp4d_sheet

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
    with pytest.raises(ValueError, match=r"texture must be a non-empty \(H, W, 3\) uint8 image"):
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
    with pytest.raises(ValueError, match="row 0 has 2 images and 1 captions"):
        contact_sheet([[tile(0), tile(0)]], tmp_path / "s.png", captions=[["a"]])
    with pytest.raises(ValueError, match="1 caption rows for 2 rows"):
        contact_sheet([[tile(0)], [tile(0)]], tmp_path / "s.png", captions=[["a"]])
    assert not list(tmp_path.iterdir())


def test_captions_sit_under_their_own_image_and_wrap(tmp_path):
    rows = [[tile(10), tile(20)], [tile(30), tile(40)]]
    plain = np.asarray(Image.open(contact_sheet(rows, tmp_path / "plain.png")))
    long_words = "AU1:3 AU2:4 AU4:1 AU12:5 AU15:2 AU17:3"  # far wider than a 30 px image: must wrap
    path = contact_sheet(rows, tmp_path / "cap.png", captions=[["", ""], [long_words, "x"]])
    img = np.asarray(Image.open(path))
    assert img.shape[1] == plain.shape[1]
    strip = img.shape[0] - plain.shape[0]
    assert strip >= 3 * 12  # several lines under the second row only
    pad = SHEET_PADDING
    second_row = pad + 20 + pad
    np.testing.assert_array_equal(img[:second_row + 20], plain[:second_row + 20])  # no strip under the first row
    y = second_row + 20  # just under the second row's images
    first, second = (img[y:y + strip, pad + j * (30 + pad): pad + j * (30 + pad) + 30] for j in (0, 1))
    inked = (first != SHEET_BACKGROUND).any(axis=2).any(axis=1)
    assert inked[: strip // 3].any() and inked[-strip // 3:].any()  # the long caption fills several lines
    assert (second != SHEET_BACKGROUND).any() and not (second[strip // 2:] != SHEET_BACKGROUND).any()  # "x": one


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

    def half_write(self, data):  # the disk fills up part-way through the file
        with open(self, "wb") as f:
            f.write(data[:10])
        raise OSError("disk full")

    monkeypatch.setattr(Path, "write_bytes", half_write)
    with pytest.raises(OSError, match="disk full"):
        contact_sheet([[tile(1)]], path)
    assert not list(tmp_path.iterdir())


# ------------------------------------------------------------------ the BP4D sheet


class ShuffledFrames:
    """2 identities x 2 tasks x 3 frames in a scrambled order, each frame with its own AUs; records mesh calls."""

    def __init__(self, model):
        order = np.random.default_rng(5).permutation(12)
        key = np.stack(np.unravel_index(np.arange(12), (2, 2, 3)), axis=1)[order]  # identity, task, frame
        self.ict, self.template, self.cfg = model, model.template, SimpleNamespace(config_name="fake")
        self.frame_identity = key[:, 0]
        self.frame_subjects = [f"S{i + 1:03d}" for i in key[:, 0]]
        self.frame_tasks = [("T2", "T5")[t] for t in key[:, 1]]
        self.frame_numbers = key[:, 2] + 10
        self.au_names = ("AU1", "AU6", "AU12")
        self.au_intensities = np.zeros((12, 3), np.float32)
        self.au_intensities[np.arange(12), np.arange(12) % 3] = np.arange(12) % 5 + 1
        self.meshes_read = []

    def mesh(self, frame):
        self.meshes_read.append(frame)
        return self.ict.neutral

    def texture(self, frame, mesh=None, window="tile"):
        return np.full((8, 8, 3), 200, np.uint8)


def test_apex_frames_found_by_identity_task_and_frame_number(model):
    source = ShuffledFrames(model)
    tasks, apex = apex_frames(source, (1, 0))
    assert tasks == list(dict.fromkeys(source.frame_tasks))
    for r, identity in enumerate((1, 0)):
        for t, task in enumerate(tasks):
            f = apex[r, t]
            assert (source.frame_identity[f], source.frame_tasks[f], source.frame_numbers[f]) == (identity, task, 11)
    source.frame_tasks[int(np.flatnonzero(source.frame_identity == 0)[0])] = "T9"
    with pytest.raises(ValueError, match="identity 1 has no frames of task 'T9'"):
        apex_frames(source, (0, 1))


def test_au_caption_lists_active_units():
    assert au_caption(("AU1", "AU6", "AU12"), np.array([0, 3, 4.0])) == "AU6:3 AU12:4"
    assert au_caption(("AU1",), np.zeros(1)) == "no AU"


def test_bp4d_sheet_captions_every_frame_with_its_own_units(model, tmp_path, monkeypatch):
    source = ShuffledFrames(model)
    seen = {}

    def record(rows, out_path, **kwargs):
        seen.update(kwargs)
        return contact_sheet(rows, out_path, **kwargs)

    monkeypatch.setattr(sheets, "contact_sheet", record)
    path = bp4d_sheet(source, tmp_path / "bp4d.png", identities=(0, 1), size=24, progress=False)
    assert Image.open(path).size[0] > 2 * 24
    _, apex = apex_frames(source, (0, 1))
    assert source.meshes_read == apex.ravel().tolist()
    assert seen["col_labels"] == list(dict.fromkeys(source.frame_tasks))
    assert seen["row_labels"] == ["S001", "UV crop", "S002", "UV crop"]
    expected = [[au_caption(source.au_names, source.au_intensities[f]) for f in row] for row in apex]
    assert seen["captions"][1::2] == expected
    assert len({c for row in expected for c in row}) > 1  # rows and columns really differ


# ------------------------------------------------------------------ write_png_atomic


@pytest.mark.parametrize("shape", [(5, 7), (5, 7, 3), (5, 7, 4)])
def test_write_png_atomic_round_trips(tmp_path, shape):
    image = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    path = write_png_atomic(tmp_path / "a.png", image)
    assert path == tmp_path / "a.png"
    np.testing.assert_array_equal(np.asarray(Image.open(path)), image)
    assert os.listdir(tmp_path) == ["a.png"]


def test_write_png_atomic_refuses_bad_images_and_keeps_the_old_file(tmp_path, monkeypatch):
    path = write_png_atomic(tmp_path / "a.png", tile(9))
    before = path.read_bytes()
    for bad in (np.zeros((4, 4, 3), np.float32), np.zeros((4, 4, 2), np.uint8), np.zeros((0, 4, 3), np.uint8)):
        with pytest.raises(ValueError, match=f"{path}: a PNG image must be"):
            write_png_atomic(path, bad)

    def half_write(self, data):  # the disk fills up part-way through the file
        with open(self, "wb") as f:
            f.write(data[:10])
        raise OSError("disk full")

    monkeypatch.setattr(Path, "write_bytes", half_write)
    with pytest.raises(OSError, match="disk full"):
        write_png_atomic(path, tile(1))
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["a.png"]
