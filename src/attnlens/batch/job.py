"""`predict_file`: predict every row of a file into an output file, window by window, resuming
from the windows a killed run finished (attnlens.batch.parts)."""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from attnlens.batch.parts import input_identity, open_parts, part_path, parts_folder
from attnlens.batch.reading import BadLine, Row, column_names, count_rows, read_windows
from attnlens.batch.writing import OutputLayout, output_format, output_row
from attnlens.errors import InputError
from attnlens.predict import Predictor

RESERVED_COLUMNS = ("row", "id", "label", "score", "probabilities", "num_tokens", "truncated", "uncertain",
                    "error")


@dataclass(frozen=True)
class BatchOptions:
    model: str  # how the model was named; recorded so that parts of another model are not reused
    text_column: str = "text"
    id_column: str | None = None
    keep_columns: tuple[str, ...] = ()
    long_text: str = "truncate"
    window_rows: int = 10_000
    min_confidence: float | None = None
    quantize: str = "none"
    resume: str = "auto"  # "auto": continue a matching parts folder; "never": delete it, start over
    strict: bool = False  # stop at the first bad row instead of writing it as an error row
    progress: bool = True


@dataclass
class Summary:
    rows: int = 0  # rows predicted (or written as errors) by this run
    resumed_rows: int = 0  # rows of windows a previous run had finished
    truncated: int = 0
    errors: int = 0
    seconds: float = 0.0
    already_complete: bool = False

    def line(self) -> str:
        rate = self.rows / self.seconds if self.seconds > 0 else 0.0
        resumed = f" ({self.resumed_rows} more resumed from parts)" if self.resumed_rows else ""
        return (f"{self.rows} rows{resumed} in {self.seconds:.1f} s ({rate:.1f} rows/s), "
                f"{self.truncated} truncated, {self.errors} errors")


def already_complete(output: Path, options: BatchOptions) -> bool:
    """True when `output` exists without a parts folder (a finished job) and may be kept."""
    return options.resume == "auto" and output.exists() and not parts_folder(output).exists()


def predict_file(predictor: Predictor, input_path: Path, output_path: Path, options: BatchOptions) -> Summary:
    input_path, output_path = Path(input_path), Path(output_path)
    if already_complete(output_path, options):
        return Summary(already_complete=True)
    if not input_path.is_file():
        raise InputError(f"{input_path}: no such input file")
    kind = output_format(output_path)
    _check_columns(input_path, options)
    value_columns = [name for name in (options.id_column and "id", *options.keep_columns) if name]
    layout = OutputLayout(kind, value_columns, predictor.labels)
    job = {"model": options.model, "input": input_identity(input_path), "output_format": kind,
           **{key: value for key, value in asdict(options).items() if key not in ("model", "resume", "strict",
                                                                                   "progress")}}
    job["keep_columns"] = list(options.keep_columns)
    folder = open_parts(output_path, job, start_over=options.resume == "never")

    from tqdm.auto import tqdm

    summary, started, parts = Summary(), time.perf_counter(), []
    with tqdm(total=count_rows(input_path), unit="rows", file=sys.stderr, disable=not options.progress,
              dynamic_ncols=True) as progress:
        for number, (first_row, rows) in enumerate(read_windows(input_path, options.window_rows), start=1):
            part = part_path(folder, number, kind)
            parts.append(part)
            if part.exists():
                summary.resumed_rows += len(rows)
            else:
                layout.write_part(_predict_window(predictor, input_path, first_row, rows, options, summary), part)
            progress.update(len(rows))
    layout.join_parts(parts, output_path)
    shutil.rmtree(folder)
    summary.seconds = time.perf_counter() - started
    return summary


def _predict_window(predictor: Predictor, input_path: Path, first_row: int, rows: list[Row],
                    options: BatchOptions, summary: Summary) -> list[dict[str, Any]]:
    problems = [_text_problem(row, options.text_column) for row in rows]
    for offset, problem in enumerate(problems):
        if problem and options.strict:
            raise InputError(f"{input_path}: row {first_row + offset}: {problem}")
    good = [index for index, problem in enumerate(problems) if problem is None]
    predictions = dict(zip(good, predictor.predict(
        [rows[index][options.text_column] for index in good],  # type: ignore[index]
        long_text=options.long_text, min_confidence=options.min_confidence), strict=True))  # type: ignore[arg-type]
    records = []
    for index, row in enumerate(rows):
        values = {} if isinstance(row, BadLine) else row
        kept = {name: values.get(name) for name in options.keep_columns}
        if options.id_column:
            kept = {"id": values.get(options.id_column), **kept}
        prediction = predictions.get(index)
        error = None if prediction else f"row {first_row + index}: {problems[index]}"
        records.append(output_row(first_row + index, kept, prediction, error))
        summary.rows += 1
        summary.errors += error is not None
        summary.truncated += bool(prediction and prediction.truncated)
    return records


def _text_problem(row: Row, text_column: str) -> str | None:
    """Why a row cannot be predicted, or None."""
    if isinstance(row, BadLine):
        return row.problem
    if row.get(text_column) is None:
        return f"text column {text_column!r} is missing"
    text = row[text_column]
    if not isinstance(text, str):
        return f"text column {text_column!r} holds a {type(text).__name__}, not a string"
    if not text.strip():
        return f"text column {text_column!r} is empty"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return f"text column {text_column!r} holds a lone surrogate (not valid Unicode)"
    return None


def _check_columns(input_path: Path, options: BatchOptions) -> None:
    """Columns absent from a csv/tsv/parquet header stop the job before any prediction."""
    clashing = [name for name in options.keep_columns if name in RESERVED_COLUMNS or name.startswith("p_")]
    if clashing:
        raise InputError(f"--keep-columns {', '.join(map(repr, clashing))}: the output has its own columns "
                         f"of that name ({', '.join(RESERVED_COLUMNS)}, p_<label>)")
    names = column_names(input_path)
    if names is None:
        return  # jsonl rows may differ: a row without the text is an error row
    wanted = [options.text_column, *([options.id_column] if options.id_column else []), *options.keep_columns]
    missing = [name for name in wanted if name not in names]
    if missing:
        raise InputError(f"{input_path}: no column {', '.join(map(repr, missing))}; "
                         f"the columns are {', '.join(map(repr, names))}")
