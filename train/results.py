"""`python -m train results --config quick [--out docs/results.md]`: every measured number in one page, gathered
from the files the measuring commands wrote, never typed by hand, each page stamped with the version, commit,
date and machine it was measured on.

Sources (each section only when its file exists):
  outputs/CONFIG/demo/steps.json           `make demo`'s step times
  outputs/CONFIG/eval/report.md            `python -m train evaluate` (shape: reconstruction, Table 1, control,
                                           intensity against the ground truth, identity-specific expression)
  outputs/CONFIG/eval/seeds/summary.md     `python -m train seeds` (the bars over several seeds)
  outputs/CONFIG/eval/report_au.md         `python -m train evaluate --set bp4d`
  outputs/CONFIG/eval/seeds_bp4d/summary.md `python -m train seeds --set bp4d` (the action-unit model over seeds)
  outputs/CONFIG/eval/texture_report.md    `python -m train evaluate-texture`
  outputs/CONFIG/eval/report_arkit.md      `python -m train evaluate --set arkit` (the ARKit rig and model)
  outputs/CONFIG/data/linearity.md         `python -m train data linearity`
  outputs/CONFIG/data/coupling.md          `python -m train data coupling` (the coupling by training count)
  outputs/bench/bench.md                   `python -m bench` (run from the repository root)
Pictures the reports link (t-SNE, texture grid) and the demo's renders are copied beside the page (images/).
"""
from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import time
from pathlib import Path

from core import __version__
from core.atomic import write_text_atomic

ROOT = Path(__file__).resolve().parents[1]


def commit_stamp() -> str:
    """The commit of the checkout, marked when files differ from it (results of uncommitted code say so)."""
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return sha + (" with uncommitted changes" if dirty else "")


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        names = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                 if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    memory = ""
    try:
        kib = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                       if line.startswith("MemTotal")))
        memory = f", {kib / 2 ** 20:.0f} GiB RAM"
    except (OSError, StopIteration, ValueError):
        pass
    import torch
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{os.cpu_count()} CPU cores ({cpu}){memory}, {gpu}; {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}, torch {torch.__version__}")


def _section(path: Path, title: str, images: Path, command: str) -> list[str]:
    """A report file as a section: its own title replaced, headings one level down, pictures copied."""
    if not path.is_file():
        return [f"## {title}", "", f"Not measured for this page: `{command}` writes `{path}`.", ""]
    stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime(path.stat().st_mtime))
    lines = [f"## {title}", "", f"From `{path}` (written {stamp} by `{command}`).", ""]
    for line in path.read_text().splitlines():
        if line.startswith("# "):
            continue
        if line.startswith("#"):
            line = "#" + line
        for target in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", line):
            source = path.parent / target
            if source.is_file():
                images.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, images / f"{path.stem}_{Path(target).name}")
                line = line.replace(f"({target})", f"(images/{path.stem}_{Path(target).name})")
        lines.append(line)
    return lines + [""]


def _demo_section(demo: Path, images: Path) -> list[str]:
    steps = demo / "steps.json"
    lines = ["## `make demo`", ""]
    if not steps.is_file():
        return lines + ["Not measured for this page: `python -m train demo` writes `steps.json` when it finishes.", ""]
    log = json.loads(steps.read_text())
    lines += [f"`python -m train demo --config {log['config']}` from nothing (no outputs before it): "
              f"{log['total_seconds']:.0f} s.", "", "| step | | s |", "|---|---|---:|"]
    lines += [f"| {s['step']} | {s['how']} | {s['seconds']:.1f} |" for s in log["steps"]]
    if not log.get("fresh", False):
        lines += ["", "Some steps were reused from an earlier run (see the middle column): this is not a from-scratch "
                      "time."]
    scene = demo / "result.json"
    if scene.is_file():
        r = json.loads(scene.read_text())
        if "extension_mib" in r:
            lines += ["", f"The extension `{Path(r['extension']).name}` ({r['extension_mib']} MiB, the model inside) "
                          f"made these pictures in {r['blender']}; "
                      + "; ".join(f"in bpy {v} without torch: {how}" for v, how in r.get("other_blenders", {}).items())
                      + "."]
    pictures = [p for p in ("face_1.png", "face_2.png", "face_3.png", "sweep_strip.png", "arkit_strip.png")
                if (demo / p).is_file()]
    if pictures:
        images.mkdir(parents=True, exist_ok=True)
        lines += [""]
        for p in pictures:
            shutil.copyfile(demo / p, images / f"demo_{p}")
            lines.append(f"![{p}](images/demo_{p})")
    return lines + [""]


def results_page(config: str, out: Path) -> Path:
    from train.data.cli import output_root
    root = output_root(config)
    eval_dir = root / "eval"
    images = out.parent / "images"
    lines = [f"# Measured results ({config} config)", "",
             f"Generated by `python -m train results --config {config}` from the files the measuring commands wrote; "
             "nothing here is typed by hand.", "",
             f"- facecam {__version__}, commit {commit_stamp()}",
             f"- generated {time.strftime('%Y-%m-%d %H:%M %Z')}",
             f"- machine: {machine()}", "",
             "Every number below was measured on that machine from the outputs of that commit's `make demo` (and the "
             "commands named per section); the data are synthetic (built from ICT-FaceKit), never FaceScape or BP4D.",
             ""]
    lines += _demo_section(root / "demo", images)
    lines += _section(eval_dir / "report.md", "Shape model", images, f"python -m train evaluate --config {config}")
    lines += _section(eval_dir / "seeds" / "summary.md", "Shape model over seeds", images,
                      f"python -m train seeds --config {config} --seeds 0 1 2")
    lines += _section(eval_dir / "report_au.md", "Action-unit shape model", images,
                      f"python -m train evaluate --config {config} --set bp4d")
    lines += _section(eval_dir / "seeds_bp4d" / "summary.md", "Action-unit shape model over seeds", images,
                      f"python -m train seeds --config {config} --set bp4d --seeds 0 1 2")
    lines += _section(eval_dir / "texture_report.md", "Texture model", images,
                      f"python -m train evaluate-texture --config {config}")
    lines += _section(eval_dir / "report_arkit.md", "ARKit rig", images,
                      f"python -m train evaluate --config {config} --set arkit")
    lines += _section(root / "data" / "linearity.md", "Data: what a linear model misses", images,
                      f"python -m train data linearity --config {config}")
    coupling = root / "data" / "coupling.json"
    lines += _section(root / "data" / "coupling.md", "Data: the learnable coupling by training count", images,
                      json.loads(coupling.read_text()).get("command", "python -m train data coupling")
                      if coupling.is_file() else f"python -m train data coupling --config {config}")
    lines += _section(root.parent / "bench" / "bench.md", "Benchmarks", images, "python -m bench")
    write_text_atomic(out, "\n".join(lines).rstrip() + "\n")
    return out


def main(args) -> int:
    from train.config import load_config
    cfg = load_config(args.config)
    from train.data.cli import output_root
    out = Path(args.out) if args.out else output_root(cfg["name"]) / "results.md"
    print(f"results: {results_page(cfg['name'], out)}")
    return 0
