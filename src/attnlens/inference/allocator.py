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
The cost is memory the process keeps after a peak: at most `trim_threshold` bytes of free heap.
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
def keep_freed_memory(mmap_threshold: int = DEFAULT_MMAP_THRESHOLD,
                      trim_threshold: int = DEFAULT_TRIM_THRESHOLD) -> bool:
    """Raise glibc's mmap and trim thresholds once per process; True if they were set.

    A no-op returning False where the C library is not glibc (macOS, musl) or where
    `ATTNLENS_KEEP_FREED_MEMORY=0`; allocation then works as before, only slower.
    """
    if os.environ.get(DISABLE_VARIABLE, "1").strip() == "0":
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) and bool(mallopt(_M_TRIM_THRESHOLD, trim_threshold))
