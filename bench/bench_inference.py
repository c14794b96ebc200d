"""Inference speed and memory of core.FaceModel on its two backends, numpy and torch, side by side, as a markdown table.

    python -m bench.bench_inference [--model outputs/quick/export/facecam-quick] [--repeats 7]

Each backend is timed in a fresh process of its own (numpy's without torch imported, as in a stock Blender: torch's
idle worker threads would otherwise compete with numpy's on a small machine). Rows, numpy then torch and their
ratio (target: numpy within 1.5x of torch where the issue sets one):
- load the exported quick model (a local folder; the same code reads the hub cache);
- the quick model: one face's mesh, its texture alone (target <= 60 ms), a 10-level sweep's meshes;
- paper size at random weights (bench/random_model.py: the quick model's template with the paper config's
  networks: decoder 130 -> 512 -> 1024 -> 26,719 x 3, ProGAN to 512 px): one face's mesh, a sweep of 10, one face's
  512 px texture (two generator passes: the neutral and the expression, as calibrated intensity blends them);
- peak memory (RSS) of a process that imported bpy, loaded the paper-size model and made one textured face.
Times are the best of --repeats after a warm-up.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BACKENDS = ("numpy", "torch")


def best_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * min(times)


def measure(backend: str, quick: Path, paper: Path, repeats: int) -> dict:
    """One backend's timings (ms), in this process."""
    from core.face_model import FaceModel
    out = {"load quick model": best_ms(lambda: FaceModel(quick, backend=backend), 3)}
    for label, folder in (("quick", quick), ("paper", paper)):
        model = FaceModel(folder, backend=backend)
        expression = model.expression_names[1]
        out[f"{label}: one face's mesh"] = best_ms(lambda: model.generate(7, expression, 1.3, texture=False), repeats)
        out[f"{label}: sweep of 10 meshes"] = best_ms(
            lambda: model.sweep(7, expression, [0.25 * k for k in range(1, 11)], texture=False), repeats)
        if model.has_texture:
            out[f"{label}: one face's texture"] = best_ms(lambda: model.texture_image(7, expression, 1.3),
                                                          max(2, repeats // 2) if label == "paper" else repeats)
    return out


def peak_memory(backend: str, paper: Path) -> float:
    """MiB of peak RSS: bpy imported, the paper-size model loaded, one textured face made."""
    import bpy  # noqa: F401 - a Blender's own footprint first
    from core.face_model import FaceModel
    FaceModel(paper, backend=backend).generate(7, 2, 1.3)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(backend: str, task: str, quick: Path, paper: Path, repeats: int) -> dict | float:
    """measure() or peak_memory() in a fresh process (`--child BACKEND TASK`)."""
    proc = subprocess.run([sys.executable, "-m", "bench.bench_inference", "--child", backend, task, "--model",
                           str(quick), "--paper", str(paper), "--repeats", str(repeats)],
                          cwd=ROOT, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0 or "RESULT " not in proc.stdout:
        raise SystemExit(f"{backend} {task} failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.split("RESULT ", 1)[1])


TARGETS = {"quick: one face's texture": ("<= 60 ms numpy", lambda n, t: n / 60),
           "paper: one face's mesh": ("numpy <= 1.5x torch", lambda n, t: n / t / 1.5),
           "paper: sweep of 10 meshes": ("numpy <= 1.5x torch", lambda n, t: n / t / 1.5),
           "paper: one face's texture": ("numpy <= 1.5x torch", lambda n, t: n / t / 1.5)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(ROOT / "outputs/quick/export/facecam-quick"))
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--child", nargs=2, metavar=("BACKEND", "TASK"), help=argparse.SUPPRESS)
    parser.add_argument("--paper", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    quick = Path(args.model).resolve()
    if args.child:
        backend, task = args.child
        result = (measure(backend, quick, Path(args.paper), args.repeats) if task == "measure" else
                  peak_memory(backend, Path(args.paper)))
        print("RESULT " + json.dumps(result))
        return 0
    if not (quick / "config.json").is_file():
        raise SystemExit(f"--model {quick}: no exported model there; run `make demo` first")
    from bench.random_model import config_networks, random_model
    with tempfile.TemporaryDirectory(prefix="facecam-bench-") as tmp:
        paper = random_model(quick, Path(tmp) / "paper", *config_networks("paper"))
        times = {b: child(b, "measure", quick, paper, args.repeats) for b in BACKENDS}
        memory = {b: child(b, "peak_memory", quick, paper, args.repeats) for b in BACKENDS}
    rows = []
    for step in times["numpy"]:
        n, t = times["numpy"][step], times["torch"][step]
        target, ratio = TARGETS.get(step, ("", None))
        rows.append(f"| {step} | {n:.1f} | {t:.1f} | {n / t:.2f} | {target} | "
                    f"{'' if ratio is None else f'{ratio(n, t):.2f}'} |")
    rows.append(f"| peak RSS (MiB): bpy + paper-size model + one textured face | {memory['numpy']:.0f} | "
                f"{memory['torch']:.0f} | {memory['numpy'] / memory['torch']:.2f} | numpy <= torch | "
                f"{memory['numpy'] / memory['torch']:.2f} |")
    from train.results import machine
    print(f"machine: {machine()}; best of {args.repeats}; each backend in a process of its own")
    print("| step | numpy ms | torch ms | numpy / torch | target | ratio |\n|---|---|---|---|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
