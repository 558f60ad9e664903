"""Streaming the rows of a csv / tsv / jsonl / parquet file in windows of a fixed number of rows.

Only one window (plus one pyarrow block) is in memory at a time. Window boundaries depend only on
the file and `window_rows`, so a resumed job cuts the file exactly as the killed one did. Cells
stay as read: csv/tsv cells are always strings ("NA", "null" and "123" are text in reviews).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attnlens.errors import InputError

INPUT_FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet"}
# Counting lines for the progress bar's total reads the file once more; past this it costs more
# than the ETA is worth.
COUNT_LINES_LIMIT_BYTES = 200 * 1024 * 1024


@dataclass(frozen=True)
class BadLine:
    """A jsonl line that is not a JSON object: it becomes an error row instead of stopping the job."""

    problem: str


Row = dict[str, Any] | BadLine


def input_format(path: Path) -> str:
    try:
        return INPUT_FORMATS[path.suffix.lower()]
    except KeyError:
        raise InputError(f"{path}: unsupported input extension {path.suffix!r}; "
                         f"use one of {', '.join(INPUT_FORMATS)}") from None


def column_names(path: Path) -> list[str] | None:
    """The header's columns for csv/tsv/parquet; None for jsonl, whose rows may differ."""
    kind = input_format(path)
    if kind == "parquet":
        import pyarrow.parquet as pq

        return list(pq.ParquetFile(path).schema_arrow.names)
    if kind == "jsonl":
        return None
    return list(_open_csv(path, kind, column_types=None).schema.names)


def count_rows(path: Path) -> int | None:
    """Rows in the file for the progress bar, or None when counting would take too long."""
    kind = input_format(path)
    if kind == "parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    if path.stat().st_size > COUNT_LINES_LIMIT_BYTES:
        return None
    with path.open("rb") as handle:
        lines = sum(1 for line in handle if line.strip())
    # A quoted csv cell may hold a newline, so this is a total for the ETA, not a row count.
    return lines - 1 if kind in ("csv", "tsv") else lines


def read_windows(path: Path, window_rows: int) -> Iterator[tuple[int, list[Row]]]:
    """(1-based number of the window's first row, its rows) for every window of the file."""
    if window_rows < 1:
        raise InputError(f"window_rows={window_rows} must be at least 1")
    kind = input_format(path)
    rows = _jsonl_rows(path) if kind == "jsonl" else _arrow_rows(path, kind, window_rows)
    first, window = 1, []
    for row in rows:
        window.append(row)
        if len(window) == window_rows:
            yield first, window
            first, window = first + window_rows, []
    if window:
        yield first, window


def _jsonl_rows(path: Path) -> Iterator[Row]:
    # A plain line reader (not pyarrow.json) so one broken line is one error row. Blank lines are
    # not rows: editors and `cat` leave them at the end of files.
    with path.open("rb") as handle:
        for line in handle:
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except (UnicodeDecodeError, ValueError) as error:
                yield BadLine(f"line is not valid JSON ({error})")
                continue
            if isinstance(value, dict):
                yield value
            else:
                yield BadLine(f"line is a JSON {type(value).__name__}, not an object")


def _arrow_rows(path: Path, kind: str, window_rows: int) -> Iterator[Row]:
    import pyarrow as pa

    try:
        if kind == "parquet":
            import pyarrow.parquet as pq

            batches: Iterable[pa.RecordBatch] = pq.ParquetFile(path).iter_batches(batch_size=window_rows)
        else:
            names = _open_csv(path, kind, column_types=None).schema.names
            batches = _open_csv(path, kind, column_types={name: pa.string() for name in names})
        for batch in batches:
            yield from batch.to_pylist()
    except (pa.ArrowException, OSError) as error:
        raise InputError(f"{path}: cannot read the {kind} file: {error}") from error


def _open_csv(path: Path, kind: str, column_types: dict[str, Any] | None) -> Any:
    import pyarrow as pa
    import pyarrow.csv as pcsv

    # GLUE-style TSV has no quoting: a lone `"` is part of the sentence.
    parse = pcsv.ParseOptions(delimiter="\t", quote_char=False) if kind == "tsv" else pcsv.ParseOptions()
    convert = pcsv.ConvertOptions(column_types=column_types, strings_can_be_null=False, null_values=[],
                                  quoted_strings_can_be_null=False)
    try:
        return pcsv.open_csv(path, parse_options=parse, convert_options=convert)
    except (pa.ArrowException, OSError) as error:
        raise InputError(f"{path}: cannot read the {kind} file: {error}") from error
