"""Choosing the class to explain: the caller's, or the model's prediction."""

from __future__ import annotations

import torch

from attnlens.errors import InputError


def resolve_targets(logits: torch.Tensor, target: int | list[int] | torch.Tensor | None) -> torch.Tensor:
    """(batch,) class indices: `target` broadcast over the batch, or the argmax where it is None."""
    batch, num_labels = logits.shape
    if target is None:
        return logits.argmax(dim=-1)
    if isinstance(target, torch.Tensor):
        values = target.reshape(-1).tolist()
    elif isinstance(target, (list, tuple)):
        values = list(target)
    else:
        values = [target] * batch
    if len(values) != batch:
        raise InputError(f"got {len(values)} targets for {batch} texts")
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < num_labels:
            raise InputError(f"target={value!r} is not a class index in [0, {num_labels - 1}]")
    return torch.tensor(values, dtype=torch.long, device=logits.device)
