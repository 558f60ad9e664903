"""`attnlens predict --model SPEC TEXT...`: the service's predictions without a server (one JSON
line per text, with `uncertain` as the service's `min_confidence` gives it), for scripts and for
checking a model before serving it. With `--input FILE --output FILE` it scores a whole csv / tsv /
jsonl / parquet file (or a Hub dataset's split) in resumable windows, in one process or several
(attnlens.batch, docs/batch.md)."""

from __future__ import annotations

import argparse
import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from attnlens.model_source import ModelSource
    from attnlens.predict import Predictor


def min_confidence(raw: str) -> float:
    """`--min-confidence`: a probability; anything else stops the command with the flag named."""
    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a number") from None
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise argparse.ArgumentTypeError(f"{raw} is not in [0, 1]")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    from attnlens.explain.api import METHODS, MODEL_SPECIFIC_METHODS
    from attnlens.explain.render import LEVELS

    parser = subparsers.add_parser("predict", help="predict the sentiment of texts (one JSON line each)")
    parser.add_argument("texts", nargs="*", help="texts to classify; none: one text per line on stdin")
    parser.add_argument("--model", default=None,
                        help="folder, Hub repo id[@revision] or BentoML store tag (default: $ATTNLENS_MODEL, "
                             "then the store's attnlens-sentiment)")
    parser.add_argument("--long-text", choices=("truncate", "chunk"), default="truncate",
                        help="texts past the model's window: cut them, or average overlapping windows")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--min-confidence", type=min_confidence, default=None, metavar="P",
                        help="mark results whose (calibrated) score is below P `uncertain: true`; "
                             "the label stays the most probable class")
    parser.add_argument("--quantize", choices=("none", "int8"), default="none",
                        help="predict with the opt-in int8 model (CPU)")
    files = parser.add_argument_group("scoring a file (docs/batch.md)")
    files.add_argument("--input", default=None, metavar="PATH|HUB_ID",
                       help="csv, tsv, jsonl (or .json lines) or parquet file to score instead of TEXTs, "
                            "or a Hub dataset id (with --split)")
    files.add_argument("--split", default=None, help="split of a Hub dataset to score (required for one)")
    files.add_argument("--dataset-config", default=None, help="configuration of a Hub dataset")
    files.add_argument("--output", type=Path, default=None, metavar="PATH", help=".jsonl, .csv or .parquet")
    files.add_argument("--explain", choices=METHODS + MODEL_SPECIFIC_METHODS, default=None, metavar="METHOD",
                       help="add each row's explanation by METHOD (e.g. grad_rollout; docs/explanations.md); the "
                            "prediction is then the explained forward pass's, as the service's /explain gives it")
    files.add_argument("--level", choices=LEVELS, default="word",
                       help="with --explain: importances of words, word pieces (token) or sentences")
    files.add_argument("--text-column", default="text")
    files.add_argument("--id-column", default=None, metavar="ID", help="copied to the output's `id`")
    files.add_argument("--keep-columns", type=column_list, default=(), metavar="A,B",
                       help="input columns copied to the output")
    files.add_argument("--window-rows", type=positive_int, default=10_000, metavar="N",
                       help="rows read, predicted and written at a time (one resumable part each)")
    files.add_argument("--resume", choices=("auto", "never"), default="auto",
                       help="auto: continue the same job's finished windows; never: start over")
    files.add_argument("--strict", action="store_true", help="stop at the first bad row instead of "
                       "writing it with an `error`")
    files.add_argument("--processes", type=positive_int, default=1, metavar="N",
                       help="share the windows among N processes on this machine (one per GPU, or CPU "
                            "processes), started with `accelerate launch`")
    # The parser travels with the arguments so that --processes can rebuild the command line.
    parser.set_defaults(func=run, predict_parser=parser)


def column_list(raw: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in raw.split(",") if name.strip())


def positive_int(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{raw} is not at least 1")
    return value


def run(args: argparse.Namespace) -> int:
    from attnlens.errors import InputError
    from attnlens.model_source import resolve_model
    from attnlens.predict import Predictor

    if args.input is not None or args.output is not None:
        return run_file(args)
    if args.processes > 1:
        raise InputError("--processes shares the windows of a file: it needs --input and --output")
    if args.explain is not None:
        raise InputError("--explain adds explanations to a scored file (--input, --output); "
                         "for texts use `attnlens explain`")
    texts = args.texts or [line.rstrip("\n") for line in sys.stdin if line.strip()]
    if not texts:
        raise InputError("no texts given (arguments or stdin)")
    source = resolve_model(args.model)
    predictor = Predictor.from_pretrained(source.name_or_path, revision=source.revision, batch_size=args.batch_size,
                                          quantize=args.quantize)
    predictions = predictor.predict(texts, long_text=args.long_text, min_confidence=args.min_confidence)
    for text, prediction in zip(texts, predictions, strict=True):
        print(json.dumps({"text": text, **prediction.to_dict()}, ensure_ascii=False))
    return 0


def run_file(args: argparse.Namespace) -> int:
    from attnlens.batch.job import BatchOptions, already_complete, predict_file
    from attnlens.batch.processes import JobStopped, current_processes
    from attnlens.batch.reading import input_source
    from attnlens.errors import InputError
    from attnlens.model_source import resolve_model

    if args.input is None or args.output is None or args.texts:
        raise InputError("scoring a file takes both --input and --output, and no TEXT arguments")
    if args.explain is not None and args.quantize != "none":
        raise InputError("--explain needs the float32 model (gradients have no int8 kernels): drop --quantize int8")
    if args.processes > 1:
        return relaunch(args)
    source = input_source(args.input, args.split, args.dataset_config)
    output = Path(args.output)
    processes = current_processes()
    model = resolve_model(args.model)
    options = BatchOptions(
        model=model.describe(), text_column=args.text_column, id_column=args.id_column, keep_columns=args.keep_columns,
        long_text=args.long_text, window_rows=args.window_rows, min_confidence=args.min_confidence,
        quantize=args.quantize, explain=args.explain, level=args.level, resume=args.resume, strict=args.strict)
    try:
        if already_complete(output, options):  # before loading the model: nothing to do
            if processes.is_main:
                print(f"{output} is complete (no {output.name}.parts/ left); --resume never redoes it",
                      file=sys.stderr)
            return 0
        # int8 models run on the CPU only; a lone process keeps the model where loading puts it.
        predictor = load_predictor(args, model, processes.device if args.quantize == "none" else None)
        summary = predict_file(predictor, source, output, options, processes)
    except JobStopped:
        return 0  # the main process prints why and exits with an error, which the launcher reports
    finally:
        processes.close()
    if processes.is_main:
        print(f"{output}: {summary.line()}", file=sys.stderr)
    return 0


def load_predictor(args: argparse.Namespace, model: ModelSource, device: Any) -> Predictor:
    """The Predictor of `model` with its weights on `device` (None: where loading puts them)."""
    from attnlens.predict import Predictor

    predictor = Predictor.from_pretrained(model.name_or_path, revision=model.revision, batch_size=args.batch_size,
                                          quantize=args.quantize, device=device)
    if device is not None:
        predictor.model.to(device)  # `device` only tells the Predictor where to send its inputs
    return predictor


def relaunch(args: argparse.Namespace) -> int:
    """`--processes N`: run this command again under `accelerate launch` with N processes on this
    machine (gloo on CPUs, one GPU each otherwise) and return its exit code."""
    from attnlens.errors import InputError

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise InputError("--processes starts its own `accelerate launch`; leave it out under one")
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
               "--num_processes", str(args.processes), "--num_machines", "1", "--mixed_precision", "no",
               "--dynamo_backend", "no", "--main_process_ip", "127.0.0.1", "--main_process_port", str(free_port()),
               "-m", "attnlens", *command_line(args.predict_parser, args, leave_out=("processes",))]
    environment = dict(os.environ)
    # N processes each with a thread per core would fight over the cores.
    environment.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // args.processes)))
    return subprocess.run(command, env=environment, check=False).returncode


def command_line(parser: argparse.ArgumentParser, args: argparse.Namespace, leave_out: tuple[str, ...]) -> list[str]:
    """The `attnlens predict` arguments that give `args` again: every option that differs from its
    default (so options added later travel too), then the texts."""
    arguments = ["predict"]
    for action in parser._actions:  # argparse keeps no public list of a parser's options
        if not action.option_strings or action.dest in (*leave_out, "help"):
            continue
        value = getattr(args, action.dest)
        if value == action.default:
            continue
        flag = max(action.option_strings, key=len)
        if action.nargs == 0:  # a switch such as --strict
            arguments.append(flag)
        elif isinstance(value, (list, tuple)):
            arguments += [flag, ",".join(map(str, value))]
        else:
            arguments += [flag, str(value)]
    return [*arguments, *args.texts]


def free_port() -> int:
    """A port for the processes to meet on; asking the kernel avoids two jobs' clashing on 29500."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
