"""The numpy rasterizer on hand-made triangles with exactly known coverage, and against a brute-force reference."""
import numpy as np
import pytest

import train.data.raster as raster_module
from train.data.raster import rasterize

# A 4x3-pixel rectangle from (2, 1) to (6, 4): pixel centres x in {2.5..5.5}, y in {1.5..3.5}.
SQUARE = np.array([[2.0, 1.0], [6.0, 1.0], [6.0, 4.0], [2.0, 4.0]])
SQUARE_TRIANGLES = np.array([[0, 1, 2], [0, 2, 3]])


def brute_force(points, triangles, height, width, depth):
    """Reference: test every pixel against every triangle, nearest depth wins (-1 where none)."""
    ys, xs = np.mgrid[0:height, 0:width] + 0.5
    best, owner = np.full((height, width), np.inf), np.full((height, width), -1)
    for i, (ia, ib, ic) in enumerate(triangles):
        a, b, c = points[ia], points[ib], points[ic]
        area = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
        if abs(area) < 1e-10:
            continue
        wa = ((b[0] - xs) * (c[1] - ys) - (b[1] - ys) * (c[0] - xs)) / area
        wb = ((c[0] - xs) * (a[1] - ys) - (c[1] - ys) * (a[0] - xs)) / area
        wc = 1 - wa - wb
        z = wa * depth[ia] + wb * depth[ib] + wc * depth[ic]
        better = (wa >= 0) & (wb >= 0) & (wc >= 0) & (z < best)
        best[better], owner[better] = z[better], i
    return owner


@pytest.mark.parametrize("winding", [SQUARE_TRIANGLES, SQUARE_TRIANGLES[:, ::-1]])
def test_square_covers_exactly_its_pixels(winding):
    r = rasterize(SQUARE, winding, 6, 8)
    expected = np.zeros((6, 8), bool)
    expected[1:4, 2:6] = True
    np.testing.assert_array_equal(r.mask, expected)
    assert set(np.unique(r.triangle[expected])) == {0, 1}
    assert (r.triangle[~expected] == -1).all()
    assert (r.barycentric[~expected] == 0).all()
    assert r.triangle.dtype == np.int64 and r.barycentric.dtype == np.float32


def test_interpolate_reproduces_pixel_centres():
    r = rasterize(SQUARE, SQUARE_TRIANGLES, 6, 8)
    xy = r.interpolate(SQUARE, SQUARE_TRIANGLES)
    rows, cols = np.nonzero(r.mask)
    np.testing.assert_allclose(xy[rows, cols], np.stack([cols + 0.5, rows + 0.5], axis=1), atol=1e-5)
    assert (xy[~r.mask] == 0).all()
    np.testing.assert_allclose(r.barycentric[r.mask].sum(axis=1), 1.0, atol=1e-6)


def test_interpolate_keeps_trailing_value_dimensions():
    r = rasterize(SQUARE, SQUARE_TRIANGLES, 6, 8)
    values = np.arange(4 * 2 * 3, dtype=np.float32).reshape(4, 2, 3)
    assert r.interpolate(values, SQUARE_TRIANGLES).shape == (6, 8, 2, 3)


def test_interpolate_rejects_too_few_triangles():
    r = rasterize(SQUARE, SQUARE_TRIANGLES, 6, 8)
    with pytest.raises(ValueError, match="triangle 1"):
        r.interpolate(SQUARE, SQUARE_TRIANGLES[:1])


def test_shared_diagonal_through_pixel_centres_leaves_no_crack():
    # The diagonal from (0, 0) to (8, 8) passes exactly through the centres (k + 0.5, k + 0.5).
    points = np.array([[0.0, 0.0], [8.0, 0.0], [8.0, 8.0], [0.0, 8.0]])
    r = rasterize(points, np.array([[0, 1, 2], [0, 2, 3]]), 8, 8)
    assert r.mask.all()


@pytest.mark.parametrize("order", [[0, 1], [1, 0]])
def test_depth_picks_the_nearer_triangle(order):
    big = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    points = np.concatenate([big, big + 1.0])
    depth = np.array([5.0, 5.0, 5.0, 1.0, 1.0, 1.0])  # the second, shifted triangle is nearer
    triangles = np.array([[0, 1, 2], [3, 4, 5]])[order]
    nearer = order.index(1)
    r = rasterize(points, triangles, 10, 10, depth=depth)
    np.testing.assert_array_equal(r.triangle[2, 2], nearer)  # inside both
    assert r.triangle[0, 0] == 1 - nearer  # only the far one covers the corner
    z = r.interpolate(depth, triangles)
    assert z[2, 2] == pytest.approx(1.0)


def test_degenerate_triangle_is_ignored():
    points = np.array([[0.0, 0.0], [4.0, 4.0], [8.0, 8.0], *SQUARE])
    triangles = np.array([[0, 1, 2], [3, 4, 5], [3, 5, 6], [1, 1, 4]])  # collinear and repeated-corner ones
    r = rasterize(points, triangles, 8, 8)
    alone = rasterize(SQUARE, SQUARE_TRIANGLES, 8, 8)
    np.testing.assert_array_equal(r.mask, alone.mask)
    assert set(np.unique(r.triangle[r.mask])) == {1, 2}
    assert not rasterize(points, triangles[[0, 3]], 8, 8).mask.any()


def test_triangles_outside_or_across_the_border_are_clipped():
    points = np.array([[-5.0, -5.0], [10.0, -5.0], [-5.0, 10.0], [100.0, 100.0], [120.0, 100.0], [100.0, 120.0]])
    r = rasterize(points, np.array([[0, 1, 2], [3, 4, 5]]), 6, 6)
    rows, cols = np.mgrid[0:6, 0:6]
    np.testing.assert_array_equal(r.mask, (cols + 0.5) + (rows + 0.5) <= 5)  # the part with x + y <= 5 inside
    assert not (r.triangle == 1).any()


def test_matches_brute_force_with_depth_across_chunks(monkeypatch):
    rng = np.random.default_rng(3)
    points = rng.uniform(-5, 40, (60, 2))
    triangles = rng.integers(0, 60, (50, 3))
    depth = rng.uniform(0, 1, 60)
    expected = brute_force(points, triangles, 30, 37, depth)
    np.testing.assert_array_equal(rasterize(points, triangles, 30, 37, depth=depth).triangle, expected)
    monkeypatch.setattr(raster_module, "CHUNK_CANDIDATES", 97)  # many chunks: the z-buffer must carry over
    np.testing.assert_array_equal(rasterize(points, triangles, 30, 37, depth=depth).triangle, expected)
    assert (rasterize(points, triangles, 30, 37).mask == (expected >= 0)).all()


@pytest.mark.parametrize("kwargs, message", [
    (dict(points=np.zeros((3, 3))), "points must have shape"),
    (dict(triangles=np.array([[0, 1, 7]])), "outside"),
    (dict(triangles=np.array([[0.0, 1.0, 2.0]])), "integer array"),
    (dict(points=np.array([[0.0, 0.0], [np.nan, 1.0], [1.0, 0.0]])), "NaN"),
    (dict(depth=np.zeros(2)), "depth must have shape"),
    (dict(height=0), "positive"),
])
def test_bad_input_is_rejected(kwargs, message):
    args = dict(points=np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]]), triangles=np.array([[0, 1, 2]]),
                height=4, width=4, depth=None) | kwargs
    with pytest.raises(ValueError, match=message):
        rasterize(**args)


def test_mesh_sized_like_ict_covers_every_pixel():
    # 160 x 160 quads -> 51,200 triangles (about ICT's count) over a 256 x 256 image, with depth. The grid is
    # closed, so any pixel lost on a shared edge shows as a hole. (Its speed belongs in bench/, not in a test.)
    n = 161
    ys, xs = np.mgrid[0:n, 0:n]
    points = np.stack([xs.ravel(), ys.ravel()], axis=1) * (256 / (n - 1))
    quad = (ys[:-1, :-1] * n + xs[:-1, :-1]).ravel()
    triangles = np.concatenate([np.stack([quad, quad + 1, quad + n + 1], 1),
                                np.stack([quad, quad + n + 1, quad + n], 1)])
    depth = np.random.default_rng(0).uniform(0, 1, len(points))
    r = rasterize(points, triangles, 256, 256, depth=depth)
    assert r.mask.all()
    np.testing.assert_allclose(r.barycentric.sum(axis=2), 1.0, atol=1e-5)
    xy = r.interpolate(points, triangles)
    rows, cols = np.mgrid[0:256, 0:256]
    np.testing.assert_allclose(xy, np.stack([cols + 0.5, rows + 0.5], axis=2), atol=1e-3)
