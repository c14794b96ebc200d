"""`python -m train data ...`: build, look at, measure and export the data sets."""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from core.atomic import write_text_atomic

SETS = ("facescape", "bp4d")  # the sets with a real data set's folder layout (export, preview)
BUILD_SETS = (*SETS, "arkit")


def output_root(config_name: str) -> Path:
    return Path("outputs") / config_name


def set_dir(config_name: str, kind: str, out: str | None = None) -> Path:
    return Path(out) / kind if out else output_root(config_name) / "data" / kind


def add_parser(subparsers) -> None:
    data = subparsers.add_parser("data", help="build, preview, measure and export the data sets")
    sub = data.add_subparsers(dest="data_command", required=True)

    def with_config(p):
        p.add_argument("--config", default="quick", help="configs/NAME.json or a path (default: quick)")
        return p

    b = with_config(sub.add_parser("build", help="build the synthetic sets to memory-mapped files"))
    b.add_argument("--set", choices=BUILD_SETS + ("all",), default="all")
    b.add_argument("--out", help="folder for the sets (default: outputs/CONFIG/data)")
    b.add_argument("--force", action="store_true", help="rebuild even when an up-to-date set exists")

    p = with_config(sub.add_parser("preview", help="write PNG contact sheets of the data"))
    p.add_argument("--set", choices=SETS + ("all",), default="all")
    p.add_argument("--identities", type=int, nargs="+", default=[0, 1, 2], help="identity indices to show")
    p.add_argument("--out", help="folder for the PNGs (default: outputs/CONFIG/preview)")

    m = with_config(sub.add_parser("linearity", help="measure what a linear model misses on held-out identities"))
    m.add_argument("--out", help="markdown report path (default: outputs/CONFIG/data/linearity.md)")
    m.add_argument("--identities", type=int, help="identities generated for the measurement (default: the "
                   "config's FaceScape-like count, so the training count matches the set's)")

    k = with_config(sub.add_parser("coupling", help="the learnable coupling at several training-identity counts, "
                                   "on the data as configured and on its face-shape-dependent part alone"))
    k.add_argument("--counts", type=int, nargs="+", help="training-identity counts (default: the config's "
                   "FaceScape-like training count, twice and four times it)")
    k.add_argument("--out", help="markdown report path (default: outputs/CONFIG/data/coupling.md)")

    e = with_config(sub.add_parser("export", help="write a synthetic set in the FaceScape or BP4D folder layout"))
    e.add_argument("--set", choices=SETS, required=True)
    e.add_argument("--out", required=True, help="root folder of the layout (empty or absent, or an earlier export "
                                                "with --overwrite)")
    e.add_argument("--identities", type=int, help="export only the first N identities (3 or more: train, validation "
                                                  "and test need one each)")
    e.add_argument("--overwrite", action="store_true", help="replace an earlier export in --out")

    c = sub.add_parser("convert-ict", help="build the ICT-FaceKit npz from a clone's FaceXModel/ folder")
    c.add_argument("folder")
    c.add_argument("--out", required=True)
    c.add_argument("--allow-partial", action="store_true")


def _data_config(name: str):
    from train.config import data_config, load_config
    return data_config(load_config(name))


def run(args) -> int:
    if args.data_command == "convert-ict":
        from train.data.ict_convert import main as convert_main
        return convert_main([args.folder, "--out", args.out] + (["--allow-partial"] if args.allow_partial else []))
    cfg = _data_config(args.config)
    kinds = SETS if getattr(args, "set", "all") == "all" else (args.set,)
    if args.data_command == "build":
        from train.data.synthetic_sets import build_set
        if args.set == "all":
            kinds = tuple(k for k in BUILD_SETS if getattr(cfg, k) is not None)
        for kind in kinds:
            path = build_set(kind, cfg, set_dir(cfg.config_name, kind, args.out), force=args.force)
            print(f"{kind}-like set: {path}")
    elif args.data_command == "preview":
        from train.data.sheets import bp4d_sheet, facescape_sheet, sweep_sheet, transfer_sheet
        from train.data.synthetic_sets import synthetic_set
        out = Path(args.out) if args.out else output_root(cfg.config_name) / "preview"
        for kind in kinds:
            source = synthetic_set(kind, cfg)
            bad = [i for i in args.identities if not 0 <= i < source.num_identities]
            if bad:
                raise ValueError(f"--identities {bad}: the {kind} set of config {cfg.config_name!r} has identities "
                                 f"0..{source.num_identities - 1}")
            if kind == "facescape":
                print(f"contact sheet: {facescape_sheet(source, out / 'facescape_sheet.png', args.identities)}")
                print(f"intensity sweep: {sweep_sheet(source, out / 'facescape_sweep.png', args.identities[0])}")
                print(f"deformation transfer: {transfer_sheet(source, out / 'transfer_sheet.png')}")
            else:
                print(f"contact sheet: {bp4d_sheet(source, out / 'bp4d_sheet.png', args.identities)}")
    elif args.data_command == "linearity":
        from train.data.linearity import measure_columns, report_json, report_markdown
        out = Path(args.out) if args.out else output_root(cfg.config_name) / "data" / "linearity.md"
        identities = args.identities or cfg.facescape.num_identities
        if identities < 10:
            raise ValueError(f"--identities {identities}: need at least 10 (train, validation and test)")
        columns = measure_columns(cfg, num_identities=identities)
        command = f"python -m train data linearity --config {shlex.quote(args.config)}" + (
            f" --identities {args.identities}" if args.identities else "")
        write_text_atomic(out, report_markdown(columns, command))
        write_text_atomic(out.with_suffix(".json"), report_json(columns))
        print(report_markdown(columns, command))
        print(f"report: {out}")
    elif args.data_command == "coupling":
        from train.config import split_counts
        from train.data.coupling import coupling_by_training_count, report_json, report_markdown
        out = Path(args.out) if args.out else output_root(cfg.config_name) / "data" / "coupling.md"
        own = split_counts(cfg.facescape.num_identities, cfg.facescape.split)[0]
        result = coupling_by_training_count(cfg, args.counts or [own, 2 * own, 4 * own])
        command = f"python -m train data coupling --config {shlex.quote(args.config)}" + (
            " --counts " + " ".join(str(n) for n in args.counts) if args.counts else "")
        result["command"] = command
        write_text_atomic(out, report_markdown(result, command))
        write_text_atomic(out.with_suffix(".json"), report_json(result))
        print(report_markdown(result, command))
        print(f"report: {out}")
    elif args.data_command == "export":
        import dataclasses

        from train.data.synthetic_sets import synthetic_set
        if args.identities is not None:
            # Identity i depends only on (seed, i), so a smaller set holds the same first identities.
            set_cfg = getattr(cfg, args.set)
            if not 3 <= args.identities <= set_cfg.num_identities:
                raise ValueError(f"--identities {args.identities}: expected 3..{set_cfg.num_identities}")
            cfg = dataclasses.replace(cfg, **{args.set: dataclasses.replace(set_cfg, num_identities=args.identities)})
        source = synthetic_set(args.set, cfg)
        if args.set == "facescape":
            from train.data.facescape import export_facescape_layout
            path = export_facescape_layout(source, args.out, overwrite=args.overwrite)
        else:
            from train.data.bp4d import export_bp4d_layout
            path = export_bp4d_layout(source, args.out, overwrite=args.overwrite)
        print(f"{args.set} layout: {path}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train data")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["data"] + list(sys.argv[1:] if argv is None else argv))
    return run(args)
