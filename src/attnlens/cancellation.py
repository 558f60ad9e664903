"""Stopping a prediction or explanation that nobody waits for any more.

A caller passes `should_stop`, a function that says whether the result is still wanted (the
service's says no once the HTTP request behind it has timed out). Long calls ask it at points
that come round often: between batches of texts and, for the duration of the call, before and
after every encoder layer's forward and backward (`stop_points`), so even integrated gradients on
long reviews stops within one layer's work. Asking is throttled (`StopPoll`), so a cheap layer
does not pay for a call across a pipe.

The model never imports this module: the checks are hooks installed on its layers for one call
and removed afterwards, whatever happens.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch

StopCheck = Callable[[], bool]

# The most often `should_stop` is called: often enough to stop promptly, rare enough to cost
# nothing beside a layer's forward.
STOP_POLL_INTERVAL_S = 0.02


class PredictionCancelled(Exception):
    """`should_stop` said the caller no longer wants the result (e.g. its HTTP request timed out)."""


class StopPoll:
    """`poll(where)` raises PredictionCancelled once `should_stop()` says True; it calls
    `should_stop` at most once per `interval` seconds (the first call always asks)."""

    def __init__(self, should_stop: StopCheck | None, interval: float = STOP_POLL_INTERVAL_S) -> None:
        self.should_stop = should_stop
        self.interval = interval
        self._asked_at = float("-inf")

    def __call__(self, where: str) -> None:
        if self.should_stop is None:
            return
        now = time.monotonic()
        if now - self._asked_at < self.interval:
            return
        self._asked_at = now
        if self.should_stop():
            raise PredictionCancelled(f"stopped {where}")


def stop_modules(model: torch.nn.Module) -> list[torch.nn.Module]:
    """Where a running forward may stop: a BERT's encoder layers, else the model's top-level parts."""
    layers = getattr(getattr(getattr(model, "bert", None), "encoder", None), "layer", None)
    return list(layers) if layers is not None else list(model.children())


def _first_tensor(values) -> torch.Tensor | None:
    """A module's main input or output: the tensor itself, or the first of a tuple (BertLayer's)."""
    if isinstance(values, torch.Tensor):
        return values
    if isinstance(values, (tuple, list)) and values and isinstance(values[0], torch.Tensor):
        return values[0]
    return None


@contextmanager
def stop_points(model: torch.nn.Module, poll: StopPoll) -> Iterator[None]:
    """Within this block, `poll` runs before and after each forward of `stop_modules(model)` and,
    where autograd runs through them, before and after their backward (hooks on the gradients of
    their output and input), so no more than one layer's forward or backward runs unchecked.

    Nothing is installed without a `should_stop`. The hooks are removed on leaving the block,
    also when it raises (PredictionCancelled included). They act only in the thread that entered
    the block: another thread's call on the same model is not this caller's to stop. (Gradient
    hooks belong to this call's graph alone, whichever thread runs its backward.)
    """
    if poll.should_stop is None:
        yield
        return
    owner = threading.get_ident()
    handles = []

    def ask_on_gradient(tensor: torch.Tensor | None, where: str) -> None:
        if tensor is not None and tensor.requires_grad:
            tensor.register_hook(lambda grad: poll(where))

    def before_forward(index: int):
        def hook(module, args) -> None:
            if threading.get_ident() != owner:
                return
            poll(f"before layer {index}")
            ask_on_gradient(_first_tensor(args), f"after the backward of layer {index}")

        return hook

    def after_forward(index: int):
        def hook(module, args, output) -> None:
            if threading.get_ident() != owner:
                return
            poll(f"after layer {index}")
            ask_on_gradient(_first_tensor(output), f"before the backward of layer {index}")

        return hook

    try:
        for index, module in enumerate(stop_modules(model)):
            handles.append(module.register_forward_pre_hook(before_forward(index)))
            handles.append(module.register_forward_hook(after_forward(index)))
        yield
    finally:
        for handle in handles:
            handle.remove()
