"""Metrics of slices of the data: by length in tokens, and truncated or not.

A model that is right on short phrases and wrong on long reviews looks fine on average; the
slices show it. Buckets are powers of two of the tokens the model read ([CLS]/[SEP] included).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sklearn.metrics import f1_score

LENGTH_EDGES = (16, 32, 64, 128, 256, 512)


@dataclass
class Slice:
    name: str
    examples: int
    accuracy: float
    macro_f1: float
    mean_confidence: float


def length_bucket(num_tokens: int) -> str:
    lower = 1
    for edge in LENGTH_EDGES:
        if num_tokens <= edge:
            return f"{lower}-{edge} tokens"
        lower = edge + 1
    return f"over {LENGTH_EDGES[-1]} tokens"


def _slice(name: str, members: list[int], references: Sequence[int], predictions: Sequence[int],
           confidences: Sequence[float], num_classes: int) -> Slice:
    y = [references[i] for i in members]
    p = [predictions[i] for i in members]
    return Slice(
        name=name, examples=len(members),
        accuracy=sum(a == b for a, b in zip(y, p, strict=True)) / len(members),
        macro_f1=float(f1_score(y, p, labels=list(range(num_classes)), average="macro", zero_division=0)),
        mean_confidence=sum(confidences[i] for i in members) / len(members),
    )


def slices(references: Sequence[int], predictions: Sequence[int], confidences: Sequence[float],
           num_tokens: Sequence[int], truncated: Sequence[bool], num_classes: int) -> dict[str, list[Slice]]:
    """{"length": one Slice per non-empty bucket in length order, "truncated": truncated / whole}."""
    by_bucket: dict[str, list[int]] = {}
    for i, count in enumerate(num_tokens):
        by_bucket.setdefault(length_bucket(count), []).append(i)
    order = [length_bucket(edge) for edge in LENGTH_EDGES] + [length_bucket(LENGTH_EDGES[-1] + 1)]
    length = [_slice(name, by_bucket[name], references, predictions, confidences, num_classes)
              for name in order if name in by_bucket]
    groups = {"truncated": [i for i, t in enumerate(truncated) if t],
              "read whole": [i for i, t in enumerate(truncated) if not t]}
    cut = [_slice(name, members, references, predictions, confidences, num_classes)
           for name, members in groups.items() if members]
    return {"length": length, "truncated": cut}
