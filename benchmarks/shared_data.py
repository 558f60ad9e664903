"""The shared evaluation sets beside the project (`../shared/data`), read one way by every benchmark.

They are read in place, never copied into the repository. SST-2's TSVs hold unescaped quotes, so
they are read with `QUOTE_NONE`; imdb-2k's CSV quotes its multi-line reviews and needs a CSV reader.
"""

from __future__ import annotations

import csv
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"
SST2_VALIDATION = DATA_DIR / "sst2" / "validation.tsv"
SST2_TRAIN = DATA_DIR / "sst2" / "train.tsv"


def read_rows(path: Path) -> list[dict[str, str]]:
    """Every row of a `.tsv` (SST-2's quoting) or `.csv` file as a dict keyed by the header."""
    with Path(path).open(encoding="utf-8", newline="") as handle:
        if Path(path).suffix == ".tsv":
            return list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
        return list(csv.DictReader(handle))


def sst2(data_dir: Path = DATA_DIR, split: str = "validation") -> tuple[list[str], list[int]]:
    """(sentences, labels) of an SST-2 split, in file order."""
    rows = read_rows(data_dir / "sst2" / f"{split}.tsv")
    return [r["sentence"] for r in rows], [int(r["label"]) for r in rows]


def imdb(data_dir: Path = DATA_DIR) -> tuple[list[str], list[int]]:
    """(reviews, labels) of imdb-2k, in file order: evaluation only, never for training or tuning."""
    rows = read_rows(data_dir / "imdb-2k" / "test.csv")
    return [r["text"] for r in rows], [int(r["label"]) for r in rows]
