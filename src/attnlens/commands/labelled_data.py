"""What the commands that read a model and a labelled dataset share (`report`, `calibrate`):
their arguments, loading both, and sampling rows."""

from __future__ import annotations

import argparse
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class LabelledRows:
    texts: list[str]
    labels: list[int]  # class ids of the model
    row_numbers: list[int]  # 1-based rows of the data, as data errors name them
    name: str  # what the data was (file, or Hub id and split)


def add_model_argument(parser: argparse.ArgumentParser, help_text: str | None = None) -> None:
    parser.add_argument("--model", required=True,
                        help=help_text or "model folder (e.g. outputs/demo/best), Hub repo id[@revision] or BentoML store tag")


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="csv/tsv/json/jsonl/parquet file or Hub dataset id")
    parser.add_argument("--split", default="validation", help="split of a Hub dataset (default: validation)")
    parser.add_argument("--dataset-config", default=None, help="configuration of a Hub dataset")
    parser.add_argument("--text-column", default="text")
    parser.add_argument("--label-column", default="label", help="label ids or the model's label names")


def load_model_and_tokenizer(spec: str) -> tuple[Any, Any, str]:
    """(model, tokenizer, description) from a folder, Hub id[@revision] or store tag."""
    from attnlens import load_tokenizer
    from attnlens.loading import load_model
    from attnlens.model_source import resolve_model

    source = resolve_model(spec)
    model = load_model(source.name_or_path, revision=source.revision)
    return model, load_tokenizer(source.name_or_path, revision=source.revision), source.describe()


def load_labelled_rows(args: argparse.Namespace, model: Any, *, max_examples: int | None = None,
                       seed: int = 0) -> LabelledRows:
    """The rows of `--data`, checked against the model's label names (attnlens.training.data);
    with `max_examples`, a seeded random sample of them in data order."""
    from attnlens.classifier import label_names
    from attnlens.training.data import load_examples

    examples = load_examples(args.data, args.split, args.dataset_config, args.text_column, args.label_column,
                             label_names(model))
    rows = list(range(len(examples)))
    if max_examples is not None and max_examples < len(rows):
        rows = sorted(random.Random(seed).sample(rows, max_examples))
    texts, labels = examples["text"], examples["labels"]
    is_file = Path(args.data).exists() or args.data.startswith("attnlens://")
    name = args.data if is_file else f"{args.data} ({args.split})"  # a split names a Hub dataset's part
    return LabelledRows(texts=[texts[i] for i in rows], labels=[int(labels[i]) for i in rows],
                        row_numbers=[i + 1 for i in rows], name=name)
