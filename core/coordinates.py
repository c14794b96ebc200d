"""Units and axes: templates store vertices in their own units with y up (ICT: centimetres); glTF wants metres
with y up, Blender metres with z up."""
from __future__ import annotations

import numpy as np

UNIT_TO_METRES = {"cm": 0.01, "mm": 0.001, "m": 1.0}


def metres_per_unit(units: str) -> float:
    if units not in UNIT_TO_METRES:
        raise ValueError(f"units {units!r}: expected one of {sorted(UNIT_TO_METRES)}")
    return UNIT_TO_METRES[units]


def y_up_to_z_up_metres(vertices: np.ndarray, units: str) -> np.ndarray:
    """(V, 3) y-up vertices in `units` -> (V, 3) float32 z-up metres, facing -y (Blender's front view)."""
    v = np.asarray(vertices, dtype=np.float32) * np.float32(metres_per_unit(units))
    return np.stack([v[:, 0], -v[:, 2], v[:, 1]], axis=1)


def z_up_metres_to_y_up(vertices: np.ndarray, units: str) -> np.ndarray:
    """The inverse of y_up_to_z_up_metres: (V, 3) z-up metres (Blender's) -> (V, 3) float32 y-up vertices in `units`."""
    v = np.asarray(vertices, dtype=np.float32).reshape(-1, 3) / np.float32(metres_per_unit(units))
    return np.stack([v[:, 0], v[:, 2], -v[:, 1]], axis=1)
