"""The training side's command line: its parser, and one step (every command but the composite `demo` and `seeds`,
which train/__main__.py runs, and which call steps through `run_step`: so this module imports neither)."""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from core.hub import WeightsError
from train.config import ConfigError
from train.data import cli as data_cli


def add_run_arguments(parser: argparse.ArgumentParser, set_help: str, out_default: str) -> None:
    """What every training command takes: config, data set, run folder, resume, device."""
    parser.add_argument("--config", default="quick")
    parser.add_argument("--set", choices=("facescape", "bp4d", "arkit"), default="facescape",
                        help=f"{set_help} (default: facescape)")
    parser.add_argument("--out", help=f"run folder (default: {out_default})")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m train", description="facecam training command line")
    sub = parser.add_subparsers(dest="command", required=True)
    data_cli.add_parser(sub)
    demo = sub.add_parser("demo", help="the main job: data, shape and texture models, evaluation, export, faces in "
                                       "Blender (finished steps are reused)")
    demo.add_argument("--config", default="quick")
    sae = sub.add_parser("sae", help="train the supervised auto-encoder (or, --unsupervised, the plain AE)")
    add_run_arguments(sae, "holistic expressions, or action units", "outputs/CONFIG/shape/sae or .../ae")
    sae.add_argument("--unsupervised", action="store_true", help="drop the classification terms (the paper's AE)")
    cgan = sub.add_parser("cgan", help="train the conditional GANs on a trained SAE's embeddings")
    add_run_arguments(cgan, "which SAE's embeddings, for the default folders", "outputs/CONFIG/shape/cgan")
    cgan.add_argument("--sae", help="SAE run folder (default: outputs/CONFIG/shape/sae, or sae_bp4d)")
    tex = sub.add_parser("texture", help="train the texture model of the config's architecture (the appearance model or the "
                                         "progressive GAN) on the sets' UV crops")
    add_run_arguments(tex, "expression classes, or action units", "outputs/CONFIG/texture/texture")
    tex.add_argument("--data-workers", type=int, help="processes synthesising the crops of a set that stores none "
                                                      "(default: one per core but one; 0: in the training process)")
    rig = sub.add_parser("arkit-rig", help="fit the learned ARKit rig (each person's 51 keys from their neutral face) "
                                           "on the ARKit-like set")
    rig.add_argument("--config", default="quick")
    rig.add_argument("--out", help="folder (default: outputs/CONFIG/shape/arkit_rig)")
    ev = sub.add_parser("evaluate", help="measure the trained shape model against baselines and ground truth")
    ev.add_argument("--config", default="quick")
    ev.add_argument("--set", choices=("facescape", "bp4d", "arkit"), default="facescape",
                    help="the holistic model, the action-unit model, or the ARKit model and rig (default: facescape)")
    ev.add_argument("--cgan", help="cGAN run folder (default: outputs/CONFIG/shape/cgan); e.g. one trained with one-hot "
                                   "z_id, to report Table 1 for both kinds")
    ev.add_argument("--out", help="report folder (default: outputs/CONFIG/eval)")
    sds = sub.add_parser("seeds", help="train and evaluate the shape pipeline (SAE + cGAN) once per seed; bars as "
                                       "worst / mean over the seeds")
    sds.add_argument("--config", default="quick")
    sds.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    sds.add_argument("--set", choices=("facescape", "bp4d"), default="facescape",
                     help="the holistic model, or the action-unit model (default: facescape)")
    evt = sub.add_parser("evaluate-texture", help="measure the trained texture model (SWD, control, grid)")
    evt.add_argument("--config", default="quick")
    exp = sub.add_parser("export", help="write trained runs as a model folder (hub layout) that core.FaceModel loads")
    exp.add_argument("--config", default="quick")
    exp.add_argument("--set", choices=("facescape", "bp4d", "arkit"), default="facescape")
    exp.add_argument("--out", help="model folder (default: outputs/CONFIG/export/facecam-CONFIG)")
    exp.add_argument("--overwrite", action="store_true", help="replace a previous export in --out")
    res = sub.add_parser("results", help="every measured number of a config's reports and benchmarks in one page, "
                                         "stamped with the commit and machine")
    res.add_argument("--config", default="quick")
    res.add_argument("--out", help="page path (default: outputs/CONFIG/results.md; docs/results.md for the README)")
    pub = sub.add_parser("publish", help="upload an exported model folder to the hub and print its manifest entry")
    pub.add_argument("--model", required=True, help="the exported model folder")
    pub.add_argument("--repo-id", required=True, help="owner/name on the hub")
    pub.add_argument("--name", help="the model's name in weights_manifest.json (default: its config name)")
    pub.add_argument("--update-manifest", action="store_true", help="write the entry into weights_manifest.json")
    pub.add_argument("--manifest", help="manifest path (default: the repository's weights_manifest.json)")
    return parser


RESUMABLE = ("sae", "cgan", "texture")  # commands with --resume; demo and seeds resume their runs by themselves
COMPOSITE = ("demo", "seeds")  # commands made of steps: train/__main__.py runs them


def stopped_message(args, argv: list[str]) -> str:
    """What to type to carry on after Ctrl-C."""
    if args.command in RESUMABLE:
        again = " ".join(["python -m train", *[a for a in argv if a != "--resume"], "--resume"])
        return f"stopped; the last finished epoch is in its checkpoint: resume with `{again}`"
    if args.command in COMPOSITE:
        return (f"stopped; run `python -m train {' '.join(argv)}` again: finished steps are reused and a stopped "
                "training run resumes from its last epoch")
    return f"stopped; nothing half-written was kept: run `python -m train {' '.join(argv)}` again"


def guarded(args, argv: list[str], run) -> int:
    """run()'s exit code, a config or input error as code 2 with its message, Ctrl-C as 130 with how to go on."""
    try:
        return run()
    except (ConfigError, WeightsError, FileNotFoundError, FileExistsError, KeyError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # checkpoints and outputs are written atomically: what is on disk is whole
        print(f"\n{stopped_message(args, argv)}", file=sys.stderr)
        return 130


def run_step(argv: list[str]) -> int:
    """`python -m train ARGV` for one step (not demo or seeds), in this process."""
    args = build_parser().parse_args(argv)
    if args.command in COMPOSITE:
        raise ValueError(f"run_step runs one step, not {args.command!r}: use `python -m train {args.command}`")
    return guarded(args, argv, lambda: _dispatch(args))


# the module whose main(args) runs each step, imported only when its step runs (a torch-free `data` stays fast)
STEP_MODULES = {"evaluate-texture": "train.evaluate_texture", "evaluate": "train.evaluate_run",
                "arkit-rig": "train.arkit_rig", "cgan": "train.cgan", "results": "train.results",
                "publish": "train.publish", "export": "train.export", "texture": "train.texture_run",
                "sae": "train.sae"}


def _dispatch(args) -> int:
    if args.command == "data":
        return data_cli.run(args)
    if args.command not in STEP_MODULES:
        raise ValueError(f"unknown command {args.command!r}")
    return importlib.import_module(STEP_MODULES[args.command]).main(args)


def exit_process(code: int) -> None:
    """Leave with `code`. A torchrun worker leaves by os._exit once main() has returned (its outputs written, closed,
    and its process group destroyed) and its streams are flushed: gloo's threads, torn down by the interpreter's own
    exit, aborted rank 1 of tests/test_sae.py's data-parallel run about once in ten clean-clone CI runs ("terminate
    called without an active exception", SIGABRT), even with the barrier in train.runs.shutdown_distributed."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
