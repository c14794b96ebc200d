"""The jaw as a rigid screw motion about a hinge, fitted to ICT's linear jaw blendshapes.

ICT's jawOpen moves the chin along a straight line: at half weight it sits halfway along the chord, and at
weight 2 it overshoots along the same line. A real jaw rotates about the temporomandibular joint, so the chin
follows an arc. We fit the rigid motion (rotation about an axis through a point, plus a slide along that
axis) that the lower teeth perform in each jaw blendshape, and split the blendshape into
  skin weight x rigid motion  +  linear soft-tissue residual,
so that at weight 1 the blendshape is reproduced exactly on the template, while other weights (and other
identities, whose hinge moves with their face shape) follow the arc.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Lower-teeth vertices moving at least this fraction of the maximum tooth motion define the rigid jaw.
RIGID_FRACTION = 0.5


@dataclass(frozen=True)
class ScrewMotion:
    """Rotation by `angle` (radians) about unit `axis` through `pivot`, then `slide` (cm) along the axis;
    a pure translation when angle is ~0 (then `translation` is used)."""

    axis: np.ndarray
    pivot: np.ndarray
    angle: float
    slide: float
    translation: np.ndarray

    def apply(self, points: np.ndarray, amount: float, pivot_offset: np.ndarray | None = None,
              scale: float = 1.0) -> np.ndarray:
        """Move points (V, 3) by `amount` of this motion (1 = the fitted motion), in float64. `scale` sizes the
        translation and the slide for a larger or smaller face; the angle stays."""
        points = np.asarray(points, np.float64)
        if abs(self.angle) < 1e-6:
            return points + (amount * scale) * self.translation
        pivot = self.pivot if pivot_offset is None else self.pivot + pivot_offset
        theta = amount * self.angle
        k = self.axis
        kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
        rot = np.eye(3) + np.sin(theta) * kx + (1 - np.cos(theta)) * kx @ kx
        rel = points - pivot
        # Elementwise rather than rel @ rot.T, so no BLAS kernel decides the summation order.
        rotated = rel[:, :1] * rot[:, 0] + rel[:, 1:2] * rot[:, 1] + rel[:, 2:3] * rot[:, 2]
        return rotated + pivot + (amount * self.slide * scale) * k


def fit_screw(points: np.ndarray, moved: np.ndarray) -> ScrewMotion:
    """Least-squares rigid motion (Kabsch) from points to moved, expressed as a screw about a hinge axis."""
    p, q = points.astype(np.float64), moved.astype(np.float64)
    pc, qc = p.mean(0), q.mean(0)
    u, _, vt = np.linalg.svd((p - pc).T @ (q - qc))
    d = np.sign(np.linalg.det(vt.T @ u.T))
    rot = vt.T @ np.diag([1, 1, d]) @ u.T
    t = qc - rot @ pc
    angle = float(np.arccos(np.clip((np.trace(rot) - 1) / 2, -1, 1)))
    if angle < 1e-6:
        return ScrewMotion(np.array([1.0, 0, 0]), np.zeros(3), 0.0, 0.0, t)
    axis = np.array([rot[2, 1] - rot[1, 2], rot[0, 2] - rot[2, 0], rot[1, 0] - rot[0, 1]]) / (2 * np.sin(angle))
    slide = float(axis @ t)
    # The pivot c solves (I - R) c = t - slide*axis; (I - R) is singular along the axis, so take the
    # least-squares point closest to the rigid points' centroid.
    c, *_ = np.linalg.lstsq(np.eye(3) - rot, t - slide * axis, rcond=None)
    c = c + axis * (axis @ (pc - c))
    return ScrewMotion(axis, c, angle, slide, t)


@dataclass(frozen=True)
class JawRig:
    """One jaw blendshape split into a screw motion with per-vertex skin weights and a linear residual."""

    name: str
    motion: ScrewMotion
    skin_weights: np.ndarray  # (V,) in [0, 1]
    residual: np.ndarray  # (V, 3) cm; what the rigid motion does not explain at weight 1
    rigid_vertices: np.ndarray  # indices of the lower-teeth vertices the motion was fitted to


def fit_jaw_rig(name: str, neutral: np.ndarray, offsets: np.ndarray, teeth_vertices: np.ndarray) -> JawRig:
    """Fit a JawRig to one ICT jaw blendshape (offsets from neutral, (V, 3))."""
    tooth_motion = np.linalg.norm(offsets[teeth_vertices], axis=1)
    rigid = teeth_vertices[tooth_motion > RIGID_FRACTION * tooth_motion.max()]
    motion = fit_screw(neutral[rigid], neutral[rigid] + offsets[rigid])
    rigid_offsets = motion.apply(neutral, 1.0) - neutral
    weights = np.einsum("vc,vc->v", offsets, rigid_offsets) / np.maximum(
        np.einsum("vc,vc->v", rigid_offsets, rigid_offsets), 1e-12)
    # Vertices the blendshape barely moves get no rigid share: their small offsets stay linear.
    moving = np.linalg.norm(offsets, axis=1) > 1e-4
    weights = np.where(moving, np.clip(weights, 0.0, 1.0), 0.0)
    residual = offsets - weights[:, None] * rigid_offsets
    return JawRig(name, motion, weights.astype(np.float32), residual.astype(np.float32), rigid)


def apply_jaw(points: np.ndarray, rigs: list[JawRig], amounts: list[float], pivot_offset: np.ndarray | None = None,
              scale: float = 1.0, residuals: list[np.ndarray] | None = None) -> np.ndarray:
    """Linear-blend-skin several jaw motions onto points (V, 3), in float64: each vertex moves by its skin weight
    times the rigid displacement, plus the residual scaled by the amount (soft tissue follows linearly) and by
    `scale` (the face's size relative to ICT's). `residuals`, one per rig, replace the rigs' own residuals with
    ones already made for this face (deformation transfer), which are then not scaled again."""
    points = np.asarray(points, np.float64)
    out = points.copy()
    for k, (rig, amount) in enumerate(zip(rigs, amounts)):
        if amount == 0:
            continue
        rigid_offsets = rig.motion.apply(points, amount, pivot_offset, scale) - points
        residual = ((amount * scale) * rig.residual.astype(np.float64) if residuals is None
                    else amount * np.asarray(residuals[k], np.float64))
        out += rig.skin_weights[:, None] * rigid_offsets + residual
    return out
