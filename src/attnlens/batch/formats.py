"""Which file format a path names, by its extension: the inputs read and the outputs written."""

from __future__ import annotations

from pathlib import Path

from attnlens.errors import InputError

INPUT_FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet"}
OUTPUT_FORMATS = {".jsonl": "jsonl", ".csv": "csv", ".parquet": "parquet"}


def input_format(path: Path) -> str:
    return _format(path, INPUT_FORMATS, "input")


def output_format(path: Path) -> str:
    return _format(path, OUTPUT_FORMATS, "output")


def _format(path: Path, formats: dict[str, str], role: str) -> str:
    try:
        return formats[path.suffix.lower()]
    except KeyError:
        raise InputError(f"{path}: unsupported {role} extension {path.suffix!r}; "
                         f"use one of {', '.join(formats)}") from None
