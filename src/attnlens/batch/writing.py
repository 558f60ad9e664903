"""Output rows and the three output formats (jsonl, csv, parquet), written as part files and
joined into the output in order.

A part is written to a temporary name and renamed, so a part that exists is complete. Values of
the id and kept columns stay as read in jsonl output; csv and parquet store them as text (JSON for
non-strings) so every part has the same columns and types whatever the input held.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from attnlens.predict import Prediction

def output_row(row_number: int, values: dict[str, Any], prediction: Prediction | None,
               error: str | None, explanation: dict[str, Any] | None = None,
               explained: bool = False) -> dict[str, Any]:
    """One output record: `row`, the id/kept `values`, the prediction (or nulls), the
    `explanation` when the job explains (`explained`), and `error`."""
    record = {
        "row": row_number,
        **values,
        "label": prediction.label if prediction else None,
        "score": prediction.score if prediction else None,
        "probabilities": prediction.probabilities if prediction else None,
        "num_tokens": prediction.num_tokens if prediction else None,
        "truncated": prediction.truncated if prediction else None,
        "uncertain": prediction.uncertain if prediction else None,
    }
    if explained:
        record["explanation"] = explanation
    record["error"] = error
    return record


class OutputLayout:
    """The flat columns of csv/parquet output: probabilities become one `p_<label>` column each."""

    def __init__(self, kind: str, value_columns: Sequence[str], labels: Sequence[str],
                 explained: bool = False) -> None:
        self.kind = kind
        self.value_columns = list(value_columns)
        self.labels = list(labels)
        self.columns = ["row", *self.value_columns, "label", "score", *(f"p_{label}" for label in self.labels),
                        "num_tokens", "truncated", "uncertain", *(["explanation"] if explained else []), "error"]

    def flat(self, record: dict[str, Any]) -> dict[str, Any]:
        flat = {key: value for key, value in record.items() if key != "probabilities"}
        for column in (*self.value_columns, *(["explanation"] if "explanation" in flat else [])):
            flat[column] = _as_text(flat[column])
        probabilities = record["probabilities"] or {}
        for label in self.labels:
            flat[f"p_{label}"] = probabilities.get(label)
        return flat

    def arrow_schema(self) -> Any:
        import pyarrow as pa

        types = {"row": pa.int64(), "label": pa.string(), "score": pa.float64(), "num_tokens": pa.int64(),
                 "truncated": pa.bool_(), "uncertain": pa.bool_(), "error": pa.string()}
        return pa.schema([(column, types.get(column, pa.float64() if column.startswith("p_") else pa.string()))
                          for column in self.columns])

    def write_part(self, records: list[dict[str, Any]], path: Path) -> None:
        """Write one window's records to `path`, which appears only once complete."""
        temporary = path.with_name(path.name + ".tmp")
        if self.kind == "jsonl":
            with temporary.open("w", encoding="utf-8") as handle:
                for record in records:
                    handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        elif self.kind == "csv":
            # No header in parts: the join writes it once.
            with temporary.open("w", encoding="utf-8", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=self.columns)
                writer.writerows(self.flat(record) for record in records)
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pylist([self.flat(record) for record in records], schema=self.arrow_schema())
            pq.write_table(table, temporary)
        os.replace(temporary, path)

    def join_parts(self, parts: list[Path], output: Path) -> None:
        """Concatenate `parts` in the given order into `output` (written under a temporary name)."""
        temporary = output.with_name(output.name + ".tmp")
        if self.kind == "parquet":
            import pyarrow.parquet as pq

            with pq.ParquetWriter(temporary, self.arrow_schema()) as writer:
                for part in parts:
                    writer.write_table(pq.read_table(part, schema=self.arrow_schema()))
        else:
            with temporary.open("wb") as handle:
                if self.kind == "csv":
                    header = io.StringIO()
                    csv.writer(header).writerow(self.columns)
                    handle.write(header.getvalue().encode("utf-8"))
                for part in parts:
                    with part.open("rb") as source:
                        shutil.copyfileobj(source, handle)
        os.replace(temporary, output)


def _as_text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)
