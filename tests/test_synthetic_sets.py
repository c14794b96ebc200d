import json
import os

import numpy as np
import pytest

from train.data import synthetic_sets
from train.data.expressions import AU_NAMES, AU_TASK_PROTOTYPES, FACESCAPE_EXPRESSIONS
from train.data.synthetic_sets import (StoredSet, SyntheticBP4D, SyntheticFaceScape, build_set,
                                       split_identities)

BP4D_LABELLED = ("AU1", "AU2", "AU4", "AU6", "AU7", "AU10", "AU12", "AU14", "AU15", "AU17", "AU23", "AU24")


def test_splits_are_disjoint_cover_everyone_and_are_seeded():
    s = split_identities(847, [0.8, 0.1, 0.1], seed=0)
    all_ids = np.concatenate(list(s.values()))
    assert sorted(all_ids.tolist()) == list(range(847))
    assert [len(s[k]) for k in ("train", "val", "test")] == [677, 85, 85]
    assert split_identities(847, [0.8, 0.1, 0.1], seed=0)["test"].tolist() == s["test"].tolist()
    assert split_identities(847, [0.8, 0.1, 0.1], seed=1)["test"].tolist() != s["test"].tolist()
    with pytest.raises(ValueError, match="leaves no training identity"):
        split_identities(3, [0.0, 0.5, 0.5], seed=0)


def test_facescape_like_source(tiny_cfg, ict):
    src = SyntheticFaceScape(tiny_cfg, ict)
    assert tuple(src.expression_names) == FACESCAPE_EXPRESSIONS
    meshes = src.meshes(1)
    assert meshes.shape == (20, ict.template.num_vertices, 3)
    np.testing.assert_allclose(src.mesh(1, "2_smile"), meshes[1], atol=1e-6)
    # ground truth beyond the training intensity, and a neutral at 0
    np.testing.assert_array_equal(src.mesh(1, "2_smile", 0.0), meshes[0])
    assert np.abs(src.mesh(1, "2_smile", 2.0) - meshes[1]).max() > 0.2
    with pytest.raises(KeyError, match="unknown expression 'smile'.*1_neutral"):
        src.mesh(0, "smile")
    with pytest.raises(IndexError, match=r"identity 9 outside \[0, 5\)"):
        src.mesh(9, 0)


def test_bp4d_like_frames_hold_cooccurring_action_units(tiny_cfg, ict):
    src = SyntheticBP4D(tiny_cfg, ict)
    assert set(BP4D_LABELLED) <= set(src.au_names)
    assert len(src) == 3 * 8 * 2 and src.au_intensities.shape == (48, len(AU_NAMES))
    ai = src.au_intensities
    assert ai.min() >= 0 and ai.max() <= 5 and np.array_equal(ai, np.round(ai))
    tasks = np.array(src.frame_tasks)
    for task, aus in AU_TASK_PROTOTYPES.items():
        cols = [src.au_names.index(a) for a in aus]
        assert (ai[tasks == task][:, cols] > 0).mean() > 0.7, task  # the task's units fire together
    # a mesh for a frame is the identity with those AUs; no AU gives the identity's neutral
    neutral = src.mesh_for(0, {})
    np.testing.assert_array_equal(neutral, src.identity(0).neutral)
    assert np.abs(src.mesh(0) - neutral).max() > 0 or ai[0].sum() == 0
    with pytest.raises(KeyError, match=r"unknown action unit\(s\) \['AU99'\]"):
        src.mesh_for(0, {"AU99": 3})


def test_build_store_reuse_and_rebuild(tiny_cfg, ict, tmp_path):
    out = build_set("facescape", tiny_cfg, tmp_path / "fs", ict=ict, progress=False)
    stored = StoredSet(out)
    src = SyntheticFaceScape(tiny_cfg, ict)
    assert stored.vertices.shape == (5, 20, ict.template.num_vertices, 3)
    assert isinstance(stored.vertices, np.memmap)
    np.testing.assert_array_equal(stored.mesh(2, 5), src.mesh(2, 5))
    np.testing.assert_array_equal(stored.crop(2, 5), src.texture(2, 5, window="crop"))
    assert stored.textures.shape == (5, 20, 32, 32, 3)
    assert {k: v.tolist() for k, v in stored.splits.items()} == {k: v.tolist() for k, v in src.splits.items()}
    assert stored.template.num_polygons == ict.template.num_polygons
    assert stored.template_texture("crop").shape == (32, 32, 3)
    assert len(stored.skin_tone_bins) == 5
    stamp = (out / "vertices.npy").stat().st_mtime_ns
    assert build_set("facescape", tiny_cfg, out, ict=ict, progress=False) == out
    assert (out / "vertices.npy").stat().st_mtime_ns == stamp  # reused, not rebuilt
    build_set("facescape", tiny_cfg, out, ict=ict, progress=False, force=True)
    assert (out / "vertices.npy").stat().st_mtime_ns != stamp
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fs", "tiny.json"]  # no temporary folders left


def test_failed_build_keeps_the_good_set(tiny_cfg, ict, tmp_path, monkeypatch):
    out = build_set("bp4d", tiny_cfg, tmp_path / "bp", ict=ict, progress=False)
    before = (out / "meta.json").read_text()

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(synthetic_sets, "_write_arrays", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        build_set("bp4d", tiny_cfg, out, ict=ict, progress=False, force=True)
    assert (out / "meta.json").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bp", "tiny.json"]
    assert len(StoredSet(out)) == 48


def test_stored_set_errors_name_the_file(tiny_cfg, ict, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nothing.*meta\.json.*data build"):
        StoredSet(tmp_path / "nothing")
    out = build_set("bp4d", tiny_cfg, tmp_path / "bp", ict=ict, progress=False)
    meta = json.loads((out / "meta.json").read_text())
    meta["vertices_shape"][0] += 1
    (out / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"vertices\.npy: shape .*meta\.json says"):
        StoredSet(out)
    meta["format_version"] = 7
    (out / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="format_version 7, expected 1"):
        StoredSet(out)


def test_config_change_triggers_rebuild(tiny_cfg, ict, tmp_path):
    import dataclasses
    out = build_set("facescape", tiny_cfg, tmp_path / "fs", ict=ict, progress=False)
    stamp = os.stat(out / "meta.json").st_mtime_ns
    other = dataclasses.replace(tiny_cfg, seed=tiny_cfg.seed + 1)
    build_set("facescape", other, out, ict=ict, progress=False)
    assert os.stat(out / "meta.json").st_mtime_ns != stamp


def test_stored_set_without_textures_says_how_to_get_them(tiny_cfg, ict, tmp_path):
    import dataclasses
    cfg = dataclasses.replace(tiny_cfg, bp4d=dataclasses.replace(tiny_cfg.bp4d, store_textures=False))
    with StoredSet(build_set("bp4d", cfg, tmp_path / "bp", ict=ict, progress=False)) as stored:
        with pytest.raises(ValueError, match="stores no textures.*window='crop'"):
            stored.crop(0)
        assert stored.mesh(0).shape == (ict.template.num_vertices, 3)
    assert stored.vertices is None  # closed


def test_abandoned_partial_builds_are_cleaned_and_model_change_rebuilds(tiny_cfg, ict, tmp_path):
    import dataclasses
    dead = tmp_path / ".fs.partial-999999999"
    dead.mkdir()
    (dead / "vertices.npy").write_bytes(b"half")
    out = build_set("facescape", tiny_cfg, tmp_path / "fs", ict=ict, progress=False)
    assert not dead.exists()
    stamp = os.stat(out / "meta.json").st_mtime_ns
    other_model = dataclasses.replace(ict, source_sha256="0" * 64)  # e.g. the npz was reconverted
    build_set("facescape", tiny_cfg, out, ict=other_model, progress=False)
    assert os.stat(out / "meta.json").st_mtime_ns != stamp


@pytest.mark.parametrize("kind", ["facescape", "bp4d"])
def test_built_in_worker_processes_the_same_bits(tiny_cfg, ict, tmp_path, kind):
    """Two worker processes (forked, one BLAS thread each) write exactly what one process writes."""
    one = build_set(kind, tiny_cfg, tmp_path / "one", ict=ict, progress=False, workers=1)
    two = build_set(kind, tiny_cfg, tmp_path / "two", ict=ict, progress=False, workers=2)
    for name in ("vertices.npy", "textures.npy", "identity_weights.npy"):
        assert (one / name).read_bytes() == (two / name).read_bytes(), name
