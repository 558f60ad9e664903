"""`attnlens predict --model SPEC TEXT...`: the service's predictions without a server (one JSON
line per text, with `uncertain` as the service's `min_confidence` gives it), for scripts and for
checking a model before serving it."""

from __future__ import annotations

import argparse
import json
import math
import sys


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
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from attnlens.errors import InputError
    from attnlens.model_source import resolve_model
    from attnlens.predict import Predictor

    texts = args.texts or [line.rstrip("\n") for line in sys.stdin if line.strip()]
    if not texts:
        raise InputError("no texts given (arguments or stdin)")
    source = resolve_model(args.model)
    predictor = Predictor.from_pretrained(source.name_or_path, revision=source.revision, batch_size=args.batch_size)
    predictions = predictor.predict(texts, long_text=args.long_text, min_confidence=args.min_confidence)
    for text, prediction in zip(texts, predictions, strict=True):
        print(json.dumps({"text": text, **prediction.to_dict()}, ensure_ascii=False))
    return 0
