"""`attnlens evaluate --model DIR --data FILE`: metrics JSON of a saved classifier on a labelled file.

Uses the training job's own data validation, batching and metric code, so a number printed here is
comparable with the validation numbers of `metrics.json`. Labels may be ids or the model's label names.
"""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("evaluate", help="accuracy / macro F1 / precision / recall of a saved model on a file")
    parser.add_argument("--model", required=True, help="model folder (e.g. outputs/demo/best) or Hub id")
    parser.add_argument("--data", required=True, help="csv/tsv/json/jsonl/parquet file or Hub dataset id")
    parser.add_argument("--split", default="validation", help="split of a Hub dataset (default: validation)")
    parser.add_argument("--dataset-config", default=None, help="configuration of a Hub dataset")
    parser.add_argument("--text-column", default="text")
    parser.add_argument("--label-column", default="label")
    parser.add_argument(
        "--max-length", type=int, default=512, help="tokens per text; longer texts are truncated (default 512)"
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--output", default=None, help="also write the JSON to this file")
    parser.add_argument("--quantize", choices=("none", "int8"), default="none",
                        help="int8: score the dynamically quantised model (attnlens.inference.quantize)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from attnlens.errors import InputError
    from attnlens.training.evaluation import evaluate_saved_model

    if args.max_length < 8:
        raise InputError(f"--max-length {args.max_length} must be at least 8")
    if args.batch_size < 1:
        raise InputError(f"--batch-size {args.batch_size} must be at least 1")
    results = evaluate_saved_model(
        model_dir=args.model,
        data=args.data,
        split=args.split,
        dataset_config=args.dataset_config,
        text_column=args.text_column,
        label_column=args.label_column,
        max_length=args.max_length,
        batch_size=args.batch_size,
        quantize=args.quantize,
    )
    text = json.dumps(results, indent=2)
    print(text)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
    return 0
