"""What each labelled expression and action unit is, as a recipe of ICT-FaceKit's ARKit-style shapes.

A recipe maps ICT shape names to weights at intensity 1; `both(...)` expands a side-less name to its
_L and _R shapes. These tables were tuned by looking at contact sheets (`python -m train data preview`).
"""
from __future__ import annotations

FACESCAPE_EXPRESSIONS = (
    "1_neutral", "2_smile", "3_mouth_stretch", "4_anger", "5_jaw_left", "6_jaw_right", "7_jaw_forward",
    "8_mouth_left", "9_mouth_right", "10_dimpler", "11_chin_raiser", "12_lip_puckerer", "13_lip_funneler",
    "14_sadness", "15_lip_roll", "16_grin", "17_cheek_blowing", "18_eye_closed", "19_brow_raiser",
    "20_brow_lower",
)


def both(name: str, weight: float) -> dict[str, float]:
    return {f"{name}_L": weight, f"{name}_R": weight}


_SMILE = {**both("mouthSmile", 1.0), **both("cheekSquint", 0.5), **both("eyeSquint", 0.3)}

EXPRESSION_RECIPES: dict[str, dict[str, float]] = {
    "1_neutral": {},
    "2_smile": _SMILE,
    "3_mouth_stretch": {"jawOpen": 0.85, **both("mouthStretch", 0.6), **both("mouthLowerDown", 0.6)},
    "4_anger": {**both("browDown", 0.9), **both("noseSneer", 0.6), **both("mouthPress", 0.7), **both("eyeSquint", 0.3)},
    "5_jaw_left": {"jawLeft": 1.0},
    "6_jaw_right": {"jawRight": 1.0},
    "7_jaw_forward": {"jawForward": 1.0},
    "8_mouth_left": {"mouthLeft": 1.0},
    "9_mouth_right": {"mouthRight": 1.0},
    "10_dimpler": both("mouthDimple", 1.0),
    "11_chin_raiser": {"mouthShrugLower": 1.0, "mouthShrugUpper": 0.4},
    "12_lip_puckerer": {"mouthPucker": 1.0},
    "13_lip_funneler": {"mouthFunnel": 1.0, "jawOpen": 0.1},
    "14_sadness": {**both("browInnerUp", 0.9), **both("mouthFrown", 0.9)},
    "15_lip_roll": {"mouthRollLower": 1.0, "mouthRollUpper": 1.0},
    "16_grin": {**_SMILE, **both("mouthStretch", 0.5), **both("mouthUpperUp", 0.6), "jawOpen": 0.2},
    "17_cheek_blowing": {**both("cheekPuff", 1.0), **both("mouthPress", 0.3)},
    "18_eye_closed": both("eyeBlink", 1.0),
    "19_brow_raiser": {**both("browInnerUp", 1.0), **both("browOuterUp", 1.0)},
    "20_brow_lower": both("browDown", 1.0),
}

# FACS action units (BP4D labels 1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24, plus the ones the emotion
# prototypes below need) at their maximum intensity 5.
AU_RECIPES: dict[str, dict[str, float]] = {
    "AU1": both("browInnerUp", 1.0),
    "AU2": both("browOuterUp", 1.0),
    "AU4": both("browDown", 1.0),
    "AU5": both("eyeWide", 1.0),
    "AU6": both("cheekSquint", 1.0),
    "AU7": both("eyeSquint", 1.0),
    "AU9": both("noseSneer", 1.0),
    "AU10": both("mouthUpperUp", 1.0),
    "AU12": both("mouthSmile", 1.0),
    "AU14": both("mouthDimple", 1.0),
    "AU15": both("mouthFrown", 1.0),
    "AU17": {"mouthShrugLower": 1.0, "mouthShrugUpper": 0.3},
    "AU20": both("mouthStretch", 1.0),
    "AU23": {**both("mouthPress", 0.6), "mouthFunnel": 0.15},
    "AU24": {**both("mouthPress", 1.0), "mouthRollLower": 0.2},
    "AU25": {**both("mouthLowerDown", 0.5), "jawOpen": 0.08},
    "AU26": {"jawOpen": 0.6},
}
AU_NAMES = tuple(AU_RECIPES)
AU_MAX_INTENSITY = 5

# BP4D's eight tasks, each eliciting an emotion, with the action units that co-occur in it.
AU_TASK_PROTOTYPES: dict[str, tuple[str, ...]] = {
    "T1": ("AU6", "AU12", "AU25"),  # happiness / amusement
    "T2": ("AU1", "AU4", "AU15", "AU17"),  # sadness
    "T3": ("AU1", "AU2", "AU5", "AU26"),  # surprise
    "T4": ("AU6", "AU12", "AU14", "AU24"),  # embarrassment
    "T5": ("AU1", "AU2", "AU4", "AU5", "AU20", "AU26"),  # fear
    "T6": ("AU4", "AU6", "AU7", "AU9", "AU10"),  # pain
    "T7": ("AU4", "AU7", "AU23", "AU24"),  # anger
    "T8": ("AU9", "AU10", "AU17"),  # disgust
}

JAW_SHAPES = ("jawOpen", "jawLeft", "jawRight", "jawForward")


def validate_recipes(shape_names: tuple[str, ...]) -> None:
    """Every recipe names real ICT shapes; fails loudly when the ICT model differs from what we tuned on."""
    for table_name, table in (("EXPRESSION_RECIPES", EXPRESSION_RECIPES), ("AU_RECIPES", AU_RECIPES)):
        for key, recipe in table.items():
            unknown = sorted(set(recipe) - set(shape_names))
            if unknown:
                raise KeyError(f"{table_name}[{key!r}] uses shapes the ICT model lacks: {unknown}")
    missing = [n for n in FACESCAPE_EXPRESSIONS if n not in EXPRESSION_RECIPES]
    if missing:
        raise KeyError(f"EXPRESSION_RECIPES lacks {missing}")
