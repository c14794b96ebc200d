"""Does the texture data keep the texture trainer fed at 512 px? Crops per second from each source against the
images per second one training step consumes, as a markdown table.

    python -m bench.bench_texture_feed [--device cpu|cuda] [--batch 16] [--crops 48] [--workers N]

Sources: crops synthesised on the fly (`train.data.crops.SynthesisedCrops`, what a set with store_textures false
trains on) in one worker and in --workers workers (default: one per core but one), and crops read from a stored
set's memory-mapped textures.npy (random batches; the file was just written, so this is the page-cache rate, an
upper bound for a cold disk). The consumer: one WGAN-GP step (critic and generator, gradient penalty included)
of the paper-size texture GAN at 512 px, paper channels, at --batch, on --device, after a warm-up step.
"workers to keep up" = consumption / one worker's rate. Disk: what storing the paper sets' crops takes.
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from core.texture_networks import TextureDiscriminator, TextureGenerator, TextureNetConfig
from train.config import data_config, load_config
from train.data.crops import SynthesisedCrops, default_workers
from train.data.synthetic_sets import StoredSet, build_set
from train.texture import critic_loss, generator_loss
from train.texture_config import texture_section

RESOLUTION = 512


def synthesis_rate(stored, cfg, crops: int, workers: int) -> float:
    """Crops per second, `crops` distinct ones in batches of 4, after the workers started."""
    rows = np.arange(crops) % (len(stored.splits["train"]) * 20)
    feed = SynthesisedCrops(stored, cfg, rows, workers)
    try:
        next(feed.stream([np.arange(1)]))  # start the workers (ICT model, identities) before timing
        start = time.perf_counter()
        for _ in feed.stream([np.arange(i, min(i + 4, crops)) for i in range(0, crops, 4)]):
            pass
        return crops / (time.perf_counter() - start)
    finally:
        feed.close()


def stored_read_rate(folder: Path, crops: int, batch: int) -> float:
    path = folder / "textures.npy"
    array = np.lib.format.open_memmap(path, "w+", np.uint8, (crops, RESOLUTION, RESOLUTION, 3))
    array[:] = np.random.default_rng(0).integers(0, 256, array.shape, dtype=np.uint8)
    array.flush()
    del array
    stored = np.load(path, mmap_mode="r")
    order = np.random.default_rng(1).permutation(crops)
    start = time.perf_counter()
    for i in range(0, crops, batch):
        np.asarray(stored[np.sort(order[i:i + batch])])
    return crops / (time.perf_counter() - start)


def paper_texture_network() -> TextureNetConfig:
    """The paper config's texture GAN at FaceScape's training size (677 identities, 20 expressions)."""
    network = texture_section(load_config("paper"))["network"]
    return TextureNetConfig(num_identities=677, num_expressions=20, expression_labels="classes", z_id_dim=20,
                            **{k: tuple(v) if isinstance(v, list) else v for k, v in network.items()})


def texture_step_seconds(device: str, batch: int, resolution: int = RESOLUTION, steps: int = 1) -> float:
    """Seconds of one WGAN-GP step (critic, then generator; gradient penalty included) of the paper-size texture
    GAN at `resolution` (stable phase), mean of `steps` after a warm-up step. Random weights and images."""
    texture = texture_section(load_config("paper"))
    net = paper_texture_network()
    dev = torch.device(device)
    g, d = TextureGenerator(net).to(dev), TextureDiscriminator(net).to(dev)
    opt_g = torch.optim.Adam(g.parameters(), lr=1e-3, betas=(0.0, 0.99))
    opt_d = torch.optim.Adam(d.parameters(), lr=1e-3, betas=(0.0, 0.99))
    tcfg = texture["train"]

    def step():
        real = torch.rand(batch, 3, resolution, resolution, device=dev) * 2 - 1
        ids = torch.randint(0, 677, (batch,), device=dev)
        exps = torch.randint(0, 20, (batch,), device=dev)
        fake = g(torch.randn(batch, 20, device=dev), torch.eye(20, device=dev)[exps],
                 torch.randn(batch, net.z_noise_dim, device=dev), resolution, 1.0)
        opt_d.zero_grad(set_to_none=True)
        critic_loss(d, real, fake, ids, exps, 1.0, tcfg)["d"].backward()
        opt_d.step()
        opt_g.zero_grad(set_to_none=True)
        generator_loss(d, fake, real, ids, exps, 1.0, tcfg)["g"].backward()
        opt_g.step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
    step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch", type=int, default=16, help="training batch (the paper config's: 16)")
    p.add_argument("--crops", type=int, default=48, help="crops synthesised / read per rate")
    p.add_argument("--workers", type=int, default=default_workers())
    args = p.parse_args(argv)
    cfg = load_config("paper-smoke")  # the paper's data settings (512 px, textures not stored), 4 identities
    folder = Path(tempfile.mkdtemp(prefix=".bench_texture_feed-", dir=Path(__file__).resolve().parents[1]))
    try:
        stored = StoredSet(build_set("facescape", data_config(cfg), folder / "set", progress=False))
        one = synthesis_rate(stored, data_config(cfg), args.crops, 1)
        many = synthesis_rate(stored, data_config(cfg), args.crops, args.workers) if args.workers > 1 else one
        read = stored_read_rate(folder, args.crops * 4, args.batch)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    step_s = texture_step_seconds(args.device, args.batch)
    consumed = args.batch / step_s
    paper = data_config(load_config("paper"))
    crop_bytes = RESOLUTION * RESOLUTION * 3
    facescape_gb = paper.facescape.num_identities * 20 * crop_bytes / 1e9
    bp4d_gb = paper.bp4d.num_identities * 8 * paper.bp4d.frames_per_task * crop_bytes / 1e9
    print(f"machine: {platform.node()}, {os.cpu_count()} CPUs, torch {torch.__version__}, device {args.device}")
    print("| source | crops/s at 512 px | vs. trainer |\n|---|---:|---:|")
    print(f"| trainer: one step at batch {args.batch} on {args.device} ({step_s:.2f} s) | {consumed:.3g} consumed | 1 |")
    rows = [("synthesised, 1 worker", one)] + ([(f"synthesised, {args.workers} workers", many)]
                                               if args.workers > 1 else [])
    for name, rate in rows + [("stored, memory-mapped (page cache)", read)]:
        print(f"| {name} | {rate:.3g} | {rate / consumed:.3g} |")
    print(f"\nworkers to keep up: {consumed / one:.2g} (one worker: {1000 / one:.0f} ms per crop)")
    print(f"storing the paper sets' crops: FaceScape-like {facescape_gb:.1f} GB, BP4D-like {bp4d_gb:.1f} GB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
