"""The two shapes of face data every set speaks, synthetic or real, so exporters and trainers take either."""
from __future__ import annotations

from typing import Protocol, Sequence

import numpy as np

from core.template import FaceTemplate


class ExpressionMeshSource(Protocol):
    """FaceScape-like: identities x holistic expressions, one registered mesh (and texture) per pair."""

    template: FaceTemplate
    identity_ids: Sequence[str]
    expression_names: Sequence[str]  # FaceScape names, e.g. '1_neutral'

    def mesh(self, identity: int, expression: int) -> np.ndarray:
        """(V, 3) float32 vertices in centimetres."""

    def texture(self, identity: int, expression: int) -> np.ndarray | None:
        """(H, W, 3) uint8 UV albedo of the [0,1] UV tile (row 0 = v 1, top), or None when the set has none."""


class ActionUnitFrameSource(Protocol):
    """BP4D-like: frames of identities, each with FACS action-unit intensities 0..5."""

    template: FaceTemplate
    au_names: Sequence[str]  # e.g. 'AU1', 'AU12'
    frame_subjects: Sequence[str]  # per frame
    frame_tasks: Sequence[str]  # per frame
    frame_numbers: np.ndarray  # (N,) int
    au_intensities: np.ndarray  # (N, A) float32, 0..5

    def mesh(self, frame: int) -> np.ndarray:
        """(V, 3) float32 vertices in centimetres."""

    def texture(self, frame: int) -> np.ndarray | None:
        """(H, W, 3) uint8 UV albedo, or None."""
