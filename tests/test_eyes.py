"""ICT's eyes split for drawing without its eye textures: a see-through outer shell, and white, iris and pupil on
the inner eyeball, the pupil in front (+z) of the iris and the iris in front of the white."""
import numpy as np

from core.template import polygon_parts
from train.data.eyes import split_eye_materials


def test_the_inner_eyeball_is_split_front_to_back_and_the_shell_is_the_cornea(ict):
    materials, names = split_eye_materials(ict.template, ict.neutral)
    assert "M_ScleraLeft" not in names and {"M_CorneaLeft", "M_PupilRight", "M_EyeWhiteLeft"} <= set(names)
    parts, part_names = polygon_parts(len(materials), materials, names)
    t, v = ict.template, ict.neutral
    front = {}
    for part in ("pupil", "iris", "sclera", "cornea"):
        chosen = np.flatnonzero(parts == part_names.index(part))
        assert len(chosen) > 0, part
        corners = t.polygon_vertices[t.polygon_starts[chosen]]  # one corner per polygon is enough here
        front[part] = float(np.median(v[corners, 2]))
    assert front["pupil"] > front["iris"] > front["sclera"]
    # every other polygon keeps its ICT material
    same = ~np.isin(ict.polygon_materials, [ict.material_names.index(n) for n in ("M_IrisLeft", "M_IrisRight")])
    assert np.array_equal(materials[same], ict.polygon_materials[same])
