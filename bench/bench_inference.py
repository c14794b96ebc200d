"""Inference speed of core.FaceModel against the core issue's targets, as a markdown table.

    python -m bench.bench_inference [--model outputs/quick/export/facecam-quick] [--repeats 7]

Rows: model load from a local folder (the same code reads the hub cache); one mesh and a 10-level intensity sweep
from the paper-size decoder (130 -> 512 -> 1024 -> 26,719 x 3, random weights: speed does not depend on them), the
way FaceModel runs it (MeshDecoder.prepare_for_inference: the last layer packed for oneDNN in a layout for batches of 10) and, beside it,
through plain nn.Linear; one face and a sweep from the
exported quick model. Times are the best of --repeats after a warm-up.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from core.face_model import FaceModel
from core.shape_networks import MeshDecoder, ShapeNetConfig

V = 26719


def best_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * min(times)


def row(name: str, ms: float, target_ms: float | None, note: str = "") -> str:
    ratio = f"{ms / target_ms:.2f}" if target_ms else ""
    target = f"{target_ms:g}" if target_ms else ""
    return f"| {name} | {ms:.1f} | {target} | {ratio} | {note} |"


@torch.inference_mode()
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="outputs/quick/export/facecam-quick")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    rows = []
    torch.manual_seed(0)
    paper = MeshDecoder(ShapeNetConfig(num_vertices=V, num_identities=847, num_expressions=20,
                                       decoder=(512, 1024))).prepare_for_inference()
    mu_id, mu_exp = torch.randn(10, 100), torch.randn(10, 30)
    one = best_ms(lambda: paper.decode(mu_id[:1], mu_exp[:1]), args.repeats)

    def plain(b):
        return paper.coder.decode(paper.decoder(torch.cat([mu_id[:b], mu_exp[:b]], 1)))
    rows.append(row("paper decoder, one mesh", one, 40.0, "last layer packed for oneDNN, batch-10 layout"))
    rows.append(row("paper decoder, one mesh, nn.Linear", best_ms(lambda: plain(1), args.repeats), 40.0))
    rows.append(row("paper decoder, sweep of 10 in one batch", best_ms(lambda: paper.decode(mu_id, mu_exp),
                                                                       args.repeats), 2 * one,
                    "target: 2 x one mesh"))
    rows.append(row("paper decoder, sweep of 10, nn.Linear", best_ms(lambda: plain(10), args.repeats), 2 * one))
    folder = Path(args.model)
    if (folder / "config.json").is_file():
        rows.append(row("load exported model (local folder)", best_ms(lambda: FaceModel(folder), 3), 1500.0,
                        folder.name))
        model = FaceModel(folder)
        expression = model.expression_names[1]
        rows.append(row("quick model: one face (mesh + texture if any)", best_ms(
            lambda: model.generate(7, expression, 1.0), args.repeats), None))
        rows.append(row("quick model: sweep of 10", best_ms(
            lambda: model.sweep(7, expression, [0.25 * k for k in range(1, 11)]), args.repeats), None))
    else:
        rows.append(f"| load exported model | skipped: no model at {folder} (`python -m train export`) | | | |")
    from train.results import machine
    print(f"machine: {machine()}, {torch.get_num_threads()} threads")
    print("| step | ms | target ms | ratio | note |\n|---|---|---|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
