"""attnlens.inference.primitive_caches: the inference commands bound oneDNN's and ideep's caches of
prepared products, so memory stops growing with every new batch shape. Measured in fresh
subprocesses (the libraries read their capacity once per process): after `attnlens predict`
ran, 120 batches of 120 different row counts go through the engine, and the process's resident
memory must grow far less than with the libraries' own bound of 1,024 entries."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from attnlens.inference.primitive_caches import CAPACITY_VARIABLES, DEFAULT_CAPACITY, bound_primitive_caches

PROBE = """
import os, sys, torch
from attnlens.cli import main
assert main(["predict", "--model", sys.argv[1], "a fine film"]) == 0  # sets up the process as users get it
from attnlens import BertConfig, BertForSequenceClassification
from attnlens.inference.engine import classify
torch.manual_seed(0)
config = BertConfig(vocab_size=100, hidden_size=64, num_hidden_layers=1, num_attention_heads=2,
                    intermediate_size=256, max_position_embeddings=32)
model = BertForSequenceClassification(config).eval()
def resident_mib():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
with torch.no_grad():
    classify(model, torch.ones(1, 16, dtype=torch.long))
    before = resident_mib()
    for rows in range(1, 121):  # packed rows 16, 32, ..., 1920: a new product shape every batch
        classify(model, torch.ones(rows, 16, dtype=torch.long))
print("RESULT", *(os.environ.get(name, "unset") for name in {names}), resident_mib() - before)
""".replace("{names}", repr(CAPACITY_VARIABLES))


def run_probe(model_dir, **env: str) -> tuple[list[str], float]:
    clean = {name: value for name, value in os.environ.items() if name not in CAPACITY_VARIABLES}
    result = subprocess.run([sys.executable, "-c", PROBE, str(model_dir)], capture_output=True, text=True,
                            timeout=180, env={**clean, **env})
    assert result.returncode == 0, result.stderr[-2000:]
    *capacities, grew = result.stdout.strip().splitlines()[-1].split()[1:]
    return capacities, float(grew)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")
def test_inference_commands_bound_the_caches_and_memory_stops_growing_with_shapes(tiny_classifier_dir):
    capacities, grew = run_probe(tiny_classifier_dir)
    own = {name: "1024" for name in CAPACITY_VARIABLES}  # the libraries' default, set by the user
    kept, grew_unbounded = run_probe(tiny_classifier_dir, **own)
    assert capacities == [str(DEFAULT_CAPACITY)] * 2
    assert kept == ["1024"] * 2  # a capacity the user chose is kept
    # Unbounded, every shape keeps its prepared products (about 75 MiB here); bounded, the growth
    # is the allocator's kept buffers for the largest batch.
    assert grew_unbounded > 40, grew_unbounded
    assert grew < grew_unbounded / 2.5, f"grew {grew:.0f} MiB bounded vs {grew_unbounded:.0f} MiB unbounded"


def test_a_capacity_below_one_is_refused(monkeypatch):
    for name in CAPACITY_VARIABLES:  # empty counts as unset; monkeypatch restores the variables
        monkeypatch.setenv(name, "")
    with pytest.raises(ValueError, match="capacity=0 must be at least 1"):
        bound_primitive_caches(0)
    assert bound_primitive_caches(8) == dict.fromkeys(CAPACITY_VARIABLES, "8")
