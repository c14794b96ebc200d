"""The main job (`make demo`): for now, build the quick synthetic sets and write contact sheets of them."""
from __future__ import annotations

import time

from train.config import data_config, load_config
from train.data.cli import output_root, set_dir
from train.data.sheets import bp4d_sheet, facescape_sheet, sweep_sheet
from train.data.synthetic_sets import SyntheticBP4D, SyntheticFaceScape, build_set


def run_demo(config: str = "quick") -> int:
    cfg = data_config(load_config(config))
    start = time.perf_counter()
    outputs = {}
    for kind in ("facescape", "bp4d"):
        outputs[f"{kind}-like set"] = build_set(kind, cfg, set_dir(cfg.config_name, kind))
    preview = output_root(cfg.config_name) / "preview"
    facescape = SyntheticFaceScape(cfg)
    outputs["FaceScape-like contact sheet"] = facescape_sheet(facescape, preview / "facescape_sheet.png")
    outputs["intensity sweep sheet"] = sweep_sheet(facescape, preview / "facescape_sweep.png")
    outputs["BP4D-like contact sheet"] = bp4d_sheet(SyntheticBP4D(cfg, facescape.ict), preview / "bp4d_sheet.png")
    print(f"\nfacecam demo ({cfg.config_name}) finished in {time.perf_counter() - start:.0f} s. Outputs:")
    for what, path in outputs.items():
        print(f"  {what}: {path.resolve()}")
    return 0
