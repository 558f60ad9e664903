"""How big must oneDNN's and ideep's caches of prepared products be? Peak RSS and speed of
`Predictor.predict` over SST-2 train for several capacities, each in its own process.

    python experiments/primitive_cache_capacity.py --rows 20000 --repeats 3 --capacities 1024,32,16,8,4

Each run sets `ONEDNN_PRIMITIVE_CACHE_CAPACITY` and `LRU_CACHE_CAPACITY` (both libraries read them
once per process) to one capacity, keeps freed memory as the CLI does, and predicts the first
`--rows` sentences in 10,000-row windows with batch 32; runs are interleaved over `--repeats`.
Without `--model`, the embedded all-MiniLM-L6-v2 with a seeded fresh 2-class head (saved in a
temporary folder). Findings: docs/experiments.md ("File scoring").
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
WINDOW_ROWS = 10_000


def child(model: str, rows: int) -> None:
    sys.path.insert(0, str(BENCHMARKS))
    import shared_data

    from attnlens.inference.allocator import keep_freed_memory
    from attnlens.predict import Predictor

    keep_freed_memory()
    sentences = shared_data.sst2(split="train")[0][:rows]
    predictor = Predictor.from_pretrained(model, batch_size=32)
    predictor.predict(sentences[:64])
    started = time.perf_counter()
    for first in range(0, len(sentences), WINDOW_ROWS):
        predictor.predict(sentences[first : first + WINDOW_ROWS])
    seconds = time.perf_counter() - started
    print(f"{len(sentences) / seconds:.1f} {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}")


def fresh_head_model(folder: Path) -> str:
    import torch

    from attnlens import DEFAULT_BASE_MODEL, load_model, load_tokenizer

    torch.manual_seed(0)
    load_model(DEFAULT_BASE_MODEL, id2label={0: "negative", 1: "positive"}).save_pretrained(
        folder, tokenizer=load_tokenizer(DEFAULT_BASE_MODEL))
    return str(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--capacities", default="1024,32,16,8,4")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.model, args.rows)
        return
    capacities = [int(value) for value in args.capacities.split(",")]
    results: dict[int, list[str]] = {capacity: [] for capacity in capacities}
    with tempfile.TemporaryDirectory() as scratch:
        model = args.model or fresh_head_model(Path(scratch) / "model")
        for _ in range(args.repeats):
            for capacity in capacities:
                env = {**os.environ, "ONEDNN_PRIMITIVE_CACHE_CAPACITY": str(capacity),
                       "LRU_CACHE_CAPACITY": str(capacity), "OMP_NUM_THREADS": str(args.threads)}
                out = subprocess.run([sys.executable, __file__, "--child", "--model", model, "--rows", str(args.rows)],
                                     env=env, capture_output=True, text=True, check=True)
                rate, peak = out.stdout.split()[-2:]
                results[capacity].append(f"{rate} rows/s, {peak} MiB")
                print(f"capacity {capacity}: {rate} rows/s, peak RSS {peak} MiB", flush=True)
    print("\n| capacity | runs (rows/s, peak RSS) |\n|---:|---|")
    for capacity, runs in results.items():
        print(f"| {capacity} | {'; '.join(runs)} |")


if __name__ == "__main__":
    main()
