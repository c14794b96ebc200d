"""Intensity's two meanings (see core/shape_control.py for the measurements): "calibrated", a face at intensity alpha
is the identity's neutral plus alpha times each expression's change from it, so the displacement follows alpha
and extrapolates past 1; "paper", z_exp scaled by alpha as in the paper. Plain arithmetic on codes, whatever
array type they are (numpy for generation, torch for training and evaluation)."""
from __future__ import annotations

INTENSITY_MODES = ("calibrated", "paper")


def blend_terms(neutral, units: list[tuple[object, float]], intensity: float) -> list[tuple[object, float]]:
    """The calibrated face as (z_exp, weight) terms: neutral + alpha * sum_j w_j (G(unit_j) - G(neutral)), i.e.
    the neutral code weighted 1 - alpha * sum_j w_j and each unit code alpha * w_j."""
    total = sum(w for _, w in units)
    return [(neutral, 1.0 - intensity * total)] + [(code, intensity * w) for code, w in units]
