"""The networks' sizes as plain data (no torch): what config.json stores, what both inference backends build from,
and the name and shape of every tensor an exported model's files must hold, so a file is checked against its
config before anything is allocated.

ShapeNetConfig sizes the shape networks (core/shape_networks.py), TextureNetConfig the texture networks
(core/texture_networks.py); the torch modules import them from here.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields


SHAPE_LABELS = ("classes", "au_intensities", "arkit_weights")


@dataclass(frozen=True)
class ShapeNetConfig:
    num_vertices: int
    num_identities: int  # identity classes of the training set
    num_expressions: int  # expression classes, or action units for an AU model
    # "classes" (one-hot, cross-entropy), or a weight vector per frame (regression): "au_intensities" (action-unit
    # intensities / 5) or "arkit_weights" (ARKit blendshape weights)
    expression_labels: str = "classes"
    code_dim: int | None = None  # MeshCoder output size; None = all 3V coordinates
    id_encoder: tuple[int, ...] = (1024, 512)
    exp_encoder: tuple[int, ...] = (1024, 512)
    decoder: tuple[int, ...] = (512, 1024)
    id_dim: int = 100
    exp_dim: int = 30
    z_id_dim: int = 20
    z_noise_dim: int = 5
    generator: tuple[int, ...] = (128, 256)  # G_exp's hidden widths, and G_id's unless id_generator is given
    # G_id's hidden widths (None: `generator`). G_id maps each training identity's code onto one embedding; G_exp must
    # place 20 expressions per identity, which takes the wider network.
    id_generator: tuple[int, ...] | None = None
    discriminator: tuple[int, ...] = (256, 128)
    # Not in the paper: a linear layer beside each encoder's and the decoder's MLP, added to its output. The data is
    # close to a linear face space, which a linear path covers for people never seen; the MLP adds what is not
    # linear (and keeps the identity embedding from following the expression).
    linear_skip: bool = False
    # Not in the paper: G_exp also sees the identity embedding that G_id made (standardised), beside z_id. How a person
    # makes an expression follows from their face's shape (the data transfers each expression onto each face); from
    # z_id alone G_exp must memorise that per training identity, from the embedding it can follow the shape.
    expression_sees_identity: bool = False

    def __post_init__(self):
        if self.expression_labels not in SHAPE_LABELS:
            raise ValueError(f"expression_labels must be one of {', '.join(map(repr, SHAPE_LABELS))}, got "
                             f"{self.expression_labels!r}")
        for name in ("num_vertices", "num_identities", "num_expressions", "id_dim", "exp_dim", "z_id_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"ShapeNetConfig.{name} must be >= 1, got {getattr(self, name)}")

    @property
    def input_dim(self) -> int:
        return self.code_dim or 3 * self.num_vertices

    @property
    def weight_conditioned(self) -> bool:
        """Whether z_exp is a weight vector (action units, ARKit) rather than a one-hot expression class."""
        return self.expression_labels != "classes"

    @property
    def z_exp_dim(self) -> int:
        """One-hot over expression classes, or the AU intensity vector."""
        return self.num_expressions

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> "ShapeNetConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"ShapeNetConfig: unknown field(s) {sorted(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


# texture.json's format: 1 (no field written) before expression_maps, 2 since, 3 since the appearance architecture,
# 4 since its per-expression change bases
TEXTURE_FORMAT_VERSION = 4
# the fields each format version introduced: an older version's file cannot carry them
_TEXTURE_FIELDS_SINCE = {2: ("expression_maps", "pixel_bias"),
                         3: ("architecture", "identity_components", "change_components", "mapping"),
                         4: ("change_bases", "change_region_size")}
TEXTURE_ARCHITECTURES = ("progressive", "appearance")
CHANGE_BASES = ("shared", "per_expression")
# per_expression change bases: where each expression's values sit in the crop (integers, not weights)
CHANGE_INDICES = ("change_pixels", "change_offsets")
# half an 8-bit step in the offsets' [-1, 1] units: the smallest change a stored texture can show, rounded
CHANGE_FLOOR = 1 / 255


@dataclass(frozen=True)
class TextureNetConfig:
    num_identities: int
    num_expressions: int
    expression_labels: str = "classes"  # "classes" or "au_intensities", as for the shape model
    z_id_dim: int = 20
    z_noise_dim: int = 256
    # the condition's scale in the generator's input: the pixel-normed noise has norm sqrt(z_noise_dim) (16), a
    # one-hot z_exp norm 1, so at gain 1 the first layer sees the expression at 1/256 of the noise's variance and,
    # with equalised learning rates, learns its weights 16x slower: the generator ignores it. A constant keeps z_exp
    # linear (intensity still scales it)
    id_gain: float = 1.0
    exp_gain: float = 1.0
    # add a fixed offset image per expression (or action unit), weighted by z_exp, to the generator's output: the
    # training set's mean change of an identity's texture under that expression, measured like the template
    # texture. Not in the paper (false in its config): the quick config's GAN does not learn the expressions'
    # traces within its CPU budget. Linear in z_exp, so intensity, extrapolation and mixing act on it as on the shape
    expression_templates: bool = False
    # the network generates the expressions itself: to_rgb gives, besides the identity's offset, one change map per
    # expression (or action unit), and the output is the offset plus the z_exp-weighted sum of the maps. z_exp
    # leaves the latent: the output is linear in it by construction (intensity scales a change, a mix adds them),
    # and every expression of a person comes from one pass. Format version 2 and later
    expression_maps: bool = False
    # a learned bias per pixel and channel after each block's second convolution: UV crops of all people are aligned,
    # so where each expression folds the skin is a place in the crop, which a bias map holds directly and a network
    # grown from a 4x4 input must otherwise construct (version 2)
    pixel_bias: bool = False
    start_resolution: int = 16
    max_resolution: int = 512
    # feature channels at 4, 8, 16, ... max_resolution; the paper config follows the official code (256 down to 64)
    channels: tuple[int, ...] = (256, 256, 256, 256, 128, 64, 64, 64)
    # "progressive": the paper's growing convolutional GAN (the fields above). "appearance" (version 3,
    # core/texture_appearance.py): a linear appearance space fitted to the training textures at max_resolution (an
    # identity basis and an expression-change basis, as a morphable model's albedo space) and an MLP that maps
    # (z_id, z_noise) to a person's coordinates in it: identity_components for their texture, change_components for
    # each expression's (or action unit's) change; channels and start_resolution are not used
    architecture: str = "progressive"
    identity_components: int = 0
    change_components: int = 0
    mapping: tuple[int, ...] = ()  # the MLP's hidden widths
    # the appearance architecture's change space. "shared" (version 3): one basis for every expression's change.
    # "per_expression" (version 4): each expression its own change_components rows over its own region (the pixels
    # where any training person's change under it is non-zero), and a change's values below half an 8-bit step are
    # zero, as in the data, whose changes are differences of 8-bit textures: a smile leaves the forehead exactly as
    # it was (the shared basis leaked faint noise there and blurred each person's lines). Needs expression classes:
    # action units act together in a frame, so their changes are fitted in one shared basis
    change_bases: str = "shared"
    change_region_size: int = 0  # per_expression: the values (pixels x 3 channels) of all expressions' regions

    def __post_init__(self):
        for name in ("expression_templates", "expression_maps", "pixel_bias"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"TextureNetConfig.{name} must be true or false, got {getattr(self, name)!r}")
        if self.architecture not in TEXTURE_ARCHITECTURES:
            raise ValueError(f"TextureNetConfig.architecture must be one of {TEXTURE_ARCHITECTURES}, got "
                             f"{self.architecture!r}")
        if self.is_appearance:
            if self.identity_components < 1 or self.change_components < 1 or not self.mapping:
                raise ValueError(f"TextureNetConfig: the appearance architecture needs identity_components >= 1, "
                                 f"change_components >= 1 and mapping widths, got {self.identity_components}, "
                                 f"{self.change_components} and {list(self.mapping)}")
            for name in ("expression_templates", "expression_maps", "pixel_bias"):
                if getattr(self, name):
                    raise ValueError(f"TextureNetConfig.{name} belongs to the progressive architecture; the "
                                     f"appearance architecture generates every expression's change itself")
        if self.change_bases not in CHANGE_BASES:
            raise ValueError(f"TextureNetConfig.change_bases must be one of {CHANGE_BASES}, got {self.change_bases!r}")
        if self.per_expression_changes:
            if not self.is_appearance:
                raise ValueError("TextureNetConfig.change_bases 'per_expression' belongs to the appearance "
                                 f"architecture, not {self.architecture!r}")
            if self.expression_labels != "classes":
                raise ValueError("TextureNetConfig.change_bases 'per_expression' needs expression classes; action "
                                 "units act together in a frame, so their changes take change_bases 'shared'")
        if self.expression_labels not in ("classes", "au_intensities"):
            raise ValueError(f"expression_labels must be 'classes' or 'au_intensities', got {self.expression_labels!r}")
        for name in ("start_resolution", "max_resolution"):
            r = getattr(self, name)
            if r < 4 or r & (r - 1):
                raise ValueError(f"TextureNetConfig.{name} must be a power of two >= 4, got {r}")
        if self.start_resolution > self.max_resolution and not self.is_appearance:
            raise ValueError(f"start_resolution {self.start_resolution} exceeds max_resolution {self.max_resolution}")
        if not self.is_appearance and len(self.channels) != len(self.resolutions):
            raise ValueError(f"TextureNetConfig.channels needs one width per resolution {self.resolutions} "
                             f"({len(self.resolutions)}), got {len(self.channels)}")

    @property
    def is_appearance(self) -> bool:
        return self.architecture == "appearance"

    @property
    def per_expression_changes(self) -> bool:
        return self.change_bases == "per_expression"

    @property
    def resolutions(self) -> list[int]:
        return [4 * 2 ** i for i in range(int(math.log2(self.max_resolution // 4)) + 1)]

    @property
    def stages(self) -> list[int]:
        """The resolutions training passes through: start_resolution, then each doubling (the appearance
        architecture: max_resolution alone)."""
        if self.is_appearance:
            return [self.max_resolution]
        return [r for r in self.resolutions if r >= self.start_resolution]

    @property
    def z_exp_in_latent(self) -> bool:
        """Whether z_exp enters the generator's input (the paper), or only weights what the network generated."""
        return not (self.expression_maps or self.is_appearance)

    @property
    def latent_dim(self) -> int:
        return self.z_id_dim + (self.num_expressions if self.z_exp_in_latent else 0) + self.z_noise_dim

    @property
    def expression_route(self) -> str:
        """Where the expressions' trace in the texture comes from, in words for reports."""
        parts = (["the network's change maps"] if self.expression_maps else []) + (
            ["measured templates"] if self.expression_templates else [])
        if self.is_appearance:
            return "the network's change coordinates in a learned appearance space"
        return " + ".join(parts) or "z_exp in the latent (the paper)"

    @property
    def coordinate_dim(self) -> int:
        """The appearance MLP's outputs: the identity's coordinates, then each expression's change coordinates."""
        return self.identity_components + self.num_expressions * self.change_components

    @property
    def rgb_channels(self) -> int:
        """to_rgb's outputs: the offset (3), and with expression_maps one 3-channel change map per expression."""
        return 3 * (1 + self.num_expressions) if self.expression_maps else 3

    def to_dict(self) -> dict:
        """The oldest format version that holds this config: a progressive model is written as version 2, without
        the appearance fields, and a shared-basis appearance one as version 3, so older facecams still read them."""
        out = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}
        version = 4 if self.per_expression_changes else 3 if self.is_appearance else 2
        for name in (n for since, names in _TEXTURE_FIELDS_SINCE.items() if since > version for n in names):
            del out[name]
        return {"format_version": version, **out}

    @classmethod
    def from_dict(cls, d: dict) -> "TextureNetConfig":
        """Versions 1 (before expression_maps: no format_version written) to 4 load; a newer one is refused."""
        d = dict(d)
        version = d.pop("format_version", 1)
        if not isinstance(version, int) or not 1 <= version <= TEXTURE_FORMAT_VERSION:
            raise ValueError(f"TextureNetConfig: format_version {version!r} is not one this facecam reads (1 to "
                             f"{TEXTURE_FORMAT_VERSION}); a newer facecam wrote it")
        for since, names in _TEXTURE_FIELDS_SINCE.items():
            for name in names:
                if version < since and name in d:
                    raise ValueError(f"TextureNetConfig: {name} is a format_version {since} field, but the config "
                                     f"says format_version {version}")
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"TextureNetConfig: unknown field(s) {sorted(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})




def _mlp_shapes(prefix: str, sizes: list[int]) -> dict[str, tuple[int, ...]]:
    """The tensors of core.shape_networks.mlp(sizes): Linear layers at even indices of an nn.Sequential."""
    out = {}
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        out[f"{prefix}{2 * i}.weight"], out[f"{prefix}{2 * i}.bias"] = (b, a), (b,)
    return out


def shape_tensor_shapes(cfg: ShapeNetConfig) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor shape.safetensors holds for generation: MeshDecoder's (coder, decoder), G_id's
    ("g_id.") and G_exp's ("g_exp."), as their torch state dicts name them."""
    d, embedding = 3 * cfg.num_vertices, cfg.id_dim + cfg.exp_dim
    shapes = {"coder.mean": (d,), "coder.scale": (), "coder.basis": (cfg.code_dim or 0, d),
              **_mlp_shapes("decoder.", [embedding, *cfg.decoder, cfg.input_dim])}
    if cfg.linear_skip:
        shapes.update({"decoder_skip.weight": (cfg.input_dim, embedding), "decoder_skip.bias": (cfg.input_dim,)})
    id_widths = cfg.generator if cfg.id_generator is None else cfg.id_generator
    shapes.update(_mlp_shapes("g_id.net.", [cfg.z_id_dim + cfg.z_noise_dim, *id_widths, cfg.id_dim]))
    shapes.update({"g_id.scale.mean": (cfg.id_dim,), "g_id.scale.std": (cfg.id_dim,)})
    extra = cfg.id_dim if cfg.expression_sees_identity else 0
    shapes.update(_mlp_shapes("g_exp.net.", [cfg.z_id_dim + cfg.z_exp_dim + cfg.z_noise_dim + extra, *cfg.generator,
                                             cfg.exp_dim]))
    shapes.update({"g_exp.scale.mean": (cfg.exp_dim,), "g_exp.scale.std": (cfg.exp_dim,)})
    if cfg.expression_sees_identity:
        shapes.update({"g_exp.id_scale.mean": (cfg.id_dim,), "g_exp.id_scale.std": (cfg.id_dim,)})
    return shapes


def texture_tensor_shapes(cfg: TextureNetConfig) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor of core.texture_networks.TextureGenerator or, for the appearance architecture,
    core.texture_appearance.AppearanceTextureGenerator (texture.safetensors)."""
    if cfg.is_appearance:
        pixels = 3 * cfg.max_resolution ** 2
        return {**_mlp_shapes("mapping.", [cfg.latent_dim, *cfg.mapping, cfg.coordinate_dim]),
                "mean": (pixels,), "identity_basis": (cfg.identity_components, pixels),
                **({"change_basis": (cfg.change_components, cfg.change_region_size),
                    "change_pixels": (cfg.change_region_size,), "change_offsets": (cfg.num_expressions + 1,)}
                   if cfg.per_expression_changes else {"change_basis": (cfg.change_components, pixels)})}
    c = cfg.channels
    shapes = {"dense.weight": (16 * c[0], cfg.latent_dim), "dense.bias": (16 * c[0],),
              "conv4.weight": (c[0], c[0], 3, 3), "conv4.bias": (c[0],)}
    for i, (a, b) in enumerate(zip(c[:-1], c[1:])):
        shapes.update({f"blocks.{i}.conv1.weight": (b, a, 3, 3), f"blocks.{i}.conv1.bias": (b,),
                       f"blocks.{i}.conv2.weight": (b, b, 3, 3), f"blocks.{i}.conv2.bias": (b,)})
        if cfg.pixel_bias:
            r = cfg.resolutions[i + 1]
            shapes[f"blocks.{i}.pixel_bias"] = (1, b, r, r)
    for i, ch in enumerate(c):
        shapes.update({f"to_rgb.{i}.weight": (cfg.rgb_channels, ch, 1, 1), f"to_rgb.{i}.bias": (cfg.rgb_channels,)})
    if cfg.expression_templates:
        r = cfg.max_resolution
        shapes["expression_offsets"] = (cfg.num_expressions, 3, r, r)
    return shapes
