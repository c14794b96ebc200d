"""Generation with numpy alone: the shape and texture generators' inference math, read from the same exported
tensors the torch modules load (core.model_files.read_tensors), for a Blender whose Python has no torch.

Each class names the torch module it mirrors; tests/test_backends.py holds the two to the same outputs. Constants
are folded once at load (equalised learning-rate scales, the nearest-upsample-then-conv as four 2x2 phase
convolutions, the coder's scale); big matrices are used through transposed views, never copied. Images are NHWC
(channels last), so a convolution is a matrix product over (pixels, taps x channels).
"""
from __future__ import annotations

import contextlib
import math
import os
import threading

import numpy as np

from .network_configs import CHANGE_FLOOR, ShapeNetConfig, TextureNetConfig

_F32 = np.float32


def leaky_relu_(x: np.ndarray) -> np.ndarray:
    """nn.LeakyReLU(0.2), in place."""
    return np.maximum(x, x * _F32(0.2), out=x)


FEW_ROWS = 3


def rows_times(x: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """x @ matrix, (B, K) x (K, N), for the large matrices of a decoder (up to 1024 x 80,157). A face is 2 rows (its
    neutral and its expression), and OpenBLAS multiplies 2 rows at half the speed it streams the matrix through one
    matrix-vector product per row (the paper decoder's last layer, 2 rows: 17-22 ms as two products, 29-40 ms as
    one); from 4 rows on, one product is faster."""
    if len(x) <= FEW_ROWS:
        return np.stack([matrix.T @ row for row in x])
    return (matrix.T @ x.T).T


class Linear:
    """nn.Linear: x @ W.T + b, W used as stored (a transposed view: no copy of a 331 MB layer)."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray):
        self.weight_t, self.bias = weight.T, bias

    def __call__(self, x: np.ndarray) -> np.ndarray:
        out = rows_times(x, self.weight_t)
        out += self.bias
        return out


class MLP:
    """core.shape_networks.mlp: Linear layers with LeakyReLU(0.2) between them (none after the last)."""

    def __init__(self, tensors: dict, prefix: str):
        self.layers = []
        while f"{prefix}{2 * len(self.layers)}.weight" in tensors:
            i = 2 * len(self.layers)
            self.layers.append(Linear(tensors[f"{prefix}{i}.weight"], tensors[f"{prefix}{i}.bias"]))

    def hidden(self, x: np.ndarray) -> np.ndarray:
        """All but the last layer (MeshDecoder.decode: the decoder's last layer goes with the skip)."""
        for layer in self.layers[:-1]:
            x = leaky_relu_(layer(x))
        return x

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.layers[-1](self.hidden(x))


class EmbeddingScale:
    """core.shape_networks.EmbeddingScale: the GANs' standardised units."""

    def __init__(self, tensors: dict, prefix: str):
        self.mean, self.std = tensors[prefix + "mean"], tensors[prefix + "std"]

    def standardise(self, mu: np.ndarray) -> np.ndarray:
        return (mu - self.mean) / self.std

    def restore(self, standard: np.ndarray) -> np.ndarray:
        return standard * self.std + self.mean


class NumpyShapeGenerator:
    """core.shape_control.ShapeGenerator: decoder(G_id(z_id, z_noise), G_exp(z_style, z_exp, z_noise)), with
    MeshDecoder.decode (the decoder, its linear skip, then MeshCoder.decode) at the end."""

    def __init__(self, cfg: ShapeNetConfig, tensors: dict):
        self.cfg = cfg
        self.g_id, self.id_scale = MLP(tensors, "g_id.net."), EmbeddingScale(tensors, "g_id.scale.")
        self.g_exp, self.exp_scale = MLP(tensors, "g_exp.net."), EmbeddingScale(tensors, "g_exp.scale.")
        self.g_exp_id_scale = EmbeddingScale(tensors, "g_exp.id_scale.") if cfg.expression_sees_identity else None
        self.decoder = MLP(tensors, "decoder.")
        self.skip = Linear(tensors["decoder_skip.weight"], tensors["decoder_skip.bias"]) if cfg.linear_skip else None
        self.mean, self.scale = tensors["coder.mean"], _F32(tensors["coder.scale"])
        self.basis = tensors["coder.basis"] if len(tensors["coder.basis"]) else None

    def identity(self, z_id, z_noise) -> np.ndarray:
        """IdentityGenerator.forward."""
        return self.id_scale.restore(self.g_id(np.concatenate([z_id, z_noise], axis=1)))

    def expression(self, z_id, z_exp, z_noise, mu_id) -> np.ndarray:
        """ExpressionGenerator.forward."""
        inputs = [z_id, z_exp, z_noise]
        if self.g_exp_id_scale is not None:
            inputs.append(self.g_exp_id_scale.standardise(mu_id))
        return self.exp_scale.restore(self.g_exp(np.concatenate(inputs, axis=1)))

    def embeddings(self, z_id, z_exp, z_noise, style_z_id=None) -> tuple[np.ndarray, np.ndarray]:
        """ShapeGenerator.embeddings."""
        mu_id = self.identity(z_id, z_noise)
        if style_z_id is None:
            return mu_id, self.expression(z_id, z_exp, z_noise, mu_id)
        return mu_id, self.expression(style_z_id, z_exp, z_noise, self.identity(style_z_id, z_noise))

    def decode(self, mu_id: np.ndarray, mu_exp: np.ndarray) -> np.ndarray:
        """MeshDecoder.decode: embeddings -> (B, V, 3) meshes."""
        embedding = np.concatenate([mu_id, mu_exp], axis=1)
        code = self.decoder(embedding)
        if self.skip is not None:
            code += self.skip(embedding)
        code *= self.scale
        if self.basis is not None:
            out = rows_times(code, self.basis)
            out += self.mean
        else:
            out = code + self.mean
        return out.reshape(len(code), -1, 3)

    def __call__(self, z_id, z_exp, z_noise, style_z_id=None) -> np.ndarray:
        """ShapeGenerator.forward: float32 codes (B, ...) -> (B, V, 3) float32 meshes."""
        return self.decode(*self.embeddings(z_id, z_exp, z_noise, style_z_id))


def pixel_norm_factor(x: np.ndarray) -> np.ndarray:
    """1 / sqrt(mean_c x^2 + 1e-8) over the last (channel) axis, keeping it: pixel_norm's scale."""
    sq = np.einsum("...c,...c->...", x, x)[..., None]
    sq *= _F32(1.0 / x.shape[-1])
    sq += _F32(1e-8)
    return 1.0 / np.sqrt(sq, out=sq)


def act_norm_(x: np.ndarray) -> np.ndarray:
    """pixel_norm(LeakyReLU(x)), in place."""
    leaky_relu_(x)
    x *= pixel_norm_factor(x)
    return x


# nearest-upsample x2 then a 3x3 conv, per output row parity: (row offset in the 1-padded input, the 3x3 kernel
# rows that land there, summed). Output row 2i sees upsampled rows 2i-1, 2i, 2i+1 = input rows i-1, i, i; output
# row 2i+1 sees input rows i, i, i+1. The same for columns.
_PHASE_TAPS = {0: ((0, (0,)), (1, (1, 2))), 1: ((1, (0, 1)), (2, (2,)))}
_TAPS_3X3 = [(dy, dx) for dy in range(3) for dx in range(3)]  # (row, column) offsets in the 1-padded input
_BAND_BYTES = 4 << 20  # the gathered taps of one band of rows: a few MB, so they stay in cache for the product
_BIAS_COLUMNS = 16
_WORKERS = 1  # threads the convolutions' bands are spread over; set by blas_one_thread()
_LOCK = threading.RLock()
_threads: dict = {}


def _pool():
    from concurrent.futures import ThreadPoolExecutor
    if "pool" not in _threads:
        _threads["pool"] = ThreadPoolExecutor(_WORKERS, thread_name_prefix="facecam-texture")
    return _threads["pool"]


def _cores() -> int:
    """The cores this process may run on (its affinity: a container's or taskset's share, not the machine's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


@contextlib.contextmanager
def blas_one_thread():
    """The convolutions' bands spread over one thread per core (up to 8), BLAS held to one thread each meanwhile.
    numpy's own element-wise passes (the taps' gathering, LeakyReLU, pixel norm: a third of the work) each run in
    one thread however many BLAS has; spread over the bands they use every core. Needs threadpoolctl, which the
    Blender extension bundles (a single pure-Python file) to hold BLAS for these calls only; without it the bands
    run in one thread. One generation at a time holds the lock: a second thread's would undo the first's BLAS limit
    on leaving."""
    global _WORKERS
    with _LOCK:
        if "controller" not in _threads:
            try:
                from threadpoolctl import ThreadpoolController
                _threads["controller"] = ThreadpoolController()
            except Exception:  # noqa: BLE001 - absent, or unable to find the BLAS: the serial path is correct too
                _threads["controller"] = None
        controller = _threads["controller"]
        if controller is None or _cores() < 2:
            yield
            return
        with controller.limit(limits=1, user_api="blas"):
            _WORKERS = min(_cores(), 8)
            try:
                yield
            finally:
                _WORKERS = 1


def _padded(batch: int, height: int, width: int, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """A zero-bordered buffer (B, H + 3, W + 2, C) and its interior view (B, H, W, C): a convolution reads pixel
    (y + dy, x + dx) of the buffer at flat offset dy * (W + 2) + dx (one extra row covers the last row's overrun)."""
    buffer = np.zeros((batch, height + 3, width + 2, channels), _F32)
    return buffer, buffer[:, 1:height + 1, 1:width + 1]


def _band_rows(row: int, channels: int, taps: int, height: int) -> int:
    return max(1, min(height, _BAND_BYTES // (4 * row * channels * taps)))


def _gatherer(rows: int, row: int, taps: int, channels: int) -> np.ndarray:
    """The (pixels, taps x C + 16) matrix a band's taps are gathered into; column taps x C is ones, so the product
    with _with_bias(weight, bias) adds the bias on the way (16 columns, not 1: BLAS runs at half speed on rows
    whose length is not a multiple of the vector width)."""
    gathered = np.zeros((rows * row, taps * channels + _BIAS_COLUMNS), _F32)
    gathered[:, taps * channels] = 1.0
    return gathered


def _with_bias(weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """(K, C_out) weight -> (K + 16, C_out): the bias, then zero rows (see _gatherer)."""
    out = np.zeros((len(weight) + _BIAS_COLUMNS, weight.shape[1]), _F32)
    out[:len(weight)], out[len(weight)] = weight, bias
    return out


def _gather_product(flat: np.ndarray, start: int, n: int, shifts: list[int], weight: np.ndarray,
                    gathered: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """sum_t flat[start + shift_t : + n] @ weight[t] + bias, as one product: the taps gathered side by side."""
    channels = flat.shape[-1]
    for t, s in enumerate(shifts):
        gathered[:n, t * channels:(t + 1) * channels] = flat[start + s:start + s + n]
    return np.matmul(gathered[:n], weight, out=out)


def _in_parallel(tasks: list, work, scratch) -> None:
    """work(part, scratch()) over `tasks` split into contiguous parts, one per worker thread (numpy releases the
    GIL in its copies, element-wise passes and BLAS calls, which then run one thread each: see blas_one_thread)."""
    workers = min(_WORKERS, max(1, len(tasks) // 4))
    if workers == 1:
        work(tasks, scratch())
        return
    parts = [tasks[i * len(tasks) // workers:(i + 1) * len(tasks) // workers] for i in range(workers)]
    list(_pool().map(lambda part: work(part, scratch()), parts))


def _conv3x3(buffer: np.ndarray, size: int, weight: np.ndarray, out: np.ndarray, post,
             pixel_bias: np.ndarray | None = None) -> None:
    """out = post(conv(buffer) + bias) for a padded buffer (see _padded) of size x size pixels, a band of rows at a
    time: each band's taps gathered into one (pixels, 9 x C + 16) matrix times weight (9 x C + 16, C_out) in one BLAS
    call, then finished while it is in cache. `out` is the next padded buffer (written in place, its padding
    columns cleared after) or, for post=to_rgb, a (B, size, size, 3) array (post then also takes the image's index).
    pixel_bias: (size x (size + 2), C_out), added to the product before post, row for row."""
    batch, _, row, channels = buffer.shape
    flat = buffer.reshape(batch, -1, channels)
    shifts = [dy * row + dx for dy, dx in _TAPS_3X3]
    rows = _band_rows(row, channels, len(shifts), size)
    padded_out = out.shape[1:3] == buffer.shape[1:3]
    out_flat = out.reshape(batch, -1, out.shape[-1])

    def work(bands, gathered):
        for b, y0 in bands:
            n = min(rows, size - y0) * row
            if padded_out:  # pixel (y, x) of the product is pixel (y + 1, x + 1) of the next buffer: flat + row + 1
                band = out_flat[b, (y0 + 1) * row + 1:(y0 + 1) * row + 1 + n]
                _gather_product(flat[b], y0 * row, n, shifts, weight, gathered, band)
            else:
                band = _gather_product(flat[b], y0 * row, n, shifts, weight, gathered)
            if pixel_bias is not None:
                band += pixel_bias[y0 * row:y0 * row + n]
            if padded_out:
                post(band)
            else:
                out[b, y0:y0 + n // row] = post(band.reshape(-1, row, band.shape[-1])[:, :size], b)

    _in_parallel([(b, y0) for b in range(batch) for y0 in range(0, size, rows)], work,
                 lambda: _gatherer(rows, row, len(shifts), channels))
    if padded_out:  # the product's two extra columns per row landed on the padding: zero it again
        out[:, :, 0] = 0.0
        out[:, :, size + 1] = 0.0


def _upsample_conv(buffer: np.ndarray, size: int, phases: dict, out: np.ndarray, post) -> None:
    """out = post(conv3x3(nearest_upsample_x2(input)) + bias) at 2 x size, as four 2x2 convolutions of the padded
    low-res buffer, one per output pixel parity (a, b), interleaved band by band into the interior of `out`."""
    batch, _, row, channels = buffer.shape
    flat = buffer.reshape(batch, -1, channels)
    c_out = next(iter(phases.values()))[1].shape[1]
    rows = _band_rows(row, channels, 4, size)
    phase_shifts = [((pa, pb), [dy * row + dx for dy, dx in taps], weight)
                    for (pa, pb), (taps, weight) in phases.items()]

    def work(bands, scratch):
        gathered, interleaved = scratch
        for b, y0 in bands:
            n = min(rows, size - y0) * row
            for (pa, pb), shifts, weight in phase_shifts:
                band = _gather_product(flat[b], y0 * row, n, shifts, weight, gathered)
                interleaved[:n // row, pa, :, pb] = band.reshape(-1, row, c_out)[:, :size]
            band = interleaved[:n // row].reshape(2 * (n // row), 2 * size, c_out)
            out[b, 1 + 2 * y0:1 + 2 * y0 + len(band), 1:2 * size + 1] = post(band)

    _in_parallel([(b, y0) for b in range(batch) for y0 in range(0, size, rows)], work,
                 lambda: (_gatherer(rows, row, 4, channels), np.empty((rows, 2, size, 2, c_out), _F32)))


class NumpyAppearanceGenerator:
    """core.texture_appearance.AppearanceTextureGenerator: (z_id, z_exp, z_noise) -> (B, R, R, 3) offsets from the
    template crop."""

    def __init__(self, cfg: TextureNetConfig, tensors: dict):
        self.cfg = cfg
        self.mapping = MLP(tensors, "mapping.")
        self.mean, self.identity_basis, self.change_basis = (tensors["mean"], tensors["identity_basis"],
                                                             tensors["change_basis"])
        if cfg.per_expression_changes:
            self.change_pixels = tensors["change_pixels"].astype(np.int64)
            self.change_offsets = tensors["change_offsets"].tolist()

    def __call__(self, z_id, z_exp, z_noise) -> np.ndarray:
        cfg = self.cfg
        x = np.concatenate([z_id * _F32(cfg.id_gain), z_noise * pixel_norm_factor(z_noise)], axis=1).astype(_F32)
        out = self.mapping(x)
        j, r = cfg.identity_components, cfg.max_resolution
        z_exp = z_exp.astype(_F32)
        changes = out[:, j:].reshape(len(out), cfg.num_expressions, cfg.change_components)
        offsets = rows_times(np.ascontiguousarray(out[:, :j]), self.identity_basis)
        if cfg.per_expression_changes:
            bounds = self.change_offsets
            for e, (begin, end) in enumerate(zip(bounds[:-1], bounds[1:])):
                if begin == end or not z_exp[:, e].any():
                    continue
                unit = np.ascontiguousarray(changes[:, e]) @ self.change_basis[:, begin:end]
                unit[np.abs(unit) < CHANGE_FLOOR] = 0
                offsets[:, self.change_pixels[begin:end]] += z_exp[:, e:e + 1] * unit
        else:
            offsets += rows_times(np.einsum("be,bek->bk", z_exp, changes), self.change_basis)
        offsets += self.mean
        return np.ascontiguousarray(offsets.reshape(len(out), 3, r, r).transpose(0, 2, 3, 1))


def texture_generator(cfg: TextureNetConfig, tensors: dict):
    """The numpy generator of a texture config's architecture."""
    return NumpyAppearanceGenerator(cfg, tensors) if cfg.is_appearance else NumpyTextureGenerator(cfg, tensors)


class NumpyTextureGenerator:
    """core.texture_inference.FastTextureGenerator (itself core.texture_networks.TextureGenerator, alpha 1, at its
    max_resolution): (z_id, z_exp, z_noise) -> (B, R, R, 3) offsets from the template crop."""

    def __init__(self, cfg: TextureNetConfig, tensors: dict):
        self.cfg = cfg
        c, level = cfg.channels, len(cfg.resolutions) - 1

        def folded(name: str, fan_in: int) -> np.ndarray:  # EqualLinear / EqualConv2d: weight * gain / sqrt(fan_in)
            return tensors[name] * _F32(math.sqrt(2) / math.sqrt(fan_in))

        self.dense = Linear(tensors["dense.weight"] * _F32((math.sqrt(2) / 4) / math.sqrt(cfg.latent_dim)),
                            tensors["dense.bias"])
        self.first = self._taps_weight(folded("conv4.weight", 9 * c[0]), tensors["conv4.bias"])
        self.blocks = []
        for i, (a, b) in enumerate(zip(c[:-1], c[1:])):
            up = folded(f"blocks.{i}.conv1.weight", 9 * a)  # (Cout, Cin, 3, 3)
            phases = {}
            for pa, rows in _PHASE_TAPS.items():
                for pb, cols in _PHASE_TAPS.items():
                    taps = [(dy, dx) for dy, _ in rows for dx, _ in cols]
                    w = np.stack([up[:, :, list(ky)].sum(2)[:, :, list(kx)].sum(2) for _, ky in rows for _, kx in cols])
                    phases[pa, pb] = (taps, _with_bias(w.transpose(0, 2, 1).reshape(-1, b),
                                                        tensors[f"blocks.{i}.conv1.bias"]))
            pixel_bias = None
            if cfg.pixel_bias:  # (R, R + 2, C) flat like a band of the conv's product, whose rows carry 2 pad columns
                r = cfg.resolutions[i + 1]
                pixel_bias = np.zeros((r, r + 2, b), _F32)
                pixel_bias[:, :r] = tensors[f"blocks.{i}.pixel_bias"][0].transpose(1, 2, 0)
                pixel_bias = pixel_bias.reshape(-1, b)
            self.blocks.append((phases, self._taps_weight(folded(f"blocks.{i}.conv2.weight", 9 * b),
                                                          tensors[f"blocks.{i}.conv2.bias"]), pixel_bias))
        # (rgb_channels, C): gain 1
        self.rgb_w = tensors[f"to_rgb.{level}.weight"][:, :, 0, 0] * _F32(1.0 / math.sqrt(c[level]))
        self.rgb_b = tensors[f"to_rgb.{level}.bias"]
        self.rgb_wt = np.ascontiguousarray(self.rgb_w.T)
        self.templates = None
        if cfg.expression_templates:  # (E, R*R*3), channels last: the weighted sum is one product into the output
            offsets = tensors["expression_offsets"]
            self.templates = np.ascontiguousarray(offsets.transpose(0, 2, 3, 1)).reshape(len(offsets), -1)

    @staticmethod
    def _taps_weight(weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
        """A 3x3 EqualConv2d (padding 1) as a (9 x Cin + 16, Cout) matrix over _TAPS_3X3, with the bias
        (_with_bias)."""
        return _with_bias(weight.transpose(2, 3, 1, 0).reshape(-1, weight.shape[0]), bias)

    def latent(self, z_id, z_exp, z_noise) -> np.ndarray:
        """core.texture_networks.latent: gains on the condition, pixel norm on the noise only; z_exp not in it with
        expression_maps."""
        parts = [z_id * _F32(self.cfg.id_gain)] + ([] if self.cfg.expression_maps else [z_exp * _F32(self.cfg.exp_gain)])
        return np.concatenate(parts + [z_noise * pixel_norm_factor(z_noise)], axis=1).astype(_F32)

    def _rgb_per_image(self, z_exp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """core.texture_inference.rgb_for_expressions: (B, C, 3) to_rgb weights and (B, 3) biases, the change
        maps' rows weighted by each image's z_exp (expression_maps) or the one to_rgb repeated."""
        w, b = self.rgb_w, self.rgb_b
        if not self.cfg.expression_maps:  # (C, 3) contiguous, as BLAS reads it fastest
            return np.broadcast_to(self.rgb_wt, (len(z_exp), *self.rgb_wt.shape)), np.broadcast_to(b, (len(z_exp), 3))
        e, z = self.cfg.num_expressions, z_exp.astype(_F32)
        weights = w[:3] + np.einsum("be,ecf->bcf", z, w[3:].reshape(e, 3, -1))
        return np.ascontiguousarray(weights.transpose(0, 2, 1)), b[:3] + z @ b[3:].reshape(e, 3)

    @staticmethod
    def _to_rgb(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
        """LeakyReLU, pixel norm, 1x1 to_rgb: the norm is a per-pixel scale, applied to 3 channels instead of C."""
        leaky_relu_(x)
        scale = pixel_norm_factor(x)
        out = x @ weight
        out *= scale
        out += bias
        return out

    def _conv_stage(self, buffer: np.ndarray, size: int, weight: np.ndarray, last: bool, z_exp: np.ndarray,
                    pixel_bias: np.ndarray | None = None) -> np.ndarray:
        """A 3x3 convolution into the next upsampling block's padded input (which starts with LeakyReLU and pixel
        norm) or, last, through each image's to_rgb into the (B, R, R, 3) output."""
        if last:
            out = np.empty((len(buffer), size, size, 3), _F32)
            weights, biases = self._rgb_per_image(z_exp)
            _conv3x3(buffer, size, weight, out, lambda x, b: self._to_rgb(x, weights[b], biases[b]), pixel_bias)
            return out
        out, _ = _padded(len(buffer), size, size, weight.shape[1])
        _conv3x3(buffer, size, weight, out, act_norm_, pixel_bias)
        return out

    def __call__(self, z_id, z_exp, z_noise) -> np.ndarray:
        with blas_one_thread():
            return self._forward(z_id, z_exp, z_noise)

    def _forward(self, z_id, z_exp, z_noise) -> np.ndarray:
        batch, c0 = len(z_id), self.cfg.channels[0]
        x = self.dense(self.latent(z_id, z_exp, z_noise)).reshape(batch, c0, 4, 4).transpose(0, 2, 3, 1)
        size = 4
        buffer, inner = _padded(batch, size, size, c0)
        inner[:] = act_norm_(np.ascontiguousarray(x))  # the norm is over channels: after the (B, C, 4, 4) view
        buffer = self._conv_stage(buffer, size, self.first, not self.blocks, z_exp)
        for i, (phases, conv, pixel_bias) in enumerate(self.blocks):  # each output parity: a 2x2 conv of the input
            upsampled, _ = _padded(batch, 2 * size, 2 * size, next(iter(phases.values()))[1].shape[1])
            _upsample_conv(buffer, size, phases, upsampled, act_norm_)
            size *= 2
            buffer = self._conv_stage(upsampled, size, conv, i == len(self.blocks) - 1, z_exp, pixel_bias)
        if self.templates is not None:
            out = buffer.reshape(batch, -1)
            out += z_exp.astype(_F32) @ self.templates
        return buffer
