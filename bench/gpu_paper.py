"""One command for a lent GPU machine: how long would the paper configuration take here? Writes a markdown table.

    python -m bench.gpu_paper                                  # on the GPU machine, about 3 minutes
    python -m bench.gpu_paper --device cpu --steps 1 --texture-batch 2 --resolutions 16 32   # a CPU rehearsal

Measures, on --device: paper-size SAE (batch 32) and cGAN (batch 64) Adam steps, one texture WGAN-GP step at each
of --resolutions (paper channels, batch --texture-batch; the paper's is 16) with the peak device memory of each;
CUDA against CPU agreement (one SAE forward pass and Adam step; the 64 px texture generator's forward pass), TF32
off; and, when more than one GPU is present, a data-parallel texture run of configs/paper-smoke.json under torchrun.
Then projects configs/paper.json's whole training (SAE, plain AE, cGAN, texture: every phase's epochs x steps per
epoch x the step time at its resolution; a resolution not measured is scaled from the largest measured one by
pixel count, and marked so). Data building and evaluation are not in the projection (`python -m bench.bench_data`
times the builds). Prints the table and writes it to --out.
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from bench.bench_shape_training import cgan_step_time, check_cuda, sae_step_time
from bench.bench_texture_feed import paper_texture_network, texture_step_seconds
from core.atomic import write_text_atomic
from train.config import config_path, data_config, load_config, split_counts
from train.texture_config import texture_section

ROOT = Path(__file__).resolve().parents[1]


def _peak(dev: torch.device, fn):
    """(fn's result, peak device memory in GiB during it; None on a CPU)."""
    if dev.type != "cuda":
        return fn(), None
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(dev)
    out = fn()
    return out, torch.cuda.max_memory_allocated(dev) / 2 ** 30


def texture_agreement() -> str:
    from core.texture_networks import TextureGenerator
    net = paper_texture_network()
    torch.manual_seed(0)
    g = TextureGenerator(net).eval()
    z = (torch.randn(4, 20), torch.eye(20)[:4], torch.randn(4, net.z_noise_dim))
    with torch.no_grad():
        cpu = g(*z, 64, 1.0)
        cuda = g.cuda()(*(t.cuda() for t in z), 64, 1.0).cpu()
    return f"texture generator at 64 px: CPU vs CUDA max |diff| {float((cpu - cuda).abs().max()):.2e}"


def torchrun_texture(gpus: int) -> str:
    """The paper-smoke texture run over every GPU (torchrun, nccl): seconds per epoch at each resolution."""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                               str(gpus), "-m", "train", "texture", "--config", "paper-smoke", "--device", "cuda",
                               "--out", tmp], cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            return f"torchrun over {gpus} GPUs failed: {proc.stderr[-1500:]}"
        import csv
        rows = list(csv.DictReader(open(Path(tmp) / "log.csv")))
        per = ", ".join(f"{r['resolution']} {r['phase']} {float(r['seconds']):.1f} s" for r in rows)
        return f"torchrun over {gpus} GPUs, paper-smoke texture run: {wall:.0f} s in all; per epoch: {per}"


def projection(sae_s: float, cgan_s: float, texture_s: dict[int, float], texture_batch: int
               ) -> tuple[list[str], float]:
    """Rows (step, count, seconds each, hours) for configs/paper.json, and the total hours. Texture steps timed at
    another batch than the paper's are scaled by the batch ratio (a step's cost grows about linearly with it)."""
    cfg = load_config("paper")
    data = data_config(cfg)
    n_train = split_counts(data.facescape.num_identities, data.facescape.split)[0] * 20
    sae, cgan = cfg["shape"]["sae"], cfg["shape"]["cgan"]
    texture = texture_section(cfg)
    tcfg, net = texture["train"], texture["network"]
    images = tcfg.epoch_samples or n_train
    rows, total = [], 0.0
    for name, epochs, batch, each in (("SAE", sae["epochs"], sae["batch_size"], sae_s),
                                      ("plain AE", sae["epochs"], sae["batch_size"], sae_s),
                                      ("cGAN", cgan["epochs"], cgan["batch_size"], cgan_s)):
        steps = epochs * math.ceil(n_train / batch)
        rows.append(f"| {name} | {steps:,} steps | {each * 1000:.1f} ms | {steps * each / 3600:.2f} |")
        total += steps * each
    largest = max(texture_s)
    resolution = net["start_resolution"]
    phases = [(resolution, tcfg.first_phase_epochs)]
    while resolution < net["max_resolution"]:
        resolution *= 2
        phases.append((resolution, 2 * tcfg.epochs_per_phase))  # fade-in and stable
    per_batch = tcfg.batch_size / texture_batch
    for res, epochs in phases:
        steps = epochs * math.ceil(images / tcfg.batch_size)
        measured = res in texture_s
        each = (texture_s[res] if measured else texture_s[largest] * (res / largest) ** 2) * per_batch
        notes = ([] if measured else [f"scaled from {largest} px"]) + (
            [f"from batch {texture_batch}"] if texture_batch != tcfg.batch_size else [])
        note = f" ({', '.join(notes)})" if notes else ""
        rows.append(f"| texture {res} px | {steps:,} steps | {each * 1000:.0f} ms{note} | {steps * each / 3600:.2f} |")
        total += steps * each
    return rows, total / 3600


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--steps", type=int, default=5, help="timed steps per measurement (after two warm-up steps)")
    p.add_argument("--texture-batch", type=int, default=None, help="default: the paper config's batch")
    p.add_argument("--resolutions", type=int, nargs="+", default=[16, 32, 64, 128, 256, 512])
    p.add_argument("--out", default=str(ROOT / "outputs" / "bench" / "gpu_paper.md"))
    args = p.parse_args(argv)
    dev = torch.device(args.device)
    paper = load_config("paper")
    batch = args.texture_batch or texture_section(paper)["train"].batch_size
    gpus = torch.cuda.device_count() if dev.type == "cuda" else 0
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or "CPU"
    lines = [f"# The paper configuration on {name}", "",
             f"Command: `python -m bench.gpu_paper {' '.join(argv if argv is not None else sys.argv[1:])}`; "
             f"{platform.node()}, {os.cpu_count()} CPUs, {gpus} GPUs, torch {torch.__version__}; "
             f"{time.strftime('%Y-%m-%d %H:%M')}; configs/paper.json as of {time.ctime(config_path('paper').stat().st_mtime)}.", "",
             "| step | batch | ms/step | samples/s | peak GiB |", "|---|---:|---:|---:|---:|"]
    sae_s, sae_mem = _peak(dev, lambda: sae_step_time("paper", dev, args.steps, 32))
    cgan_s, cgan_mem = _peak(dev, lambda: cgan_step_time("paper", dev, args.steps, 64))
    fmt = lambda mem: "-" if mem is None else f"{mem:.2f}"
    lines += [f"| paper SAE | 32 | {sae_s * 1000:.1f} | {32 / sae_s:.0f} | {fmt(sae_mem)} |",
              f"| paper cGAN | 64 | {cgan_s * 1000:.1f} | {64 / cgan_s:.0f} | {fmt(cgan_mem)} |"]
    texture_s = {}
    for res in args.resolutions:
        texture_s[res], mem = _peak(dev, lambda: texture_step_seconds(args.device, batch, res, args.steps))
        lines.append(f"| texture {res} px | {batch} | {texture_s[res] * 1000:.0f} | {batch / texture_s[res]:.1f} | "
                     f"{fmt(mem)} |")
    rows, hours = projection(sae_s, cgan_s, texture_s, batch)
    lines += ["", "## Projected training time of configs/paper.json (one device; data building and evaluation "
                  "not included)", "", "| step | steps | each | hours |", "|---|---:|---:|---:|", *rows,
              f"| **all** | | | **{hours:.1f}** |", ""]
    if dev.type == "cuda":
        lines += ["## CUDA against CPU (TF32 off)", "", f"- {check_cuda()}", f"- {texture_agreement()}", ""]
        lines += ["## More than one GPU", "",
                  f"- {torchrun_texture(gpus) if gpus > 1 else 'one GPU present: torchrun not run'}", ""]
    text = "\n".join(lines)
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(Path(args.out), text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
