"""`attnlens calibrate --model DIR --data FILE`: fit the model's temperature on labelled data and
store it in `DIR/config.json`, where the predictor, the CLI and the service read it.

Use held-out data the model was not trained on (its validation split): the temperature corrects
the confidence the model shows on texts it has not seen. Labels never change (attnlens.calibration).
"""

from __future__ import annotations

import argparse
import json

from attnlens.commands.labelled_data import add_data_arguments, add_model_argument


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("calibrate", help="fit temperature scaling on labelled data, store it in config.json")
    add_model_argument(parser, "model folder to calibrate (its config.json is updated)")
    add_data_arguments(parser)
    parser.add_argument("--long-text", choices=("truncate", "chunk"), default="truncate",
                        help="texts past the model's window: cut them, or average overlapping windows")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from attnlens.calibration import write_calibration
    from attnlens.commands.labelled_data import load_labelled_rows, load_model_and_tokenizer
    from attnlens.errors import InputError
    from attnlens.temperature_fit import fit_model_temperature

    if not (Path(args.model) / "config.json").is_file():
        raise InputError(f"--model {args.model}: not a model folder with a config.json; calibrate a local folder "
                         "(download a Hub model with `huggingface-cli download` first)")
    if args.batch_size < 1:
        raise InputError(f"--batch-size {args.batch_size} must be at least 1")
    model, tokenizer, _ = load_model_and_tokenizer(args.model)
    rows = load_labelled_rows(args, model)
    fit = fit_model_temperature(model, tokenizer, rows.texts, rows.labels, fit_on=rows.name,
                                long_text=args.long_text, batch_size=args.batch_size)
    path = write_calibration(args.model, fit.record)
    print(json.dumps({**fit.summary(), "config": str(path)}, indent=2))
    return 0
