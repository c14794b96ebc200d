"""The FaceXModel converter reproduces the shared npz from the raw ICT-FaceKit files and names every bad input."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from train.data.ict import DEFAULT_ICT_NPZ, NPZ_FIELDS, load_ict_model
from train.data.ict_convert import NEUTRAL_OBJ, VERTEX_INDICES_JSON, convert_facexmodel, main

ICT_DIR = DEFAULT_ICT_NPZ.parent  # the raw sample ships beside the shared npz, not with $FACECAM_ICT_NPZ
RAW = ICT_DIR / "raw-sample" / "FaceXModel"
SHARED_NPZ = ICT_DIR / "ict_face_model.npz"
SAMPLE_SHAPES = ("identity000", "jawOpen", "mouthSmile_L")




@pytest.fixture(scope="module")
def shared():
    with np.load(SHARED_NPZ, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


@pytest.fixture(scope="module")
def converted_path(tmp_path_factory):
    out = tmp_path_factory.mktemp("ict") / "sub" / "converted.npz"
    with pytest.warns(UserWarning, match=r"without 154 missing shape OBJ file\(s\): identity001\.obj"):
        assert convert_facexmodel(RAW, out, allow_partial=True, show_progress=False) == out
    return out


@pytest.fixture(scope="module")
def converted(converted_path):
    with np.load(converted_path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def _linked_copy(dst: Path, skip: tuple[str, ...] = ()) -> Path:
    """A FaceXModel folder of symlinks to the raw sample, so broken variants cost no copying."""
    dst.mkdir()
    for f in RAW.iterdir():
        if f.name not in skip:
            (dst / f.name).symlink_to(f)
    return dst


def test_partial_conversion_has_every_field_with_the_shared_dtypes(converted, shared):
    assert set(converted) == set(NPZ_FIELDS)
    for name in NPZ_FIELDS:
        assert converted[name].dtype.kind == shared[name].dtype.kind, name
        if name not in ("identity_basis", "expression_basis", "extra_basis", "identity_names",
                        "expression_names", "extra_names"):
            assert converted[name].dtype == shared[name].dtype, name
            assert converted[name].shape == shared[name].shape, name
    assert converted["identity_names"].tolist() == ["identity000"]
    assert converted["expression_names"].tolist() == ["jawOpen", "mouthSmile_L"]
    assert converted["extra_names"].tolist() == []
    assert converted["identity_basis"].shape == (1, 26719, 3)
    assert converted["expression_basis"].shape == (2, 26719, 3)
    assert converted["extra_basis"].shape == (0, 26719, 3)


@pytest.mark.parametrize("name", ["neutral", "polygon_sizes", "polygon_vertices", "polygon_uv_indices", "uvs",
                                  "polygon_materials", "material_names", "region_names", "region_vertex_ranges",
                                  "region_polygon_ranges", "landmarks_multipie68", "vertex_indices_json"])
def test_mesh_and_metadata_fields_equal_the_shared_npz(converted, shared, name):
    np.testing.assert_array_equal(converted[name], shared[name])


def test_vertex_indices_json_parses_to_the_shared_content(converted, shared):
    parsed = json.loads(str(converted["vertex_indices_json"]))
    assert parsed == json.loads(str(shared["vertex_indices_json"]))
    assert parsed == json.loads((RAW / VERTEX_INDICES_JSON).read_text())


def test_basis_rows_equal_the_shared_npz_to_float32_precision(converted, shared):
    # The shared npz subtracted float64-parsed coordinates; read_obj parses float32, so each offset may differ by
    # about one float32 step of the coordinate (|x| <= ~20 cm), never more.
    tol = 2 * np.spacing(np.float32(np.abs(shared["neutral"]).max()))
    rows = {"identity_basis": ("identity_names", ["identity000"]),
            "expression_basis": ("expression_names", ["jawOpen", "mouthSmile_L"])}
    for basis, (names_key, names) in rows.items():
        for i, name in enumerate(names):
            j = shared[names_key].tolist().index(name)
            np.testing.assert_allclose(converted[basis][i], shared[basis][j], rtol=0, atol=tol, err_msg=name)
            assert np.abs(shared[basis][j]).max() > 100 * tol, f"{name}: comparing a near-zero offset proves nothing"


def test_converted_file_loads_as_a_face_model(converted_path, shared):
    model = load_ict_model(converted_path)
    assert model.expression_names == ("jawOpen", "mouthSmile_L")
    assert model.num_identity_modes == 1
    assert model.template.region_names[0] == "face"
    np.testing.assert_array_equal(model.landmarks, shared["landmarks_multipie68"])
    assert model.vertex_indices["expressions"][0] == "browDown_L"


def test_no_temporary_files_left_beside_the_output(converted_path):
    assert [p.name for p in converted_path.parent.iterdir()] == [converted_path.name]


def test_strict_mode_names_every_missing_file(tmp_path):
    out = tmp_path / "strict.npz"
    with pytest.raises(FileNotFoundError) as err:
        convert_facexmodel(RAW, out, show_progress=False)
    msg = str(err.value)
    assert "154 shape OBJ file(s) missing" in msg
    for name in ("identity001.obj", "identity099.obj", "browDown_L.obj", "noseSneer_R.obj", "PupilDilate_L.obj",
                 "cheekRaiser_R.obj"):
        assert name in msg
    assert "jawOpen.obj" not in msg and "identity000.obj" not in msg
    assert not out.exists()


def test_missing_folder_and_missing_neutral(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a folder"):
        convert_facexmodel(tmp_path / "nope", tmp_path / "o.npz", show_progress=False)
    folder = _linked_copy(tmp_path / "FaceXModel", skip=(NEUTRAL_OBJ,))
    with pytest.raises(FileNotFoundError, match=NEUTRAL_OBJ):
        convert_facexmodel(folder, tmp_path / "o.npz", allow_partial=True, show_progress=False)


def test_truncated_obj_is_named(tmp_path):
    folder = _linked_copy(tmp_path / "FaceXModel", skip=("jawOpen.obj",))
    text = (RAW / "jawOpen.obj").read_text()
    # Cut in the middle of the vertex block: a partial 'v' line and no faces at all.
    (folder / "jawOpen.obj").write_text(text[: len(text) // 4] + "\nv 1.0 garbage\n")
    out = tmp_path / "o.npz"
    with pytest.raises(ValueError, match="jawOpen.obj"), pytest.warns(UserWarning):
        convert_facexmodel(folder, out, allow_partial=True, show_progress=False)
    assert not out.exists()


def test_vertex_count_mismatch_names_file_and_both_counts(tmp_path):
    folder = _linked_copy(tmp_path / "FaceXModel", skip=("mouthSmile_L.obj",))
    lines = (RAW / "mouthSmile_L.obj").read_text().splitlines(keepends=True)
    first_v = next(i for i, line in enumerate(lines) if line.startswith("v "))
    lines.insert(first_v, "v 0.0 0.0 0.0\n")  # one extra vertex; faces stay valid (they index below it)
    (folder / "mouthSmile_L.obj").write_text("".join(lines))
    with pytest.raises(ValueError, match=r"mouthSmile_L\.obj: 26720 vertices.*has 26719"), pytest.warns(UserWarning):
        convert_facexmodel(folder, tmp_path / "o.npz", allow_partial=True, show_progress=False)


def test_topology_mismatch_names_file(tmp_path):
    folder = _linked_copy(tmp_path / "FaceXModel", skip=("identity000.obj",))
    lines = (RAW / "identity000.obj").read_text().splitlines(keepends=True)
    last_f = max(i for i, line in enumerate(lines) if line.startswith("f "))
    corners = lines[last_f].split()[1:]
    lines[last_f] = "f " + " ".join(corners[1:] + corners[:1]) + "\n"  # same polygon, rotated corner order
    (folder / "identity000.obj").write_text("".join(lines))
    with pytest.raises(ValueError, match=r"identity000\.obj: faces .* differ"), pytest.warns(UserWarning):
        convert_facexmodel(folder, tmp_path / "o.npz", allow_partial=True, show_progress=False)


def test_missing_or_malformed_vertex_indices_json(tmp_path):
    folder = _linked_copy(tmp_path / "FaceXModel", skip=(VERTEX_INDICES_JSON,))
    with pytest.raises(FileNotFoundError, match=VERTEX_INDICES_JSON):
        convert_facexmodel(folder, tmp_path / "o.npz", allow_partial=True, show_progress=False)
    data = json.loads((RAW / VERTEX_INDICES_JSON).read_text())
    bad_cases = {
        "idx_to_landmark_verts": {**data, "idx_to_landmark_verts": data["idx_to_landmark_verts"][:67]},
        "expressions": {**data, "expressions": data["expressions"] + ["jawOpen"]},
    }
    for key, bad in bad_cases.items():
        (folder / VERTEX_INDICES_JSON).write_text(json.dumps(bad))
        with pytest.raises(ValueError, match=rf"{VERTEX_INDICES_JSON}: key '{key}'"):
            convert_facexmodel(folder, tmp_path / "o.npz", allow_partial=True, show_progress=False)
    (folder / VERTEX_INDICES_JSON).write_text('{"expressions": [')
    with pytest.raises(ValueError, match=rf"{VERTEX_INDICES_JSON}: not readable JSON"):
        convert_facexmodel(folder, tmp_path / "o.npz", allow_partial=True, show_progress=False)


def test_failed_conversion_keeps_the_previous_output(tmp_path):
    out = tmp_path / "model.npz"
    out.write_bytes(b"previous good file")
    folder = _linked_copy(tmp_path / "FaceXModel", skip=("jawOpen.obj",))
    (folder / "jawOpen.obj").write_text("v 1 2 3\n")
    with pytest.raises(ValueError, match="jawOpen.obj"), pytest.warns(UserWarning):
        convert_facexmodel(folder, out, allow_partial=True, show_progress=False)
    assert out.read_bytes() == b"previous good file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["FaceXModel", "model.npz"]


def test_cli_reports_errors_and_requires_out(tmp_path, capsys):
    assert main([str(tmp_path / "missing"), "--out", str(tmp_path / "o.npz")]) == 2  # as every command-line error
    assert "not a folder" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(RAW)])


def test_cli_writes_and_prints_the_path(tmp_path, capsys, monkeypatch):
    # Neutral plus one expression keeps this second real conversion cheap.
    keep = {NEUTRAL_OBJ, VERTEX_INDICES_JSON, "jawOpen.obj"}
    folder = _linked_copy(tmp_path / "FaceXModel", skip=tuple(p.name for p in RAW.iterdir() if p.name not in keep))
    out = tmp_path / "cli.npz"
    with pytest.warns(UserWarning):
        assert main([str(folder), "--out", str(out), "--allow-partial"]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    with np.load(out) as npz:
        assert npz["expression_names"].tolist() == ["jawOpen"]
        assert npz["identity_basis"].shape == (0, 26719, 3)
