import numpy as np
import pytest

from train.data.expressions import EXPRESSION_RECIPES as R
from train.data.face_synth import FaceSynthesizer
from train.data.textures import SKIN_TONE_BINS, TextureSynthesizer

WRINKLES_PER_UV = 28  # the intended wrinkle spacing, lines per UV unit


@pytest.fixture(scope="module")
def parts(ict):
    return FaceSynthesizer(ict, seed=0), TextureSynthesizer(ict, seed=0)


@pytest.fixture(scope="module")
def neutral(ict):
    return ict.neutral.astype(np.float64)


@pytest.fixture(scope="module")
def frames(parts, neutral):
    """Per face triangle of the template: unit normal, and the Jacobian d(xyz)/d(uv) (T, 3, 2)."""
    tex = parts[1]
    p, uv = neutral[tex.tri_vertices], tex.uvs[tex.tri_uvs]
    edges = np.stack([p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]], 2)  # (T, 3, 2)
    uv_edges = np.stack([uv[:, 1] - uv[:, 0], uv[:, 2] - uv[:, 0]], 2)  # (T, 2, 2)
    jacobian = edges @ np.linalg.inv(uv_edges)
    normal = np.cross(edges[..., 0], edges[..., 1])
    return normal / np.linalg.norm(normal, axis=1, keepdims=True), jacobian


def darkening(tex, identity, neutral, mesh, resolution, window="crop"):
    """How much the expression darkens the identity's texture, grey levels per pixel (negative: lighter)."""
    flat = tex.texture(identity, neutral, None, resolution, window).astype(float)
    return (flat - tex.texture(identity, neutral, mesh, resolution, window).astype(float)).mean(2)


def gradient_energy(image):
    """Squared differences along u (image columns) and along v (image rows)."""
    return (np.diff(image, axis=1) ** 2).sum(), (np.diff(image, axis=0) ** 2).sum()


def autocorrelation(image, axis, lags):
    """Normalised autocorrelation along `axis` of `image` with its smooth part (window 2 * lags[-1] + 1) removed."""
    k = 2 * max(lags) + 1
    smooth = image
    for ax in (0, 1):
        c = np.cumsum(np.pad(smooth, [(k // 2 + 1, k // 2) if a == ax else (0, 0) for a in (0, 1)], mode="edge"),
                      axis=ax)
        smooth = (np.take(c, np.arange(k, k + image.shape[ax]), ax) - np.take(c, np.arange(image.shape[ax]), ax)) / k
    d = np.moveaxis(image - smooth, axis, -1)
    d = d - d.mean(-1, keepdims=True)
    return [float((d[..., :-lag] * d[..., lag:]).mean() / (d * d).mean()) for lag in lags]


def assert_lines_across(dark, wave_axis, px_per_uv):
    """Wrinkle lines run across `wave_axis` (1: u, image columns; 0: v, image rows) at the intended spacing: the
    darkening changes mostly along that axis, and along it alternates with the period 1 / WRINKLES_PER_UV."""
    along_u, along_v = gradient_energy(dark)
    ratio = along_u / along_v if wave_axis == 1 else along_v / along_u
    assert ratio > 4, f"gradient energy across the lines / along them = {ratio:.2f}"
    period = px_per_uv / WRINKLES_PER_UV
    half, full = autocorrelation(dark, wave_axis, [round(period / 2), round(period)])
    assert half < -0.15 and full > 0.1, f"autocorrelation at half a period {half:.2f}, at one period {full:.2f}"


def test_deterministic_and_identity_specific(parts):
    shapes, tex = parts
    n0, n1 = shapes.identity(0).neutral, shapes.identity(1).neutral
    a = tex.texture(0, n0, None, 64)
    np.testing.assert_array_equal(a, TextureSynthesizer(tex.ict, seed=0).texture(0, n0, None, 64))
    assert np.abs(a.astype(int) - tex.texture(1, n1, None, 64)).mean() > 3


def test_skin_tone_bins_follow_melanin_and_darken(parts):
    shapes, tex = parts
    skins = [tex.skin(i) for i in range(40)]
    bins = [s.skin_tone_bin for s in skins]
    assert set(bins) == set(range(SKIN_TONE_BINS))
    lightest = min(range(40), key=lambda i: skins[i].melanin)
    darkest = max(range(40), key=lambda i: skins[i].melanin)
    lum = lambda i: tex.texture(i, shapes.identity(i).neutral, None, 32).mean()  # noqa: E731
    assert lum(lightest) > lum(darkest) + 40


def test_strain_of_a_uniform_scale(parts, neutral):
    tex = parts[1]
    compression, stretch, _ = tex.strain(neutral, neutral * 0.9)
    np.testing.assert_allclose(compression, 0.1, atol=1e-6)
    np.testing.assert_allclose(stretch, 0.0, atol=1e-6)
    compression, stretch, _ = tex.strain(neutral, neutral + [1.0, -2.0, 0.5])  # a translation strains nothing
    np.testing.assert_allclose(compression, 0.0, atol=1e-6)
    np.testing.assert_allclose(stretch, 0.0, atol=1e-6)


def test_strain_of_a_squeeze_along_x(parts, neutral, frames):
    tex = parts[1]
    normal, jacobian = frames
    compression, stretch, direction = tex.strain(neutral, neutral * [0.8, 1.0, 1.0])
    # A tangent plane whose normal has x component n_x holds directions with at most 1 - n_x^2 of their length
    # squared along x: the shortest one shrinks to sqrt(1 - 0.36 (1 - n_x^2)).
    np.testing.assert_allclose(compression, 1 - np.sqrt(1 - 0.36 * (1 - normal[:, 0] ** 2)), atol=1e-6)
    np.testing.assert_allclose(stretch, 0.0, atol=1e-6)
    front = normal[:, 2] > 0.9
    assert front.sum() > 1000 and np.median(compression[front]) > 0.19
    # The compression direction, mapped onto the skin, is x projected onto the tangent plane ...
    on_skin = np.einsum("tij,tj->ti", jacobian, direction)
    x_in_plane = np.array([1.0, 0, 0]) - normal[:, :1] * normal
    usable = np.linalg.norm(x_in_plane, axis=1) > 0.7
    on_skin /= np.linalg.norm(on_skin, axis=1, keepdims=True)
    cosine = np.abs((on_skin * x_in_plane).sum(1)) / np.linalg.norm(x_in_plane, axis=1)
    assert cosine[usable].min() > 0.999
    # ... and in UV it is the u axis, which maps to x on the front of the face.
    assert np.median(np.abs(direction[front, 0])) > 0.98


def test_strain_of_a_pure_stretch(parts, neutral, frames):
    tex = parts[1]
    normal, _ = frames
    compression, stretch, _ = tex.strain(neutral, neutral * [1.25, 1.0, 1.0])
    np.testing.assert_allclose(compression, 0.0, atol=1e-6)
    np.testing.assert_allclose(stretch, np.sqrt(1 + 0.5625 * (1 - normal[:, 0] ** 2)) - 1, atol=1e-6)
    assert stretch[normal[:, 2] > 0.9].min() > 0.2


def test_wrinkle_lines_run_across_the_compression(parts, neutral):
    tex = parts[1]
    u0, u1, _, _ = tex.windows["crop"]
    centre = slice(32, 224)
    # Squeezing x compresses along u: vertical lines, alternating along u. Squeezing y: horizontal lines.
    for scale, wave_axis in (([0.8, 1, 1], 1), ([1, 0.8, 1], 0)):
        dark = darkening(tex, 0, neutral, neutral * scale, 256)
        assert dark[centre, centre].mean() > 2
        assert_lines_across(dark[centre, centre], wave_axis, 256 / (u1 - u0))


def test_brow_raise_makes_horizontal_forehead_lines(parts):
    shapes, tex = parts
    ident = shapes.identity(2)
    np.testing.assert_array_equal(tex.texture(2, ident.neutral, ident.neutral, 256),
                                  tex.texture(2, ident.neutral, None, 256))
    raised = shapes.mesh(ident, [("19_brow_raiser", R["19_brow_raiser"], 1.0)])
    assert tex.strain(ident.neutral, raised)[0].max() > 0.1
    dark = darkening(tex, 2, ident.neutral, raised, 256)
    forehead, chin = dark[5:56, 32:224], dark[200:250, 32:224]  # crop rows: forehead on top, chin at the bottom
    assert forehead.mean() > 1.0 and forehead.mean() > 5 * abs(chin.mean())
    # The brows rise and squeeze the forehead vertically (in v), wherever the compression's axis turns.
    u0, u1, _, _ = tex.windows["crop"]
    assert_lines_across(forehead, 0, 256 / (u1 - u0))


def test_small_compression_leaves_smooth_skin_and_stretch_blanches(parts, neutral):
    tex = parts[1]
    flat = tex.texture(0, neutral, None, 128)
    np.testing.assert_array_equal(tex.texture(0, neutral, neutral * 0.97, 128), flat)  # 3% < the 5% fold threshold
    lighter = tex.texture(0, neutral, neutral * [1.25, 1.0, 1.0], 128).astype(float) - flat
    assert lighter.min() >= -1  # rounding only: a stretch never darkens
    red, green, blue = lighter[32:96, 32:96].reshape(-1, 3).mean(0)
    assert green > 1.5 and blue > 1.5 and red < min(green, blue)  # blanched skin loses red to the white


def test_crop_and_tile_agree_where_they_overlap(parts):
    shapes, tex = parts
    ident = shapes.identity(3)
    raised = shapes.mesh(ident, [("19_brow_raiser", R["19_brow_raiser"], 1.0)])
    u0, u1, v0, v1 = tex.windows["crop"]
    tile_res = round(128 / (u1 - u0))  # the same pixels per UV unit as the 128 px crop
    tile, crop = tex.texture(3, ident.neutral, None, tile_res, "tile"), tex.texture(3, ident.neutral, None, 128)
    tile_dark = darkening(tex, 3, ident.neutral, raised, tile_res, "tile")
    crop_dark = darkening(tex, 3, ident.neutral, raised, 128, "crop")
    # Sample crop pixel centres and find the tile pixel holding the same UV point.
    rows, cols = np.meshgrid(np.arange(4, 124, 2), np.arange(4, 124, 2), indexing="ij")
    u = u0 + (cols + 0.5) / 128 * (u1 - u0)
    v = v1 - (rows + 0.5) / 128 * (v1 - v0)
    at = tuple(np.clip((x * tile_res).astype(int), 0, tile_res - 1) for x in (1 - v, u))
    assert np.abs(tile[at].astype(int) - crop[rows, cols]).mean() < 12
    # Wrinkles too: the lines are laid out in UV, not in the window's pixels.
    forehead = rows < 30
    assert crop_dark[rows, cols][forehead].mean() > 2
    assert np.corrcoef(tile_dark[at][forehead], crop_dark[rows, cols][forehead])[0, 1] > 0.9


def test_unknown_window_is_refused(parts):
    shapes, tex = parts
    with pytest.raises(ValueError, match="window must be one of.*'side'"):
        tex.texture(0, shapes.identity(0).neutral, None, 32, "side")
