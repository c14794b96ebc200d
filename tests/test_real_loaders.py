"""FaceScape and BP4D-style layouts: export then load round trips, and every layout error names its file/row."""
from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from PIL import Image

from core.obj_io import write_obj
from core.template import FaceTemplate
from train.data.bp4d import BP4DFolder, export_bp4d_layout
from train.data.expressions import FACESCAPE_EXPRESSIONS
from train.data.facescape import FaceScapeFolder, export_facescape_layout
from train.data.ict import load_ict_model
from train.data.layout import LayoutError

# ------------------------------------------------------------------ in-test sources


class ICTExpressionSource:
    """2 identities x 3 FaceScape expressions built from the ICT model, with small random textures."""

    def __init__(self):
        model = load_ict_model()
        rng = np.random.default_rng(0)
        self.template = model.template
        self.identity_ids = ("alice", "bob")  # not numbers: the exporter must number the folders
        self.expression_names = FACESCAPE_EXPRESSIONS[:3]
        identities = [model.identity_shape(rng.normal(size=8)) for _ in self.identity_ids]
        expr = model.expression_basis
        offsets = [np.zeros_like(model.neutral),
                   0.9 * (expr[model.expression_index("mouthSmile_L")] + expr[model.expression_index("mouthSmile_R")]),
                   0.8 * expr[model.expression_index("jawOpen")]]
        self.meshes = np.stack([[ident + off for off in offsets] for ident in identities]).astype(np.float32)
        self.textures = rng.integers(0, 256, (2, 3, 6, 10, 3), dtype=np.uint8)

    def mesh(self, identity, expression):
        return self.meshes[identity, expression]

    def texture(self, identity, expression):
        return self.textures[identity, expression]


def grid_template(n=4) -> FaceTemplate:
    """n x n vertices: quads, except the last cell split into two triangles (mixed polygon sizes)."""
    idx = np.arange(n * n).reshape(n, n)
    cells = np.stack([idx[:-1, :-1], idx[:-1, 1:], idx[1:, 1:], idx[1:, :-1]], -1).reshape(-1, 4)
    quads, last = cells[:-1], cells[-1]
    sizes = np.r_[np.full(len(quads), 4), 3, 3].astype(np.int32)
    corners = np.r_[quads.ravel(), last[[0, 1, 2]], last[[0, 2, 3]]].astype(np.int32)
    yy, xx = np.mgrid[0:n, 0:n] / (n - 1)
    uvs = np.stack([xx.ravel(), yy.ravel()], 1).astype(np.float32)
    return FaceTemplate(num_vertices=n * n, polygon_sizes=sizes, polygon_vertices=corners,
                        polygon_uv_indices=corners.copy(), uvs=uvs)


class GridExpressionSource:
    def __init__(self, n_id=2, n_exp=3, textured=True, n=4):
        rng = np.random.default_rng(1)
        self.template = grid_template(n)
        self.identity_ids = tuple(str(i + 1) for i in range(n_id))
        self.expression_names = FACESCAPE_EXPRESSIONS[:n_exp]
        self.meshes = rng.normal(size=(n_id, n_exp, n * n, 3)).astype(np.float32)
        self.textures = rng.integers(0, 256, (n_id, n_exp, 8, 8, 3), dtype=np.uint8) if textured else None

    def mesh(self, identity, expression):
        return self.meshes[identity, expression]

    def texture(self, identity, expression):
        return None if self.textures is None else self.textures[identity, expression]


class FrameSource:
    """BP4D-like frames over any template; frame 1 has no texture."""

    def __init__(self, template, meshes, intensities=None):
        rng = np.random.default_rng(2)
        self.template = template
        self.au_names = ("AU1", "AU6", "AU12")
        self.frame_subjects = ("F001", "F001", "M002")[: len(meshes)]
        self.frame_tasks = ("T1", "T1", "T8")[: len(meshes)]
        self.frame_numbers = np.array([0, 17, 12345][: len(meshes)])
        self.au_intensities = (np.array([[0, 2, 5], [1, 0, 3], [4, 4, 0]], np.float32)[: len(meshes)]
                               if intensities is None else intensities)
        self.meshes = meshes
        self.textures = rng.integers(0, 256, (len(meshes), 5, 7, 3), dtype=np.uint8)

    def mesh(self, frame):
        return self.meshes[frame]

    def texture(self, frame):
        return None if frame == 1 else self.textures[frame]


class BreaksOnThirdMesh:
    """Wraps a source; its third mesh() call raises, as a source that fails halfway through an export would."""

    def __init__(self, source):
        self._source, self.calls = source, 0

    def __getattr__(self, name):
        return getattr(self._source, name)

    def mesh(self, *index):
        self.calls += 1
        if self.calls == 3:
            raise RuntimeError("source failed on its third mesh")
        return self._source.mesh(*index)


def grid_frames(n_frames=3) -> FrameSource:
    template = grid_template()
    meshes = np.random.default_rng(3).normal(size=(n_frames, template.num_vertices, 3)).astype(np.float32)
    return FrameSource(template, meshes)


# Vertices go through mm with 6 decimals and float32: far below this in cm.
VERTEX_ATOL_CM = 5e-6


def assert_same_topology(loaded: FaceTemplate, original: FaceTemplate):
    assert loaded.num_vertices == original.num_vertices
    np.testing.assert_array_equal(loaded.polygon_sizes, original.polygon_sizes)
    np.testing.assert_array_equal(loaded.polygon_vertices, original.polygon_vertices)
    np.testing.assert_array_equal(loaded.polygon_uv_indices, original.polygon_uv_indices)
    np.testing.assert_allclose(loaded.uvs, original.uvs, atol=1e-6)


def error_text(excinfo) -> str:
    return str(excinfo.value)


def snapshot(root) -> dict:
    """Every file under root (hidden ones included) by relative path, with its bytes."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------ FaceScape


def test_facescape_round_trip_ict(tmp_path):
    source = ICTExpressionSource()
    root = export_facescape_layout(source, tmp_path / "fs", progress=False)
    obj = root / "2" / "models_reg" / "3_mouth_stretch.obj"
    text = obj.read_text()
    assert "mtllib 3_mouth_stretch.obj.mtl" in text
    assert "map_Kd 3_mouth_stretch.png" in obj.with_name("3_mouth_stretch.obj.mtl").read_text()
    first_v = np.array(next(line for line in text.splitlines() if line.startswith("v ")).split()[1:], float)
    np.testing.assert_allclose(first_v, source.meshes[1, 2, 0] * 10.0, atol=1e-5)  # written in millimetres
    assert (root / "identity_map.csv").read_text() == "folder,source_identity\n1,alice\n2,bob\n"

    loaded = FaceScapeFolder(root, expression_names=source.expression_names)
    assert loaded.identity_ids == ("1", "2")
    assert loaded.expression_names == source.expression_names
    assert_same_topology(loaded.template, source.template)
    assert (loaded.template.polygon_sizes == 4).sum() == 25836  # ICT's quads stay quads
    everything = loaded.load_all(progress=False)
    assert everything.shape == source.meshes.shape and everything.dtype == np.float32
    np.testing.assert_allclose(everything, source.meshes, rtol=0, atol=VERTEX_ATOL_CM)
    for i in range(2):
        for e in range(3):
            np.testing.assert_array_equal(loaded.texture(i, e), source.textures[i, e])


def test_facescape_jpg_textures_mtl_less_and_untextured(tmp_path):
    source = GridExpressionSource()
    root = export_facescape_layout(source, tmp_path / "fs", texture_format="jpg", progress=False)
    loaded = FaceScapeFolder(root, expression_names=source.expression_names)
    assert loaded.texture_path(0, 1).name == "2_smile.jpg"
    tex = loaded.texture(0, 1)
    assert tex.shape == (8, 8, 3) and tex.dtype == np.uint8
    assert np.abs(tex.astype(int) - source.textures[0, 1]).mean() < 12  # lossy, but the same picture
    # FaceScape-style folder without an mtl: the texture beside the OBJ is still found.
    (root / "1" / "models_reg" / "2_smile.obj.mtl").unlink()
    np.testing.assert_array_equal(loaded.texture(0, 1), tex)
    # No texture at all: None, not an error.
    (root / "1" / "models_reg" / "2_smile.jpg").unlink()
    assert loaded.texture(0, 1) is None
    plain = export_facescape_layout(GridExpressionSource(textured=False), tmp_path / "plain", progress=False)
    assert not list(plain.rglob("*.mtl")) and not list(plain.rglob("*.png"))
    assert FaceScapeFolder(plain, expression_names=source.expression_names).texture(1, 2) is None


def test_facescape_identity_selection_and_default_units(tmp_path):
    source = GridExpressionSource(n_id=3)
    root = export_facescape_layout(source, tmp_path / "fs", units_from_cm=1.0, progress=False)
    (root / "notes").mkdir()  # not a number: not an identity folder
    loaded = FaceScapeFolder(root, expression_names=source.expression_names, identities=[3, "1"], units_to_cm=1.0)
    assert loaded.identity_ids == ("3", "1")
    np.testing.assert_allclose(loaded.mesh(0, 2), source.meshes[2, 2], atol=1e-6)
    in_mm = FaceScapeFolder(root, expression_names=source.expression_names)  # default reads millimetres
    np.testing.assert_allclose(in_mm.mesh(0, 0), source.meshes[0, 0] * 0.1, atol=1e-6)
    with pytest.raises(LayoutError) as e:
        FaceScapeFolder(root, expression_names=source.expression_names, identities=["1", "7"])
    assert "7" in error_text(e) and "not found" in error_text(e)


@pytest.fixture
def grid_facescape(tmp_path):
    source = GridExpressionSource()
    root = export_facescape_layout(source, tmp_path / "fs", progress=False)
    return source, root


def test_facescape_missing_expressions_listed_per_identity(grid_facescape):
    source, root = grid_facescape
    (root / "2" / "models_reg" / "2_smile.obj").unlink()
    (root / "2" / "models_reg" / "3_mouth_stretch.obj").unlink()
    (root / "1" / "models_reg" / "1_neutral.obj").unlink()
    with pytest.raises(LayoutError) as e:
        FaceScapeFolder(root, expression_names=source.expression_names)
    msg = error_text(e)
    assert f"{root / '2'}: identity folder is missing 2_smile.obj, 3_mouth_stretch.obj" in msg
    assert f"{root / '1'}: identity folder is missing 1_neutral.obj" in msg


def test_facescape_full_expression_list_by_default(grid_facescape):
    _, root = grid_facescape
    with pytest.raises(LayoutError) as e:
        FaceScapeFolder(root)  # only 3 of the 20 expressions were written
    assert "20_brow_lower.obj" in error_text(e) and "4_anger.obj" in error_text(e)


def test_facescape_numeric_folder_without_models_reg(grid_facescape):
    source, root = grid_facescape
    (root / "9").mkdir()
    with pytest.raises(LayoutError) as e:
        FaceScapeFolder(root, expression_names=source.expression_names)
    assert f"{root / '9'}: identity folder has no models_reg/" in error_text(e)


def test_facescape_empty_root(tmp_path):
    with pytest.raises(LayoutError, match="no identity folders"):
        FaceScapeFolder(tmp_path)
    with pytest.raises(LayoutError, match="does not exist"):
        FaceScapeFolder(tmp_path / "absent")


def _rewrite_vertex_line(path, new_line):
    lines = path.read_text().splitlines()
    lines[next(i for i, line in enumerate(lines) if line.startswith("v "))] = new_line
    path.write_text("\n".join(lines) + "\n")


def _break_meshes(root, source):
    """Break three meshes three ways; return {path: expected words}."""
    d2 = root / "2" / "models_reg"
    small = grid_template(3)
    write_obj(d2 / "2_smile.obj", np.zeros((9, 3)), small.polygon_sizes, small.polygon_vertices,
              small.uvs, small.polygon_uv_indices)
    _rewrite_vertex_line(d2 / "1_neutral.obj", "v nan 0.0 0.0")
    t = source.template
    swapped = t.polygon_vertices.copy()
    swapped[[0, 1]] = swapped[[1, 0]]
    write_obj(d2 / "3_mouth_stretch.obj", source.meshes[1, 2], t.polygon_sizes, swapped, t.uvs,
              t.polygon_uv_indices)
    return {d2 / "2_smile.obj": "has 9 vertices, the first mesh", d2 / "1_neutral.obj": "NaN",
            d2 / "3_mouth_stretch.obj": "inconsistent topology"}


def test_facescape_bad_meshes_named_on_read_and_all_listed_by_validate(grid_facescape):
    source, root = grid_facescape
    broken = _break_meshes(root, source)
    loaded = FaceScapeFolder(root, expression_names=source.expression_names)
    for e, name in enumerate(source.expression_names):
        path = root / "2" / "models_reg" / f"{name}.obj"
        with pytest.raises(LayoutError) as err:
            loaded.mesh(1, e)
        assert str(path) in error_text(err) and broken[path] in error_text(err)
    assert "has 9 vertices, the first mesh" in str(pytest.raises(LayoutError, loaded.mesh, 1, 1).value)
    assert "16" in str(pytest.raises(LayoutError, loaded.mesh, 1, 1).value)  # both counts
    np.testing.assert_allclose(loaded.mesh(0, 1), source.meshes[0, 1], atol=VERTEX_ATOL_CM)  # others still read
    with pytest.raises(LayoutError) as err:
        loaded.validate()
    msg = error_text(err)
    assert "3 problems found" in msg
    for path, words in broken.items():
        assert any(str(path) in line and words in line for line in msg.splitlines())
    with pytest.raises(LayoutError):
        loaded.load_all(progress=False)


def test_facescape_unreadable_files(grid_facescape):
    source, root = grid_facescape
    d1 = root / "1" / "models_reg"
    (d1 / "2_smile.obj").write_bytes(b"\xff\xfe\x00 not an obj")
    (d1 / "3_mouth_stretch.png").write_bytes(b"not a png")
    (d1 / "1_neutral.obj.mtl").write_text("newmtl m\nmap_Kd elsewhere.png\n")
    loaded = FaceScapeFolder(root, expression_names=source.expression_names)  # contents are read lazily
    with pytest.raises(LayoutError) as err:
        loaded.mesh(0, 1)
    assert f"{d1 / '2_smile.obj'}: cannot read OBJ file" in error_text(err)
    with pytest.raises(LayoutError) as err:
        loaded.texture(0, 2)
    assert str(d1 / "3_mouth_stretch.png") in error_text(err) and "unreadable texture" in error_text(err)
    with pytest.raises(LayoutError) as err:
        loaded.texture(0, 0)
    assert str(d1 / "1_neutral.obj.mtl") in error_text(err) and "elsewhere.png is missing" in error_text(err)
    with pytest.raises(LayoutError) as err:
        loaded.validate()
    assert "3 problems found" in error_text(err)
    with pytest.raises(LayoutError) as err:
        loaded.validate(textures=False)
    assert "1 problem found" in error_text(err)


def test_facescape_first_mesh_problems_raise_on_open(grid_facescape):
    source, root = grid_facescape
    first = root / "1" / "models_reg" / "1_neutral.obj"
    t = source.template
    write_obj(first, source.meshes[0, 0], t.polygon_sizes, t.polygon_vertices)  # no UVs
    with pytest.raises(LayoutError) as err:
        FaceScapeFolder(root, expression_names=source.expression_names)
    assert str(first) in error_text(err) and "no texture coordinates" in error_text(err)


def test_facescape_export_refuses_bad_input(tmp_path, grid_facescape):
    source, root = grid_facescape
    with pytest.raises(ValueError, match="not empty"):
        export_facescape_layout(source, root, progress=False)
    source.expression_names = ("neutral", "2_smile", "3_mouth_stretch")
    with pytest.raises(ValueError, match="'neutral'"):
        export_facescape_layout(source, tmp_path / "other", progress=False)
    with pytest.raises(ValueError, match="texture_format"):
        export_facescape_layout(GridExpressionSource(), tmp_path / "other", texture_format="bmp", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fs"]


def test_facescape_overwrite_replaces_only_a_previous_export_and_whole(tmp_path, grid_facescape):
    source, root = grid_facescape
    (root / "7" / "models_reg").mkdir(parents=True)  # a stale identity that must not survive
    export_facescape_layout(GridExpressionSource(n_id=1), root, progress=False, overwrite=True)
    assert FaceScapeFolder(root, expression_names=source.expression_names).identity_ids == ("1",)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fs"]  # no temporary or old folder left beside it
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("not an export")
    with pytest.raises(ValueError, match="holds no identity_map.csv"):
        export_facescape_layout(source, other, progress=False, overwrite=True)
    assert snapshot(other) == {"keep.txt": b"not an export"}


def test_facescape_export_failing_midway_leaves_nothing(tmp_path):
    broken = BreaksOnThirdMesh(GridExpressionSource())
    with pytest.raises(RuntimeError, match="third mesh"):
        export_facescape_layout(broken, tmp_path / "fs", progress=False)
    assert broken.calls == 3 and not list(tmp_path.iterdir())  # no folder, no hidden partial folder


def test_facescape_export_failing_midway_keeps_the_previous_export(tmp_path, grid_facescape):
    _, root = grid_facescape
    before = snapshot(root)
    with pytest.raises(RuntimeError, match="third mesh"):
        export_facescape_layout(BreaksOnThirdMesh(GridExpressionSource(n_id=3)), root, progress=False,
                                overwrite=True)
    assert snapshot(root) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fs"]


def test_export_whose_final_rename_fails_restores_the_previous_export(tmp_path, grid_facescape, monkeypatch):
    _, root = grid_facescape
    before = snapshot(root)
    real_replace, refused = os.replace, []

    def failing_replace(src, dst):
        if os.path.basename(src).startswith(".fs.partial-"):  # the finished export moving into place
            refused.append(src)
            raise OSError("rename failed")
        real_replace(src, dst)  # file writes inside the export, and moving the old export aside and back

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="rename failed"):
        export_facescape_layout(GridExpressionSource(), root, progress=False, overwrite=True)
    assert len(refused) == 1 and snapshot(root) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fs"]


# ------------------------------------------------------------------ BP4D-style


def test_bp4d_round_trip_ict(tmp_path):
    model = load_ict_model()
    meshes = np.stack([model.neutral, model.neutral + 0.7 * model.expression_basis[model.expression_index("jawOpen")]])
    source = FrameSource(model.template, meshes.astype(np.float32))
    root = export_bp4d_layout(source, tmp_path / "bp4d", progress=False)
    table = (root / "au_labels.csv").read_text()
    assert table == "subject,task,frame,AU1,AU6,AU12\nF001,T1,0,0,2,5\nF001,T1,17,1,0,3\n"
    assert (root / "F001" / "T1" / "0017.obj").is_file() and not (root / "F001" / "T1" / "0017.png").exists()
    loaded = BP4DFolder(root)
    assert loaded.au_names == ("AU1", "AU6", "AU12")
    assert loaded.frame_subjects == ("F001", "F001") and loaded.frame_tasks == ("T1", "T1")
    np.testing.assert_array_equal(loaded.frame_numbers, [0, 17])
    assert loaded.au_intensities.dtype == np.float32
    np.testing.assert_array_equal(loaded.au_intensities, source.au_intensities)
    assert_same_topology(loaded.template, model.template)
    np.testing.assert_allclose(loaded.load_all(progress=False), meshes, rtol=0, atol=VERTEX_ATOL_CM)
    np.testing.assert_array_equal(loaded.texture(0), source.textures[0])
    assert loaded.texture(1) is None
    loaded.validate()


def test_bp4d_round_trip_wide_frame_numbers_and_jpg(tmp_path):
    source = grid_frames(3)
    root = export_bp4d_layout(source, tmp_path / "bp4d", texture_format="jpg", progress=False)
    assert (root / "M002" / "T8" / "12345.obj").is_file() and (root / "M002" / "T8" / "12345.jpg").is_file()
    loaded = BP4DFolder(root)
    np.testing.assert_array_equal(loaded.frame_numbers, [0, 17, 12345])
    np.testing.assert_allclose(loaded.load_all(progress=False), source.meshes, atol=VERTEX_ATOL_CM)
    assert loaded.texture(2).shape == (5, 7, 3)
    loaded.validate()


def test_bp4d_export_intensities_must_be_integers_unless_rounded(tmp_path):
    source = grid_frames(2)
    source.au_intensities = np.array([[0, 2.4, 5], [1, 0, 2.6]], np.float32)
    with pytest.raises(ValueError, match="not integers") as err:
        export_bp4d_layout(source, tmp_path / "a", progress=False)
    assert "AU6" in error_text(err)
    assert not (tmp_path / "a").exists()  # checked before anything was written
    export_bp4d_layout(source, tmp_path / "b", round_intensities=True, progress=False)
    np.testing.assert_array_equal(BP4DFolder(tmp_path / "b").au_intensities, [[0, 2, 5], [1, 0, 3]])
    source.au_intensities = np.array([[0, 2, 6], [1, 0, 3]], np.float32)
    with pytest.raises(ValueError, match="outside 0..5"):
        export_bp4d_layout(source, tmp_path / "c", round_intensities=True, progress=False)
    source.au_intensities = np.array([[0, 2, 5], [1, 0, 3]], np.float32)
    source.frame_numbers = np.array([4, 4])
    with pytest.raises(ValueError, match="repeat"):
        export_bp4d_layout(source, tmp_path / "d", progress=False)


def test_bp4d_export_failing_midway_leaves_nothing_and_keeps_the_previous_export(tmp_path):
    broken = BreaksOnThirdMesh(grid_frames(3))
    with pytest.raises(RuntimeError, match="third mesh"):
        export_bp4d_layout(broken, tmp_path / "bp4d", progress=False)
    assert broken.calls == 3 and not list(tmp_path.iterdir())
    root = export_bp4d_layout(grid_frames(3), tmp_path / "bp4d", progress=False)
    before = snapshot(root)
    with pytest.raises(ValueError, match="not empty"):
        export_bp4d_layout(grid_frames(2), root, progress=False)
    with pytest.raises(RuntimeError, match="third mesh"):
        export_bp4d_layout(BreaksOnThirdMesh(grid_frames(3)), root, progress=False, overwrite=True)
    assert snapshot(root) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bp4d"]
    export_bp4d_layout(grid_frames(2), root, progress=False, overwrite=True)
    assert len(BP4DFolder(root)) == 2 and not (root / "M002").exists()  # replaced whole: frame 3 is gone


@pytest.fixture
def grid_bp4d(tmp_path):
    source = grid_frames(3)
    return source, export_bp4d_layout(source, tmp_path / "bp4d", progress=False)


def _write_table(root, text):
    (root / "au_labels.csv").write_text(text)


def _open_error(root) -> str:
    with pytest.raises(LayoutError) as err:
        BP4DFolder(root)
    return error_text(err)


def test_bp4d_row_without_mesh_and_mesh_without_row(grid_bp4d):
    _, root = grid_bp4d
    (root / "F001" / "T1" / "0017.obj").unlink()
    (root / "F001" / "T2").mkdir()
    shutil.copy(root / "F001" / "T1" / "0000.obj", root / "F001" / "T2" / "0003.obj")
    msg = _open_error(root)
    table = root / "au_labels.csv"
    assert f"{table}: line 3: mesh file {root / 'F001' / 'T1' / '0017.obj'} is missing" in msg
    assert f"{root / 'F001' / 'T2' / '0003.obj'}: mesh has no row in {table}" in msg


def test_bp4d_bad_cells_named_by_line_column_value(grid_bp4d):
    _, root = grid_bp4d
    _write_table(root, "subject,task,frame,AU1,AU6,AU12\n"
                       "F001,T1,0,0,9,5\n"       # line 2: BP4D unknown code
                       "F001,T1,17,1,2.5,3\n"    # line 3: not an integer
                       "\n"
                       "M002,T8,12345,6,,0\n")   # line 5: out of range, empty
    msg = _open_error(root)
    table = root / "au_labels.csv"
    assert "4 problems found" in msg
    assert f"{table}: line 2, column AU6: value '9' is BP4D's 'unknown' code" in msg
    assert f"{table}: line 3, column AU6: value '2.5' is not an integer" in msg
    assert f"{table}: line 5, column AU1: value '6' is out of range 0..5" in msg
    assert f"{table}: line 5, column AU6: value '' is not an integer" in msg


def test_bp4d_duplicate_rows_bad_keys_and_cell_counts(grid_bp4d):
    _, root = grid_bp4d
    _write_table(root, "subject,task,frame,AU1,AU6,AU12\n"
                       "F001,T1,0,0,2,5\n"
                       "F001,T1,17,1,0,3\n"
                       "M002,T8,12345,4,4,0\n"
                       "F001,T1,17,1,0,3\n"      # line 5 repeats line 3
                       "F001,T1,x,1,0,3\n"       # bad frame
                       "F 1,T1,4,1,0,3\n"        # bad subject
                       "F001,T1,5,1,0\n")        # one cell short
    msg = _open_error(root)
    table = root / "au_labels.csv"
    assert f"{table}: line 5: duplicate row for subject F001, task T1, frame 17 (first at line 3)" in msg
    assert f"{table}: line 6, column frame: value 'x'" in msg
    assert f"{table}: line 7, column subject: value 'F 1'" in msg
    assert f"{table}: line 8: 5 cells, the header has 6" in msg


@pytest.mark.parametrize("header, words", [
    ("subject,task,AU1,AU6,AU12", "must start with 'subject,task,frame'"),
    ("subject,task,frame,AU1,smile,AU12", "'smile'"),
    ("subject,task,frame,AU1,AU1,AU12", "AU columns repeated: AU1"),
    ("subject,task,frame", "at least one"),
])
def test_bp4d_bad_header(grid_bp4d, header, words):
    _, root = grid_bp4d
    _write_table(root, header + "\nF001,T1,0,0,2,5\n")
    msg = _open_error(root)
    assert str(root / "au_labels.csv") in msg and "bad header" in msg and words in msg


def test_bp4d_missing_or_empty_table(grid_bp4d):
    _, root = grid_bp4d
    _write_table(root, "subject,task,frame,AU1\n")
    assert "no rows" in _open_error(root)
    (root / "au_labels.csv").unlink()
    assert "au_labels.csv: AU label table is missing" in _open_error(root)


def test_bp4d_bad_meshes_named_on_read_and_all_listed_by_validate(grid_bp4d):
    source, root = grid_bp4d
    frame17, frame12345 = root / "F001" / "T1" / "0017.obj", root / "M002" / "T8" / "12345.obj"
    small = grid_template(3)
    write_obj(frame17, np.zeros((9, 3)), small.polygon_sizes, small.polygon_vertices, small.uvs,
              small.polygon_uv_indices)
    t = source.template
    write_obj(frame12345, source.meshes[2], t.polygon_sizes, t.polygon_vertices[::-1].copy(), t.uvs,
              t.polygon_uv_indices)
    (root / "M002" / "T8" / "12345.png").write_bytes(b"garbage")
    loaded = BP4DFolder(root)
    with pytest.raises(LayoutError) as err:
        loaded.mesh(1)
    assert str(frame17) in error_text(err) and "has 9 vertices, the first mesh" in error_text(err)
    with pytest.raises(LayoutError) as err:
        loaded.mesh(2)
    assert str(frame12345) in error_text(err) and "inconsistent topology" in error_text(err)
    with pytest.raises(LayoutError) as err:
        loaded.validate()
    assert "3 problems found" in error_text(err) and "12345.png: unreadable texture" in error_text(err)
    _rewrite_vertex_line(frame17, "v 0.0 inf 0.0")
    with pytest.raises(LayoutError) as err:
        loaded.mesh(1)
    assert str(frame17) in error_text(err) and "NaN or infinite" in error_text(err)


def test_loaders_accept_any_vertex_count(tmp_path):
    """Nothing assumes ICT's 26,719 vertices: a 5x5 grid set round-trips through both layouts."""
    source = GridExpressionSource(n_id=1, n_exp=2, n=5)
    fs = FaceScapeFolder(export_facescape_layout(source, tmp_path / "fs", progress=False),
                         expression_names=source.expression_names)
    assert fs.template.num_vertices == 25
    np.testing.assert_allclose(fs.load_all(progress=False), source.meshes, atol=VERTEX_ATOL_CM)
    img = np.asarray(Image.open(fs.texture_path(0, 1)))
    np.testing.assert_array_equal(img, source.textures[0, 1])
    fs.validate()
