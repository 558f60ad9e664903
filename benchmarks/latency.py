"""Latency of one short sentence through the `Predictor` (tokenise, model, softmax), float32 vs int8.

The service answers one sentence with exactly this call, plus its micro-batcher's wait, if any
(`ATTNLENS_MAX_LATENCY_MS`, docs/serving.md), and the HTTP round trip; those are measured by
`benchmarks/serve_load.py`. This isolates the part the model decides. Calls alternate between the
paths, so machine load hits both alike.

    python benchmarks/latency.py [--model outputs/sst2-minilm/best] [--calls 200] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from attnlens import DEFAULT_BASE_MODEL
from attnlens.predict import Predictor

REPO_ROOT = Path(__file__).resolve().parents[1]
SENTENCE = "a gorgeous, witty, seductive movie."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="default: outputs/sst2-minilm/best, else MiniLM")
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    trained = REPO_ROOT / "outputs" / "sst2-minilm" / "best"
    model = args.model or (str(trained) if (trained / "config.json").exists() else DEFAULT_BASE_MODEL)

    predictors = {mode: Predictor.from_pretrained(model, quantize=mode) for mode in ("none", "int8")}
    seconds: dict[str, list[float]] = {mode: [] for mode in predictors}
    for predictor in predictors.values():  # warm-up: packing, allocator
        for _ in range(5):
            predictor.predict([SENTENCE])
    for _ in range(args.calls):
        for mode, predictor in predictors.items():
            start = time.perf_counter()
            predictor.predict([SENTENCE])
            seconds[mode].append(time.perf_counter() - start)

    print(f"one sentence ({SENTENCE!r}), {args.calls} calls each, {args.threads} threads, model {model}\n")
    print("| path | p50 (ms) | p90 (ms) | p99 (ms) |")
    print("|---|---:|---:|---:|")
    for mode, label in (("none", "float32"), ("int8", "int8")):
        cuts = statistics.quantiles([1000 * s for s in seconds[mode]], n=100)
        print(f"| {label} | {cuts[49]:.1f} | {cuts[89]:.1f} | {cuts[98]:.1f} |")


if __name__ == "__main__":
    main()
