"""The `attnlens` console script.

Each subcommand lives in its own module under `attnlens.commands` exposing
`register(subparsers)`; the module is imported only when present, so the CLI starts fast and
features can be added without touching this file's logic.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from attnlens.errors import AttnlensError

SUBCOMMANDS = ("train", "evaluate", "explain", "export", "predict", "report", "calibrate")
INFERENCE_SUBCOMMANDS = frozenset({"evaluate", "explain", "predict", "report", "calibrate"})


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="attnlens", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"attnlens.commands.{name}")
        except ModuleNotFoundError as error:
            if error.name != f"attnlens.commands.{name}":
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command in INFERENCE_SUBCOMMANDS:
        from attnlens.inference.process_setup import prepare_inference_process

        prepare_inference_process()  # buffers reused across batches; memory bounded across batch shapes
    try:
        return int(args.func(args) or 0)
    except AttnlensError as error:
        print(f"attnlens {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
