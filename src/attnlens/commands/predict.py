"""`attnlens predict --model SPEC TEXT...`: the service's predictions without a server (one JSON
line per text, with `uncertain` as the service's `min_confidence` gives it), for scripts and for
checking a model before serving it. With `--input FILE --output FILE` it scores a whole csv / tsv /
jsonl / parquet file in resumable windows (attnlens.batch, docs/batch.md)."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path


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
    files.add_argument("--input", type=Path, default=None, metavar="PATH",
                       help="csv, tsv, jsonl (or .json lines) or parquet file to score instead of TEXTs")
    files.add_argument("--output", type=Path, default=None, metavar="PATH", help=".jsonl, .csv or .parquet")
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
    parser.set_defaults(func=run)


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
    from attnlens.errors import InputError
    from attnlens.model_source import resolve_model
    from attnlens.predict import Predictor

    if args.input is None or args.output is None or args.texts:
        raise InputError("scoring a file takes both --input and --output, and no TEXT arguments")
    source = resolve_model(args.model)
    options = BatchOptions(
        model=source.describe(), text_column=args.text_column, id_column=args.id_column, keep_columns=args.keep_columns,
        long_text=args.long_text, window_rows=args.window_rows, min_confidence=args.min_confidence,
        quantize=args.quantize, resume=args.resume, strict=args.strict)
    if already_complete(args.output, options):  # before loading the model: nothing to do
        print(f"{args.output} is complete (no {args.output.name}.parts/ left); --resume never redoes it",
              file=sys.stderr)
        return 0
    predictor = Predictor.from_pretrained(source.name_or_path, revision=source.revision, batch_size=args.batch_size,
                                          quantize=args.quantize)
    summary = predict_file(predictor, args.input, args.output, options)
    print(f"{args.output}: {summary.line()}", file=sys.stderr)
    return 0
