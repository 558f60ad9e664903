"""Per-class precision, recall, F1 and support, their macro and micro averages, and the confusion
matrix, from scikit-learn over every class the model has (also classes absent from the data)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from sklearn.metrics import confusion_matrix, precision_recall_fscore_support


@dataclass
class ClassScores:
    label: str
    precision: float
    recall: float
    f1: float
    support: int  # examples of this class in the data


@dataclass
class ClassMetrics:
    """`confusion[i][j]` counts examples of class i predicted as class j."""

    labels: list[str]
    per_class: list[ClassScores]
    macro: dict[str, float]
    micro: dict[str, float]
    accuracy: float
    confusion: list[list[int]]

    def to_dict(self) -> dict:
        return asdict(self)


def class_metrics(references: Sequence[int], predictions: Sequence[int], labels: Sequence[str]) -> ClassMetrics:
    classes = list(range(len(labels)))
    references, predictions = list(references), list(predictions)
    precision, recall, f1, support = precision_recall_fscore_support(
        references, predictions, labels=classes, zero_division=0)
    averages = {}
    for average in ("macro", "micro"):
        p, r, f, _ = precision_recall_fscore_support(references, predictions, labels=classes, average=average,
                                                     zero_division=0)
        averages[average] = {"precision": float(p), "recall": float(r), "f1": float(f)}
    right = sum(1 for y, p in zip(references, predictions, strict=True) if y == p)
    return ClassMetrics(
        labels=list(labels),
        per_class=[ClassScores(label=labels[c], precision=float(precision[c]), recall=float(recall[c]),
                               f1=float(f1[c]), support=int(support[c])) for c in classes],
        macro=averages["macro"],
        micro=averages["micro"],
        accuracy=right / max(1, len(references)),
        confusion=confusion_matrix(references, predictions, labels=classes).tolist(),
    )
