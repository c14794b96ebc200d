"""core.texture_inference.FastTextureGenerator gives the plain TextureGenerator's output, only faster."""
import pytest
import torch
import torch.nn.functional as F

from core.texture_inference import FastTextureGenerator, upsample_conv_weight
from core.texture_networks import EqualConv2d, TextureGenerator, TextureNetConfig

PAPER_LIKE = dict(max_resolution=128, channels=(256, 256, 256, 256, 128, 64))  # the paper's widths, cut at 128 px
QUICK = dict(max_resolution=64, channels=(64, 64, 64, 48, 32))
MAPS = dict(max_resolution=32, channels=(32, 32, 24, 16), expression_maps=True, pixel_bias=True)  # version 2


def trained_like(seed: int = 0, **widths) -> TextureGenerator:
    """Random weights, and random biases too: freshly built ones are zero and would hide a lost or misplaced bias."""
    torch.manual_seed(seed)
    g = TextureGenerator(TextureNetConfig(num_identities=32, num_expressions=20, z_id_dim=20, z_noise_dim=256,
                                          **widths)).eval()
    with torch.no_grad():
        for name, p in g.named_parameters():
            if name.endswith("bias"):
                p.normal_(0, 0.5)
            elif name.startswith("to_rgb"):  # built as zeros (the template itself), which would hide every conv
                p.normal_()
    return g


def latents(batch: int, intensity: float = 1.0, seed: int = 1):
    torch.manual_seed(seed)
    exp = torch.eye(20)[torch.randint(20, (batch,))] * intensity
    return torch.randn(batch, 20), exp, torch.randn(batch, 256)


def assert_same(fast: torch.Tensor, plain: torch.Tensor):
    assert fast.shape == plain.shape
    assert plain.abs().max() > 0.1  # a real signal, not two tensors of zeros
    assert float((fast - plain).abs().max()) <= 1e-4 * max(1.0, float(plain.abs().max()))


@pytest.mark.parametrize("widths", [PAPER_LIKE, QUICK, MAPS], ids=["paper-like", "quick", "expression-maps"])
@pytest.mark.parametrize("intensity", [1.0, 0.35])
def test_fast_path_equals_the_plain_generator(widths, intensity):
    g = trained_like(**widths)
    z = latents(3, intensity)
    with torch.no_grad():
        plain = g(*z)
    fast = FastTextureGenerator.from_generator(g)(*z)
    assert fast.shape == (3, 3, widths["max_resolution"], widths["max_resolution"])
    assert fast.is_contiguous() and not fast.requires_grad
    assert_same(fast, plain)
    # each sample is its own: the batch row equals the same latent run alone
    assert_same(FastTextureGenerator.from_generator(g)(*(t[1:2] for t in z)), plain[1:2])


def test_mixed_expressions_nchw_layout_and_lower_resolutions():
    g = trained_like(seed=2, **QUICK)
    z_id, exp, noise = latents(2)
    exp = torch.rand(2, 20)  # action-unit-like intensities, not one-hot
    with torch.no_grad():
        assert_same(FastTextureGenerator.from_generator(g, channels_last=False)(z_id, exp, noise), g(z_id, exp, noise))
        for r in (4, 8, 32):  # a generator trained only so far; 4 px has no upsampling block at all
            fast = FastTextureGenerator.from_generator(g, resolution=r)(z_id, exp, noise)
            assert fast.shape == (2, 3, r, r)
            assert_same(fast, g(z_id, exp, noise, resolution=r))


@pytest.mark.parametrize("channels_last", [True, False])
def test_expression_templates_are_added_by_the_fast_path_too(channels_last):
    torch.manual_seed(3)
    g = TextureGenerator(TextureNetConfig(num_identities=32, num_expressions=20, z_id_dim=20, z_noise_dim=256,
                                          expression_templates=True, **QUICK)).eval()
    with torch.no_grad():
        g.expression_offsets.normal_(0, 0.3)
        for rgb in g.to_rgb:
            rgb.weight.normal_()
    z_id, _, noise = latents(3)
    exp = torch.rand(3, 20) * 1.7  # a mix, past intensity 1
    with torch.no_grad():
        for r in (8, 64):
            fast = FastTextureGenerator.from_generator(g, resolution=r, channels_last=channels_last)
            assert_same(fast(z_id, exp, noise), g(z_id, exp, noise, resolution=r))


def test_upsample_conv_weight_is_conv_of_nearest_upsampling():
    torch.manual_seed(3)
    conv = EqualConv2d(5, 7, 3)
    x = torch.randn(2, 5, 6, 9)  # not square: rows and columns must not be swapped
    with torch.no_grad():
        want = conv(F.interpolate(x, scale_factor=2, mode="nearest"))
        got = F.conv_transpose2d(x, upsample_conv_weight(conv), conv.bias, stride=2, padding=1)
    assert got.shape == want.shape == (2, 7, 12, 18)
    assert torch.allclose(got, want, atol=1e-5)


def test_the_generator_is_left_untouched_and_the_copy_is_frozen():
    g = trained_like(**QUICK)
    before = {k: v.clone() for k, v in g.state_dict().items()}
    fast = FastTextureGenerator.from_generator(g)
    assert all(torch.equal(before[k], v) for k, v in g.state_dict().items())
    assert list(fast.parameters()) == []  # buffers only: nothing for an optimiser to pick up
    with torch.no_grad():
        for p in g.parameters():  # later training of g does not leak into the frozen copy
            p.add_(1.0)
    z = latents(1)
    g.load_state_dict(before)
    with torch.no_grad():
        assert_same(fast(*z), g(*z))


def test_expression_maps_are_linear_in_z_exp_and_match_numpy():
    """With expression_maps the output is the offset plus the z_exp-weighted change maps: linear in z_exp (a mix is
    the weighted sum of its parts, intensity 2 doubles the change), the same in the torch and numpy generators."""
    import numpy as np
    from core.numpy_networks import NumpyTextureGenerator
    g = trained_like(seed=3, **MAPS)
    z_id, _, noise = latents(1)
    one, two = torch.eye(20)[[4]], torch.eye(20)[[9]]
    with torch.no_grad():
        base = g(z_id, torch.zeros(1, 20), noise)
        change = lambda z: g(z_id, z, noise) - base
        assert float(change(one).abs().max()) > 0.1
        torch.testing.assert_close(change(0.3 * one + 0.7 * two), 0.3 * change(one) + 0.7 * change(two),
                                   rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(change(2 * one), 2 * change(one), rtol=1e-4, atol=1e-4)
        mixed = 0.3 * one + 1.4 * two
        plain = g(z_id, mixed, noise)
    tensors = {k: v.numpy() for k, v in g.state_dict().items()}
    out = NumpyTextureGenerator(g.cfg, tensors)(z_id.numpy(), mixed.numpy(), noise.numpy())
    assert_same(torch.from_numpy(out).permute(0, 3, 1, 2), plain)
