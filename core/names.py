"""The rules every entry point shares (core's API, `python -m core`, the add-on): which expression a key names, which
seeds are valid, and what an intensity's shape key, morph target and sweep file are called."""
from __future__ import annotations

import numbers

SEED_MAX = 2 ** 31 - 1  # Blender's integer properties are 32-bit signed: the add-on's range is everyone's


def check_seed(value, what: str = "identity seed") -> int:
    """value as an int in 0..SEED_MAX, else a ValueError that names it and the range."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{what} {value!r}: expected a whole number in 0..{SEED_MAX}")
    if not 0 <= int(value) <= SEED_MAX:
        raise ValueError(f"{what} {value}: expected 0..{SEED_MAX}")
    return int(value)


def expression_number(name: str) -> int | None:
    """FaceScape's own number of an expression name ('2_smile' -> 2), None for a name without one ('AU12')."""
    head, sep, _ = name.partition("_")
    return int(head) if sep and head.isdigit() else None


def resolve_expression(names: list[str], key) -> int:
    """The index in `names` of the expression `key` names: its full name ('2_smile'), its number in the names
    ('2' or 2 = '2_smile', FaceScape's 1-based numbering, never a 0-based index), or its name without the number
    ('smile'). Anything else is a ValueError listing the names."""
    known = ", ".join(names)
    if isinstance(key, str) and key in names:
        return names.index(key)
    number = None
    if isinstance(key, numbers.Integral) and not isinstance(key, bool):
        number = int(key)
    elif isinstance(key, str) and key.strip().isdigit():
        number = int(key)
    if number is not None:
        matches = [i for i, n in enumerate(names) if expression_number(n) == number]
        if len(matches) == 1:
            return matches[0]
        raise ValueError(f"expression {key!r}: numbers name expressions by the number their names start with "
                         f"(1 = 1_neutral), and no name here starts with {number}_; known: {known}")
    if isinstance(key, str):
        matches = [i for i, n in enumerate(names) if n.partition("_")[2] == key]
        if len(matches) == 1:
            return matches[0]
    raise ValueError(f"unknown expression {key!r}; known: {known}")


def intensity_key(label: str, intensity: float) -> str:
    """The name of a face at one intensity of an expression: shape keys in Blender, glTF morph targets, sweep OBJ
    file stems ('2_smile@0.50')."""
    return f"{label}@{float(intensity):.2f}"
