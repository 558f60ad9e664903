"""What every caller of a sequence classifier shares besides its forward: the names of its labels,
and eval mode for the duration of a call."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import nn


def label_names(model: nn.Module) -> list[str]:
    """The name of each class index, from the config's `id2label` (int or str keys); `LABEL_<i>`
    where it names none."""
    id2label = getattr(model.config, "id2label", None) or {}
    return [str(id2label.get(i, id2label.get(str(i), f"LABEL_{i}"))) for i in range(int(model.config.num_labels))]


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Dropout off for the block (predictions and explanations must be deterministic), then the
    caller's mode back, also when the block raises."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)
