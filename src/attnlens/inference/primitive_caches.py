"""Bound oneDNN's and ideep's caches of prepared products, which otherwise grow with every new
batch shape.

Why: oneDNN (its primitive cache) and ideep, torch's wrapper around it (an LRU cache of its
own), each keep a prepared product for every input shape they meet, up to 1,024
entries each by default. An entry holds compiled code and buffers sized for its shape, up to
megabytes for a BERT feed-forward over a batch of packed tokens. Inference meets a new shape with
almost every batch of texts of varied lengths (`attnlens.inference.kernels` pads rows to a
multiple of 16, which keeps the shapes to hundreds, not thousands), so a long file job or a
service's memory rose for its first thousands of batches. The entries' buffers also leave the heap
fragmented, so a long job's peak crept up window after window even once the cache was full.
A bound of 8 entries per cache keeps the shapes one forward pass uses (four products of the
batch's rows, three of its first tokens), so only a batch's first use of a new row count prepares
products again: a few percent of a prediction's time, none measurable for gradient explanations
(docs/experiments.md, "File scoring").

Both libraries read their capacity from the environment once, when they first prepare a product,
so this runs at the start of a program that does inference (the service's model process,
`attnlens predict`/`evaluate`/`explain`, the benchmarks), with `attnlens.inference.allocator`'s
setting, through `attnlens.inference.process_setup`.
A capacity the user set in the environment is kept.
"""

from __future__ import annotations

import os

CAPACITY_VARIABLES = ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "LRU_CACHE_CAPACITY")  # oneDNN's, ideep's
DEFAULT_CAPACITY = 8


def bound_primitive_caches(capacity: int = DEFAULT_CAPACITY) -> dict[str, str]:
    """Set both caches' capacity to `capacity` where the environment names none; the capacities
    in force, by variable. Call before the first inference: later calls change nothing in the
    libraries (they have read their capacity)."""
    if capacity < 1:
        raise ValueError(f"capacity={capacity} must be at least 1")
    for variable in CAPACITY_VARIABLES:
        if not os.environ.get(variable, "").strip():
            os.environ[variable] = str(capacity)
    return {variable: os.environ[variable] for variable in CAPACITY_VARIABLES}
