"""`python -m train`: the training side's command line (train/cli.py), with the composite commands, `demo` and `seeds`,
which run its steps."""
from __future__ import annotations

import sys

from train.cli import build_parser, exit_process, guarded, run_step


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        from train.demo import run_demo
        return guarded(args, argv, lambda: run_demo(args.config))
    if args.command == "seeds":
        from train.seeds import main as seeds_main
        return guarded(args, argv, lambda: seeds_main(args))
    return run_step(argv)


if __name__ == "__main__":
    exit_process(main())
