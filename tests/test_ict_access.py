import numpy as np
import pytest

from train.data.ict import ICT_NPZ_ENV, NUM_VERTICES, ict_npz_path, load_ict_model


def test_default_model_loads_with_documented_sizes(ict):
    assert ict.neutral.shape == (NUM_VERTICES, 3)
    assert ict.identity_basis.shape == (100, NUM_VERTICES, 3)
    assert len(ict.expression_names) == 53 and ict.expression_names[0] == "browDown_L"
    assert ict.template.num_polygons == 26384
    tri_v, tri_uv = ict.template.triangles()
    assert len(tri_v) == 25836 * 2 + 548 == len(tri_uv)  # quads split in two, triangles kept
    assert ict.template.region_vertices("face")[-1] == 9408


def test_location_comes_from_the_environment(monkeypatch, tmp_path):
    missing = tmp_path / "nowhere.npz"
    monkeypatch.setenv(ICT_NPZ_ENV, str(missing))
    assert ict_npz_path() == missing
    with pytest.raises(FileNotFoundError, match=r"nowhere\.npz.*FACECAM_ICT_NPZ.*convert-ict"):
        load_ict_model()


def test_malformed_npz_names_the_file_and_field(ict, tmp_path):
    good = dict(np.load(ict_npz_path()))
    bad = dict(good, neutral=good["neutral"][:10])
    path = tmp_path / "bad.npz"
    np.savez(path, **bad)
    with pytest.raises(ValueError, match=r"bad\.npz.*'neutral'.*shape"):
        load_ict_model(path)
    del bad["neutral"]
    np.savez(path, **{k: v for k, v in good.items() if k != "uvs"})
    with pytest.raises(ValueError, match=r"bad\.npz.*'uvs'.*missing"):
        load_ict_model(path)
    path.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=r"bad\.npz.*not a readable npz"):
        load_ict_model(path)


def test_identity_shape_is_neutral_plus_weighted_modes(ict):
    w = np.zeros(100, np.float32)
    w[3] = 2.0
    np.testing.assert_allclose(ict.identity_shape(w), ict.neutral + 2 * ict.identity_basis[3], atol=1e-5)


def _save_variant(tmp_path, **changes):
    arrays = dict(np.load(ict_npz_path()))
    arrays.update(changes)
    path = tmp_path / "variant.npz"
    np.savez(path, **arrays)
    return path


def test_fields_must_agree_with_each_other(ict, tmp_path):
    names = np.array(ict.expression_names[:-1])
    with pytest.raises(ValueError, match=r"variant\.npz: field 'expression_names' has 52 names for 53 rows"):
        load_ict_model(_save_variant(tmp_path, expression_names=names))
    uv = np.array(ict.template.polygon_uv_indices)
    uv[7] = 10 ** 6
    with pytest.raises(ValueError, match=r"'polygon_uv_indices' indexes outside \[0, 28911\)"):
        load_ict_model(_save_variant(tmp_path, polygon_uv_indices=uv))
    with pytest.raises(ValueError, match="'vertex_indices_json' is not valid JSON"):
        load_ict_model(_save_variant(tmp_path, vertex_indices_json=np.array("{broken")))


def test_shared_model_is_read_only(ict):
    with pytest.raises(ValueError, match="read-only"):
        ict.neutral[0, 0] = 1.0
    with pytest.raises(ValueError, match="read-only"):
        ict.template.polygon_vertices[0] = 1
