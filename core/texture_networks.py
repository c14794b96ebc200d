"""The texture networks of 3DFaceCAM (section 3.2): a conditional progressive GAN (Karras et al. 2018).

TextureGenerator(z_id, z_exp, z_noise) -> an RGB offset from the template crop (with expression_maps, plus the
z_exp-weighted change maps the network generates beside it; with expression_templates, plus the z_exp-weighted
expression offsets measured from the data), grown from start_resolution by
doubling up to max_resolution; a new block fades in (alpha 0 -> 1) over the old output upsampled. Pixel norm after
every convolution, equalised learning rate (weights drawn N(0, 1), scaled by He's constant at run time), LeakyReLU
0.2. TextureDiscriminator mirrors it (seeing each image as its mean colour and the detail around it), with a
minibatch standard-deviation channel before its last block and three heads: real/fake (a WGAN critic), identity classes, and expression classes (or action-unit intensities).

Images are in [-1, 1] (0 = mid grey); the texture is template + offset, so a generator that outputs zeros gives
the template itself. One definition for training and inference; widths come from TextureNetConfig.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .network_configs import TextureNetConfig


def pixel_norm(x: torch.Tensor) -> torch.Tensor:
    return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)


def latent(cfg: TextureNetConfig, z_id: torch.Tensor, z_exp: torch.Tensor, z_noise: torch.Tensor) -> torch.Tensor:
    """The generator's input. Only the noise is pixel-normed (Karras et al. normalise the whole latent): normalising
    z_exp with it would undo intensity scaling. With expression_maps z_exp is not in it (it weights the maps)."""
    if not cfg.z_exp_in_latent:
        return torch.cat([cfg.id_gain * z_id, pixel_norm(z_noise)], dim=1)
    return torch.cat([cfg.id_gain * z_id, cfg.exp_gain * z_exp, pixel_norm(z_noise)], dim=1)


def weigh_maps(cfg: TextureNetConfig, rgb: torch.Tensor, z_exp: torch.Tensor) -> torch.Tensor:
    """to_rgb's (B, 3 (1 + E), R, R) output -> (B, 3, R, R): the offset plus the change maps weighted by z_exp;
    for z_exp (B, K, E), K weighings of each row's maps, (B, K, 3, R, R)."""
    if not cfg.expression_maps:
        return rgb
    b, _, h, w = rgb.shape
    maps = rgb[:, 3:].reshape(b, cfg.num_expressions, 3, h, w)
    if z_exp.dim() == 3:
        return rgb[:, None, :3] + torch.einsum("bke,becyx->bkcyx", z_exp.to(rgb.dtype), maps)
    return rgb[:, :3] + torch.einsum("be,becyx->bcyx", z_exp.to(rgb.dtype), maps)


class EqualLinear(nn.Module):
    def __init__(self, n_in: int, n_out: int, gain: float = math.sqrt(2)):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_out, n_in))
        self.bias = nn.Parameter(torch.zeros(n_out))
        self.scale = gain / math.sqrt(n_in)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.scale, self.bias)


class EqualConv2d(nn.Module):
    def __init__(self, n_in: int, n_out: int, kernel: int, gain: float = math.sqrt(2)):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_out, n_in, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(n_out))
        self.scale = gain / math.sqrt(n_in * kernel * kernel)
        self.padding = kernel // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.padding)


def _act(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.2)


class _GeneratorBlock(nn.Module):
    """Upsample x2, then two 3x3 convolutions, each followed by LeakyReLU and pixel norm; with a resolution, a
    learned bias map (1, C, R, R) after the second convolution (TextureNetConfig.pixel_bias)."""

    def __init__(self, n_in: int, n_out: int, resolution: int | None = None):
        super().__init__()
        self.conv1, self.conv2 = EqualConv2d(n_in, n_out, 3), EqualConv2d(n_out, n_out, 3)
        if resolution is not None:
            self.pixel_bias = nn.Parameter(torch.zeros(1, n_out, resolution, resolution))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        x = self.conv2(pixel_norm(_act(self.conv1(x))))
        if hasattr(self, "pixel_bias"):
            x = x + self.pixel_bias
        return pixel_norm(_act(x))


class TextureGenerator(nn.Module):
    def __init__(self, cfg: TextureNetConfig):
        super().__init__()
        self.cfg = cfg
        c = cfg.channels
        self.dense = EqualLinear(cfg.latent_dim, 16 * c[0], gain=math.sqrt(2) / 4)
        self.conv4 = EqualConv2d(c[0], c[0], 3)
        self.blocks = nn.ModuleList(_GeneratorBlock(a, b, r if cfg.pixel_bias else None)
                                    for a, b, r in zip(c[:-1], c[1:], cfg.resolutions[1:]))
        self.to_rgb = nn.ModuleList(EqualConv2d(ch, cfg.rgb_channels, 1, gain=1.0) for ch in c)
        for rgb in self.to_rgb:  # start as the template itself (offset 0): random offsets cost ~2x its L1 error
            nn.init.zeros_(rgb.weight)
        if cfg.expression_templates:  # measured from the data by train.texture, saved with the weights
            r = cfg.max_resolution
            self.register_buffer("expression_offsets", torch.zeros(cfg.num_expressions, 3, r, r))

    def expression_templates_at(self, resolution: int) -> torch.Tensor:
        """(E, 3, R, R): the expression templates average-pooled to `resolution`."""
        offsets = self.expression_offsets
        if resolution != offsets.shape[-1]:
            offsets = F.avg_pool2d(offsets, offsets.shape[-1] // resolution)
        return offsets

    def expression_offset(self, z_exp: torch.Tensor, resolution: int) -> torch.Tensor | None:
        """(B, 3, R, R): the expression templates weighted by z_exp, at `resolution`; None without templates."""
        if not self.cfg.expression_templates:
            return None
        offsets = self.expression_templates_at(resolution)
        return torch.einsum("be,ecyx->bcyx", z_exp.to(offsets.dtype), offsets)

    def forward(self, z_id: torch.Tensor, z_exp: torch.Tensor, z_noise: torch.Tensor,
                resolution: int | None = None, alpha: float = 1.0) -> torch.Tensor:
        """(B, 3, R, R) offsets from the template at resolution R (default max); alpha < 1 blends the newest block
        in over the previous resolution's output upsampled."""
        return self.weigh(self.to_rgb_output(z_id, z_exp, z_noise, resolution, alpha), z_exp)

    def weigh(self, rgb: torch.Tensor, z_exp: torch.Tensor) -> torch.Tensor:
        """to_rgb's output -> the (B, 3, R, R) offset for expression weights z_exp (B, E): the change maps weighed
        by them (expression_maps), the measured templates added (expression_templates); for z_exp (B, K, E), K
        offsets per row, (B, K, 3, R, R)."""
        out = weigh_maps(self.cfg, rgb, z_exp)
        templates = self.expression_offset(z_exp.reshape(-1, z_exp.shape[-1]), out.shape[-1])
        return out if templates is None else out + templates.view(out.shape)

    def to_rgb_output(self, z_id: torch.Tensor, z_exp: torch.Tensor, z_noise: torch.Tensor,
                      resolution: int | None = None, alpha: float = 1.0) -> torch.Tensor:
        """(B, rgb_channels, R, R): to_rgb's output, faded in; with expression_maps the offset and every
        expression's change map (z_exp unused), so one pass serves all of a person's expressions."""
        level = self.cfg.resolutions.index(resolution or self.cfg.max_resolution)
        x = latent(self.cfg, z_id, z_exp, z_noise)
        x = pixel_norm(_act(self.dense(x).view(len(x), -1, 4, 4)))
        x = pixel_norm(_act(self.conv4(x)))
        previous = x
        for block in self.blocks[:level]:
            previous, x = x, block(x)
        rgb = self.to_rgb[level](x)
        if alpha < 1.0 and level > 0:
            old = F.interpolate(self.to_rgb[level - 1](previous), scale_factor=2, mode="nearest")
            rgb = old + alpha * (rgb - old)
        return rgb


class _DiscriminatorBlock(nn.Module):
    """Two 3x3 convolutions with LeakyReLU, then average-pool /2."""

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.conv1, self.conv2 = EqualConv2d(n_in, n_in, 3), EqualConv2d(n_in, n_out, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(_act(self.conv2(_act(self.conv1(x)))), 2)


def minibatch_stddev(x: torch.Tensor, group: int = 4) -> torch.Tensor:
    """Appends one channel: the mean standard deviation over groups of samples (Karras et al., section 3)."""
    g = min(group, len(x))
    while len(x) % g:
        g -= 1
    b, c, h, w = x.shape
    std = x.view(g, -1, c, h, w).var(dim=0, unbiased=False).add(1e-8).sqrt().mean(dim=(1, 2, 3))  # (b / g,)
    return torch.cat([x, std.repeat(g).view(b, 1, 1, 1).expand(b, 1, h, w)], dim=1)


def tone_and_detail(images: torch.Tensor) -> torch.Tensor:
    """(B, 3, R, R) -> (B, 6, R, R): each image minus its mean colour, and that mean colour spread over the image.
    The same information, split: a skin tone offset of +-0.5 dwarfs the wrinkles that tell expressions apart, and
    on raw pixels the critic's expression head stayed at chance (a plain CNN on raw 32 px crops too: 0.05 after
    300 steps; 0.63 on the split input)."""
    tone = images.mean(dim=(2, 3), keepdim=True)
    return torch.cat([images - tone, tone.expand_as(images)], dim=1)


class TextureDiscriminator(nn.Module):
    def __init__(self, cfg: TextureNetConfig):
        super().__init__()
        self.cfg = cfg
        c = cfg.channels
        self.from_rgb = nn.ModuleList(EqualConv2d(6, ch, 1) for ch in c)
        # blocks[i] takes resolution 8 * 2**i down to 4 * 2**i
        self.blocks = nn.ModuleList(_DiscriminatorBlock(b, a) for a, b in zip(c[:-1], c[1:]))
        self.conv4 = EqualConv2d(c[0] + 1, c[0], 3)
        self.dense = EqualLinear(16 * c[0], c[0])
        self.real_fake = EqualLinear(c[0], 1, gain=1.0)
        self.identity = EqualLinear(c[0], cfg.num_identities, gain=1.0)
        self.expression = EqualLinear(c[0], cfg.num_expressions, gain=1.0)

    def forward(self, images: torch.Tensor, alpha: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """images (B, 3, R, R) at any trained resolution -> (critic score (B,), identity logits, expression
        logits)."""
        level = self.cfg.resolutions.index(images.shape[-1])
        x = _act(self.from_rgb[level](tone_and_detail(images)))
        if level > 0:
            x = self.blocks[level - 1](x)
            if alpha < 1.0:
                old = _act(self.from_rgb[level - 1](tone_and_detail(F.avg_pool2d(images, 2))))
                x = old + alpha * (x - old)
            for block in reversed(self.blocks[:level - 1]):
                x = block(x)
        x = _act(self.conv4(minibatch_stddev(x)))
        h = _act(self.dense(x.flatten(1)))
        return self.real_fake(h).squeeze(1), self.identity(h), self.expression(h)
