"""Small train/validation CSVs cut from the package's own demo reviews, for the training-job tests."""

from __future__ import annotations

import csv
from pathlib import Path

DEMO_REVIEWS = Path(__file__).resolve().parents[1] / "src" / "attnlens" / "data" / "demo_reviews.csv"


def write_demo_splits(directory: Path, train: slice, validation: slice) -> tuple[Path, Path]:
    """`train.csv` and `validation.csv` (columns text, label) in `directory`, from those demo rows."""
    with DEMO_REVIEWS.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    paths = directory / "train.csv", directory / "validation.csv"
    for path, part in zip(paths, (rows[train], rows[validation]), strict=True):
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=["text", "label"])
            writer.writeheader()
            writer.writerows(part)
    return paths
