"""The linear baselines the SAE is compared with, fitted on the same training meshes.

PCA: the leading principal components of the training meshes (the same latent size as the SAE, 130).
Bilinear: FaceScape's kind of model, a Tucker decomposition of the (identity x expression x 3V) training tensor,
mesh = mean + core x1 w_id x2 w_exp; a new mesh is fitted by alternating least squares on (w_id, w_exp),
without its labels, as the SAE encodes a mesh without them.
"""
from __future__ import annotations

import numpy as np
import torch

from core.shape_networks import MeshCoder


class PCAModel:
    def __init__(self, train_meshes: torch.Tensor, components: int = 130):
        k = min(components, len(train_meshes) - 1)
        self.components = k
        self.coder = MeshCoder(train_meshes.shape[1], k).to(train_meshes.device).fit(train_meshes)

    @classmethod
    def leading(cls, coder: MeshCoder, components: int = 130) -> "PCAModel":
        """The PCA of a coder already fitted on the same training meshes (an SAE's input code), cut to its leading
        `components`: the same basis a fit would give, without the minute a fit costs at 4,000 meshes."""
        k = min(components, len(coder.basis))
        model = cls.__new__(cls)
        model.components = k
        model.coder = MeshCoder(coder.mean.numel() // 3, k)
        model.coder.load_state_dict({"mean": coder.mean, "scale": coder.scale, "basis": coder.basis[:k]})
        return model

    @torch.no_grad()
    def reconstruct(self, meshes: torch.Tensor) -> torch.Tensor:
        return self.coder.decode(self.coder.encode(meshes))


class BilinearModel:
    def __init__(self, train_meshes: np.ndarray, id_rank: int = 100, exp_rank: int = 20, iterations: int = 10):
        """train_meshes: (N_id, N_exp, V, 3)."""
        n_id, n_exp = train_meshes.shape[:2]
        x = train_meshes.reshape(n_id, n_exp, -1).astype(np.float64)
        self.mean = x.mean((0, 1))
        x -= self.mean  # in place: x is 2.6 GB at 200 identities
        self.id_rank, self.exp_rank = min(id_rank, n_id), min(exp_rank, n_exp)
        # HOSVD: leading left singular vectors of the identity and expression unfoldings (via small Gram matrices)
        by_id = x.reshape(n_id, -1)  # a view: at 200 identities x is 2.6 GB, so no transposed copy of it either
        # contiguous copies: a product with a reversed (strided) view leaves BLAS for numpy's own loop (a minute here)
        u_id = np.ascontiguousarray(np.linalg.eigh(by_id @ by_id.T)[1][:, ::-1][:, :self.id_rank])
        u_exp = np.ascontiguousarray(np.linalg.eigh(np.einsum("iek,ifk->ef", x, x))[1][:, ::-1][:, :self.exp_rank])
        # two matrix products (tensordot: BLAS), not one three-operand einsum (hours at 200 ids) nor einsum's loops
        core = np.tensordot((u_id.T @ by_id).reshape(self.id_rank, n_exp, -1), u_exp, axes=([1], [0]))
        self.core = np.ascontiguousarray(core.transpose(0, 2, 1)).reshape(self.id_rank * self.exp_rank, -1)
        # The fit needs only inner products with the core's rows: their Gram tensor K[a,b,c,d] = <core[a,b],
        # core[c,d]> once here, and each mesh's <core[a,b], y> (earlier versions projected everything onto an
        # orthonormal basis of the rows first: two more products of this size, a minute at 200 identities)
        self.gram = (self.core @ self.core.T).reshape(self.id_rank, self.exp_rank, self.id_rank, self.exp_rank)
        self.w_exp_init = u_exp.mean(0)
        self.iterations = iterations

    def fit(self, meshes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(w_id (M, R_id), w_exp (M, R_exp)) minimising the squared error to each mesh (M, V, 3), by alternating
        least squares, all meshes at once: each half-step's normal equations are assembled from the core's Gram
        tensor K[a,b,c,d] = <core[a,b], core[c,d]>, so no (S x R) design matrix is ever built per mesh."""
        y = meshes.reshape(len(meshes), -1).astype(np.float64) - self.mean
        gram, n_id, n_exp = self.gram, self.id_rank, self.exp_rank
        projected = (y @ self.core.T).reshape(len(y), n_id, n_exp)  # <core[a,b], y>
        w_exp = np.repeat(self.w_exp_init[None], len(y), axis=0)
        for _ in range(self.iterations):
            lhs = np.einsum("abcd,mb,md->mac", gram, w_exp, w_exp, optimize=True)
            w_id = _solve(lhs, np.einsum("mab,mb->ma", projected, w_exp))
            lhs = np.einsum("abcd,ma,mc->mbd", gram, w_id, w_id, optimize=True)
            w_exp = _solve(lhs, np.einsum("mab,ma->mb", projected, w_id))
        return w_id, w_exp

    def reconstruct(self, meshes: np.ndarray, chunk: int = 64) -> np.ndarray:
        out = []
        for start in range(0, len(meshes), chunk):
            w_id, w_exp = self.fit(meshes[start:start + chunk])
            coefficients = (w_id[:, :, None] * w_exp[:, None, :]).reshape(len(w_id), -1)
            out.append(self.mean + coefficients @ self.core)
        return np.concatenate(out).reshape(meshes.shape).astype(np.float32)


def _solve(lhs: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Batched least squares through the normal equations, with a ridge at rounding level for the rank-deficient
    (a zero w gives a zero left-hand side)."""
    ridge = 1e-12 * np.trace(lhs, axis1=1, axis2=2)[:, None, None] + 1e-300
    return np.linalg.solve(lhs + ridge * np.eye(lhs.shape[1]), rhs[..., None])[..., 0]
