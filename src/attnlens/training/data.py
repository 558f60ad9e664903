"""Examples in, validated `datasets.Dataset`s of `text`/`labels` out.

Sources are local csv/tsv/json/jsonl/parquet files, files shipped in the package
(`attnlens://data/demo_reviews.csv`) or Hub dataset ids, all read through `datasets`. Every row is
checked before training starts: a missing text, an unknown label or a value of the wrong type stops
the job with the file, the 1-based data row (header excluded) and the value, because a bad row found
at step 40,000 wastes the run and a silently dropped one skews it.
"""

from __future__ import annotations

import csv
import importlib.resources
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets

from attnlens.errors import DataError
from attnlens.tokenization import tokenize_user_texts

PACKAGE_SCHEME = "attnlens://"
FILE_FORMATS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".json": "json",
    ".jsonl": "json",
    ".parquet": "parquet",
}


@dataclass(frozen=True)
class DataSource:
    """Where one split comes from: a local file, or a Hub dataset id with config and split."""

    spec: str
    path: Path | None = None
    hub_id: str | None = None

    @property
    def name(self) -> str:
        return str(self.path) if self.path is not None else self.spec


def resolve_source(spec: str) -> DataSource:
    """Turn `data.train`/`data.validation` into a file path or a Hub id; a path that is missing errs here."""
    if spec.startswith(PACKAGE_SCHEME):
        resource = importlib.resources.files("attnlens").joinpath(spec[len(PACKAGE_SCHEME) :])
        path = Path(str(resource))
        if not path.is_file():
            raise DataError(f"{spec}: no such file in the attnlens package ({path})")
        return DataSource(spec, path=path)
    path = Path(spec).expanduser()
    if path.suffix.lower() in FILE_FORMATS or path.exists() or spec.startswith((".", "/", "~")):
        if not path.is_file():
            raise DataError(f"{spec}: data file not found")
        if path.suffix.lower() not in FILE_FORMATS:
            raise DataError(f"{spec}: unsupported file type {path.suffix!r} (use {', '.join(FILE_FORMATS)})")
        return DataSource(spec, path=path)
    return DataSource(spec, hub_id=spec)


def load_raw_split(source: DataSource, split: str, dataset_config: str | None) -> datasets.Dataset:
    """Read one split with `datasets`, files as they are (no row dropped, no value coerced)."""
    if source.path is not None:
        suffix = source.path.suffix.lower()
        kwargs: dict[str, Any] = {}
        if FILE_FORMATS[suffix] == "csv":
            # Keep "NA"/"null"/"nan" as text (they are words in reviews); only empty cells are missing.
            kwargs.update(keep_default_na=False, na_values=[""])
            if suffix == ".tsv":
                # GLUE-style TSV has no quoting: a lone `"` is part of the sentence.
                kwargs.update(delimiter="\t", quoting=csv.QUOTE_NONE)
        try:
            return datasets.load_dataset(
                FILE_FORMATS[suffix], data_files=str(source.path), split="train", **kwargs
            )
        except Exception as error:  # datasets/pandas/pyarrow raise many types for unreadable files
            raise DataError(f"{source.name}: cannot read as {FILE_FORMATS[suffix]} ({_first_line(error)})") from error
    try:
        return datasets.load_dataset(source.hub_id, dataset_config, split=split)
    except Exception as error:
        raise DataError(
            f"{source.name}: cannot load Hub dataset (config {dataset_config!r}, split {split!r}): {_first_line(error)}"
        ) from error


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def validate_examples(
    raw: datasets.Dataset,
    source_name: str,
    text_column: str,
    label_column: str,
    label_names: list[str],
) -> datasets.Dataset:
    """Check every row and return a dataset of `text` (str) and `labels` (int id into `label_names`)."""
    for column in (text_column, label_column):
        if column not in raw.column_names:
            raise DataError(f"{source_name}: no column {column!r} (columns: {', '.join(raw.column_names)})")
    if len(raw) == 0:
        raise DataError(f"{source_name}: no rows")
    texts = raw[text_column]
    labels = raw[label_column]
    label_ids = _label_lookup(label_names)
    clean_texts: list[str] = []
    clean_labels: list[int] = []
    for row, (text, label) in enumerate(zip(texts, labels, strict=True), start=1):
        if text is None or (isinstance(text, str) and not text.strip()):
            raise DataError(f"{source_name}: row {row}: missing text in column {text_column!r}")
        if not isinstance(text, str):
            raise DataError(
                f"{source_name}: row {row}: text {text!r} in column {text_column!r} is "
                f"{type(text).__name__}, expected a string"
            )
        clean_texts.append(text)
        clean_labels.append(_label_id(label, label_ids, label_names, source_name, row, label_column))
    return datasets.Dataset.from_dict({"text": clean_texts, "labels": clean_labels})


def _label_lookup(label_names: list[str]) -> dict[str, int]:
    lookup = {name.lower(): i for i, name in enumerate(label_names)}
    lookup.update({str(i): i for i in range(len(label_names))})
    return lookup


def _label_id(
    label: Any, lookup: dict[str, int], label_names: list[str], source_name: str, row: int, column: str
) -> int:
    """Accept a label id (0..n-1, int or digit string) or a label name (case-insensitive)."""
    where = f"{source_name}: row {row}: label {label!r} in column {column!r}"
    if isinstance(label, float):
        # pandas turns an integer column with an empty cell into floats (1.0, nan).
        if math.isnan(label):
            label = None
        elif label.is_integer():
            label = int(label)
    if label is None:
        raise DataError(f"{source_name}: row {row}: missing label in column {column!r}")
    if isinstance(label, bool) or not isinstance(label, (int, str)):
        raise DataError(f"{where} is {type(label).__name__}, expected an id 0..{len(label_names) - 1} or a name")
    key = str(label).strip().lower()
    if key not in lookup:
        raise DataError(f"{where} is unknown (expected one of {label_names} or 0..{len(label_names) - 1})")
    return lookup[key]


def load_examples(
    spec: str,
    split: str,
    dataset_config: str | None,
    text_column: str,
    label_column: str,
    label_names: list[str],
) -> datasets.Dataset:
    """Resolve, read and validate one split."""
    source = resolve_source(spec)
    raw = load_raw_split(source, split, dataset_config)
    return validate_examples(raw, source.name, text_column, label_column, label_names)


def tokenize_examples(examples: datasets.Dataset, tokenizer: Any, max_length: int) -> datasets.Dataset:
    """Token ids without padding plus each example's length, which the sampler groups by."""

    def encode(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        # Special-token strings in a review are text here as at prediction time.
        encoded = tokenize_user_texts(tokenizer, batch["text"], truncation=True, max_length=max_length)
        return {"input_ids": encoded["input_ids"], "length": [len(ids) for ids in encoded["input_ids"]]}

    return examples.map(encode, batched=True, batch_size=1000, remove_columns=["text"], desc="tokenising")
