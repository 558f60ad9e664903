"""The inference engine against an earlier commit's code, in one run: no speed regression.

Sentences per second of the MiniLM classifier (float32 and int8) over SST-2 validation, batches of
32 as given and sorted by length, and the cost of the two attention explanations (grad_rollout,
rollout) as a multiple of the forward pass, for this checkout's code ("new") and for BASE's
("old", a `git worktree` in a temporary folder). Each measurement runs in a fresh child process
that imports only one version of attnlens; old and new children alternate, so drifting machine
load hits both alike. A child times each measure `--passes` times and keeps the median; the table
reports the median over `--rounds` children (ratio new / old).
Weights, head (seeded), batches and threads are the same for both.

    python benchmarks/engine_regression.py [--base 122c5fe] [--rounds 3] [--passes 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Runs in the child, against whichever attnlens is first on sys.path. Old code ran its engine
# inside the model's forward; new code through attnlens.inference.engine.classify.
CHILD = r'''
import csv, json, sys, time
import torch
sys.path.insert(0, sys.argv[1])
import attnlens
from attnlens import BertForSequenceClassification, DEFAULT_BASE_MODEL, load_tokenizer
from attnlens.explain.grad_rollout import gradient_weighted_rollout
from attnlens.explain.inputs import encode_texts
from attnlens.explain.rollout import attention_rollout
try:
    from attnlens.inference.engine import classify
    from attnlens.inference.quantize import quantize_int8
    from attnlens.inference.allocator import keep_freed_memory
except ImportError:
    from attnlens.quantize import quantize_int8
    from attnlens.allocator import keep_freed_memory
    def classify(model, *args, **kwargs):
        return model(*args, **kwargs).logits
assert attnlens.__file__.startswith(sys.argv[1]), attnlens.__file__
torch.set_num_threads(int(sys.argv[3]))
keep_freed_memory()
torch.manual_seed(0)
model = BertForSequenceClassification.from_pretrained(DEFAULT_BASE_MODEL, num_labels=2).eval()
tokenizer = load_tokenizer(DEFAULT_BASE_MODEL)
with open(sys.argv[2], encoding="utf-8") as handle:
    texts = [row["sentence"] for row in csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)]
def batches(order):
    return [encode_texts(tokenizer, order[i:i + 32], 128) for i in range(0, len(order), 32)]
as_given, by_length = batches(texts), batches(sorted(texts, key=len))
int8 = quantize_int8(model)
def rate(run, data):
    for b in data[:3]:
        run(b)
    seconds = []
    for _ in range(int(sys.argv[4])):
        start = time.perf_counter()
        for b in data:
            run(b)
        seconds.append(time.perf_counter() - start)
    return sum(len(b.lengths) for b in data) / sorted(seconds)[len(seconds) // 2]
forward = lambda m: (lambda b: classify(m, **b.model_inputs()))
results = {}
with torch.inference_mode():
    for name, m in (("fp32", model), ("int8", int8)):
        results[f"{name} as given"] = rate(forward(m), as_given)
        results[f"{name} sorted"] = rate(forward(m), by_length)
explain_data = by_length[::4]  # every fourth sorted batch: all lengths, a quarter of the time
with torch.inference_mode():
    base = rate(forward(model), explain_data)
results["grad_rollout cost (x forward)"] = base / rate(lambda b: gradient_weighted_rollout(model, b), explain_data)
with torch.inference_mode():
    results["rollout cost (x forward)"] = base / rate(lambda b: attention_rollout(model, b), explain_data)
print(json.dumps(results))
'''


def measure(src: Path, data: Path, threads: int, passes: int) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", CHILD, str(src), str(data), str(threads), str(passes)],
                         capture_output=True, text=True, timeout=1800, check=False)
    if out.returncode != 0:
        raise SystemExit(f"measuring {src} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default="122c5fe", help="the commit to compare with (before the engine moved)")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "sst2" / "validation.tsv")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--passes", type=int, default=5, help="timed passes per measure in a child (median)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        old_tree = Path(tmp) / "base"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(old_tree), args.base],
                       check=True, capture_output=True)
        try:
            runs: dict[str, list[dict[str, float]]] = {"old": [], "new": []}
            for round_index in range(args.rounds):
                for version, src in (("old", old_tree / "src"), ("new", REPO / "src")):
                    runs[version].append(measure(src, args.data, args.threads, args.passes))
                    print(f"round {round_index + 1} {version}: {runs[version][-1]}", file=sys.stderr)
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(old_tree)], check=False)
    print(f"| measure ({args.threads} threads; median of {args.rounds} children x {args.passes} passes) "
          f"| old ({args.base}) | new | new / old |")
    print("|---|---:|---:|---:|")
    for key in runs["old"][0]:
        old = statistics.median(r[key] for r in runs["old"])
        new = statistics.median(r[key] for r in runs["new"])
        print(f"| {key} | {old:.2f} | {new:.2f} | {new / old:.3f} |")


if __name__ == "__main__":
    main()
