"""Loss terms the shape trainers share: the expression head is a classifier for holistic labels and a regressor
for action-unit intensities (scaled to 0..1), and each head is scored against its own targets."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from train.data.expressions import AU_MAX_INTENSITY


def expression_loss(outputs: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, accuracy). Class indices: cross-entropy, argmax accuracy. AU intensities / 5 (float, (B, A)): mean
    squared error counted in intensity levels (so an error of one level weighs about as much as a confused class),
    and the fraction of units predicted within half a level."""
    if targets.dtype.is_floating_point:
        levels = (outputs - targets) * AU_MAX_INTENSITY
        return (levels ** 2).mean(), (levels.abs() < 0.5).float().mean()
    return F.cross_entropy(outputs, targets), (outputs.argmax(1) == targets).float().mean()
