"""`predict_file`: predict every row of a file (or a Hub dataset's split) into an output file,
window by window, resuming from the windows a killed run finished (attnlens.batch.parts), in one
process or shared among the processes of `accelerate launch` (attnlens.batch.processes)."""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from attnlens.batch.formats import output_format
from attnlens.batch.parts import JOB_FILE, input_identity, open_parts, part_path, parts_folder
from attnlens.batch.processes import Processes
from attnlens.batch.reading import BadLine, InputSource, Row, column_names, count_rows, read_windows
from attnlens.batch.writing import OutputLayout, output_row
from attnlens.calibration import is_uncertain
from attnlens.errors import InputError
from attnlens.explain import Explanation, explain_batch
from attnlens.explain.render import spans
from attnlens.inference.allocator import release_free_memory
from attnlens.predict import Prediction, Predictor

RESERVED_COLUMNS = ("row", "id", "label", "score", "probabilities", "num_tokens", "truncated", "uncertain",
                    "explanation", "error")
# Padded tokens per explanation batch: a gradient method's activations stay bounded however long
# the texts of a window are.
EXPLAIN_BATCH_TOKENS = 8192


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
    explain: str | None = None  # an explanation method: each row also gets its explanation
    level: str = "word"  # the explanation's items: word, token or sentence
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
    processes: int = 1

    def line(self) -> str:
        rate = self.rows / self.seconds if self.seconds > 0 else 0.0
        resumed = f" ({self.resumed_rows} more resumed from parts)" if self.resumed_rows else ""
        processes = f" by {self.processes} processes" if self.processes > 1 else ""
        return (f"{self.rows} rows{resumed} in {self.seconds:.1f} s{processes} ({rate:.1f} rows/s), "
                f"{self.truncated} truncated, {self.errors} errors")

    def add(self, other: Summary) -> None:
        self.rows += other.rows
        self.resumed_rows += other.resumed_rows
        self.truncated += other.truncated
        self.errors += other.errors


def already_complete(output: Path, options: BatchOptions) -> bool:
    """True when `output` exists without a parts folder (a finished job) and may be kept."""
    return options.resume == "auto" and output.exists() and not parts_folder(output).exists()


def predict_file(predictor: Predictor, source: InputSource, output_path: Path, options: BatchOptions,
                 processes: Processes | None = None) -> Summary:
    """Predict every row of `source` (a file, or a Hub dataset's split) into `output_path`.

    With several `processes` (attnlens.batch.processes) each predicts its share of the windows
    into the shared parts folder, and the main process joins them; the returned Summary counts
    every process's rows on the main process, this process's elsewhere.
    """
    processes = processes or Processes()
    output_path = Path(output_path)
    if already_complete(output_path, options):
        return Summary(already_complete=True)
    layout, folder = _prepare(predictor, source, output_path, options, processes)
    started = time.perf_counter()
    parts, summary = _predict_windows(predictor, source, layout, folder, options, processes)
    if processes.count > 1:
        summary = _total(processes.gather([summary]), processes.count)
    if processes.is_main:
        _check_parts(parts, folder)
        layout.join_parts(parts, output_path)
        shutil.rmtree(folder)
    summary.seconds = time.perf_counter() - started
    return summary


def _prepare(predictor: Predictor, source: InputSource, output_path: Path, options: BatchOptions,
             processes: Processes) -> tuple[OutputLayout, Path]:
    """Check the input and the arguments, and open the parts folder: the main process creates it
    (or checks that it holds this job's parts) before any process writes a part."""
    layout, folder, failure = None, parts_folder(output_path), None
    try:
        if isinstance(source, Path) and not source.is_file():
            raise InputError(f"{source}: no such input file")
        kind = output_format(output_path)
        _check_columns(source, options)
        value_columns = [name for name in (options.id_column and "id", *options.keep_columns) if name]
        layout = OutputLayout(kind, value_columns, predictor.labels, explained=options.explain is not None)
        if processes.is_main:
            open_parts(output_path, _job_record(source, kind, options), start_over=options.resume == "never")
    except Exception as error:
        failure = processes.keep(error)
    processes.stop_if_any_failed(failure)
    if processes.count > 1:  # every process meets here, the main one with nothing to report
        if not processes.is_main and not (folder / JOB_FILE).is_file():
            failure = InputError(f"{folder}: not visible to process {processes.index}; with several machines "
                                 "the output must be on a file system they share")
        processes.stop_if_any_failed(failure)
    assert layout is not None  # set, or a failure stopped every process above
    return layout, folder


def _job_record(source: InputSource, kind: str, options: BatchOptions) -> dict[str, Any]:
    """What defines the output, as job.json records it. Not the number of processes: a job killed
    under some number of processes resumes under any other."""
    ignored = ("model", "resume", "strict", "progress")
    job = {"model": options.model, "input": input_identity(source), "output_format": kind,
           **{key: value for key, value in asdict(options).items() if key not in ignored}}
    job["keep_columns"] = list(options.keep_columns)
    return job


def _predict_windows(predictor: Predictor, source: InputSource, layout: OutputLayout, folder: Path,
                     options: BatchOptions, processes: Processes) -> tuple[list[Path], Summary]:
    """Predict this process's windows that have no part yet; the parts of every window, in order.

    Processes meet after each round of windows (one per process) and at the end, so a failure on
    one stops all of them within a round; a failure while reading happens on every process alike.
    """
    from tqdm.auto import tqdm

    summary, parts, failure, unsettled = Summary(), [], None, False
    shown = options.progress and processes.is_main
    total = _own_rows(count_rows(source), options.window_rows, processes) if shown else None
    windows = enumerate(read_windows(source, options.window_rows), start=1)
    with tqdm(total=total, unit="rows", file=sys.stderr, disable=not shown,
              dynamic_ncols=True, desc=None if processes.count == 1 else "rows of the main process's windows",
              ) as progress:
        while True:
            try:
                number, (first_row, rows) = next(windows)
            except StopIteration:
                break
            except Exception as error:  # reading failed: on every process alike, at the same window
                failure, unsettled = failure or processes.keep(error), True
                break
            part = part_path(folder, number, layout.kind)
            parts.append(part)
            if processes.owns(number) and failure is None:
                try:
                    _window(predictor, source, first_row, rows, part, layout, options, summary)
                except Exception as error:
                    failure = processes.keep(error)
                progress.update(len(rows))
            unsettled = not processes.ends_round(number)
            if not unsettled:
                processes.stop_if_any_failed(failure)
    if unsettled:
        processes.stop_if_any_failed(failure)
    return parts, summary


def _window(predictor: Predictor, source: InputSource, first_row: int, rows: list[Row], part: Path,
            layout: OutputLayout, options: BatchOptions, summary: Summary) -> None:
    """Write one window's part, or count its rows as resumed when a previous run wrote it."""
    if part.exists():
        summary.resumed_rows += len(rows)
    else:
        layout.write_part(_predict_window(predictor, source, first_row, rows, options, summary), part)
        release_free_memory()  # each window starts from the same heap: the job's peak does not creep up


def _own_rows(total: int | None, window_rows: int, processes: Processes) -> int | None:
    """Rows of this process's windows, for an honest progress total."""
    if total is None or processes.count == 1:
        return total
    windows = -(-total // window_rows)
    return sum(min(window_rows, total - (number - 1) * window_rows)
               for number in range(1, windows + 1) if processes.owns(number))


def _total(summaries: list[Summary], processes: int) -> Summary:
    total = Summary(processes=processes)
    for summary in summaries:
        total.add(summary)
    return total


def _check_parts(parts: list[Path], folder: Path) -> None:
    missing = [part.name for part in parts if not part.exists()]
    if missing:
        raise InputError(f"{folder}: {len(missing)} window parts are missing ({', '.join(missing[:3])}, ...); "
                         "with several machines the output must be on a file system they share")


def _predict_window(predictor: Predictor, source: InputSource, first_row: int, rows: list[Row],
                    options: BatchOptions, summary: Summary) -> list[dict[str, Any]]:
    """The output records of one window: a prediction, or an error, for every row."""
    problems = [_text_problem(row, options.text_column) for row in rows]
    for offset, problem in enumerate(problems):
        if problem and options.strict:
            raise InputError(f"{source}: row {first_row + offset}: {problem}")
    good = [index for index, problem in enumerate(problems) if problem is None]
    texts = [rows[index][options.text_column] for index in good]  # type: ignore[index]
    explanations: dict[int, dict[str, Any]] = {}
    if options.explain is None:
        predictions = dict(zip(good, predictor.predict(texts, long_text=options.long_text,  # type: ignore[arg-type]
                                                       min_confidence=options.min_confidence), strict=True))
    else:  # the explained forward passes are the predictions, so label and explanation agree
        explained = explain_batch(predictor.model, predictor.tokenizer, texts, method=options.explain,
                                  max_length=predictor.max_length, batch_size=predictor.batch_size,
                                  max_batch_tokens=EXPLAIN_BATCH_TOKENS, long_text=options.long_text) if texts else []
        predictions = {index: prediction_of(e, options.min_confidence) for index, e in zip(good, explained, strict=True)}
        explanations = {index: explanation_record(e, options.level) for index, e in zip(good, explained, strict=True)}
    records = []
    for index, row in enumerate(rows):
        values = {} if isinstance(row, BadLine) else row
        kept = {name: values.get(name) for name in options.keep_columns}
        if options.id_column:
            kept = {"id": values.get(options.id_column), **kept}
        prediction = predictions.get(index)
        error = None if prediction else f"row {first_row + index}: {problems[index]}"
        records.append(output_row(first_row + index, kept, prediction, error, explanations.get(index),
                                  explained=options.explain is not None))
        summary.rows += 1
        summary.errors += error is not None
        summary.truncated += bool(prediction and prediction.truncated)
    return records


def prediction_of(explanation: Explanation, min_confidence: float | None) -> Prediction:
    """The prediction an explanation's forward passes made (the Predictor's up to float rounding)."""
    score = explanation.probabilities[explanation.label]
    return Prediction(label=explanation.label, score=score, probabilities=dict(explanation.probabilities),
                      num_tokens=len(explanation.tokens), truncated=explanation.truncated,
                      num_windows=explanation.num_windows, uncertain=is_uncertain(score, min_confidence))


def explanation_record(explanation: Explanation, level: str) -> dict[str, Any]:
    """The explanation as the service's `/explain` gives it: method, level, target, importances."""
    items = spans(explanation, level)
    return {"method": explanation.method, "level": level, "target": explanation.target,
            "importances": [{"text": text, "start": start, "end": end, "score": score}
                            for text, start, end, score in items]}


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


def _check_columns(source: InputSource, options: BatchOptions) -> None:
    """Columns absent from a csv/tsv/parquet header or a Hub dataset stop the job before any prediction."""
    clashing = [name for name in options.keep_columns if name in RESERVED_COLUMNS or name.startswith("p_")]
    if clashing:
        raise InputError(f"--keep-columns {', '.join(map(repr, clashing))}: the output has its own columns "
                         f"of that name ({', '.join(RESERVED_COLUMNS)}, p_<label>)")
    names = column_names(source)
    if names is None:
        return  # jsonl rows may differ: a row without the text is an error row
    wanted = [options.text_column, *([options.id_column] if options.id_column else []), *options.keep_columns]
    missing = [name for name in wanted if name not in names]
    if missing:
        raise InputError(f"{source}: no column {', '.join(map(repr, missing))}; "
                         f"the columns are {', '.join(map(repr, names))}")
