"""The shape networks of 3DFaceCAM (section 3.1), one definition for training and inference.

SupervisedAutoEncoder (Tables 3-4): an identity encoder and an expression encoder that share no parameters,
a classification layer on each embedding, and one decoder on the concatenated (mu_id, mu_exp).
IdentityGenerator / ExpressionGenerator (Table 5): G_id(z_id, z_noise) -> mu_id', G_exp(z_id, z_exp, z_noise)
-> mu_exp' (optionally also seeing mu_id'). EmbeddingDiscriminator (Table 6): one trunk on (mu_id, mu_exp) with a
real/fake head, an identity head and an expression head. Widths come from ShapeNetConfig, so the CPU-sized and the
paper-sized models are the same code.

The SAE sees meshes through a MeshCoder: a fixed, affine map between flattened vertices (3V) and the network's
input space. The paper config uses it only to normalise (mean face, one scale); the quick CPU config also
projects onto the leading principal components of the training meshes, so the first layer is small. Either
way the decoder's output goes back through the coder, and a generated mesh always has every vertex.
"""
from __future__ import annotations

import torch
from torch import nn

from .network_configs import ShapeNetConfig


def mlp(sizes: list[int], final_activation: bool = False) -> nn.Sequential:
    """Linear layers with LeakyReLU(0.2) between them (the paper's choice throughout)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2 or final_activation:
            layers.append(nn.LeakyReLU(0.2))
    return nn.Sequential(*layers)


class MeshCoder(nn.Module):
    """Fixed affine map: code = ((x - mean) @ basis.T) / scale, x = (code * scale) @ basis + mean.

    With no basis it only normalises (code = (x - mean) / scale). Buffers, not parameters: never trained."""

    def __init__(self, num_vertices: int, code_dim: int | None = None):
        super().__init__()
        d = 3 * num_vertices
        self.register_buffer("mean", torch.zeros(d))
        self.register_buffer("scale", torch.ones(()))
        self.register_buffer("basis", torch.zeros(code_dim, d) if code_dim else torch.zeros(0, d))

    @torch.no_grad()
    def fit(self, meshes: torch.Tensor) -> "MeshCoder":
        """Mean, scale and (if code_dim) the leading principal directions of training meshes (N, V, 3)."""
        centred = meshes.reshape(len(meshes), -1).to(torch.float64, copy=True)  # never the caller's tensor
        mean = centred.mean(0)
        centred -= mean  # in place: at 4,000 meshes each float64 copy is 2.6 GB
        self.mean.copy_(mean)
        k = len(self.basis)
        if k:
            if k > min(centred.shape):
                raise ValueError(f"code_dim {k} exceeds the rank the {len(centred)} training meshes can give")
            # right singular vectors via the small Gram matrix: N x N instead of 3V x 3V
            evals, evecs = torch.linalg.eigh(centred @ centred.T)
            order = torch.argsort(evals, descending=True)[:k]
            basis = (evecs[:, order].T @ centred) / evals[order].clamp_min(1e-12).sqrt()[:, None]
            self.basis.copy_(basis)
            codes = centred @ basis.T
            self.scale.copy_(codes[:, 0].std())
        else:
            self.scale.copy_(centred.std())
        return self

    def encode(self, meshes: torch.Tensor) -> torch.Tensor:
        x = meshes.reshape(meshes.shape[0], -1) - self.mean
        if len(self.basis):
            x = x @ self.basis.T
        return x / self.scale

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        if len(self.basis):
            return torch.addmm(self.mean, codes * self.scale, self.basis).reshape(codes.shape[0], -1, 3)
        return torch.addcmul(self.mean, codes, self.scale).reshape(codes.shape[0], -1, 3)  # one pass, not two


PACKED_BATCH_HINT = 10  # the layout the packed last layer is made for: an intensity sweep's usual size


class MeshDecoder(nn.Module):
    """The half of the SAE that generation needs: the shared decoder and the coder. Inference loads only these
    (the paper-size encoders alone hold 2 x 82 M parameters); the SAE extends it with the same parameter names."""

    PARTS = ("coder.", "decoder.", "decoder_skip.")  # the prefixes of its state dict: what an export keeps of an SAE

    def __init__(self, cfg: ShapeNetConfig):
        super().__init__()
        self.cfg = cfg
        self.coder = MeshCoder(cfg.num_vertices, cfg.code_dim)
        self.decoder = mlp([cfg.id_dim + cfg.exp_dim, *cfg.decoder, cfg.input_dim])
        self.decoder_skip = nn.Linear(cfg.id_dim + cfg.exp_dim, cfg.input_dim) if cfg.linear_skip else None
        self._packed_last: tuple[str, torch.Tensor, torch.Tensor] | None = None  # (layout, weight, bias)

    def prepare_for_inference(self, batch_hint: int = PACKED_BATCH_HINT) -> "MeshDecoder":
        """Pack the last layer's weight for oneDNN once (CPU, when available), laid out for batches of about
        `batch_hint` meshes. That layer (up to 26,719 x 3 outputs, 331 MB at paper size) dominates: packed for 10,
        one mesh took 11-14 ms and a 10-mesh sweep 13-17 ms here; the generic oneDNN layout gave 10-14 and 21-32 ms,
        BLAS 19 and 45-71 ms. One packed copy only (a second layout would double the memory). Training never uses it."""
        last = self.decoder[-1]
        self._packed_last = None
        if torch.backends.mkldnn.is_available() and last.weight.device.type == "cpu":
            weight, bias = last.weight.detach(), last.bias.detach()
            reorder = getattr(torch.ops.mkldnn, "_reorder_linear_weight", None)
            if reorder is not None and hasattr(torch.ops.mkldnn, "_linear_pointwise"):
                self._packed_last = ("batch", reorder(weight, batch_hint), bias.clone())  # snapshots, both
            else:  # older builds: the generic oneDNN layout
                self._packed_last = ("generic", weight.to_mkldnn(), bias.to_mkldnn())
        return self.eval()

    def decode(self, mu_id: torch.Tensor, mu_exp: torch.Tensor) -> torch.Tensor:
        """Embeddings -> meshes (B, V, 3), every vertex."""
        embedding = torch.cat([mu_id, mu_exp], dim=1)
        hidden = self.decoder[:-1](embedding)
        if self._packed_last is not None and not self.training and not torch.is_grad_enabled():
            kind, weight, bias = self._packed_last
            if kind == "batch":
                out = torch.ops.mkldnn._linear_pointwise(hidden.contiguous(), weight, bias, "none", [], "")
            else:
                out = torch._C._nn.mkldnn_linear(hidden.contiguous().to_mkldnn(), weight, bias).to_dense()
        else:
            out = self.decoder[-1](hidden)
        if self.decoder_skip is not None:
            out = out + self.decoder_skip(embedding)
        return self.coder.decode(out)

    def decode_code(self, embedding: torch.Tensor) -> torch.Tensor:
        """Training pass: (mu_id, mu_exp) concatenated -> the coder's space (no packed layer, no coder)."""
        out = self.decoder(embedding)
        return out if self.decoder_skip is None else out + self.decoder_skip(embedding)


class SupervisedAutoEncoder(MeshDecoder):
    def __init__(self, cfg: ShapeNetConfig):
        super().__init__(cfg)
        self.id_encoder = mlp([cfg.input_dim, *cfg.id_encoder, cfg.id_dim])
        self.exp_encoder = mlp([cfg.input_dim, *cfg.exp_encoder, cfg.exp_dim])
        self.id_encoder_skip = nn.Linear(cfg.input_dim, cfg.id_dim) if cfg.linear_skip else None
        self.exp_encoder_skip = nn.Linear(cfg.input_dim, cfg.exp_dim) if cfg.linear_skip else None
        self.id_classifier = nn.Linear(cfg.id_dim, cfg.num_identities)
        self.exp_classifier = nn.Linear(cfg.exp_dim, cfg.num_expressions)

    def encode(self, meshes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Meshes (B, V, 3) -> (mu_id (B, id_dim), mu_exp (B, exp_dim))."""
        return self.encode_code(self.coder.encode(meshes))

    def encode_code(self, code: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encode_identity(code), self.encode_expression(code)

    def encode_identity(self, code: torch.Tensor) -> torch.Tensor:
        """mu_id alone: training passes that need one embedding skip the other encoder."""
        mu_id = self.id_encoder(code)
        return mu_id if self.id_encoder_skip is None else mu_id + self.id_encoder_skip(code)

    def encode_expression(self, code: torch.Tensor) -> torch.Tensor:
        mu_exp = self.exp_encoder(code)
        return mu_exp if self.exp_encoder_skip is None else mu_exp + self.exp_encoder_skip(code)

    def forward(self, code: torch.Tensor) -> dict[str, torch.Tensor]:
        """Training pass on coded meshes (coder.encode once per data set: the coder is fixed)."""
        mu_id, mu_exp = self.encode_code(code)
        return {"recon_code": self.decode_code(torch.cat([mu_id, mu_exp], dim=1)),
                "mu_id": mu_id, "mu_exp": mu_exp,
                "id_logits": self.id_classifier(mu_id), "exp_logits": self.exp_classifier(mu_exp)}


class EmbeddingScale(nn.Module):
    """The per-dimension mean and spread of the SAE's training embeddings (fixed buffers). The GANs work in
    standardised units: the SAE's raw embeddings spread over tens of units, which lets G_id satisfy D's heads far
    from the real clusters."""

    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    @torch.no_grad()
    def fit(self, embeddings: torch.Tensor) -> "EmbeddingScale":
        self.mean.copy_(embeddings.mean(0))
        self.std.copy_(embeddings.std(0).clamp_min(1e-6))
        return self

    def standardise(self, mu: torch.Tensor) -> torch.Tensor:
        return (mu - self.mean) / self.std

    def restore(self, standard: torch.Tensor) -> torch.Tensor:
        return standard * self.std + self.mean


class IdentityGenerator(nn.Module):
    """G_id(z_id, z_noise) -> mu_id' (in the SAE's units)."""

    def __init__(self, cfg: ShapeNetConfig):
        super().__init__()
        widths = cfg.generator if cfg.id_generator is None else cfg.id_generator
        self.net = mlp([cfg.z_id_dim + cfg.z_noise_dim, *widths, cfg.id_dim])
        self.scale = EmbeddingScale(cfg.id_dim)

    def forward(self, z_id: torch.Tensor, z_noise: torch.Tensor) -> torch.Tensor:
        return self.scale.restore(self.net(torch.cat([z_id, z_noise], dim=1)))


class ExpressionGenerator(nn.Module):
    """G_exp(z_id, z_exp, z_noise) -> mu_exp': the expression as this identity performs it (in the SAE's units). With
    cfg.expression_sees_identity it takes the identity embedding mu_id' too (what G_id made for the person whose
    expression style it generates)."""

    def __init__(self, cfg: ShapeNetConfig):
        super().__init__()
        self.sees_identity = cfg.expression_sees_identity
        extra = cfg.id_dim if self.sees_identity else 0
        self.net = mlp([cfg.z_id_dim + cfg.z_exp_dim + cfg.z_noise_dim + extra, *cfg.generator, cfg.exp_dim])
        self.scale = EmbeddingScale(cfg.exp_dim)
        if self.sees_identity:
            self.id_scale = EmbeddingScale(cfg.id_dim)

    def forward(self, z_id: torch.Tensor, z_exp: torch.Tensor, z_noise: torch.Tensor,
                mu_id: torch.Tensor | None = None) -> torch.Tensor:
        inputs = [z_id, z_exp, z_noise]
        if self.sees_identity:
            if mu_id is None:
                raise ValueError("this G_exp was trained to see the identity embedding: pass mu_id (G_id's output)")
            inputs.append(self.id_scale.standardise(mu_id))
        return self.scale.restore(self.net(torch.cat(inputs, dim=1)))


class EmbeddingDiscriminator(nn.Module):
    """D(mu_id, mu_exp) -> real/fake logit, identity logits, expression logits (or AU intensities)."""

    def __init__(self, cfg: ShapeNetConfig):
        super().__init__()
        self.id_scale, self.exp_scale = EmbeddingScale(cfg.id_dim), EmbeddingScale(cfg.exp_dim)
        self.trunk = mlp([cfg.id_dim + cfg.exp_dim, *cfg.discriminator], final_activation=True)
        width = cfg.discriminator[-1] if cfg.discriminator else cfg.id_dim + cfg.exp_dim
        self.real_fake = nn.Linear(width, 1)
        self.identity = nn.Linear(width, cfg.num_identities)
        self.expression = nn.Linear(width, cfg.num_expressions)

    def forward(self, mu_id: torch.Tensor, mu_exp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = self.trunk(torch.cat([self.id_scale.standardise(mu_id), self.exp_scale.standardise(mu_exp)], dim=1))
        return self.real_fake(h).squeeze(1), self.identity(h), self.expression(h)
