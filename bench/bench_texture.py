"""Texture-generator inference speed against the machine's matmul peak, as a markdown table.

    python -m bench.bench_texture [--repeats 5] [--threads N] [--batch 1] [--compile]

Measures, in one run: the float32 matmul peak (4096 x 4096, best of --repeats, at the start and at the end: the
larger counts, and a gap between them says the machine was busy), then the paper-size (512 px) and quick-config
TextureGenerator (when that config's texture model is the progressive one), each with the plain forward (torch.no_grad) and with core.texture_inference's
FastTextureGenerator, timed alternately so that both see the same load. Random weights: speed does not depend on
them. GFLOP are torch's FlopCounterMode counts (a multiply-add = 2): "nominal" is the plain network's, "executed"
what the model ran (the fast path's transposed convolutions do fewer). "eff. GFLOPS" = nominal GFLOP / time, so
for the fast path it is an effective rate, not the arithmetic the CPU did; "of peak" = eff. GFLOPS / matmul peak;
"executed GFLOPS" = executed GFLOP / time, the arithmetic rate the CPU actually sustained.
"peak MiB" = the rise of the process's peak RSS (VmHWM, reset before the call) over its RSS, for one call.
Targets: paper rows >= 60 % of the matmul peak (shown as the time that would be), quick rows <= 150 ms;
ratio = time / target time, under 1 meets it. --compile adds torch.compile (inductor, freezing) of the plain
generator, with its compile time.
"""
from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from core.texture_inference import FastTextureGenerator
from core.texture_networks import TextureGenerator, TextureNetConfig
from train.config import load_config

PEAK_FRACTION_TARGET, QUICK_TARGET_S = 0.60, 0.150


def _timings(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def matmul_gflops(repeats: int, n: int = 4096) -> float:
    a, b, c = torch.randn(n, n), torch.randn(n, n), torch.empty(n, n)
    torch.mm(a, b, out=c)
    return 2 * n ** 3 / min(_timings(lambda: torch.mm(a, b, out=c), repeats)) / 1e9


def gflop(fn) -> float:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops() / 1e9


def _rss_mib() -> tuple[float, float]:
    status = open("/proc/self/status").read()
    return tuple(int(re.search(rf"{k}:\s+(\d+)", status).group(1)) / 1024 for k in ("VmRSS", "VmHWM"))


def peak_mib(fn) -> float | None:
    """Peak RSS rise during one call (Linux: VmHWM, reset through /proc/self/clear_refs); None elsewhere."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        before, _ = _rss_mib()
        fn()
        return _rss_mib()[1] - before
    except OSError:
        return None


def generator(size: str) -> TextureGenerator:
    net = load_config(size)["texture"]["network"]
    cfg = TextureNetConfig(num_identities=32, num_expressions=20, z_id_dim=20, z_noise_dim=net["z_noise_dim"],
                           start_resolution=net["start_resolution"], max_resolution=net["max_resolution"],
                           channels=tuple(net["channels"]))
    return TextureGenerator(cfg).eval()


def bench_size(size: str, batch: int, repeats: int, compile_: bool) -> list[dict]:
    torch.manual_seed(0)
    g = generator(size)
    cfg = g.cfg
    z = (torch.randn(batch, cfg.z_id_dim), torch.eye(cfg.num_expressions)[torch.arange(batch) % cfg.num_expressions],
         torch.randn(batch, cfg.z_noise_dim))

    def plain():
        with torch.no_grad():
            return g(*z)

    fast_model = FastTextureGenerator.from_generator(g)
    models = {"plain (no_grad)": plain, "fast path": lambda: fast_model(*z)}
    notes = {}
    if compile_:
        import torch._inductor.config as inductor_config
        inductor_config.freezing = True  # weights as constants: lets inductor fold them into oneDNN convs
        compiled = torch.compile(g)

        def run_compiled():
            with torch.no_grad():
                return compiled(*z)
        start = time.perf_counter()
        run_compiled()
        notes["torch.compile (plain)"] = f"compile {time.perf_counter() - start:.0f} s"
        models["torch.compile (plain)"] = run_compiled
    reference = plain()
    max_diff = {name: float((fn() - reference).abs().max()) for name, fn in models.items()}
    nominal = gflop(plain)
    # the compiled module runs the plain network's convolutions (FlopCounterMode does not see inside it)
    executed = {name: gflop(fn) if name != "torch.compile (plain)" else nominal for name, fn in models.items()}
    memory = {name: peak_mib(fn) for name, fn in models.items()}  # also a warm-up call
    times = {name: [] for name in models}
    for _ in range(repeats):  # alternate, so that a burst of load hits all of them alike
        for name, fn in models.items():
            times[name] += _timings(fn, 1)
    rows = []
    for name in models:
        rows.append(dict(size=size, res=cfg.max_resolution, model=name, nominal=nominal, executed=executed[name],
                         best=min(times[name]) / batch, median=statistics.median(times[name]) / batch,
                         memory=memory[name], max_diff=max_diff[name], note=notes.get(name, "")))
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", nargs="+", default=["paper", "quick"])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (default: torch's own)")
    p.add_argument("--compile", action="store_true", help="add torch.compile of the plain generator")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    load = os.getloadavg()[0]
    print(f"device: {platform.processor() or 'CPU'}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads; "
          f"torch {torch.__version__}; load average at start {load:.2f}\n")
    progressive = [s for s in args.sizes
                   if load_config(s)["texture"]["network"].get("architecture", "progressive") == "progressive"]
    for size in sorted(set(args.sizes) - set(progressive)):  # two matrix products: bench_inference times it
        print(f"{size}: its texture model is the appearance architecture, not this convolutional generator; "
              f"`python -m bench --only inference` times its textures\n")
    peaks = [matmul_gflops(args.repeats)]
    rows = [row for size in progressive for row in bench_size(size, args.batch, args.repeats, args.compile)]
    peaks.append(matmul_gflops(args.repeats))
    peak = max(peaks)
    print("| model | size | GFLOP nominal | GFLOP executed | ms/texture best (median) | eff. GFLOPS | of peak "
          "| executed GFLOPS (of peak) | peak MiB | max abs diff | target | ratio |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|---|")
    print(f"| matmul 4096x4096 fp32 | - | - | - | - | {peak:.1f} | 100% | {peak:.1f} (100%) | - | - | - | - |")
    for r in rows:
        rate = r["nominal"] / r["best"]
        if r["res"] >= 512:
            target_s, target = r["nominal"] / (PEAK_FRACTION_TARGET * peak), f">= {PEAK_FRACTION_TARGET:.0%} of peak"
        else:
            target_s, target = QUICK_TARGET_S, f"<= {QUICK_TARGET_S * 1000:.0f} ms"
        memory = "-" if r["memory"] is None else f"{r['memory']:.0f}"
        name = f"{r['model']} ({r['note']})" if r["note"] else r["model"]
        print(f"| {name} | {r['size']} {r['res']} px, batch {args.batch} | {r['nominal']:.2f} | {r['executed']:.2f} | "
              f"{r['best'] * 1000:.1f} ({r['median'] * 1000:.1f}) | {rate:.1f} | {rate / peak:.0%} | "
              f"{r['executed'] / r['best']:.1f} ({r['executed'] / r['best'] / peak:.0%}) | {memory} | "
              f"{r['max_diff']:.1e} | {target} ({target_s * 1000:.0f} ms) | {r['best'] / target_s:.2f} |")
    print(f"\nmatmul peak at start {peaks[0]:.1f}, at end {peaks[1]:.1f} GFLOPS; load average at end "
          f"{os.getloadavg()[0]:.2f}" + ("  (busy machine: the numbers are noisy)" if
                                          abs(peaks[0] - peaks[1]) > 0.1 * peak or load > 0.5 else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
