"""SST-2 validation accuracy of a fine-tuned model in float32 and with the opt-in int8 path.

The issue's bar: int8 within 0.5 accuracy points of float32. Both numbers come from the same
code as `attnlens evaluate` (the training job's batching and metrics), so they compare with
`metrics.json`. Without `--model`, the first of outputs/sst2-minilm/best and outputs/demo/best
that exists is used.

    python benchmarks/int8_accuracy.py [--model outputs/sst2-minilm/best] [--threads 2]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import shared_data
import torch

from attnlens.training.evaluation import evaluate_saved_model

REPO_ROOT = Path(__file__).resolve().parents[1]
CANDIDATES = (REPO_ROOT / "outputs" / "sst2-minilm" / "best", REPO_ROOT / "outputs" / "demo" / "best")
MAX_DROP_POINTS = 0.5


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--data", type=Path, default=shared_data.SST2_VALIDATION)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = args.model or next((path for path in CANDIDATES if (path / "config.json").exists()), None)
    if model is None:
        print(f"no fine-tuned model: none of {', '.join(str(p) for p in CANDIDATES)} exists; pass --model")
        return 2

    results = {mode: evaluate_saved_model(str(model), str(args.data), text_column="sentence",
                                          label_column="label", quantize=mode)
               for mode in ("none", "int8")}
    fp32, int8 = (100 * results[mode]["accuracy"] for mode in ("none", "int8"))
    drop = fp32 - int8
    print(f"model {model}, data {args.data} ({results['none']['num_examples']} examples), {args.threads} threads\n")
    print("| path | accuracy (%) | seconds |")
    print("|---|---:|---:|")
    for mode, label in (("none", "float32"), ("int8", "int8 (attnlens.inference.quantize)")):
        print(f"| {label} | {100 * results[mode]['accuracy']:.2f} | {results[mode]['seconds']:.1f} |")
    verdict = "meets" if drop <= MAX_DROP_POINTS else "MISSES"
    print(f"\nint8 - float32: {-drop:+.2f} points ({verdict} the {MAX_DROP_POINTS}-point bar)")
    return 0 if drop <= MAX_DROP_POINTS else 1


if __name__ == "__main__":
    sys.exit(main())
