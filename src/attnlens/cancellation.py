"""Stopping a prediction or explanation that nobody waits for any more.

A caller passes `should_stop`, a function that says whether the result is still wanted (the
service's says no once the HTTP request behind it has timed out). Long calls ask it at points
that come round often: between batches of texts and, for the duration of the call, before and
after every encoder layer's forward and backward (`stop_points`), so even integrated gradients on
long reviews stops within one layer's work. Asking is throttled (`StopPoll`), so a cheap layer
does not pay for a call across a pipe.

The model never imports this module: the checks are hooks installed on its layers for one call
and removed afterwards, whatever happens, or points the inference engine passes between layers.
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


_ACTIVE = threading.local()  # this thread's poll inside `stop_points`, for `layer_boundary`


def stop_modules(model: torch.nn.Module) -> list[torch.nn.Module]:
    """Where a reference forward may stop: an encoder's layers (the model contract's
    `transformer_layers`), else the model's top-level parts (the recurrent baselines)."""
    layers = getattr(model, "transformer_layers", None)
    return [parts.layer for parts in layers()] if layers is not None else list(model.children())


def _first_tensor(values) -> torch.Tensor | None:
    """A module's main input or output: the tensor itself, or the first of a tuple (BertLayer's)."""
    if isinstance(values, torch.Tensor):
        return values
    if isinstance(values, (tuple, list)) and values and isinstance(values[0], torch.Tensor):
        return values[0]
    return None


def _ask_on_gradient(poll: StopPoll, tensor: torch.Tensor | None, where: str) -> None:
    if tensor is not None and tensor.requires_grad:
        tensor.register_hook(lambda grad: poll(where))


def layer_boundary(layer: str, hidden: torch.Tensor, *, before: bool) -> None:
    """Where the inference engine (which runs layers itself, not through their modules) enters
    (`before`) or leaves a layer: the poll of an enclosing `stop_points` in this thread asks here,
    and once more where the backward passes the same point."""
    poll = getattr(_ACTIVE, "poll", None)
    if poll is None:
        return
    poll(f"{'before' if before else 'after'} {layer}")
    _ask_on_gradient(poll, hidden, f"{'after' if before else 'before'} the backward of {layer}")


@contextmanager
def stop_points(model: torch.nn.Module, poll: StopPoll) -> Iterator[None]:
    """Within this block, `poll` runs before and after each layer's forward and, where autograd
    runs through them, before and after their backward, so no more than one layer's forward or
    backward runs unchecked: through `layer_boundary` when the engine runs the layers, and through
    hooks on `stop_modules(model)` (forward hooks, and hooks on the gradients of their output and
    input) when the model's own forward does.

    Nothing is installed without a `should_stop`. Everything is removed on leaving the block,
    also when it raises (PredictionCancelled included). It acts only in the thread that entered
    the block: another thread's call on the same model is not this caller's to stop. (Gradient
    hooks belong to this call's graph alone, whichever thread runs its backward.)
    """
    if poll.should_stop is None:
        yield
        return
    owner = threading.get_ident()
    handles = []

    def before_forward(index: int):
        def hook(module, args) -> None:
            if threading.get_ident() != owner:
                return
            poll(f"before layer {index}")
            _ask_on_gradient(poll, _first_tensor(args), f"after the backward of layer {index}")

        return hook

    def after_forward(index: int):
        def hook(module, args, output) -> None:
            if threading.get_ident() != owner:
                return
            poll(f"after layer {index}")
            _ask_on_gradient(poll, _first_tensor(output), f"before the backward of layer {index}")

        return hook

    outer = getattr(_ACTIVE, "poll", None)
    _ACTIVE.poll = poll
    try:
        for index, module in enumerate(stop_modules(model)):
            handles.append(module.register_forward_pre_hook(before_forward(index)))
            handles.append(module.register_forward_hook(after_forward(index)))
        yield
    finally:
        _ACTIVE.poll = outer
        for handle in handles:
            handle.remove()
