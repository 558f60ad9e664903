"""Where the cost of rollout and grad_rollout goes, relative to one forward pass (micro-benchmark).

    python benchmarks/explain_cost.py --model outputs/sst2-minilm/best --threads 1

On the first --texts SST-2 validation sentences (length-sorted batches of --batch-size), best of
--repeats: the ordinary inference forward (packed, fused attention), the padded forward, the forward
with an attention hook (explicit softmax), attention rollout, grad_rollout (its default deletion
rule, and Chefer et al.'s rule).
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import torch

from attnlens import BertForSequenceClassification, load_tokenizer
from attnlens.explain.grad_rollout import gradient_weighted_rollout
from attnlens.explain.inputs import encode_texts
from attnlens.explain.rollout import attention_rollout

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--texts", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = BertForSequenceClassification.from_pretrained(args.model).eval()
    tokenizer = load_tokenizer(args.model)
    with (args.data_dir / "sst2" / "validation.tsv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    texts = sorted((r["sentence"] for r in rows[: args.texts]), key=len)
    batches = [encode_texts(tokenizer, texts[i : i + args.batch_size], 512) for i in range(0, len(texts), args.batch_size)]

    @torch.no_grad()
    def forward(b):
        model(**b.model_inputs())

    @torch.no_grad()
    def forward_padded(b):
        model.classifier(model.bert(**b.model_inputs()).pooler_output)

    @torch.no_grad()
    def forward_with_hook(b):
        model(**b.model_inputs(), attention_hook=lambda layer, probs: None)

    runs = {
        "forward": forward,
        "forward_padded": forward_padded,
        "forward_with_hook": forward_with_hook,
        "rollout": lambda b: attention_rollout(model, b),
        "grad_rollout": lambda b: gradient_weighted_rollout(model, b),
        "grad_rollout_deletion": lambda b: gradient_weighted_rollout(model, b, rule="deletion"),
    }
    for run in runs.values():
        run(batches[0])  # warm-up
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(args.repeats):
        for name, run in runs.items():  # interleaved, so load changes hit every variant alike
            start = time.perf_counter()
            for batch in batches:
                run(batch)
            best[name] = min(best[name], time.perf_counter() - start)
    for name, seconds in best.items():
        print(f"{name:20s} {1000 * seconds / len(texts):7.1f} ms/example  {seconds / best['forward']:5.2f}x forward")


if __name__ == "__main__":
    main()
