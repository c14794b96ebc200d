"""core.flat_arrays: a Face in the flat layouts Blender's foreach_set takes."""
import numpy as np

from core.flat_arrays import loop_starts, rgba_bottom_up, z_up_positions


def test_loop_starts_follow_mixed_polygon_sizes():
    assert loop_starts(np.array([4, 3, 4, 4], np.int32)).tolist() == [0, 4, 7, 11]


def test_positions_turn_y_up_centimetres_into_z_up_metres_facing_minus_y():
    v = np.array([[1.0, 2.0, 3.0]], np.float32)  # x right, y up, z towards the viewer
    assert z_up_positions(v, "cm").tolist() == np.float32([0.01, -0.03, 0.02]).tolist()


def test_texture_rows_run_bottom_up_with_opaque_alpha():
    tex = np.zeros((2, 3, 3), np.uint8)
    tex[0, :, 0] = 255  # the top row red
    rgba = rgba_bottom_up(tex).reshape(2, 3, 4)
    assert rgba[1, :, 0].tolist() == [1.0] * 3 and rgba[0, :, 0].tolist() == [0.0] * 3
    assert (rgba[..., 3] == 1).all()
