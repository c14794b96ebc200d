import numpy as np
import pytest

from train.data.expressions import EXPRESSION_RECIPES as R
from train.data.face_synth import FaceSynthesizer
from train.data.textures import SKIN_TONE_BINS, TextureSynthesizer


@pytest.fixture(scope="module")
def parts(ict):
    return FaceSynthesizer(ict, seed=0), TextureSynthesizer(ict, seed=0)


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


def test_expression_wrinkles_follow_compression(parts, ict):
    shapes, tex = parts
    ident = shapes.identity(2)
    neutral_tex = tex.texture(2, ident.neutral, None, 128).astype(float)
    np.testing.assert_array_equal(tex.texture(2, ident.neutral, ident.neutral, 128), neutral_tex)
    raised = shapes.mesh(ident, [("19_brow_raiser", R["19_brow_raiser"], 1.0)])
    comp, _, _ = tex.strain(ident.neutral, raised)
    assert comp.max() > 0.1
    diff = neutral_tex - tex.texture(2, ident.neutral, raised, 128)
    forehead, chin = diff[5:30].mean(), diff[100:125].mean()  # crop rows: forehead on top, chin at the bottom
    assert forehead > 1.0 and forehead > 5 * abs(chin)


def test_crop_and_tile_agree_where_they_overlap(parts):
    shapes, tex = parts
    n = shapes.identity(3).neutral
    tile = tex.texture(3, n, None, 256, "tile").astype(int)
    u0, u1, v0, v1 = tex.windows["crop"]
    crop = tex.texture(3, n, None, 64, "crop").astype(int)
    # Sample crop pixel centres and find the tile pixel holding the same UV point.
    rows, cols = np.meshgrid(np.arange(8, 56, 6), np.arange(8, 56, 6), indexing="ij")
    u = u0 + (cols + 0.5) / 64 * (u1 - u0)
    v = v1 - (rows + 0.5) / 64 * (v1 - v0)
    tile_px = tile[np.clip(((1 - v) * 256).astype(int), 0, 255), np.clip((u * 256).astype(int), 0, 255)]
    assert np.abs(tile_px - crop[rows, cols]).mean() < 12


def test_unknown_window_is_refused(parts):
    shapes, tex = parts
    with pytest.raises(ValueError, match="window must be one of.*'side'"):
        tex.texture(0, shapes.identity(0).neutral, None, 32, "side")
