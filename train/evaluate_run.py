"""`python -m train evaluate`: the shape model of a set kind, measured (one home for every kind: train/evaluate.py
the holistic model, train/evaluate_au.py the action-unit model, train/evaluate_arkit.py the ARKit model and rig)."""
from __future__ import annotations

from pathlib import Path


def _require(runs, config: str) -> None:
    for run, cmd in runs:
        if not (run / "config.json").is_file():
            raise FileNotFoundError(f"{run}: missing; run `python -m train {cmd} --config {config}` first")


def main(args) -> int:
    from train.config import data_config, load_config
    from train.data.cli import output_root, set_dir
    from train.data.synthetic_sets import StoredSet, SyntheticARKit, SyntheticFaceScape

    cfg = load_config(args.config)
    data_cfg = data_config(cfg)
    root = output_root(data_cfg.config_name)
    shape = root / "shape"
    out = Path(args.out) if args.out else root / "eval"
    if args.set == "bp4d":
        from train.evaluate_au import evaluate_au, report_markdown
        _require(((shape / "sae_bp4d", "sae --set bp4d"), (shape / "cgan_bp4d", "cgan --set bp4d")), args.config)
        results = evaluate_au(cfg, StoredSet(set_dir(data_cfg.config_name, "bp4d")), shape / "sae_bp4d",
                              shape / "cgan_bp4d", out)
        print(report_markdown(results))
        print(f"report: {out / 'report_au.md'}")
        return 0
    if args.set == "arkit":
        from train.evaluate_arkit import evaluate_arkit, report_markdown
        _require(((shape / "sae_arkit", "sae --set arkit"), (shape / "cgan_arkit", "cgan --set arkit")), args.config)
        if not (shape / "arkit_rig" / "arkit_rig.json").is_file():
            raise FileNotFoundError(f"{shape / 'arkit_rig'}: missing; run `python -m train arkit-rig --config "
                                    f"{args.config}` first")
        results = evaluate_arkit(cfg, SyntheticARKit(data_cfg), shape / "sae_arkit", shape / "cgan_arkit",
                                 shape / "arkit_rig", out, main_shape=shape)
        print(report_markdown(results))
        print(f"report: {out / 'report_arkit.md'}")
        return 0
    from train.evaluate import evaluate, report_markdown
    gan = Path(args.cgan) if args.cgan else shape / "cgan"
    _require(((shape / "sae", "sae"), (shape / "ae", "sae --unsupervised"), (gan, "cgan")), args.config)
    results = evaluate(cfg, StoredSet(set_dir(data_cfg.config_name, "facescape")), shape / "sae", shape / "ae", gan,
                       out, SyntheticFaceScape(data_cfg))
    print(report_markdown(results))
    print(f"report: {out / 'report.md'}")
    return 0
