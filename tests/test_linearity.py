import dataclasses

from train.data.face_synth import StyleConfig
from train.data.linearity import measure, report_markdown


def test_linear_models_leave_a_residual_only_on_styled_data(tiny_cfg, ict):
    cfg = dataclasses.replace(tiny_cfg, facescape=dataclasses.replace(tiny_cfg.facescape, num_identities=8))
    styled = measure(cfg, ict)
    linear = measure(dataclasses.replace(cfg, style=StyleConfig.linear()), ict)
    assert styled["perfect_model_residual_mm"] == 0.0
    for key in ("transfer_residual_mm", "regression_residual_mm"):
        assert styled[key] > 0.1, key  # mm, a residual a perfect model would not leave
        assert linear[key] < 1e-3, key  # the measurement itself is exact on linear data
        assert styled[key] < styled["expression_magnitude_mm"]
    assert styled["intensity_residual_mm"]["2.0"] > 0.1 > linear["intensity_residual_mm"]["2.0"]
    text = report_markdown(styled, linear, "python -m train data linearity --config tiny")
    assert "| linear transfer" in text and f"{styled['transfer_residual_mm']:.3f}" in text
