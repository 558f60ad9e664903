"""Keep freed activation memory in the process instead of giving it back to the kernel.

Why: glibc's malloc hands large freed blocks back to the operating system (blocks above its
mmap threshold are unmapped; free memory at the top of the heap above its trim threshold is
trimmed). Inference frees and reallocates the same few activation sizes for every batch (a
batch of 32 sentences needs several 1-5 MB buffers per layer), so each batch page-faults and
zero-fills its buffers afresh, a large share of a small model's time on CPU
(docs/experiments.md, Inference speed).
Raising both thresholds keeps those blocks in the heap for reuse, what tcmalloc or jemalloc
(recommended by PyTorch's CPU performance guides) do by design, without a preloaded library.

This changes the whole process's allocator, so only programs that run inference call it (the
service, `attnlens predict`/`evaluate`/`explain`, the benchmarks); importing attnlens does not.
The cost is memory the process keeps after a peak: at most `trim_threshold` bytes of free heap,
which long jobs hand back between units of work with `release_free_memory`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os

# mallopt parameter numbers from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

DEFAULT_MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's largest allowed value on 64-bit systems
DEFAULT_TRIM_THRESHOLD = 1024 * 1024 * 1024
DISABLE_VARIABLE = "ATTNLENS_KEEP_FREED_MEMORY"  # "0" turns the tuning off


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt.argtypes, libc.mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
        libc.malloc_trim.argtypes, libc.malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
    except (OSError, AttributeError, TypeError):
        return None  # not glibc (macOS, musl): these calls are glibc's
    return libc


@functools.cache
def keep_freed_memory(mmap_threshold: int = DEFAULT_MMAP_THRESHOLD,
                      trim_threshold: int = DEFAULT_TRIM_THRESHOLD) -> bool:
    """Raise glibc's mmap and trim thresholds once per process; True if they were set.

    A no-op returning False where the C library is not glibc (macOS, musl) or where
    `ATTNLENS_KEEP_FREED_MEMORY=0`; allocation then works as before, only slower.
    """
    if os.environ.get(DISABLE_VARIABLE, "1").strip() == "0":
        return False
    libc = _glibc()
    if libc is None:
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, trim_threshold))


def release_free_memory() -> bool:
    """Give the heap's free pages back to the kernel now (glibc's `malloc_trim`); True if any were.

    For long jobs between units of work (a file job's windows): freed memory kept for reuse is
    laid out anew by each unit, and a unit whose buffers do not fit the holes the last one left
    grows the heap, so a long job's peak would creep up. Released between units, every unit
    starts from the same free heap. It costs the next unit's first batches their page faults
    again, little next to a unit of thousands of texts. A no-op returning False without glibc.
    """
    libc = _glibc()
    return libc is not None and bool(libc.malloc_trim(0))
