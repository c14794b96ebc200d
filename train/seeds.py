"""`python -m train seeds --config quick --seeds 0 1 2`: the whole shape pipeline (SAE and cGAN trained from scratch)
once per seed, each evaluated, and the bars reported as worst / mean over the seeds: a number one seed gives and
another does not is not a result. `--set bp4d` does the same for the action-unit model (`train evaluate --set bp4d`).

Runs go to outputs/CONFIG/shape/seeds/SEED/{sae,cgan} (finished runs are reused, killed ones resumed, runs started
before the config file last changed, or cGANs before their SAE was retrained, set aside as RUN.before-TIME and
trained afresh, as `make demo` does; the seed the
config itself names uses outputs/CONFIG/shape/{sae,cgan}, the runs `make demo` trains), reports to
outputs/CONFIG/eval/seeds/SEED/, the summary to outputs/CONFIG/eval/seeds/summary.md (+ .json); for the action-unit
model seeds_bp4d, sae_bp4d and cgan_bp4d instead. The plain AE baseline is not retrained per seed: every holistic
report uses outputs/CONFIG/shape/ae (trained first if missing).
"""
from __future__ import annotations

import copy
import csv
import json
from pathlib import Path

import numpy as np

from core.atomic import write_text_atomic
from train.runs import set_aside_if_stale

# (label, how to read it from a report, the bar as text, whether higher is better)
BARS = (
    ("intensity: worst |ratio / truth - 1|, training identities (calibrated)",
     lambda r: _ratio_gap(r["intensity_response"], "calibrated"), "<= 0.10", False),
    ("intensity: worst |ratio / truth - 1|, training identities (paper: z_exp scaled)",
     lambda r: _ratio_gap(r["intensity_response"], "paper_z_exp_scaling"), "reported", False),
    ("intensity: worst |ratio / truth - 1|, held-out identities (calibrated, through the SAE)",
     lambda r: _ratio_gap(r["held_out_intensity"], "calibrated"), "<= 0.10", False),
    ("intensity: error at 2 - (error at 1 + linear scaling's error at 2), mm, training identities",
     lambda r: _growth_margin(r["intensity_response"]), "<= 0", False),
    ("the same margin through the SAE alone (training identities' own meshes, no cGAN)",
     lambda r: _growth_margin(r["training_intensity_through_sae"]) if "training_intensity_through_sae" in r
     else float("nan"), "reported", False),  # nan: a report from before the section existed
    ("intensity: error at 1 / 2 / 3, mm, training identities (calibrated)",
     lambda r: [r["intensity_response"]["calibrated"][a]["error_mm"] for a in ("1.0", "2.0", "3.0")], "", False),
    ("generated expression accuracy", lambda r: r["control"]["expression_accuracy"], ">= 0.90", True),
    ("generated identity accuracy (training z_id)", lambda r: r["control"]["identity_accuracy"], ">= 0.90", True),
    ("identity consistency (training z_id)", lambda r: r["control"]["identity_consistency"], ">= 0.95", True),
    ("held-out reconstruction, SAE mean mm", lambda r: r["reconstruction"]["SAE"]["mean_mm"], "<= 0.5", False),
    ("SAE identity embedding: share of its variance within a person, held-out identities",
     lambda r: r["disentanglement"]["identity_embedding_within_person_share"]["test"], "reported", False),
    ("identity-specific expression: fraction of the gap to the person's own offset closed",
     lambda r: r["identity_specific"]["gap_closed"], "> 0", True),
    ("Table 1 at intensity 1: DIV / DIV-ID / DIV-EXP / SP mm",
     lambda r: [r["generation"]["1.0"][k] for k in ("DIV", "DIV-ID", "DIV-EXP", "SP_mm")], "", True),
)

# the same for the action-unit model, from `train evaluate --set bp4d`'s report
AU_BARS = (
    ("control: AU intensities of generated meshes read back by the real-mesh regressor, mean abs. error, levels",
     lambda r: r["generated_mae_levels"], "reported", False),
    ("the same regressor on real held-out frames, levels", lambda r: r["regressor_mae_levels_real_test"],
     "reported", False),
    ("AUs whose read-back intensity rises as that AU is asked 0 -> 5", lambda r: r["responses_increasing"], "all",
     True),
    ("held-out reconstruction, SAE mean mm", lambda r: r["reconstruction"]["SAE"]["mean_mm"], "reported", False),
    ("held-out reconstruction, PCA-130 mean mm", lambda r: r["reconstruction"]["PCA-130"]["mean_mm"], "reported",
     False),
)


def _ratio_gap(section: dict, mode: str) -> float:
    truth = section["ground_truth"]
    return max(abs(section[mode][a]["ratio"] / truth[a]["ratio"] - 1) for a in ("0.5", "1.5", "2.0", "3.0"))


def _growth_margin(section: dict) -> float:
    cal, truth = section["calibrated"], section["ground_truth"]
    return cal["2.0"]["error_mm"] - (cal["1.0"]["error_mm"] + truth["2.0"]["linear_scaling_error_mm"])


def seeded_config(cfg: dict, seed: int) -> dict:
    """cfg with the SAE's and cGAN's seeds set to `seed`, in the action-unit overrides too where they name one."""
    out = copy.deepcopy(cfg)
    for key in ("sae", "cgan"):
        out["shape"][key]["seed"] = seed
        override = out["shape"].get("action_units", {}).get(key, {})
        if "seed" in override:
            override["seed"] = seed
    return out


def training_seconds(run: Path) -> float:
    with (run / "log.csv").open(newline="") as f:
        return sum(float(row["seconds"]) for row in csv.DictReader(f))


def _run(train, finished: Path, config: str, inputs, *args, **kwargs) -> None:
    """Train unless finished; resume a run that has a checkpoint. A run started before its config file last changed,
    or before one of its `inputs` was rewritten, is set aside first (as `make demo` does), so a changed setting or a
    retrained SAE is never silently skipped."""
    set_aside_if_stale(finished.parent, config, inputs)
    if finished.is_file():
        return
    train(*args, resume=(finished.parent / "checkpoint.pt").is_file(), **kwargs)


def run_seeds(cfg: dict, seeds: list[int], kind: str = "facescape") -> dict:
    """kind: "facescape" (the holistic model) or "bp4d" (the action-unit model)."""
    from train.cgan import train_cgan
    from train.config import data_config
    from train.data.cli import output_root, set_dir
    from train.data.synthetic_sets import StoredSet, SyntheticFaceScape, build_set
    from train.evaluate import evaluate
    from train.evaluate_au import evaluate_au
    from train.sae import train_sae
    from train.shape_config import shape_section

    au = kind == "bp4d"
    suffix = "_bp4d" if au else ""
    config = cfg.get("_path", cfg["name"])
    data_cfg = data_config(cfg)
    root = output_root(data_cfg.config_name)
    stored = StoredSet(build_set(kind, data_cfg, set_dir(data_cfg.config_name, kind)))
    if not au:
        source = SyntheticFaceScape(data_cfg)
        ae = root / "shape" / "ae"
        _run(train_sae, ae / "sae.safetensors", config, (), cfg, stored, ae, supervised=False)
    own_settings = shape_section(cfg, action_units=au)
    per_seed = {}
    for seed in seeds:
        scfg = seeded_config(cfg, seed)
        # the config's own seed is the pipeline `make demo` trains: its runs are reused
        if shape_section(scfg, action_units=au) == own_settings:
            sae, gan = root / "shape" / f"sae{suffix}", root / "shape" / f"cgan{suffix}"
        else:
            sae, gan = (root / "shape" / f"seeds{suffix}" / str(seed) / name for name in ("sae", "cgan"))
        _run(train_sae, sae / "sae.safetensors", config, (), scfg, stored, sae)
        _run(train_cgan, gan / "generators.safetensors", config, [sae / "sae.safetensors"], scfg, sae, gan)
        out = root / "eval" / f"seeds{suffix}" / str(seed)
        report = out / ("report_au.json" if au else "report.json")
        if not report.is_file() or report.stat().st_mtime < (gan / "generators.safetensors").stat().st_mtime:
            if au:
                evaluate_au(scfg, stored, sae, gan, out)
            else:
                evaluate(scfg, stored, sae, ae, gan, out, source)
        per_seed[seed] = json.loads(report.read_text())
        per_seed[seed]["training_seconds"] = {"sae": training_seconds(sae), "cgan": training_seconds(gan)}
    summary = summarise(per_seed, AU_BARS if au else BARS)
    summary["set"] = kind
    write_text_atomic(root / "eval" / f"seeds{suffix}" / "summary.json", json.dumps(summary, indent=1))
    write_text_atomic(root / "eval" / f"seeds{suffix}" / "summary.md", summary_markdown(summary, cfg["name"]))
    return summary


def summarise(per_seed: dict, bars=BARS) -> dict:
    rows = []
    for label, get, bar, higher in bars:
        values = {str(s): get(r) for s, r in per_seed.items()}
        arr = np.array(list(values.values()), dtype=float)
        worst = (arr.min(0) if higher else arr.max(0)).tolist()
        if all(isinstance(v, int) for v in values.values()):  # counts stay counts
            worst = int(worst)
        rows.append({"quantity": label, "bar": bar, "per_seed": values, "worst": worst, "mean": arr.mean(0).tolist()})
    times = {str(s): r["training_seconds"] for s, r in per_seed.items()}
    return {"seeds": [str(s) for s in per_seed], "rows": rows, "training_seconds": times}


def _fmt(v) -> str:
    if isinstance(v, list):
        return " / ".join(_fmt(x) for x in v)
    return str(v) if isinstance(v, int) else f"{v:.3f}"


def summary_markdown(summary: dict, config: str) -> str:
    seeds = summary["seeds"]
    au = summary.get("set") == "bp4d"
    what, flag = ("action-unit shape pipeline", " --set bp4d") if au else ("shape pipeline", "")
    lines = [f"# The {what} over seeds {', '.join(seeds)} ({config} config)", "",
             f"Command: `python -m train seeds --config {config}{flag} --seeds {' '.join(seeds)}`: SAE and cGAN trained "
             f"from scratch per seed, each evaluated by `train evaluate{flag}`; worst = the worst seed for the bar's "
             "direction.",
             "", "| quantity | bar | worst | mean | " + " | ".join(f"seed {s}" for s in seeds) + " |",
             "|---|---|---|---|" + "---|" * len(seeds)]
    for row in summary["rows"]:
        lines.append(f"| {row['quantity']} | {row['bar']} | {_fmt(row['worst'])} | {_fmt(row['mean'])} | "
                     + " | ".join(_fmt(row["per_seed"][s]) for s in seeds) + " |")
    t = summary["training_seconds"]
    lines += ["", "Training seconds per seed (SAE + cGAN, sum of epoch times): "
              + ", ".join(f"seed {s}: {v['sae']:.0f} + {v['cgan']:.0f}" for s, v in t.items()), ""]
    return "\n".join(lines)


def main(args) -> int:
    from train.config import load_config
    from train.data.cli import output_root
    from train.shape_config import shape_section

    cfg = load_config(args.config)
    shape_section(cfg)
    run_seeds(cfg, args.seeds, args.set)
    path = output_root(cfg["name"]) / "eval" / ("seeds_bp4d" if args.set == "bp4d" else "seeds") / "summary.md"
    print(path.read_text())
    print(f"summary: {path}")
    return 0
