"""Time and peak memory to build the synthetic data sets, and to make textures on the fly; prints a markdown table.

    python -m bench.bench_data [--sizes quick paper] [--out-dir DIR] [--keep]

Each step runs in a fresh child process, so its peak RSS is its own. The per-child figure comes from os.wait4:
getrusage(RUSAGE_CHILDREN).ru_maxrss is the largest over every child waited for so far, so after a big build it
would hide a smaller one.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GIB, MIB = 1 << 30, 1 << 20
RAM_TARGET_GIB = 24
QUICK_TARGET_S = 120
TEXTURE_SAMPLES = 20


def set_counts(kind: str, size: str) -> tuple[int, int]:
    """(meshes, bytes on disk the build needs), from the config alone."""
    from train.config import data_config, load_config
    from train.data.expressions import AU_TASK_PROTOTYPES, FACESCAPE_EXPRESSIONS
    from train.data.ict import NUM_VERTICES
    cfg = data_config(load_config(size))
    if kind == "facescape":
        s = cfg.facescape
        meshes = s.num_identities * len(FACESCAPE_EXPRESSIONS)
    else:
        s = cfg.bp4d
        meshes = s.num_identities * len(AU_TASK_PROTOTYPES) * s.frames_per_task
    per_mesh = NUM_VERTICES * 3 * 4 + (s.texture_resolution ** 2 * 3 if s.store_textures else 0)
    return meshes, meshes * per_mesh


def child(step: str, size: str, kind: str, out: str) -> None:
    """Runs in the child process; prints one JSON line with what it measured."""
    from train.config import data_config, load_config
    from train.data.synthetic_sets import SyntheticFaceScape, build_set
    cfg = data_config(load_config(size))
    if step == "build":
        t0 = time.perf_counter()
        build_set(kind, cfg, out, progress=sys.stderr.isatty(), force=True)
        print(json.dumps({"seconds": time.perf_counter() - t0}))
        return
    source = SyntheticFaceScape(cfg)
    n_exp = len(source.expression_names)
    source.texture(0, 0, window="crop")  # warm-up: caches, first raster setup
    t0 = time.perf_counter()
    for k in range(TEXTURE_SAMPLES):  # a new identity each time, as a shuffled loader would ask
        source.texture(1 + k % (source.num_identities - 1), k % n_exp, window="crop")
    print(json.dumps({"seconds": (time.perf_counter() - t0) / TEXTURE_SAMPLES,
                      "resolution": cfg.facescape.texture_resolution}))


def run_child(step: str, size: str, kind: str, out: Path) -> tuple[dict, float, float]:
    """(child's JSON, wall s, peak RSS MiB) of one step in a fresh interpreter."""
    code = "import sys; from bench.bench_data import child; child(*sys.argv[1:])"
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code, step, size, kind, str(out)], cwd=REPO,
                            stdout=subprocess.PIPE, text=True)  # stderr (progress bars) goes to the terminal
    stdout = proc.stdout.read()
    proc.stdout.close()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{step} {size} {kind}: child exited with {proc.returncode}; stdout: {stdout[-2000:]}")
    rss_kib = usage.ru_maxrss if sys.platform != "darwin" else usage.ru_maxrss / 1024  # macOS reports bytes
    return json.loads(stdout.strip().splitlines()[-1]), wall, rss_kib / 1024


def disk_gib(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / GIB


def target_cells(size: str, wall: float, rss_mib: float) -> tuple[str, str]:
    if size == "paper":
        return f"peak RSS < {RAM_TARGET_GIB} GiB", f"{rss_mib / 1024 / RAM_TARGET_GIB:.2f}"
    return f"wall < {QUICK_TARGET_S} s", f"{wall / QUICK_TARGET_S:.2f}"


def bench_size(size: str, out_dir: Path, keep: bool) -> list[str]:
    rows = []
    for kind in ("facescape", "bp4d"):
        meshes, need = set_counts(kind, size)
        target = out_dir / f"{size}-{kind}"
        free = shutil.disk_usage(out_dir).free
        if need * 1.1 + GIB > free:  # margin for the PNGs, meta and the filesystem
            rows.append(f"| build {kind} | {size} | {meshes:,} | skipped: needs ~{need / GIB:.1f} GiB, "
                        f"{free / GIB:.1f} GiB free on {out_dir} | | | | | |")
            continue
        print(f"building {size} {kind} ({meshes:,} meshes, ~{need / GIB:.2f} GiB) into {target}", file=sys.stderr)
        _, wall, rss = run_child("build", size, kind, target)
        disk = disk_gib(target)
        if not keep:
            shutil.rmtree(target)
        rows.append(f"| build {kind} | {size} | {meshes:,} | {wall:.1f} | {rss:,.0f} | {disk:.2f} | "
                    f"{meshes / wall:,.1f} meshes/s | " + " | ".join(target_cells(size, wall, rss)) + " |")
    meshes, _ = set_counts("facescape", size)
    print(f"timing {size} on-the-fly textures", file=sys.stderr)
    result, _, rss = run_child("texture", size, "facescape", out_dir)
    projected = result["seconds"] * meshes
    rows.append(f"| textures on the fly, {result['resolution']} px crop (projected for the set) | {size} | "
                f"{meshes:,} | {projected:,.1f} | {rss:,.0f} | 0 | {result['seconds'] * 1000:.1f} ms/texture | "
                + " | ".join(target_cells(size, projected, rss)) + " |")
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["quick", "paper"], choices=["quick", "paper"])
    parser.add_argument("--out-dir", type=Path, help="where the sets are built (default: a temporary folder "
                                                     "in the repo, on the repo's disk)")
    parser.add_argument("--keep", action="store_true", help="keep the built sets")
    args = parser.parse_args(argv)
    made = args.out_dir is None
    out_dir = Path(tempfile.mkdtemp(prefix=".bench_data-", dir=REPO)) if made else args.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        rows = [r for size in args.sizes for r in bench_size(size, out_dir, args.keep)]
    finally:
        if made and not args.keep:
            shutil.rmtree(out_dir, ignore_errors=True)
    from train.results import machine
    print(f"Machine: {machine()}" + (f"; sets kept in {out_dir}" if args.keep else ""))
    print()
    print("| step | size | meshes | wall s | peak RSS MiB | disk GiB | rate | target | ratio |")
    print("|---|---|---:|---:|---:|---:|---:|---|---:|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
