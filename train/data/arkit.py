"""Apple ARKit's 52 blendshape names, what each is in ICT-FaceKit's shapes, and the weight vectors the ARKit-like set
holds: single keys at several levels and plausible co-activations, as a face-capture take plays them.

ICT-FaceKit's 53 expression shapes are ARKit's with `_L`/`_R` for `Left`/`Right` (both the face's own sides, as
ARKit's are); ARKit's `browInnerUp` and `cheekPuff` are ICT's two halves together. ICT has no tongue shape, so the
rig has 51 keys: `tongueOut` is the one ARKit name without a recipe (RIG_NAMES leaves it out, and every report and
the add-on say so).
"""
from __future__ import annotations

import numpy as np

from core.arkit_rig import ARKIT_NAMES, MISSING_KEYS
from train.data.expressions import EXPRESSION_RECIPES, both

# Where Left/Right is the direction of a motion, not a side of the face, ICT keeps ARKit's name.
DIRECTIONS = ("jawLeft", "jawRight", "mouthLeft", "mouthRight")


def ict_shape(arkit_name: str) -> str:
    """ARKit's name of a one-sided key -> ICT's (eyeBlinkLeft -> eyeBlink_L); side-less names are the same."""
    if arkit_name in DIRECTIONS:
        return arkit_name
    for side, suffix in (("Left", "_L"), ("Right", "_R")):
        if arkit_name.endswith(side):
            return arkit_name[:-len(side)] + suffix
    return arkit_name


ARKIT_RECIPES: dict[str, dict[str, float]] = {
    name: both(name, 1.0) if name in ("browInnerUp", "cheekPuff") else {ict_shape(name): 1.0}
    for name in ARKIT_NAMES if name not in MISSING_KEYS
}
RIG_NAMES = tuple(ARKIT_RECIPES)  # the 51 keys the rig has

# Keys no face does at once (a jaw goes one way; an eye looks one way on each axis; a lid closes or widens).
EXCLUSIVE = (("jawLeft", "jawRight"), ("mouthLeft", "mouthRight"), ("eyeBlinkLeft", "eyeWideLeft"),
             ("eyeBlinkRight", "eyeWideRight"), ("eyeLookInLeft", "eyeLookOutLeft"),
             ("eyeLookInRight", "eyeLookOutRight"), ("eyeLookUpLeft", "eyeLookDownLeft"),
             ("eyeLookUpRight", "eyeLookDownRight"), ("mouthPucker", "mouthStretchLeft"),
             ("mouthPucker", "mouthStretchRight"))
# The eyes move together: a gaze to the face's left is the left eye looking out and the right eye looking in.
GAZES = ({"eyeLookOutLeft": 1.0, "eyeLookInRight": 1.0}, {"eyeLookInLeft": 1.0, "eyeLookOutRight": 1.0},
         {"eyeLookUpLeft": 1.0, "eyeLookUpRight": 1.0}, {"eyeLookDownLeft": 1.0, "eyeLookDownRight": 1.0})
LEVELS = (0.25, 0.5, 0.75, 1.0)


def arkit_weights_of(ict_recipe: dict[str, float]) -> dict[str, float]:
    """An ICT recipe as ARKit weights (the halves of browInnerUp and cheekPuff averaged)."""
    out: dict[str, float] = {}
    for shape, weight in ict_recipe.items():
        for name, recipe in ARKIT_RECIPES.items():
            if shape in recipe:
                out[name] = out.get(name, 0.0) + weight / len(recipe)
    return out


# Co-activations people make: the holistic expressions (a smile squints the eyes, anger presses the lips), in
# ARKit's terms.
EXPRESSION_WEIGHTS = tuple(arkit_weights_of(r) for r in EXPRESSION_RECIPES.values() if r)


def _exclusions(weights: np.ndarray) -> None:
    """Of two keys no face does at once, keep the stronger."""
    for a, b in EXCLUSIVE:
        i, j = RIG_NAMES.index(a), RIG_NAMES.index(b)
        weights[j if weights[i] >= weights[j] else i] = 0.0


ROM_FRAMES = 1 + len(RIG_NAMES)  # the rest pose and each key alone


def draw_weights(rng: np.random.Generator, frames: int) -> np.ndarray:
    """(frames, 51) ARKit weights in 0..1 for one person, as a capture session records them. First a range-of-motion
    session, as production face capture starts (and as a rig is built from): the face at rest, then each key alone
    at full strength, in RIG_NAMES order. Then the take: alternately a single key at one of the levels 0.25..1 (a
    two-sided key such as a blink on both sides half of the time, each side a little apart) and a co-activation (an
    expression or a gaze at a random strength, with one to three other keys at random levels on top)."""
    if frames < ROM_FRAMES:
        raise ValueError(f"frames: expected at least {ROM_FRAMES} (rest and each of the {len(RIG_NAMES)} keys), "
                         f"got {frames}")
    out = np.zeros((frames, len(RIG_NAMES)))
    out[1:ROM_FRAMES] = np.eye(len(RIG_NAMES))
    for f in range(ROM_FRAMES, frames):
        w = out[f]
        if (f - ROM_FRAMES) % 2 == 0:
            k = int(rng.integers(len(RIG_NAMES)))
            w[k] = LEVELS[int(rng.integers(len(LEVELS)))]
            name = RIG_NAMES[k]
            partner = None if name in DIRECTIONS else (name[:-4] + "Right" if name.endswith("Left") else
                                                       name[:-5] + "Left" if name.endswith("Right") else None)
            if partner in RIG_NAMES and rng.random() < 0.5:
                w[RIG_NAMES.index(partner)] = np.clip(w[k] + rng.normal(0, 0.1), 0, 1)
            continue
        base = (EXPRESSION_WEIGHTS[int(rng.integers(len(EXPRESSION_WEIGHTS)))] if rng.random() < 0.75 else
                GAZES[int(rng.integers(len(GAZES)))])
        strength = rng.uniform(0.3, 1.0)
        for name, weight in base.items():
            w[RIG_NAMES.index(name)] = weight * strength * rng.uniform(0.85, 1.15)
        for k in rng.choice(len(RIG_NAMES), size=int(rng.integers(1, 4)), replace=False):
            w[k] = max(w[k], rng.uniform(0.1, 1.0))
        _exclusions(w)
    return np.clip(out, 0.0, 1.0).astype(np.float32)
