"""The main job (`make demo`, `python -m train demo --config quick`): data, the shape and texture models, their
evaluation, an exported model folder, and faces in Blender, from nothing.

Each step is skipped when its result exists (a finished run, a report newer than what it measures), and a
training run stopped half-way resumes from its checkpoint, so a second `make demo` redoes nothing. To retrain a
step, delete its folder (printed in the summary).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from dataclasses import dataclass

import torch

from core.atomic import write_text_atomic
from train.config import data_config, load_config, typed_section
from train.data.cli import output_root, set_dir
from train.data.sheets import bp4d_sheet, facescape_sheet, sweep_sheet, transfer_sheet
from train.data.synthetic_sets import SyntheticBP4D, SyntheticFaceScape, build_set
from train.runs import set_aside_if_stale
from train.texture import WIDEN_TO, WIDEN_WHEN

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class DemoConfig:
    render_resolution: int  # px, square
    render_samples: int  # Cycles samples per render
    contact_sheets: bool  # the data sets' preview pictures (a smoke run skips them)
    # Train the texture model in a one-thread process beside the shape models (this process down to one thread too)
    # instead of after them. On a 2-core CPU the shape networks' small layers lose little from one thread and the
    # texture convolutions keep a core to themselves: the quick demo finishes minutes sooner. Off where one step
    # would wait for the other anyway (the paper smoke run's texture dwarfs its shape steps) or for GPUs.
    texture_beside_shape: bool
    # the extension zip with the model inside must stay a download people take (0: no limit, for the paper model,
    # whose decoder alone is 328 MB)
    max_extension_mib: float


def demo_section(cfg: dict) -> DemoConfig:
    where = f"{cfg.get('_path', cfg['name'])}: demo"
    demo = typed_section(cfg.get("demo", {"render_resolution": 384, "render_samples": 24, "contact_sheets": True,
                                          "texture_beside_shape": False, "max_extension_mib": 0}), DemoConfig, where)
    if demo.render_resolution < 16 or demo.render_samples < 1:
        raise ValueError(f"{where}: render_resolution must be >= 16 and render_samples >= 1")
    return demo


def _newest(paths) -> float:
    return max((p.stat().st_mtime for p in paths if p.exists()), default=float("inf"))


def _fresh(result: Path, inputs) -> bool:
    """result exists and is newer than every input."""
    return result.is_file() and result.stat().st_mtime >= _newest(inputs)


def _train(config: str, args: list[str], run: Path, finished: str, inputs=()) -> str:
    """Run `python -m train ARGS` unless run/finished exists; resume a run that has a checkpoint. A run older than
    the config file or one of its `inputs` is set aside first."""
    from train.cli import run_step

    set_aside_if_stale(run, config, inputs)
    if (run / finished).is_file():
        return "reused"
    resume = ["--resume"] if (run / "checkpoint.pt").is_file() else []
    code = run_step([*args, "--config", config, "--out", str(run), *resume])
    if code == 130:  # Ctrl-C: the demo stops too (and says how to go on)
        raise KeyboardInterrupt
    if code:
        raise SystemExit(f"`python -m train {' '.join(args)} --config {config}` failed ({code})")
    return "resumed" if resume else "trained"


def _command(argv: list[str]) -> None:
    """`python -m train ARGV` in this process; a failure stops the demo (a step must not pass on a non-zero code)."""
    from train.cli import run_step
    code = run_step(argv)
    if code == 130:
        raise KeyboardInterrupt
    if code:
        raise SystemExit(f"`python -m train {' '.join(argv)}` failed ({code})")


def widen_signal(run: Path) -> Path:
    """The file whose existence tells a run started beside the shape steps that they are done (train/texture.py
    then takes every core)."""
    return run.parent / f"{run.name}.shape-done"


def _start_beside(config: str, args: list[str], run: Path, finished: str, output: Path
                  ) -> tuple[subprocess.Popen | None, str]:
    """`python -m train ARGS` as _train runs it, but in a child process with one thread, its output in `output`;
    returns (the process, or None when the run is finished already, and how the step went)."""
    set_aside_if_stale(run, config)
    if (run / finished).is_file():
        return None, "reused"
    widen_signal(run).unlink(missing_ok=True)
    resume = ["--resume"] if (run / "checkpoint.pt").is_file() else []
    output.parent.mkdir(parents=True, exist_ok=True)
    with output.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "train", *args, "--config", config, "--out", str(run), *resume],
                                stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                                     WIDEN_WHEN: str(widen_signal(run).resolve()),
                                     WIDEN_TO: str(torch.get_num_threads())})
    return proc, "resumed" if resume else "trained"


def _stop(proc: subprocess.Popen) -> None:
    """End a child training run that is still going (it resumes from its checkpoint next time)."""
    if proc.poll() is None:
        proc.terminate()
        proc.wait()


def _finish_beside(proc: subprocess.Popen, args: list[str], config: str, output: Path) -> None:
    try:
        code = proc.wait()
    except BaseException:  # interrupted while waiting: the child stops too
        _stop(proc)
        raise
    if code == 130:
        raise KeyboardInterrupt
    if code:
        tail = output.read_text(errors="replace")[-3000:]
        raise SystemExit(f"`python -m train {' '.join(args)} --config {config}` failed ({code}); its output "
                         f"({output}) ends:\n{tail}")


def _step(log: list, name: str, fn) -> None:
    start = time.perf_counter()
    print(f"\n== {name}", flush=True)
    how = fn()
    log.append((name, how or "done", time.perf_counter() - start))


# the Blender versions the extension is tested in (bpy from PyPI, each in a venv with nothing else: the Makefile's
# BLENDER_VERSIONS, the same three); the demo's pictures come from the last
BLENDER_VERSIONS = ("4.2.23", "4.5.15", "5.0.1")
STOCK_BLENDER = BLENDER_VERSIONS[-1]


def stock_blender_python(version: str = STOCK_BLENDER) -> Path:
    """The Python of a venv with bpy and nothing else (the Makefile's .venv-blender-VERSION): a Blender as users
    have it, without torch."""
    python = ROOT / f".venv-blender-{version}" / "bin" / "python"
    if not python.is_file():
        raise SystemExit(f"{python}: missing; `make blender-venvs` creates the Blender venvs")
    return python


def blender_scene(model: Path, out_dir: Path, config: str, resolution: int, samples: int,
                  max_mib: float = 0) -> dict:
    """Build the extension zip with the model inside (dist/facecam-VERSION.zip), then in a fresh Blender (bpy)
    process with default preferences and no torch (the venv of stock_blender_python()): three faces with baked
    sweeps, renders, a .blend."""
    build = subprocess.run([sys.executable, str(ROOT / "build_addon.py"), "--out", "dist", "--model", str(model)],
                           capture_output=True, text=True)
    if build.returncode != 0:
        raise SystemExit(f"building the extension failed: {build.stderr[-2000:]}")
    zip_path = str(Path(build.stdout.split("extension: ", 1)[1].splitlines()[0].strip()).resolve())
    size_mib = Path(zip_path).stat().st_size / 2 ** 20
    if max_mib and size_mib > max_mib:
        raise SystemExit(f"{zip_path}: {size_mib:.1f} MiB, over the config's demo.max_extension_mib ({max_mib:g})")

    def scene(version: str, folder: Path, resolution: int, samples: int) -> dict:
        env = {**os.environ, "BLENDER_USER_RESOURCES": str((output_root(config) / f"blender_user_{version}").resolve())}
        folder.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run([str(stock_blender_python(version)), str(ROOT / "train" / "blender_scene.py"), zip_path,
                               str(model.resolve()), str(folder.resolve()), str(resolution), str(samples)], env=env,
                              capture_output=True, text=True)
        if proc.returncode != 0 or "RESULT " not in proc.stdout:
            raise SystemExit(f"the Blender step failed in bpy {version}:\n{proc.stdout[-2000:]}\n"
                             f"{proc.stderr[-3000:]}")
        return json.loads(proc.stdout.split("RESULT ", 1)[1])

    result = scene(STOCK_BLENDER, out_dir, resolution, samples)
    # the same zip in the other Blender versions it claims: the same operators, small quick renders
    others = {v: len(scene(v, out_dir / f"bpy-{v}", 64, 2)["faces"]) for v in BLENDER_VERSIONS[:-1]}
    return {**result, "extension_mib": round(size_mib, 1), "blender": f"bpy {STOCK_BLENDER} without torch",
            "other_blenders": {v: f"{n} faces generated, swept and rendered" for v, n in others.items()}}


def run_demo(config: str = "quick") -> int:
    full = load_config(config)
    cfg, renders = data_config(full), demo_section(full)
    name = cfg.config_name
    root = output_root(name)
    shape, texture = root / "shape", root / "texture" / "texture"
    model = root / "export" / f"facecam-{name}"
    demo = root / "demo"
    start = time.perf_counter()
    log: list = []

    def synthetic_sets():
        for kind in ("facescape", "bp4d", *(("arkit",) if cfg.arkit is not None else ())):
            build_set(kind, cfg, set_dir(name, kind))  # reused when already built from this config
    _step(log, "synthetic sets", synthetic_sets)
    preview = root / "preview"
    sheets = {p: preview / p for p in ("facescape_sheet.png", "facescape_sweep.png", "transfer_sheet.png",
                                       "bp4d_sheet.png")}

    def contact_sheets():
        if not renders.contact_sheets:
            return "skipped (demo.contact_sheets is false)"
        if all(p.is_file() for p in sheets.values()):
            return "reused"
        facescape = SyntheticFaceScape(cfg)
        facescape_sheet(facescape, sheets["facescape_sheet.png"])
        sweep_sheet(facescape, sheets["facescape_sweep.png"])
        transfer_sheet(facescape, sheets["transfer_sheet.png"])
        bp4d_sheet(SyntheticBP4D(cfg, facescape.ict), sheets["bp4d_sheet.png"])
    _step(log, "contact sheets", contact_sheets)
    texture_output = root / "texture" / "texture.log"
    texture_job, texture_how = (_start_beside(config, ["texture"], texture, "texture.safetensors", texture_output)
                                if renders.texture_beside_shape else (None, ""))
    texture_started, threads = time.perf_counter(), torch.get_num_threads()
    try:
        if texture_job is not None:
            torch.set_num_threads(1)  # a core each: two processes spinning on both cores would slow both
        _step(log, "SAE", lambda: _train(config, ["sae"], shape / "sae", "sae.safetensors"))
        _step(log, "AE baseline", lambda: _train(config, ["sae", "--unsupervised"], shape / "ae", "sae.safetensors"))
        _step(log, "shape cGANs", lambda: _train(config, ["cgan"], shape / "cgan", "generators.safetensors",
                                                 inputs=[shape / "sae" / "sae.safetensors"]))
        if cfg.arkit is not None:
            _step(log, "ARKit SAE", lambda: _train(config, ["sae", "--set", "arkit"], shape / "sae_arkit",
                                                   "sae.safetensors"))
            _step(log, "ARKit cGANs", lambda: _train(config, ["cgan", "--set", "arkit"], shape / "cgan_arkit",
                                                     "generators.safetensors",
                                                     inputs=[shape / "sae_arkit" / "sae.safetensors"]))
    except BaseException:
        if texture_job is not None:
            _stop(texture_job)
        raise
    finally:
        torch.set_num_threads(threads)
    if texture_job is not None:  # the shape steps are done: the texture run may take every core
        widen_signal(texture).touch()

    def texture_step():
        if not renders.texture_beside_shape:
            return _train(config, ["texture"], texture, "texture.safetensors")
        if texture_job is not None:  # the step's own seconds: the wait after the shape steps
            print(f"(beside the shape steps since {time.perf_counter() - texture_started:.0f} s; output: "
                  f"{texture_output})", flush=True)
            _finish_beside(texture_job, ["texture"], config, texture_output)
            return f"{texture_how} beside the shape steps, {time.perf_counter() - texture_started:.0f} s in all"
        return texture_how
    _step(log, "texture model", texture_step)

    runs = [shape / "sae" / "sae.safetensors", shape / "ae" / "sae.safetensors",
            shape / "cgan" / "generators.safetensors"]
    rig, rig_report = shape / "arkit_rig" / "arkit_rig.safetensors", root / "eval" / "report_arkit.json"
    if cfg.arkit is not None:
        from train.config import config_mtime
        arkit_set = set_dir(name, "arkit") / "meta.json"
        _step(log, "ARKit rig", lambda: "reused" if _fresh(rig, [arkit_set]) and rig.stat().st_mtime >= config_mtime(
            config) else _command(["arkit-rig", "--config", config]))
        arkit_runs = [rig, shape / "sae_arkit" / "sae.safetensors", shape / "cgan_arkit" / "generators.safetensors",
                      shape / "cgan" / "generators.safetensors"]
        _step(log, "ARKit evaluation", lambda: "reused" if _fresh(rig_report, arkit_runs) else
              _command(["evaluate", "--config", config, "--set", "arkit"]))
    report, texture_report = root / "eval" / "report.json", root / "eval" / "texture_report.json"
    _step(log, "shape evaluation", lambda: "reused" if _fresh(report, runs) else
          _command(["evaluate", "--config", config]))
    _step(log, "texture evaluation", lambda: "reused" if _fresh(texture_report, [texture / "texture.safetensors"])
          else _command(["evaluate-texture", "--config", config]))
    _step(log, "export", lambda: "reused" if _fresh(model / "config.json", [*runs, texture / "texture.safetensors",
                                                                             report, texture_report, rig])
          else _command(["export", "--config", config, "--overwrite"]))

    rigged_glb = demo / "face_arkit.glb"

    def arkit_glb():
        if cfg.arkit is None:
            return "skipped (no data.arkit in the config)"
        if _fresh(rigged_glb, [model / "config.json"]):
            return "reused"
        from core.__main__ import main as core_main
        if core_main(["generate", "--model", str(model), "--seed", "2", "--arkit-rig", "--out", str(rigged_glb)]):
            raise SystemExit("`python -m core generate --arkit-rig` failed")
    _step(log, "ARKit rig as glTF", arkit_glb)

    blend = demo / "faces.blend"
    result = {}

    def faces_in_blender():
        if _fresh(blend, [model / "config.json"]) and (demo / "result.json").is_file():
            result.update(json.loads((demo / "result.json").read_text()))
            return "reused"
        demo.mkdir(parents=True, exist_ok=True)
        result.update(blender_scene(model, demo, name, renders.render_resolution, renders.render_samples,
                                    renders.max_extension_mib))
        (demo / "result.json").write_text(json.dumps(result, indent=1))
    _step(log, "Blender: faces, sweeps, renders", faces_in_blender)

    total = time.perf_counter() - start
    steps = {"config": name, "total_seconds": total, "fresh": all(how != "reused" for _, how, _ in log),
             "steps": [{"step": step, "how": how, "seconds": seconds} for step, how, seconds in log]}
    write_text_atomic(demo / "steps.json", json.dumps(steps, indent=1))
    from train.results import results_page
    page = results_page(name, root / "results.md")
    print(f"\nfacecam demo ({name}) finished in {total:.0f} s.")
    print("\n| step | | s |\n|---|---|---:|")
    for step, how, seconds in log:
        print(f"| {step} | {how} | {seconds:.1f} |")
    outputs = {"FaceScape-like set": set_dir(name, "facescape"), "BP4D-like set": set_dir(name, "bp4d"),
               **{f"contact sheet {k}": v for k, v in sheets.items()},
               "SAE / AE / cGAN runs": shape, "texture run (samples/)": texture,
               "shape evaluation (report.md, tsne.png)": root / "eval" / "report.md",
               "texture evaluation (texture_report.md, texture_grid.png)": root / "eval" / "texture_report.md",
               "ARKit rig evaluation (report_arkit.md)": root / "eval" / "report_arkit.md",
               "exported model folder": model, "a face with its ARKit rig (glTF, 51 morph targets)": rigged_glb,
               "Blender scene": blend,
               **{f"render {Path(p).name}": p for p in result.get("renders", [])},
               "sweep strip": result.get("strip", ""), "ARKit rig strip": (result.get("arkit") or {}).get("strip", ""), "every number of this run (results page)": page,
               "Blender extension with this model inside (install from disk)": result.get("extension", "")}
    print("\nOutputs:")
    for what, path in outputs.items():
        print(f"  {what}: {Path(path).resolve()}")
    return 0
