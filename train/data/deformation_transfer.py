"""Deformation transfer (Sumner & Popovic 2004) of template blendshapes onto another face of the same topology.

Each triangle's deformation gradient from the template's neutral to its expression (the 3x3 map taking the
neutral's edges and scaled normal to the expression's, Sumner's fourth-vertex construction) is applied to the
target face's own triangles, and the target's displacements are solved for in the least-squares sense, in the
gradient-domain form: L d = div(g), with L the target's cotangent Laplacian (one sparse factorisation per target
face) and g each triangle's wanted displacement gradient (one solve per blendshape and coordinate). Vertices that
no blendshape moves on the template (the back of the head) are held fixed, which pins the solution.

What follows from the construction, and is tested:
- the template transferred onto itself reproduces its blendshapes (to solver rounding);
- a uniformly scaled target gets offsets scaled by the same factor (cotangent weights do not change with scale);
- a rigidly moved target gets rigidly moved offsets: the target is first aligned to the template (Kabsch),
  the transfer done in the template's frame, and the offsets rotated back.
A rigid rotation of the template (a jaw opening) transfers as the same rotation of the target, so rigid parts stay
rigid; what is identity-specific is how soft tissue stretches over a differently shaped face.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import splu


def _edges_and_normal(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """(T, 3, 3): columns e1 = v1 - v0, e2 = v2 - v0 and Sumner's fourth vertex n = e1 x e2 / sqrt(|e1 x e2|)."""
    v0, v1, v2 = (vertices[triangles[:, k]] for k in range(3))
    e1, e2 = v1 - v0, v2 - v0
    n = np.cross(e1, e2)
    n = n / np.sqrt(np.linalg.norm(n, axis=1, keepdims=True))
    return np.stack([e1, e2, n], axis=2)


def gradient_operator(vertices: np.ndarray, triangles: np.ndarray) -> tuple[sp.csr_matrix, np.ndarray]:
    """(3T, V) sparse operator taking per-vertex scalars to each triangle's (in-plane) gradient, and the areas."""
    p = [vertices[triangles[:, k]] for k in range(3)]
    normal = np.cross(p[1] - p[0], p[2] - p[0])
    double_area = np.linalg.norm(normal, axis=1)
    unit = normal / double_area[:, None]
    # grad phi_k = unit x (opposite edge, counter-clockwise) / (2 area)
    grads = [np.cross(unit, p[(k + 2) % 3] - p[(k + 1) % 3]) / double_area[:, None] for k in range(3)]
    t = len(triangles)
    rows = np.repeat(np.arange(3 * t).reshape(t, 3)[:, None, :], 3, axis=1)  # (T, corner, dim)
    cols = np.repeat(triangles[:, :, None], 3, axis=2)
    vals = np.stack(grads, axis=1)
    g = sp.csr_matrix((vals.ravel(), (rows.ravel(), cols.ravel())), shape=(3 * t, len(vertices)))
    return g, double_area / 2


def rigid_alignment(points: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rotation R and centroids (c_points, c_reference) with R (points - c_points) ~ reference - c_reference."""
    cp, cr = points.mean(0), reference.mean(0)
    u, _, vt = np.linalg.svd((points - cp).T @ (reference - cr))
    d = np.sign(np.linalg.det(vt.T @ u.T))
    return vt.T @ np.diag([1.0, 1.0, d]) @ u.T, cp, cr


class DeformationTransfer:
    """Transfers offsets defined on `source_neutral` onto other faces over one connected `surface` (vertex indices
    into the full mesh) triangulated by `triangles` (indices into the full mesh, every corner on the surface)."""

    def __init__(self, source_neutral: np.ndarray, triangles: np.ndarray, surface: np.ndarray,
                 fixed: np.ndarray):
        self.surface = np.asarray(surface, np.int64)
        local = np.full(len(source_neutral), -1, np.int64)
        local[self.surface] = np.arange(len(self.surface))
        self.triangles = local[np.asarray(triangles, np.int64)]
        if (self.triangles < 0).any():
            raise ValueError("every triangle corner must lie on the transfer surface")
        fixed = np.asarray(fixed, bool)
        if fixed.shape != self.surface.shape or not fixed.any():
            raise ValueError("`fixed` must mark at least one surface vertex (one flag per surface vertex)")
        self.fixed, self.free = np.flatnonzero(fixed), np.flatnonzero(~fixed)
        self.source = np.asarray(source_neutral, np.float64)[self.surface]
        self._source_frames_inv = np.linalg.inv(_edges_and_normal(self.source, self.triangles))

    def source_gradients(self, offsets: np.ndarray) -> np.ndarray:
        """(K, T, 3, 3) deformation gradients minus the identity, one per template offset field (K, V, 3)."""
        offsets = np.asarray(offsets, np.float64)[:, self.surface]
        rest = _edges_and_normal(self.source, self.triangles)
        moved = np.stack([_edges_and_normal(self.source + o, self.triangles) for o in offsets])
        return (moved - rest[None]) @ self._source_frames_inv[None]

    def transfer(self, target_neutral: np.ndarray, source_gradients: np.ndarray) -> np.ndarray:
        """(K, S, 3) float64 offsets over the surface of the target for source_gradients (K, T, 3, 3)."""
        target = np.asarray(target_neutral, np.float64)[self.surface]
        rotation, c_target, c_source = rigid_alignment(target, self.source)
        aligned = (target - c_target) @ rotation.T + c_source
        grad, area = gradient_operator(aligned, self.triangles)
        weighted = grad.T.multiply(np.repeat(area, 3)[None, :]).tocsr()  # G^T A
        laplacian = (weighted @ grad).tocsc()
        k, t = source_gradients.shape[:2]
        # row c of (F - I) is the wanted gradient of displacement coordinate c; G^T drops its normal part
        wanted = source_gradients.transpose(1, 3, 2, 0).reshape(3 * t, 3 * k)  # [t*3+dim, c*k+shape]
        rhs = weighted @ wanted
        solution = np.zeros((len(self.surface), 3 * k))
        factor = splu(laplacian[self.free][:, self.free].tocsc(), permc_spec="COLAMD")
        solution[self.free] = factor.solve(np.ascontiguousarray(rhs[self.free]))
        offsets = solution.reshape(len(self.surface), 3, k).transpose(2, 0, 1)
        return offsets @ rotation  # back from the template's frame into the target's
