"""attnlens.inference.allocator: after `keep_freed_memory()`, freed activation buffers are reused instead of
being handed back to the kernel and page-faulted in again; `release_free_memory()` hands them back
when a long job asks (between a file job's windows). Measured by the process's own
minor page-fault count, in fresh subprocesses so this test process keeps glibc's defaults.

The comparison pins glibc's initial thresholds (128 KiB) in the other process: glibc raises them
by itself after large frees, by how much depending on what ran before (importing torch
included), so its untouched default gave anywhere from 15,000 to 226,000 faults for the same
probe. Pinned, every large buffer is mapped afresh, which is the behaviour being removed."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = """
import ctypes, ctypes.util, os, random, resource, torch
from attnlens.inference.allocator import keep_freed_memory
if os.environ.get("PROBE_PIN_GLIBC_DEFAULTS") == "1":
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD: glibc's initial value, now fixed
    libc.mallopt(-1, 128 * 1024)  # M_TRIM_THRESHOLD: likewise
tuned = keep_freed_memory()
random.seed(0)
def forward():  # a 6-layer encoder's allocation pattern for one batch of 300-1000 tokens
    tokens = random.randint(300, 1000)
    hidden = torch.ones(tokens, 384)
    for _ in range(6):
        qkv, intermediate = torch.ones(tokens, 1152), torch.ones(tokens, 1536)
        activated = intermediate * 2.0
        del qkv, intermediate
        hidden = hidden + activated[:, :384]
        del activated
for _ in range(3):  # warm up: first touches are counted in neither measurement
    forward()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    forward()
print(tuned, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def run_probe(**env: str) -> tuple[bool, int]:
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120,
                            env={**os.environ, **env})
    assert result.returncode == 0, result.stderr[-2000:]
    tuned, faults = result.stdout.split()
    return tuned == "True", int(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_freed_buffers_are_reused_instead_of_faulted_in_again():
    tuned, faults = run_probe()
    default, default_faults = run_probe(ATTNLENS_KEEP_FREED_MEMORY="0", PROBE_PIN_GLIBC_DEFAULTS="1")
    assert tuned and not default
    # glibc's thresholds: the large buffers are unmapped when freed and faulted in again by the
    # next batch (hundreds of thousands of page faults); kept, only heap growth faults (~2,000).
    assert default_faults > 50_000, default_faults
    assert faults < default_faults / 10, f"{faults} page faults kept vs {default_faults} as is"


RELEASE_PROBE = """
import os, torch
from attnlens.inference.allocator import keep_freed_memory, release_free_memory
def resident_mib():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
assert keep_freed_memory()
buffers = [torch.ones(4 * 2**20) for _ in range(16)]  # 16 MiB each: below the raised mmap threshold
del buffers[:-1]  # all but the last freed; the last keeps the heap's top in use, as live data does
kept = resident_mib()
released = release_free_memory()
print(released, kept - resident_mib())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim: Linux only")
def test_released_free_memory_goes_back_to_the_kernel_between_units_of_work():
    result = subprocess.run([sys.executable, "-c", RELEASE_PROBE], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    released, dropped = result.stdout.split()
    # 15 freed 16 MiB buffers below a live one: kept by keep_freed_memory, then handed back.
    assert released == "True"
    assert float(dropped) > 200, f"resident memory fell by {dropped} MiB"
