import os
from pathlib import Path

import numpy as np
import pytest

from core.obj_io import ObjError, read_obj, write_obj


def test_round_trip_keeps_quads_and_uvs(tmp_path):
    v = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [2, 0, 0]], np.float32)
    sizes = np.array([4, 3])
    pv = np.array([0, 1, 2, 3, 1, 4, 2])
    uv = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float32)
    puv = np.array([0, 1, 2, 3, 1, 0, 2])
    write_obj(tmp_path / "m.obj", v, sizes, pv, uv, puv, mtllib="m.mtl", material="skin")
    m = read_obj(tmp_path / "m.obj")
    np.testing.assert_allclose(m.vertices, v)
    assert m.polygon_sizes.tolist() == [4, 3] and m.polygon_vertices.tolist() == pv.tolist()
    assert m.polygon_uv_indices.tolist() == puv.tolist() and m.material_names == ("skin",)
    assert m.mtllib == "m.mtl"


def test_negative_indices_and_normals(tmp_path):
    p = tmp_path / "n.obj"
    p.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nvt 0 0\nvt 1 0\nvt 0 1\nvn 0 0 1\nf -3/-3/1 -2/-2/1 -1/-1/1\n")
    m = read_obj(p)
    assert m.polygon_vertices.tolist() == [0, 1, 2] and m.polygon_uv_indices.tolist() == [0, 1, 2]


@pytest.mark.parametrize("text, message", [
    ("v 0 0 0\nv 1 0 0\nf 1 2\n", r"bad\.obj:3: face with 2 corners"),
    ("v 0 0 nan\nv 1 0 0\nv 0 1 0\nf 1 2 3\n", r"bad\.obj: vertex 1 is NaN"),
    ("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 9\n", r"bad\.obj: face refers to a vertex outside 1\.\.3"),
    ("v 0 0 0\nv 1 0 x\nf 1 2 3\n", r"bad\.obj: malformed vertex line"),
    ("v 0 0 0\n", r"bad\.obj: no faces"),
    ("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1/a 2 3\n", r"bad\.obj:4: malformed face"),
])
def test_malformed_files_name_the_file_and_problem(tmp_path, text, message):
    p = tmp_path / "bad.obj"
    p.write_text(text)
    with pytest.raises(ObjError, match=message):
        read_obj(p)


def test_nan_vertices_are_refused_before_touching_the_disk(tmp_path):
    p = tmp_path / "keep.obj"
    p.write_text("previous")
    v = np.array([[0, 0, 0], [1, 0, 0], [np.nan, 1, 0]], np.float32)
    with pytest.raises(ValueError, match="NaN"):
        write_obj(p, v, np.array([3]), np.array([0, 1, 2]))
    assert p.read_text() == "previous"
    assert [q.name for q in tmp_path.iterdir()] == ["keep.obj"]


def _half_write_then_fail(self, text, *args, **kwargs):
    with open(self, "w") as f:
        f.write(text[: len(text) // 2])
    raise OSError("disk full")


def _fail_rename(src, dst):
    assert Path(src).is_file() and Path(src).read_text().startswith("v ")  # the temp file was written in full
    raise OSError("rename failed")


@pytest.mark.parametrize("target, replacement, message", [
    (Path, ("write_text", _half_write_then_fail), "disk full"),  # fails halfway through writing the temp file
    (os, ("replace", _fail_rename), "rename failed"),  # fails after the temp file is complete
])
def test_failed_write_keeps_the_previous_file(tmp_path, monkeypatch, target, replacement, message):
    p = tmp_path / "keep.obj"
    p.write_text("previous")
    monkeypatch.setattr(target, *replacement)
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], np.float32)
    with pytest.raises(OSError, match=message):
        write_obj(p, v, np.array([3]), np.array([0, 1, 2]))
    monkeypatch.undo()
    assert p.read_text() == "previous"
    assert [q.name for q in tmp_path.iterdir()] == ["keep.obj"]  # no temporary file left
