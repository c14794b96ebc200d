from train.data.linearity import COLUMNS, measure_columns, report_markdown


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
