"""One call that sets a process up for inference, so no program that predicts or explains
forgets a part: freed activation memory kept for reuse (`attnlens.inference.allocator`) and
oneDNN's caches of prepared products bounded (`attnlens.inference.primitive_caches`). Both must
run before the first product; importing attnlens does neither."""

from __future__ import annotations

from typing import Any

from attnlens.inference.allocator import keep_freed_memory
from attnlens.inference.primitive_caches import bound_primitive_caches


def prepare_inference_process() -> dict[str, Any]:
    """Apply both settings; what is in force, for a benchmark's record."""
    return {"keep_freed_memory": keep_freed_memory(), "primitive_caches": bound_primitive_caches()}
