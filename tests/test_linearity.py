import numpy as np
import pytest

from train.data.linearity import COLUMNS, measure_columns, report_markdown, transfer_and_regression


def test_linear_models_leave_a_residual_only_on_styled_data(tiny_cfg, ict):
    columns = measure_columns(tiny_cfg, ict, num_identities=16)
    styled, old, linear = (columns[c] for c in COLUMNS)
    for key in ("transfer_residual_mm", "regression_residual_mm", "oracle_residual_mm"):
        assert styled[key] > 0.1, key  # mm, a residual the generator itself would not leave
        assert linear[key] < 1e-3, key  # the measurement itself is exact on linear data
        assert styled[key] < styled["expression_magnitude_mm"]
    # knowing the exact face-shape dependence predicts better than the linear transfer
    assert styled["oracle_residual_mm"] < styled["transfer_residual_mm"]
    # deformation transfer makes each face's expression its own: the face-shape oracle is further from the mean
    # expression than without it
    assert (styled["transfer_residual_mm"] - styled["oracle_residual_mm"]
            > old["transfer_residual_mm"] - old["oracle_residual_mm"])
    assert styled["intensity_residual_mm"]["2.0"] > 0.1 > linear["intensity_residual_mm"]["2.0"]
    text = report_markdown(columns, "python -m train data linearity --config tiny")
    assert "| B. linear transfer" in text and f"{styled['transfer_residual_mm']:.3f}" in text
    assert "learnable coupling" in text and "bilinear" in text


def test_coupling_by_training_count_separates_face_shape_from_per_person_draws(tiny_cfg, ict, tmp_path):
    import dataclasses

    from train.data.coupling import PARTS, coupling_by_training_count, identities_for, report_markdown
    assert identities_for(200, [0.8, 0.1, 0.1]) == 250 and identities_for(7, [0.6, 0.2, 0.2]) == 11
    # the offsets are laid out in split order (train, val, test), each identity's own
    from train.data.coupling import split_ordered_offsets
    from train.data.synthetic_sets import StoredSet, SyntheticFaceScape, build_set
    cfg = dataclasses.replace(tiny_cfg, facescape=dataclasses.replace(tiny_cfg.facescape, num_identities=11,
                                                                      store_textures=False))
    with StoredSet(build_set("facescape", cfg, tmp_path / "set", ict, progress=False, workers=1)) as stored:
        offsets, weights, slices = split_ordered_offsets(stored)
        order = np.concatenate([stored.splits[k] for k in ("train", "val", "test")])
        face = stored.template.region_vertices("face")
    assert [slices[k].stop - slices[k].start for k in ("train", "val", "test")] == [7, 2, 2]
    source = SyntheticFaceScape(cfg, ict)
    for k in (0, 6, 7, 10):
        meshes = source.meshes(int(order[k]))[:, face]
        np.testing.assert_array_equal(offsets[k], meshes - meshes[:1])
        np.testing.assert_array_equal(weights[k], source.identity(int(order[k])).weights)

    result = coupling_by_training_count(tiny_cfg, [7, 4], ict, workers=1, progress=False)
    assert result["counts"] == [4, 7] and result["identities"] == 11
    configured, shape = (result["parts"][p] for p in PARTS)
    for n in (4, 7):
        # the per-person draws add what no face shape predicts, to both residuals
        assert configured[n]["transfer_residual_mm"] > shape[n]["transfer_residual_mm"] + 0.05
        assert configured[n]["regression_residual_mm"] > shape[n]["regression_residual_mm"] + 0.05
    text = report_markdown(result, "python -m train data coupling --config tiny --counts 4 7")
    assert "| face shape alone | learnable coupling |" in text and "n = 7" in text

    # the pipeline measures the first n training identities against the same validation and test ones
    from train.data.coupling import coupling_rows
    assert result["parts"]["as configured"][7] == coupling_rows(offsets, weights, slices, [7])[7]
    first4 = transfer_and_regression(weights[:4], offsets[:4], weights[7:9], offsets[7:9], weights[9:], offsets[9:])
    assert result["parts"]["as configured"][4]["regression_residual_mm"] == first4[1]
    # counts the machine cannot hold are refused before anything is built
    with pytest.raises(ValueError, match="GiB of memory"):
        coupling_by_training_count(tiny_cfg, [10 ** 7], ict, workers=1, progress=False)


def test_the_measured_coupling_grows_with_the_training_count_toward_what_the_data_holds():
    """Offsets linear in the identity weights plus per-person noise: with few training identities the ridge fits
    the noise too and the coupling reads low; with many it approaches the noise-only residual."""
    rng = np.random.default_rng(0)
    modes, vertices = 10, 50
    weights = rng.normal(size=(2300, modes))
    basis = rng.normal(size=(modes, 1, vertices, 3)) * 0.01  # cm per unit weight
    noise = rng.normal(size=(2300, 1, vertices, 3)) * 0.02
    offsets = np.einsum("nm,mevc->nevc", weights, basis) + noise
    val, test = slice(2000, 2150), slice(2150, 2300)
    noise_only = float(np.linalg.norm(noise[test], axis=-1).mean() * 10)
    transfer, regression = {}, {}
    for n in (15, 2000):
        transfer[n], regression[n], _ = transfer_and_regression(weights[:n], offsets[:n], weights[val], offsets[val],
                                                                weights[test], offsets[test])
        assert regression[n] >= noise_only * 0.97
    assert transfer[15] - regression[15] < transfer[2000] - regression[2000] - 0.05
    assert regression[2000] < noise_only * 1.02  # at 2000 identities the ridge leaves little more than the noise
