"""Synthetic faces with ground truth at any intensity: ICT identities, expressions that are not linear blendshapes.

Three departures from ICT's linear model make the data worth learning (measured by `train data linearity`):

(0) Expressions that follow each face's shape. ICT's blendshapes are offsets sculpted on one generic face; added
    to another person's neutral they ignore that person's geometry. With `deformation_transfer` (the default),
    each blendshape is carried onto the identity's own neutral by deformation transfer (deformation_transfer.py):
    the skin (face, head, mouth and eye sockets: one connected surface) stretches as the template's does, over the
    identity's own triangles. Parts not joined to the skin follow what joins them: the thin layers on the eyelids
    (lashes, lacrimal fluid, eye blend and occlusion) move with their nearest skin vertex's transferred motion on
    top of ICT's own offset, so they never tear from the lids; eyeballs, teeth and gums keep ICT's offsets
    (no blendshape but the jaw's moves them) and ride the jaw rig. Deformation transfer carries the face's size
    with it (a face twice as large gets twice the offsets), so the separate size factor applies only to the
    parts outside the skin and to the jaw's travel; the jaw's rigid screw motion already acts on the identity's
    own geometry about its own hinge (the exact transfer of a rigid motion), and only its soft-tissue residual
    is transferred.
(a) Identity-specific expression style. Each identity performs each expression (or action unit) its own way:
    - gain: log-normal per (identity, expression), times a smooth function of the face shape
      (1 + c * tanh(identity_weights . u_expression)), so broad and narrow faces smile differently;
    - mixing: each ICT shape of the recipe gets its own per-identity factor;
    - asymmetry: _L and _R shapes are scaled by (1 + a) and (1 - a);
    - size transfer: expression offsets scale with the identity's face size (ICT's blendshapes are one size);
    - response curve: the blendshape weight at intensity alpha is alpha ** gamma, gamma per (identity, expression).
(b) Nonlinearity in intensity. Besides alpha ** gamma, the jaw shapes are a rigid screw motion about a hinge
    (see jaw.py): the chin follows an arc, and the hinge moves with the identity's face shape.

Everything is a pure function of (seed, identity index, expression key, intensity), computed in float64 with
a fixed summation order and rounded to float32 once: the same call gives the same bits on one machine whatever
its thread count, and agrees across machines to float32 rounding (the jaw fit uses LAPACK's SVD). Intensities
the training set never holds (0.5, 2) have exact ground truth.
"""
from __future__ import annotations

import math
import zlib
from dataclasses import asdict, dataclass, fields
from functools import cached_property, lru_cache

import numpy as np

from scipy.spatial import cKDTree

from train.data.deformation_transfer import DeformationTransfer
from train.data.expressions import JAW_SHAPES, validate_recipes
from train.data.ict import ICTFaceModel, weighted_sum
from train.data.jaw import JawRig, apply_jaw, fit_jaw_rig

# Random streams, so adding a draw to one never changes the others.
_STREAM_IDENTITY, _STREAM_STYLE, _STREAM_KEY_DIRECTION = 0, 1, 2
# The skin: one connected surface, carried over by deformation transfer. Thin layers resting on it follow it.
SKIN_REGIONS = ("face", "head_and_neck", "mouth_socket", "eye_socket_left", "eye_socket_right")
ATTACHED_REGIONS = ("lacrimal_fluid_left", "lacrimal_fluid_right", "eye_blend_left", "eye_blend_right",
                    "eye_occlusion_left", "eye_occlusion_right", "eyelashes_left", "eyelashes_right")


@dataclass(frozen=True)
class StyleConfig:
    gain_sigma: float = 0.15
    shape_gain_coupling: float = 0.2
    component_sigma: float = 0.12
    asymmetry_sigma: float = 0.12
    curvature_sigma: float = 0.15
    size_transfer: bool = True
    jaw_hinge: bool = True
    deformation_transfer: bool = True

    @classmethod
    def linear(cls) -> "StyleConfig":
        """ICT's own linear model: every identity shares every blendshape; for checks and baselines."""
        return cls(0.0, 0.0, 0.0, 0.0, 0.0, False, False, False)

    @classmethod
    def from_dict(cls, d: dict) -> "StyleConfig":
        """Fields left out keep their defaults; raises ValueError naming a field that is unknown or malformed."""
        known = {f.name: f for f in fields(cls)}
        unknown = set(d) - set(known)
        if unknown:
            raise ValueError(f"unknown field(s) {sorted(unknown)}; known: {sorted(known)}")
        for name, value in d.items():
            if known[name].type == "bool":
                if not isinstance(value, bool):
                    raise ValueError(f"{name}: expected true or false, got {value!r}")
            elif isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise ValueError(f"{name}: expected a number in [0, 1], got {value!r}")
        return cls(**d)

    def to_dict(self) -> dict:
        return asdict(self)


def key_seed(key: str) -> int:
    """A stable integer for an expression or AU name (Python's hash() is salted per process)."""
    return zlib.crc32(key.encode("utf-8"))


@dataclass(frozen=True)
class SyntheticIdentity:
    index: int
    weights: np.ndarray  # (n_modes,) ICT identity weights ~ N(0, I)
    neutral: np.ndarray  # (V, 3) cm
    size_scale: float  # face size relative to ICT's neutral
    hinge_offset: np.ndarray  # (3,) cm: where this identity's jaw hinge sits relative to ICT's


@dataclass(frozen=True)
class ExpressionStyle:
    """How one identity performs one expression or action unit."""

    gain: float
    gamma: float
    asymmetry: float
    component_factors: dict[str, float]


class FaceSynthesizer:
    """Meshes of synthetic identities performing recipes (ICT shape -> weight) at any intensity."""

    def __init__(self, ict: ICTFaceModel, style: StyleConfig = StyleConfig(), seed: int = 0, identity_modes: int = 100):
        validate_recipes(ict.expression_names)
        self.ict = ict
        self.style = style
        self.seed = int(seed)
        if identity_modes > ict.num_identity_modes:
            raise ValueError(f"identity_modes={identity_modes}, but the ICT model has only {ict.num_identity_modes} "
                             f"identity modes (was it converted with --allow-partial?)")
        self.identity_modes = int(identity_modes)
        self._face_vertices = ict.template.region_vertices("face")
        self._reference_size = self._face_size(ict.neutral)
        self._jaw_index = {name: ict.expression_index(name) for name in JAW_SHAPES}
        # Blendshapes applied linearly; when the jaw is hinged its shapes leave this set.
        self._linear = np.array([not (style.jaw_hinge and n in self._jaw_index) for n in ict.expression_names])
        # Identities' transferred blendshapes are 17 MB each: keep the few the current caller is working on.
        self.transferred_basis = lru_cache(maxsize=4)(self._transferred_basis)
        self._brought: dict[int, SyntheticIdentity] = {}  # identities made from a mesh (identity_from_neutral)

    @cached_property
    def _template_fields(self) -> np.ndarray:
        """(53, V, 3) what each ICT shape adds linearly on the template: its blendshape, or for a hinged jaw shape
        the soft-tissue residual its rigid motion leaves."""
        fields = np.array(self.ict.expression_basis, np.float64)
        if self.style.jaw_hinge:
            for name, k in self._jaw_index.items():
                fields[k] = self.jaw_rigs[name].residual
        return fields

    @cached_property
    def _transfer(self) -> tuple[DeformationTransfer, np.ndarray, np.ndarray, np.ndarray]:
        """The skin's transfer, the template's deformation gradients, and which skin vertex each attached-layer
        vertex follows."""
        t = self.ict.template
        skin = np.concatenate([t.region_vertices(r) for r in SKIN_REGIONS])
        triangles, _ = t.triangles(np.concatenate([t.region_polygons(r) for r in SKIN_REGIONS]))
        fields = self._template_fields
        static = np.abs(self.ict.expression_basis[:, skin]).max(axis=(0, 2)) == 0
        transfer = DeformationTransfer(self.ict.neutral, triangles, skin, static)
        attached = np.concatenate([t.region_vertices(r) for r in ATTACHED_REGIONS])
        _, nearest = cKDTree(self.ict.neutral[skin].astype(np.float64)).query(
            self.ict.neutral[attached].astype(np.float64))
        return transfer, transfer.source_gradients(fields), attached, skin[nearest]

    def _transferred_basis(self, index: int) -> np.ndarray:
        """(53, V, 3) float32: what each ICT shape adds to identity `index`'s neutral (jaw shapes: their residual)."""
        identity = self._brought.get(index) or self.identity(index)
        transfer, gradients, attached, follows = self._transfer
        scaled = identity.size_scale * self._template_fields
        out = scaled.copy()
        skin = transfer.transfer(identity.neutral, gradients)
        out[:, transfer.surface] = skin
        out[:, attached] += skin[:, np.searchsorted(transfer.surface, follows)] - scaled[:, follows]
        return out.astype(np.float32)

    @cached_property
    def jaw_rigs(self) -> dict[str, JawRig]:
        teeth = self.ict.template.region_vertices("teeth")
        return {n: fit_jaw_rig(n, self.ict.neutral, self.ict.expression_basis[i], teeth)
                for n, i in self._jaw_index.items()}

    def _rng(self, *stream: int) -> np.random.Generator:
        # brought faces' negative indices get streams of their own, far past any sampled identity's
        return np.random.default_rng([self.seed, *(k if k >= 0 else 2 ** 48 - k for k in stream)])

    def _face_size(self, vertices: np.ndarray) -> float:
        face = vertices[self._face_vertices]
        return float(np.sqrt(((face - face.mean(0)) ** 2).sum(1).mean()))

    def identity(self, index: int) -> SyntheticIdentity:
        weights = self._rng(_STREAM_IDENTITY, index).standard_normal(self.identity_modes).astype(np.float32)
        return self._identity_of(index, weights, self.ict.identity_shape(weights))

    def _identity_of(self, index: int, weights: np.ndarray, neutral: np.ndarray) -> SyntheticIdentity:
        """The identity of this neutral: its size relative to ICT's, and where its jaw hinge sits."""
        size_scale = self._face_size(neutral) / self._reference_size if self.style.size_transfer else 1.0
        if self.style.jaw_hinge:
            rigid = self.jaw_rigs["jawOpen"].rigid_vertices
            hinge_offset = (neutral[rigid] - self.ict.neutral[rigid]).mean(0).astype(np.float64)
        else:
            hinge_offset = np.zeros(3)
        return SyntheticIdentity(int(index), weights, neutral, size_scale, hinge_offset)

    def identity_from_neutral(self, neutral: np.ndarray, index: int) -> SyntheticIdentity:
        """A face someone brings (a facecam face, a registered scan) as an identity, so the ground truth of any
        expression exists for it: its own neutral; the ICT identity weights that fit it best (least squares: the
        face-shape-dependent gains read them); size and jaw hinge measured as for sampled identities. `index` < 0
        names it in the random streams (its style draws) and must differ from other brought faces'."""
        if index >= 0:
            raise ValueError(f"index {index}: brought faces take negative indices (sampled identities own 0 and up)")
        neutral = np.asarray(neutral, np.float32)
        if neutral.shape != self.ict.neutral.shape:
            raise ValueError(f"neutral: shape {neutral.shape}, ICT-FaceKit's topology has {self.ict.neutral.shape}")
        basis = self.ict.identity_basis[:self.identity_modes].reshape(self.identity_modes, -1).astype(np.float64)
        target = (neutral - self.ict.neutral).reshape(-1).astype(np.float64)
        weights = np.linalg.solve(basis @ basis.T, basis @ target).astype(np.float32)
        identity = self._identity_of(index, weights, neutral)
        self._brought[int(index)] = identity
        self.transferred_basis.cache_clear()  # an index may name another face than before
        return identity

    def expression_style(self, identity: SyntheticIdentity, key: str, recipe: dict[str, float]) -> ExpressionStyle:
        s = self.style
        rng = self._rng(_STREAM_STYLE, identity.index, key_seed(key))
        draws = rng.standard_normal(4 + len(recipe))
        direction = np.random.default_rng([self.seed, _STREAM_KEY_DIRECTION, key_seed(key)]).standard_normal(
            len(identity.weights))
        direction /= np.linalg.norm(direction)
        shape_term = 1.0 + s.shape_gain_coupling * np.tanh(math.fsum(identity.weights * direction))
        gain = float(np.exp(s.gain_sigma * draws[0]) * shape_term)
        gamma = float(np.exp(s.curvature_sigma * draws[1]))
        asymmetry = float(np.clip(s.asymmetry_sigma * draws[2], -0.5, 0.5))
        factors = {name: float(np.exp(s.component_sigma * d)) for name, d in zip(sorted(recipe), draws[4:])}
        return ExpressionStyle(gain, gamma, asymmetry, factors)

    def shape_weights(self, identity: SyntheticIdentity, key: str, recipe: dict[str, float], intensity: float
                      ) -> np.ndarray:
        """(53,) ICT shape weights this identity uses for `key` at `intensity` (0 neutral, 1 labelled, >1 more)."""
        if intensity < 0:
            raise ValueError(f"intensity must be >= 0, got {intensity} for {key!r}")
        w = np.zeros(len(self.ict.expression_names), np.float64)
        if intensity == 0 or not recipe:
            return w
        st = self.expression_style(identity, key, recipe)
        response = intensity ** st.gamma
        for name, base in recipe.items():
            side = 1 + st.asymmetry if name.endswith("_L") else 1 - st.asymmetry if name.endswith("_R") else 1.0
            w[self.ict.expression_index(name)] += base * st.component_factors[name] * st.gain * side * response
        return w

    def mesh_from_weights(self, identity: SyntheticIdentity, weights: np.ndarray) -> np.ndarray:
        """float32 vertices for ICT shape weights: (53,) -> (V, 3), or (K, 53) -> (K, V, 3) by the same path."""
        weights = np.asarray(weights, np.float64)
        if weights.ndim == 2:
            return np.stack([self.mesh_from_weights(identity, w) for w in weights])
        if self.style.deformation_transfer:
            basis = self.transferred_basis(identity.index) if weights.any() else None
            linear = weights if not self.style.jaw_hinge else np.where(self._linear, weights, 0.0)
            mesh = weighted_sum(identity.neutral, basis, linear) if basis is not None else \
                identity.neutral.astype(np.float64)
            residuals = None if basis is None else [basis[self._jaw_index[n]] for n in JAW_SHAPES]
        else:
            offsets = weighted_sum(np.zeros_like(identity.neutral), self.ict.expression_basis,
                                   np.where(self._linear, weights, 0.0))
            mesh = identity.neutral.astype(np.float64) + identity.size_scale * offsets
            residuals = None
        if self.style.jaw_hinge:
            amounts = [float(weights[self._jaw_index[n]]) for n in JAW_SHAPES]
            if any(amounts):
                mesh = apply_jaw(mesh, [self.jaw_rigs[n] for n in JAW_SHAPES], amounts, identity.hinge_offset,
                                 identity.size_scale, residuals)
        return mesh.astype(np.float32)

    def mesh(self, identity: SyntheticIdentity, parts: list[tuple[str, dict[str, float], float]]) -> np.ndarray:
        """One mesh for a list of (key, recipe, intensity): one holistic expression, or several AUs at once."""
        weights = sum((self.shape_weights(identity, k, r, a) for k, r, a in parts),
                      np.zeros(len(self.ict.expression_names)))
        return self.mesh_from_weights(identity, weights)
