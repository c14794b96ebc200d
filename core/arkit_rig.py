"""The learned ARKit rig: a person's 51 ARKit keys from their neutral face (numpy only; fitted by train/arkit_rig.py).

    phi = identity_basis @ (neutral[identity_vertices] - identity_mean)          (J,) identity coordinates
    key_k = (coefficients[k, 0] + phi @ coefficients[k, 1:]) @ offset_basis      on the moving vertices

Keys are offsets from the neutral in the mesh's units (cm); a face at ARKit weights w is neutral + sum_k w_k key_k.
ARKit's 52nd key, tongueOut, is not in the rig: ICT-FaceKit has no tongue shape to learn it from (MISSING_KEYS).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

# ARKit's names (Apple's spelling) in its documentation's order; the rig holds those its config names.
ARKIT_NAMES = (
    "eyeBlinkLeft", "eyeLookDownLeft", "eyeLookInLeft", "eyeLookOutLeft", "eyeLookUpLeft", "eyeSquintLeft",
    "eyeWideLeft", "eyeBlinkRight", "eyeLookDownRight", "eyeLookInRight", "eyeLookOutRight", "eyeLookUpRight",
    "eyeSquintRight", "eyeWideRight", "jawForward", "jawLeft", "jawRight", "jawOpen", "mouthClose", "mouthFunnel",
    "mouthPucker", "mouthLeft", "mouthRight", "mouthSmileLeft", "mouthSmileRight", "mouthFrownLeft",
    "mouthFrownRight", "mouthDimpleLeft", "mouthDimpleRight", "mouthStretchLeft", "mouthStretchRight",
    "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthPressLeft", "mouthPressRight",
    "mouthLowerDownLeft", "mouthLowerDownRight", "mouthUpperUpLeft", "mouthUpperUpRight", "browDownLeft",
    "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight", "cheekPuff", "cheekSquintLeft",
    "cheekSquintRight", "noseSneerLeft", "noseSneerRight", "tongueOut",
)
MISSING_KEYS = {"tongueOut": "ICT-FaceKit has no tongue shape to learn it from"}


class RigFormatError(ValueError):
    pass


@dataclass(frozen=True)
class RigConfig:
    names: tuple[str, ...]
    num_vertices: int
    identity_components: int
    offset_components: int
    num_identity_vertices: int
    num_moving_vertices: int
    units: str = "cm"  # the meshes' units (ICT-FaceKit's centimetres)

    def __post_init__(self):
        unknown = [n for n in self.names if n not in ARKIT_NAMES]
        if unknown or len(set(self.names)) != len(self.names):
            raise RigFormatError(f"rig key names must be distinct ARKit names, got unknown {unknown}")

    @classmethod
    def from_dict(cls, d: dict) -> "RigConfig":
        try:
            return cls(**{**d, "names": tuple(d["names"])})
        except (KeyError, TypeError) as e:
            raise RigFormatError(f"ARKit rig config: {e}") from None

    def to_dict(self) -> dict:
        return {**asdict(self), "names": list(self.names)}

    @property
    def missing(self) -> dict[str, str]:
        """ARKit names the rig lacks, with why."""
        return {n: MISSING_KEYS.get(n, "not in this rig") for n in ARKIT_NAMES if n not in self.names}

    INDICES = ("identity_vertices", "moving_vertices")  # the integer tensors (vertex indices); the rest are floats

    def tensor_shapes(self) -> dict[str, tuple[int, ...]]:
        j, c, k = self.identity_components, self.offset_components, len(self.names)
        return {"identity_vertices": (self.num_identity_vertices,), "identity_mean": (3 * self.num_identity_vertices,),
                "identity_basis": (j, 3 * self.num_identity_vertices), "moving_vertices": (self.num_moving_vertices,),
                "offset_basis": (c, 3 * self.num_moving_vertices), "coefficients": (k, j + 1, c)}


class ARKitRig:
    def __init__(self, cfg: RigConfig, tensors: dict):
        shapes = cfg.tensor_shapes()
        wrong = {n: (tuple(np.shape(tensors[n])) if n in tensors else None, s) for n, s in shapes.items()
                 if n not in tensors or tuple(np.shape(tensors[n])) != s}
        if wrong:
            raise RigFormatError("ARKit rig tensors do not match its config: " + ", ".join(
                f"{n} has shape {got}, expected {want}" for n, (got, want) in wrong.items()))
        self.cfg = cfg
        self.tensors = tensors
        self._identity_vertices = np.asarray(tensors["identity_vertices"], np.int64)
        self._moving = np.asarray(tensors["moving_vertices"], np.int64)
        self._mean = np.asarray(tensors["identity_mean"], np.float32)
        self._identity_basis = np.asarray(tensors["identity_basis"], np.float32)
        self._offset_basis = np.asarray(tensors["offset_basis"], np.float32)
        self._coefficients = np.asarray(tensors["coefficients"], np.float32)

    @property
    def names(self) -> tuple[str, ...]:
        return self.cfg.names

    def check_topology(self, vertices: np.ndarray, what: str = "mesh") -> np.ndarray:
        vertices = np.asarray(vertices, np.float32)
        if vertices.ndim != 2 or vertices.shape[1] != 3:
            raise ValueError(f"{what}: expected (V, 3) vertices, got shape {vertices.shape}")
        if len(vertices) != self.cfg.num_vertices:
            raise ValueError(f"{what}: {len(vertices)} vertices; the ARKit rig needs ICT-FaceKit's topology "
                             f"({self.cfg.num_vertices} vertices)")
        if not np.isfinite(vertices).all():
            raise ValueError(f"{what}: vertices are not all finite")
        return vertices

    def identity(self, neutral: np.ndarray) -> np.ndarray:
        """(J,) the neutral face's identity coordinates (unit variance over the training people). The face is first
        moved so its face region's centre is the training faces' (a mesh placed elsewhere is the same person); one
        far from their size is refused (a face in centimetres where metres were meant, say)."""
        neutral = self.check_topology(neutral, "neutral face")
        face = neutral[self._identity_vertices]
        mean = self._mean.reshape(-1, 3)
        size, reference = (float(np.sqrt(((x - x.mean(0)) ** 2).sum(1).mean())) for x in (face, mean))
        if not 0.5 < size / reference < 2.0:
            raise ValueError(f"neutral face: its face is {size / reference:.3g} times the size of the faces the ARKit "
                             f"rig was learned on: is it in other units (a mesh in centimetres read as metres is 100 "
                             f"times too large)? Scale it, and apply the scale, first")
        centred = face - face.mean(0) + mean.mean(0)
        return self._identity_basis @ (centred.reshape(-1) - self._mean)

    def keys(self, neutral: np.ndarray) -> np.ndarray:
        """(K, V, 3) float32: each key's offset from this neutral (zero on vertices no key moves)."""
        phi = self.identity(neutral)
        codes = self._coefficients[:, 0] + np.einsum("j,kjc->kc", phi, self._coefficients[:, 1:])
        out = np.zeros((len(self.names), self.cfg.num_vertices, 3), np.float32)
        out[:, self._moving] = (codes @ self._offset_basis).reshape(len(self.names), -1, 3)
        return out

    def key_shapes(self, neutral: np.ndarray) -> np.ndarray:
        """(K, V, 3) float32: the face at each key's weight 1 (what a shape key holds)."""
        return np.asarray(neutral, np.float32) + self.keys(neutral)

    def pose(self, neutral: np.ndarray, weights: dict[str, float] | np.ndarray,
             keys: np.ndarray | None = None) -> np.ndarray:
        """(V, 3) the face at these ARKit weights, as the rig plays them (neutral + sum_k w_k key_k)."""
        if isinstance(weights, dict):
            unknown = sorted(set(weights) - set(self.names))
            if unknown:
                raise KeyError(f"unknown rig key(s) {unknown}; the rig has {', '.join(self.names)}")
            weights = np.array([float(weights.get(n, 0.0)) for n in self.names], np.float32)
        weights = np.asarray(weights, np.float32)
        if weights.shape != (len(self.names),):
            raise ValueError(f"weights: expected {len(self.names)} values, got shape {weights.shape}")
        keys = self.keys(neutral) if keys is None else keys
        return np.asarray(neutral, np.float32) + np.tensordot(weights, keys, axes=1)
