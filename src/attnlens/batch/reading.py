"""Streaming the rows of a csv / tsv / jsonl / parquet file, or of a Hub dataset's split, in windows
of a fixed number of rows.

Only one window (plus one pyarrow block) is in memory at a time. Window boundaries depend only on
the input and `window_rows`, so a resumed job cuts the input exactly as the killed one did, and
every process of a many-process job sees the same windows. Cells stay as read: csv/tsv cells are
always strings ("NA", "null" and "123" are text in reviews).
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from attnlens.batch.formats import INPUT_FORMATS, input_format
from attnlens.errors import InputError

# Counting lines for the progress bar's total reads the file once more; past this it costs more
# than the ETA is worth.
COUNT_LINES_LIMIT_BYTES = 200 * 1024 * 1024


@dataclass(frozen=True)
class BadLine:
    """A jsonl line that is not a JSON object: it becomes an error row instead of stopping the job."""

    problem: str


Row = dict[str, Any] | BadLine


@dataclass(frozen=True)
class HubDataset:
    """One split of a Hub dataset, read with `datasets.load_dataset` (from the datasets cache when
    offline, as `HF_HUB_OFFLINE=1` asks)."""

    dataset_id: str
    split: str
    config: str | None = None

    def __str__(self) -> str:
        config = f", config {self.config}" if self.config else ""
        return f"{self.dataset_id} ({self.split} split{config})"

    @cached_property
    def dataset(self) -> Any:
        import datasets

        try:
            return datasets.load_dataset(self.dataset_id, self.config, split=self.split)
        except Exception as error:  # datasets raises many types: not found, offline, unknown split or config
            lines = str(error).strip().splitlines() or [type(error).__name__]
            raise InputError(f"Hub dataset {self.dataset_id!r} (config {self.config!r}, split {self.split!r}): "
                             f"cannot load it: {lines[0]}") from error


InputSource = Path | HubDataset


def input_source(spec: str, split: str | None = None, config: str | None = None) -> InputSource:
    """A file when `spec` names one (or looks like a path: a known extension, a leading `.`, `/`
    or `~`, more than one `/`), else a Hub dataset id, which needs the `split` to score: there is
    no default that suits both training and evaluation sets."""
    path = Path(spec).expanduser()
    looks_like_path = (path.exists() or path.suffix.lower() in INPUT_FORMATS or spec.startswith((".", "/", "~"))
                       or spec.count("/") > 1)
    if looks_like_path:
        if split is not None or config is not None:
            raise InputError(f"{spec}: --split and --dataset-config are for Hub dataset ids, and this is a file")
        return path
    if split is None:
        raise InputError(f"{spec}: no such file; to score it as a Hub dataset id, name the split "
                         "(e.g. --split test)")
    return HubDataset(spec, split, config)


def column_names(source: InputSource) -> list[str] | None:
    """The header's columns for csv/tsv/parquet and Hub datasets; None for jsonl, whose rows may differ."""
    if isinstance(source, HubDataset):
        return list(source.dataset.column_names)
    path = source
    kind = input_format(path)
    if kind == "parquet":
        import pyarrow.parquet as pq

        return list(pq.ParquetFile(path).schema_arrow.names)
    if kind == "jsonl":
        return None
    return list(_open_csv(path, kind, column_types=None).schema.names)


def count_rows(source: InputSource) -> int | None:
    """Rows in the input for the progress bar, or None when counting would take too long."""
    if isinstance(source, HubDataset):
        return source.dataset.num_rows
    path = source
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


def read_windows(source: InputSource, window_rows: int) -> Iterator[tuple[int, list[Row]]]:
    """(1-based number of the window's first row, its rows) for every window of the input."""
    if window_rows < 1:
        raise InputError(f"window_rows={window_rows} must be at least 1")
    first, window = 1, []
    for row in _rows(source, window_rows):
        window.append(row)
        if len(window) == window_rows:
            yield first, window
            first, window = first + window_rows, []
    if window:
        yield first, window


def _rows(source: InputSource, window_rows: int) -> Iterator[Row]:
    if isinstance(source, HubDataset):
        return _dataset_rows(source.dataset, window_rows)
    kind = input_format(source)
    if kind == "jsonl":
        return _jsonl_rows(source)
    return _parquet_rows(source, window_rows) if kind == "parquet" else _csv_rows(source, kind)


def _dataset_rows(dataset: Any, window_rows: int) -> Iterator[Row]:
    # Batches of the memory-mapped Arrow table, as columns; values keep the dataset's types.
    for batch in dataset.iter(batch_size=window_rows):
        names = list(batch)
        for values in zip(*batch.values(), strict=True):
            yield dict(zip(names, values, strict=True))


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


def _parquet_rows(path: Path, window_rows: int) -> Iterator[Row]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        batches: Iterable[pa.RecordBatch] = pq.ParquetFile(path).iter_batches(batch_size=window_rows)
        for batch in batches:
            yield from batch.to_pylist()
    except (pa.ArrowException, OSError) as error:
        raise InputError(f"{path}: cannot read the parquet file: {error}") from error


def _csv_rows(path: Path, kind: str) -> Iterator[Row]:
    """The rows of a csv/tsv file, with a line of the wrong number of cells as a BadLine in its place.

    pyarrow skips such a line and reports its record number (the header is record 1; records, not
    physical lines, so quoted newlines do not shift it; exact when one thread parses, see
    `_open_csv`); it is reported while the block holding it is parsed, before any later row is
    returned, so it slots in between the rows read around it.
    """
    import pyarrow as pa

    skipped: deque[tuple[int, BadLine]] = deque()  # (row number, problem), in file order

    def skip_line(line: Any) -> str:
        if line.number is None:
            return "error"  # unplaceable: stop with pyarrow's message, as before
        cells = f"{line.actual_columns} cell" + ("" if line.actual_columns == 1 else "s")
        problem = f"the line has {cells} where the header has {line.expected_columns}"
        skipped.append((line.number - 1, BadLine(problem)))
        return "skip"

    number = 1  # of the next row to yield
    try:
        names = _open_csv(path, kind, column_types=None).schema.names
        batches = _open_csv(path, kind, column_types={name: pa.string() for name in names},
                            invalid_row_handler=skip_line)
        for batch in batches:
            for row in batch.to_pylist():
                while skipped and skipped[0][0] == number:
                    yield skipped.popleft()[1]
                    number += 1
                _check_placed(path, skipped, number)
                yield row
                number += 1
    except (pa.ArrowException, OSError) as error:
        raise InputError(f"{path}: cannot read the {kind} file: {error}") from error
    for row_number, bad_line in skipped:  # lines after the last good row
        if row_number != number:
            _unplaceable(path, row_number, bad_line, number)
        yield bad_line
        number += 1


def _check_placed(path: Path, skipped: deque[tuple[int, BadLine]], number: int) -> None:
    if skipped and skipped[0][0] < number:
        _unplaceable(path, *skipped[0], number)


def _unplaceable(path: Path, row_number: int, bad_line: BadLine, number: int) -> None:
    # A line reported out of place would shift every later row number: stop rather than misnumber.
    raise InputError(f"{path}: row {row_number}: {bad_line.problem}, reported where row {number} was expected; "
                     "cannot place it in the output")


def _skip_silently(line: Any) -> str:
    return "skip"  # reading the header only: the rows' lines are judged when they are read


def _open_csv(path: Path, kind: str, column_types: dict[str, Any] | None,
              invalid_row_handler: Any = _skip_silently) -> Any:
    import pyarrow as pa
    import pyarrow.csv as pcsv

    # GLUE-style TSV has no quoting: a lone `"` is part of the sentence. A quoted csv cell may
    # hold a newline: without `newlines_in_values` one across a block boundary may stop the reader.
    parse = (pcsv.ParseOptions(delimiter="\t", quote_char=False, invalid_row_handler=invalid_row_handler)
             if kind == "tsv" else
             pcsv.ParseOptions(newlines_in_values=True, invalid_row_handler=invalid_row_handler))
    convert = pcsv.ConvertOptions(column_types=column_types, strings_can_be_null=False, null_values=[],
                                  quoted_strings_can_be_null=False)
    # One parsing thread: with several, pyarrow cannot tell a skipped line's record number.
    read = pcsv.ReadOptions(use_threads=False)
    try:
        return pcsv.open_csv(path, read_options=read, parse_options=parse, convert_options=convert)
    except (pa.ArrowException, OSError) as error:
        raise InputError(f"{path}: cannot read the {kind} file: {error}") from error
