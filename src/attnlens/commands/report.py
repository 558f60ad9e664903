"""`attnlens report --model SPEC --data FILE --output DIR`: audit a classifier on labelled data.

Writes `DIR/report.html` (one self-contained page) and `DIR/report.json` (every figure in it):
per-class metrics and the confusion matrix, calibration before and after temperature scaling,
the words that drive each class with a deletion check, the worst errors, slices by length, and
the explanations' faithfulness on this data (attnlens.report.build has the details).
"""

from __future__ import annotations

import argparse

from attnlens.commands.labelled_data import add_data_arguments, add_model_argument


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("report", help="audit a model on labelled data: report.html + report.json")
    add_model_argument(parser)
    add_data_arguments(parser)
    parser.add_argument("--output", required=True, help="folder for report.html and report.json")
    parser.add_argument("--max-examples", type=int, default=None,
                        help="audit a random sample of this many rows (seeded by --seed; default: all rows)")
    parser.add_argument("--long-text", choices=("truncate", "chunk"), default="truncate",
                        help="texts past the model's window: cut them, or average overlapping windows (metrics)")
    parser.add_argument("--method", default=None, help="explanation method (default: the model's default, grad_rollout)")
    parser.add_argument("--max-length", type=int, default=None, help="tokens per text (default: the model's limit)")
    parser.add_argument("--batch-size", type=int, default=64,
                        help="texts per explanation batch (fewer for long texts: at most 8,192 padded tokens)")
    parser.add_argument("--faithfulness-examples", type=int, default=None,
                        help="texts in the faithfulness sample (default 100; 0 leaves the section out)")
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from attnlens.commands.labelled_data import load_labelled_rows, load_model_and_tokenizer
    from attnlens.errors import InputError
    from attnlens.report.build import DEFAULT_FAITHFULNESS_EXAMPLES, build_report, ece_summary

    if args.max_examples is not None and args.max_examples < 1:
        raise InputError(f"--max-examples {args.max_examples} must be at least 1")
    if args.faithfulness_examples is not None and args.faithfulness_examples < 0:
        raise InputError(f"--faithfulness-examples {args.faithfulness_examples} must be 0 or more")
    if args.batch_size < 1:
        raise InputError(f"--batch-size {args.batch_size} must be at least 1")
    model, tokenizer, name = load_model_and_tokenizer(args.model)
    rows = load_labelled_rows(args, model, max_examples=args.max_examples, seed=args.seed)
    report = build_report(
        model, tokenizer, rows.texts, rows.labels, row_numbers=rows.row_numbers, model_name=name,
        data_name=rows.name, long_text=args.long_text, max_length=args.max_length, batch_size=args.batch_size,
        faithfulness_examples=DEFAULT_FAITHFULNESS_EXAMPLES if args.faithfulness_examples is None
        else args.faithfulness_examples, seed=args.seed, method=args.method)
    html_path, json_path = report.write(args.output)
    print(f"{ece_summary(report)}\nwrote {html_path} and {json_path}")
    return 0
