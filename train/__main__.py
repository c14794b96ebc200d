"""`python -m train`: the training side's command line (data sets now; models in later steps)."""
from __future__ import annotations

import argparse
import sys

from train.config import ConfigError
from train.data import cli as data_cli


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train", description="facecam training command line")
    sub = parser.add_subparsers(dest="command", required=True)
    data_cli.add_parser(sub)
    demo = sub.add_parser("demo", help="the main job: build the quick sets and write contact sheets")
    demo.add_argument("--config", default="quick")
    args = parser.parse_args(argv)
    try:
        if args.command == "data":
            return data_cli.run(args)
        if args.command == "demo":
            from train.demo import run_demo
            return run_demo(args.config)
    except (ConfigError, FileNotFoundError, KeyError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
