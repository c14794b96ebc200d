"""Shape-model training throughput (SAE and cGAN steps) for the quick and paper configs, as a markdown table.

    python -m bench.bench_shape_training [--device cpu|cuda] [--sizes quick paper] [--steps 5]
    python -m bench.bench_shape_training --device cuda --check-cuda --paper-run 200   # on a GPU machine

--check-cuda compares one SAE forward pass and one Adam step on the CPU and the GPU. --paper-run N trains the
paper-size SAE (full 3V input, widths 1024/512) on N synthetic identities generated on the fly and reports
held-out reconstruction against PCA-130 (the quick config's numbers come from `python -m train evaluate`).
"""
from __future__ import annotations

import argparse
import copy
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from core.shape_networks import ShapeNetConfig, SupervisedAutoEncoder
from train.cgan import ShapeGAN, cgan_step
from train.config import data_config, load_config
from train.sae import sae_loss
from train.shape_config import shape_section

V = 26719


def _sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def sae_step_time(size: str, dev: torch.device, steps: int, batch: int) -> float:
    cfg = load_config(size)
    shape = shape_section(cfg)
    net = ShapeNetConfig(num_vertices=V, num_identities=677, num_expressions=20, **shape["network"])
    model = SupervisedAutoEncoder(net).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    code = torch.randn(batch, net.input_dim, device=dev)
    ids, exps = torch.randint(677, (batch,), device=dev), torch.randint(20, (batch,), device=dev)
    for i in range(steps + 2):  # two warm-up steps
        if i == 2:
            _sync(dev)
            start = time.perf_counter()
        terms = sae_loss(model(code), code, ids, exps, shape["sae"], True)
        opt.zero_grad()
        terms["loss"].backward()
        opt.step()
    _sync(dev)
    return (time.perf_counter() - start) / steps


def cgan_step_time(size: str, dev: torch.device, steps: int, batch: int) -> float:
    cfg = load_config(size)
    shape = shape_section(cfg)
    net = ShapeNetConfig(num_vertices=V, num_identities=677, num_expressions=20, **shape["network"])
    gan = ShapeGAN(net).to(dev)
    opt_d = torch.optim.Adam(gan.d.parameters(), fused=True)
    opt_g = torch.optim.Adam([*gan.g_id.parameters(), *gan.g_exp.parameters()], fused=True)
    real = (torch.randn(batch, 100, device=dev), torch.randn(batch, 30, device=dev))
    ids, exps = torch.randint(677, (batch,), device=dev), torch.randint(20, (batch,), device=dev)
    z_id, z_exp = torch.randn(batch, net.z_id_dim, device=dev), torch.eye(20, device=dev)[exps]
    for i in range(steps + 2):
        if i == 2:
            _sync(dev)
            start = time.perf_counter()
        cgan_step(gan, opt_d, opt_g, {"z_id": z_id, "z_exp": z_exp, "real": real, "ids": ids, "exps": exps,
                                      "targets": real}, net.z_noise_dim, shape["cgan"])
    _sync(dev)
    return (time.perf_counter() - start) / steps


def check_cuda() -> str:
    """Same weights, same batch: CPU and CUDA forward pass and one Adam step agree (TF32 off)."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    shape = shape_section(load_config("paper"))
    net = ShapeNetConfig(num_vertices=V, num_identities=677, num_expressions=20, **shape["network"])
    torch.manual_seed(0)
    cpu = SupervisedAutoEncoder(net)
    gpu = copy.deepcopy(cpu).cuda()
    code = torch.randn(8, net.input_dim)
    ids, exps = torch.randint(677, (8,)), torch.randint(20, (8,))
    out = {}
    for name, model, dev in (("cpu", cpu, "cpu"), ("cuda", gpu, "cuda")):
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)
        terms = sae_loss(model(code.to(dev)), code.to(dev), ids.to(dev), exps.to(dev), shape["sae"], True)
        opt.zero_grad()
        terms["loss"].backward()
        opt.step()
        out[name] = (float(terms["loss"].detach()), model.decoder[-1].weight.detach().cpu())
    loss_diff = abs(out["cpu"][0] - out["cuda"][0])
    weight_diff = float((out["cpu"][1] - out["cuda"][1]).abs().max())
    return f"CUDA check: loss CPU {out['cpu'][0]:.6f} vs CUDA {out['cuda'][0]:.6f} (|diff| {loss_diff:.2e}); " \
           f"decoder weights after one Adam step max |diff| {weight_diff:.2e}"


def paper_run(num_identities: int, dev: str, epochs: int) -> str:
    """Paper-size SAE on num_identities synthetic identities; held-out reconstruction against PCA-130."""
    from train import runs
    from train.baselines import PCAModel
    from train.data.synthetic_sets import SyntheticFaceScape
    from train.shape_runs import load_sae, vertex_errors_mm
    from train.sae import train_sae

    cfg = load_config("paper")
    cfg["data"]["facescape"]["num_identities"] = num_identities
    cfg["shape"]["sae"]["epochs"] = epochs
    source = SyntheticFaceScape(data_config(cfg))
    start = time.perf_counter()
    vertices = np.stack([source.meshes(i) for i in range(num_identities)])
    build_s = time.perf_counter() - start

    class InMemorySet:  # what train_sae reads from a built set
        path = Path("in-memory")
        splits = source.splits

    InMemorySet.vertices = vertices
    runs.RunFolder.save_checkpoint = lambda self, state: None  # a 3 GB checkpoint per epoch is not what we time
    out = Path(os.environ.get("OUT", "/tmp")) / "paper_sae"
    start = time.perf_counter()
    train_sae(cfg, InMemorySet, out, device=dev, progress=False)
    train_s = time.perf_counter() - start
    model = load_sae(out)
    test = torch.from_numpy(vertices[source.splits["test"]].reshape(-1, V, 3))
    train = torch.from_numpy(vertices[source.splits["train"]].reshape(-1, V, 3))
    with torch.no_grad():
        sae_err = vertex_errors_mm(model.decode(*model.encode(test)), test)
        train_err = vertex_errors_mm(model.decode(*model.encode(train[:400])), train[:400])
    pca = PCAModel(train.to(dev), 130)  # the 3V x N Gram matrix is minutes on a CPU at paper size
    pca_err = vertex_errors_mm(pca.reconstruct(test.to(dev)).cpu(), test)
    return (f"paper-size SAE, {num_identities} identities ({len(source.splits['train'])} train), {epochs} epochs: "
            f"data {build_s:.0f} s, training {train_s:.0f} s; held-out reconstruction SAE mean "
            f"{float(sae_err.mean()):.3f} mm / median {float(sae_err.median()):.3f} mm (train {float(train_err.mean()):.3f}"
            f" mm), PCA-130 mean {float(pca_err.mean()):.3f} mm / median {float(pca_err.median()):.3f} mm")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--sizes", nargs="+", default=["quick", "paper"])
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--check-cuda", action="store_true")
    p.add_argument("--paper-run", type=int, default=0, metavar="IDENTITIES")
    p.add_argument("--paper-epochs", type=int, default=40)
    args = p.parse_args(argv)
    dev = torch.device(args.device)
    name = torch.cuda.get_device_name() if dev.type == "cuda" else f"{platform.processor() or 'CPU'}, {os.cpu_count()} cores"
    print(f"device: {name}; torch {torch.__version__}\n")
    print("| model | size | batch | ms/step | samples/s |\n|---|---|---|---|---|")
    for size in args.sizes:
        steps = args.steps if not (size == "paper" and dev.type == "cpu") else max(2, args.steps // 2)
        for model, timer, batch in (("SAE", sae_step_time, 32), ("cGAN", cgan_step_time, 64)):
            t = timer(size, dev, steps, batch)
            print(f"| {model} | {size} | {batch} | {t * 1000:.1f} | {batch / t:.0f} |", flush=True)
    if args.check_cuda:
        print("\n" + check_cuda(), flush=True)
    if args.paper_run:
        print("\n" + paper_run(args.paper_run, args.device, args.paper_epochs), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
