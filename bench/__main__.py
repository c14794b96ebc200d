"""Every benchmark behind one command, gathered into one markdown table.

    python -m bench [--only data shape inference texture blender] [--model outputs/quick/export/facecam-quick]

Each benchmark runs in a fresh Python process with its quick settings (see bench/README.md for each one's own
options and rows); every row of its table becomes a row here: the benchmark, the step, what was measured (the
table's other columns, with their headings), the target from the issues and the ratio to it (under 1 meets it).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def benchmarks(model: str) -> dict[str, list[str]]:
    return {
        "data": ["bench.bench_data", "--sizes", "quick"],
        "shape": ["bench.bench_shape_training", "--sizes", "quick", "paper"],
        "inference": ["bench.bench_inference", "--model", model],
        "texture": ["bench.bench_texture"],
        "blender": ["bench.bench_blender", "--model", model, "--render"],
    }


def table_rows(text: str) -> list[dict[str, str]]:
    """The rows of the markdown table in text (the first one with a header), as {heading: cell}."""
    lines = [line.strip() for line in text.splitlines() if line.strip().startswith("|")]
    if len(lines) < 3:
        return []
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    header = cells[0]
    return [dict(zip(header, row)) for row in cells[2:] if len(row) == len(header)]


def gathered_row(bench: str, row: dict[str, str]) -> str:
    step_key = next(iter(row))
    target_key = next((k for k in row if k.startswith("target")), None)
    ratio = row.get("ratio", "")
    measured = "; ".join(f"{k}: {v}" for k, v in row.items() if k not in (step_key, target_key, "ratio", "note")
                         and v not in ("", "-"))
    target = row.get(target_key, "") if target_key else ""
    if target_key and target_key != "target" and target:
        target = f"{target} ({target_key.removeprefix('target').strip()})"
    step = row[step_key] + (f" ({row['note']})" if row.get("note") else "")
    return f"| {bench} | {step} | {measured} | {target} | {ratio} |"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(ROOT / "outputs/quick/export/facecam-quick"))
    parser.add_argument("--only", nargs="+", choices=list(benchmarks("")), help="run only these benchmarks")
    parser.add_argument("--out", default=str(ROOT / "outputs/bench/bench.md"),
                        help="the table as markdown, stamped with commit and machine (default: outputs/bench/bench.md; "
                             "`python -m train results` reads it from there)")
    args = parser.parse_args(argv)
    rows, failures = [], []
    for name, cmd in benchmarks(args.model).items():
        if args.only and name not in args.only:
            continue
        start = time.perf_counter()
        print(f"running {name}: python -m {' '.join(cmd)}", file=sys.stderr, flush=True)
        proc = subprocess.run([sys.executable, "-m", *cmd], cwd=ROOT, capture_output=True, text=True)
        found = table_rows(proc.stdout)
        if proc.returncode != 0 or not found:
            failures.append(f"{name}: exit {proc.returncode}: {(proc.stderr or proc.stdout).strip()[-400:]}")
            continue
        rows += [gathered_row(name, r) for r in found]
        print(f"  {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    from core.atomic import write_text_atomic
    from train.results import commit_stamp, machine
    table = "\n".join(["| bench | step | measured | target | ratio |", "|---|---|---|---|---|", *rows,
                       *(f"\nnot measured: {failure}" for failure in failures)])
    print(table)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out, f"# Benchmarks\n\n`python -m bench{' --only ' + ' '.join(args.only) if args.only else ''}` "
                           f"at commit {commit_stamp()}, {time.strftime('%Y-%m-%d %H:%M %Z')}, on {machine()}.\n\n"
                           f"{table}\n")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
