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

    @torch.no_grad()
    def reconstruct(self, meshes: torch.Tensor) -> torch.Tensor:
        return self.coder.decode(self.coder.encode(meshes))


class BilinearModel:
    def __init__(self, train_meshes: np.ndarray, id_rank: int = 100, exp_rank: int = 20, iterations: int = 10):
        """train_meshes: (N_id, N_exp, V, 3)."""
        n_id, n_exp = train_meshes.shape[:2]
        x = train_meshes.reshape(n_id, n_exp, -1).astype(np.float64)
        self.mean = x.mean((0, 1))
        x = x - self.mean
        self.id_rank, self.exp_rank = min(id_rank, n_id), min(exp_rank, n_exp)
        # HOSVD: leading left singular vectors of the identity and expression unfoldings (via small Gram matrices)
        by_id, by_exp = x.reshape(n_id, -1), x.transpose(1, 0, 2).reshape(n_exp, -1)
        u_id = np.linalg.eigh(by_id @ by_id.T)[1][:, ::-1][:, :self.id_rank]
        u_exp = np.linalg.eigh(by_exp @ by_exp.T)[1][:, ::-1][:, :self.exp_rank]
        # two contractions, not one three-operand einsum (which loops over every index at once: hours at 200 ids)
        core = np.einsum("aek,eb->abk", (u_id.T @ by_id).reshape(self.id_rank, n_exp, -1), u_exp).reshape(
            self.id_rank * self.exp_rank, -1)
        # Every model mesh lies in the span of the core's rows: fit in that (R_id*R_exp)-d span, not in 3V.
        evals, evecs = np.linalg.eigh(core @ core.T)
        keep = evals > evals.max() * 1e-12
        self.span = (evecs[:, keep].T @ core) / np.sqrt(evals[keep])[:, None]  # orthonormal rows
        self.core = (core @ self.span.T).reshape(self.id_rank, self.exp_rank, -1)  # (R_id, R_exp, S)
        self.w_exp_init = u_exp.mean(0)
        self.iterations = iterations

    def fit(self, mesh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(w_id, w_exp) minimising the squared error to mesh (V, 3), by alternating least squares."""
        y = self.span @ (mesh.reshape(-1).astype(np.float64) - self.mean)
        w_exp = self.w_exp_init.copy()
        for _ in range(self.iterations):
            w_id = np.linalg.lstsq(np.einsum("abs,b->sa", self.core, w_exp), y, rcond=None)[0]
            w_exp = np.linalg.lstsq(np.einsum("abs,a->sb", self.core, w_id), y, rcond=None)[0]
        return w_id, w_exp

    def reconstruct(self, meshes: np.ndarray) -> np.ndarray:
        coords = np.stack([np.einsum("abs,a,b->s", self.core, *self.fit(m)) for m in meshes])
        return (self.mean + coords @ self.span).reshape(meshes.shape).astype(np.float32)
