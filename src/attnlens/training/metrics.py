"""Classification metrics from attnlens' own `evaluate` modules, loaded by path.

`evaluate.load("accuracy")` fetches a script from the Hub, which offline machines cannot reach; the
modules under `attnlens/metrics/<name>/` are the same metrics with scikit-learn underneath, shipped
in the package.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Sequence
from pathlib import Path

import evaluate

from attnlens.training.config import METRIC_NAMES


def metric_module_dir(name: str) -> Path:
    """Folder of the local metric module `name` (accuracy, f1, precision, recall)."""
    if name not in METRIC_NAMES:
        raise ValueError(f"unknown metric {name!r}; attnlens ships {list(METRIC_NAMES)}")
    return Path(str(importlib.resources.files("attnlens").joinpath("metrics", name)))


class ClassificationMetrics:
    """Accuracy, macro F1, macro precision and macro recall over class ids."""

    def __init__(self, names: Sequence[str] = METRIC_NAMES) -> None:
        self.modules = {name: evaluate.load(str(metric_module_dir(name))) for name in names}

    def compute(self, predictions: Sequence[int], references: Sequence[int]) -> dict[str, float]:
        results: dict[str, float] = {}
        for module in self.modules.values():
            results.update(module.compute(predictions=list(predictions), references=list(references)))
        return results
