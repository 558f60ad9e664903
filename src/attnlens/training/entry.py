"""Shared entry point of `training/train.py` and `attnlens train`: parse, load config, run, report."""

from __future__ import annotations

import argparse
import os
import shlex
import sys

from attnlens.errors import AttnlensError


def add_job_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="YAML job config, e.g. configs/demo.yaml")
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="dotted overrides of the YAML, e.g. output.dir=outputs/x training.max_steps=100 training.resume=auto",
    )


def reproducing_command(program: str, config: str, overrides: list[str]) -> str:
    """The command line recorded in the model card; under a launcher, the launcher is part of it."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    arguments = shlex.join([config, *overrides])
    if world_size > 1:
        return f"accelerate launch --num_processes {world_size} training/train.py {arguments}"
    return f"{program} {arguments}"


def run_training(config_path: str, overrides: list[str], program: str) -> int:
    """Load and validate the job config, then train. Imports are late so `--help` stays instant."""
    from attnlens.training.config import load_job_config
    from attnlens.training.job import run_job

    config = load_job_config(config_path, overrides)
    run_job(config, reproducing_command(program, config_path, overrides))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="train.py", description="Fine-tune a BERT sentiment classifier (run with python or accelerate launch)."
    )
    add_job_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_training(args.config, args.overrides, program="python training/train.py")
    except AttnlensError as error:
        print(f"train.py: error: {error}", file=sys.stderr)
        return 2
