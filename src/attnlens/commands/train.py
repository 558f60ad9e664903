"""`attnlens train CONFIG [key=value ...]`: the fine-tuning job in this process (one device).

For several processes or machines use `accelerate launch training/train.py ...` (docs/training.md).
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    from attnlens.training.entry import add_job_arguments

    parser = subparsers.add_parser("train", help="fine-tune a classifier from a YAML job config")
    add_job_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from attnlens.training.entry import run_training

    return run_training(args.config, args.overrides, program="attnlens train")
