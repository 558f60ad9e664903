"""A per-thread, nestable on/off mode, for the model's switchable code paths.

Why: the service runs model calls on worker threads, so a mode one request turns on (reference
kernels, input-only gradients, the conservative backward) must not leak into another thread's
call; and blocks may nest, so the mode holds while any entry is still open.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class ThreadMode:
    """`with mode.entered(): ...` turns the mode on for this thread; `mode.active()` reads it."""

    def __init__(self) -> None:
        self._local = threading.local()

    @contextmanager
    def entered(self) -> Iterator[None]:
        self._local.depth = self.depth() + 1
        try:
            yield
        finally:
            self._local.depth -= 1

    def depth(self) -> int:
        return getattr(self._local, "depth", 0)

    def active(self) -> bool:
        return self.depth() > 0
