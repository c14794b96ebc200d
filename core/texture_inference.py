"""A faster inference path for a trained TextureGenerator: same output (float32 rounding apart), less work.

    fast = FastTextureGenerator.from_generator(generator)   # a frozen copy; the generator itself is untouched
    offsets = fast(z_id, z_exp, z_noise)                    # == generator(z_id, z_exp, z_noise) (alpha 1)

Why it is faster (bench/bench_texture.py measures it; the three first steps gave most of it):
- each "nearest upsample x2, then 3x3 conv" is one transposed convolution (kernel 4, stride 2) on the low-res
  input: every output pixel sees 2x2 input pixels instead of 3x3 upsampled ones, so those convolutions do 2.25x
  fewer multiply-adds (the whole network: 41.9 instead of 58.9 GFLOP at paper size), and the upsampled tensor
  is never built;
- activations stay channels_last (NHWC), the layout oneDNN's convolutions run fastest in;
- LeakyReLU and pixel norm run in place, the norm from one reduction pass: these ops cost memory traffic, not
  arithmetic (a 512 px, 64-channel activation is 64 MiB), and every fresh tensor that large is page-faulted in
  anew on each call;
- the equalised-learning-rate constants are folded into the weights once, not multiplied in at every call, and
  the last pixel norm is folded into the 1x1 to_rgb conv, which commutes with a per-pixel scale.
The fade-in (alpha < 1) is a training-time device and is not supported.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .network_configs import TextureNetConfig
from .texture_networks import EqualConv2d, TextureGenerator, latent

# conv3x3(upsample(x)) at output row 2i sees input rows (i-1, i, i) through kernel rows (0, 1, 2), row 2i+1 sees
# (i, i, i+1). A transposed conv (stride 2, padding 1) gives output row 2i + a from input row j with its kernel row
# k = 2(i - j) + a + 1, so its 4 kernel rows are these sums of the 3x3 kernel's rows (same for columns).
_UPSAMPLE_TAPS = torch.tensor([[0., 0., 1.],   # k=0: row i+1 for odd rows  <- w2
                               [0., 1., 1.],   # k=1: row i   for even rows <- w1 + w2
                               [1., 1., 0.],   # k=2: row i   for odd rows  <- w0 + w1
                               [1., 0., 0.]])  # k=3: row i-1 for even rows <- w0
_EPS = torch.tensor(1e-8)  # pixel norm's


def _folded(conv: EqualConv2d) -> tuple[torch.Tensor, torch.Tensor]:
    return conv.weight * conv.scale, conv.bias


def upsample_conv_weight(conv: EqualConv2d) -> torch.Tensor:
    """(Cout, Cin, 3, 3) equalised conv -> (Cin, Cout, 4, 4) weight for conv_transpose2d(stride=2, padding=1)
    that equals conv(nearest_upsample_x2(x))."""
    w = (conv.weight * conv.scale).detach()
    return torch.einsum("ki,lj,ocij->cokl", _UPSAMPLE_TAPS, _UPSAMPLE_TAPS, w).contiguous()


def _act_(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """LeakyReLU 0.2 in place, and the pixel norm factor 1 / sqrt(mean_c x^2 + 1e-8) of the result, (B, 1, H, W).
    A vector norm reads x once without materialising x**2, and few ops matter: each is a parallel region, and on
    a busy 2-core machine every one of them can wait a scheduler tick for its second thread."""
    F.leaky_relu_(x, 0.2)
    norm = torch.linalg.vector_norm(x, dim=1, keepdim=True)
    return x, torch.addcmul(_EPS, norm, norm, value=1.0 / x.shape[1]).rsqrt_()


def _act_norm_(x: torch.Tensor) -> torch.Tensor:
    x, s = _act_(x)
    return x.mul_(s)


def rgb_for_expressions(cfg: TextureNetConfig, weight: torch.Tensor, bias: torch.Tensor, z_exp: torch.Tensor
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """to_rgb's folded (rgb_channels, C) weight and bias -> per image (B, 3, C) and (B, 3): with expression_maps the
    offset's rows plus the change maps' rows weighted by z_exp (the maps are linear in the features, so weighting
    the 1x1 conv equals weighting its outputs, at the cost of 3 output channels instead of 3 (1 + E))."""
    b = len(z_exp)
    if not cfg.expression_maps:
        return weight.expand(b, *weight.shape), bias.expand(b, *bias.shape)
    e, z = cfg.num_expressions, z_exp.to(weight.dtype)
    maps_w, maps_b = weight[3:].view(e, 3, -1), bias[3:].view(e, 3)
    return weight[:3] + torch.einsum("be,ecf->bcf", z, maps_w), bias[:3] + z @ maps_b


class FastTextureGenerator(nn.Module):
    """Inference-only twin of a TextureGenerator at one resolution (default its max_resolution). Weights are
    buffers: .to(device) moves them, nothing trains them."""

    def __init__(self, generator: TextureGenerator, resolution: int | None = None, channels_last: bool = True):
        super().__init__()
        cfg = generator.cfg
        self.cfg, self.channels_last = cfg, channels_last
        self.resolution = resolution or cfg.max_resolution
        level = cfg.resolutions.index(self.resolution)
        memory = torch.channels_last if channels_last else torch.contiguous_format
        blocks = generator.blocks[:level]
        tensors = {"dense_w": generator.dense.weight * generator.dense.scale, "dense_b": generator.dense.bias}
        tensors["first_w"], tensors["first_b"] = _folded(generator.conv4)
        for i, block in enumerate(blocks):
            tensors[f"block{i}_up_w"], tensors[f"block{i}_up_b"] = upsample_conv_weight(block.conv1), block.conv1.bias
            tensors[f"block{i}_conv_w"], tensors[f"block{i}_conv_b"] = _folded(block.conv2)
            if cfg.pixel_bias:
                tensors[f"block{i}_pixel_bias"] = block.pixel_bias
        w, tensors["rgb_b"] = _folded(generator.to_rgb[level])
        tensors["rgb_w"] = w.flatten(1)  # (rgb_channels, C): a 1x1 conv is a matmul over channels
        for name, t in tensors.items():
            t = t.detach().clone()  # a copy: training the generator further does not change this one
            self.register_buffer(name, t.contiguous(memory_format=memory) if t.dim() == 4 else t)
        self.num_blocks, self.c0 = len(blocks), cfg.channels[0]
        self.templates = cfg.expression_templates
        if self.templates:  # (E, R*R*3) in channels-last order, so the weighted sum is one matmul into the output
            offsets = generator.expression_templates_at(self.resolution).detach()
            self.register_buffer("expression_offsets", offsets.permute(0, 2, 3, 1).reshape(len(offsets), -1).clone())

    @classmethod
    def from_generator(cls, generator: TextureGenerator, resolution: int | None = None,
                       channels_last: bool = True) -> "FastTextureGenerator":
        return cls(generator, resolution, channels_last).eval()

    def forward(self, z_id: torch.Tensor, z_exp: torch.Tensor, z_noise: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            x = latent(self.cfg, z_id, z_exp, z_noise)
            x = _act_norm_(F.linear(x, self.dense_w, self.dense_b).view(len(x), self.c0, 4, 4))
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            x = F.conv2d(x, self.first_w, self.first_b, padding=1)
            for i in range(self.num_blocks):
                x = _act_norm_(F.conv_transpose2d(_act_norm_(x), getattr(self, f"block{i}_up_w"),
                                                  getattr(self, f"block{i}_up_b"), stride=2, padding=1))
                x = F.conv2d(x, getattr(self, f"block{i}_conv_w"), getattr(self, f"block{i}_conv_b"), padding=1)
                if self.cfg.pixel_bias:
                    x += getattr(self, f"block{i}_pixel_bias")
            x, s = _act_(x)  # to_rgb(x * s) = (W x) * s + b for a per-pixel s: scale 3 channels, not all C
            nhwc = lambda t: t.permute(0, 2, 3, 1)  # a view for channels_last memory: the 1x1 conv is a matmul
            weight, bias = rgb_for_expressions(self.cfg, self.rgb_w, self.rgb_b, z_exp)
            b, h, w = x.shape[0], x.shape[2], x.shape[3]
            out = torch.addcmul(bias[:, None], nhwc(x).reshape(b, h * w, -1) @ weight.transpose(1, 2),
                                nhwc(s).reshape(b, h * w, 1)).view(b, h, w, 3)
            if self.templates:
                out += (z_exp.to(out.dtype) @ self.expression_offsets).view(out.shape)
            return out.permute(0, 3, 1, 2).contiguous()
