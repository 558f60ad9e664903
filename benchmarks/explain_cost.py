"""Where the cost of rollout and grad_rollout goes, relative to one forward pass (micro-benchmark).

    python benchmarks/explain_cost.py --model outputs/sst2-minilm/best --threads 1

On the first --texts SST-2 validation sentences, or with `--imdb` the first --texts reviews of
imdb-2k read to --max-length tokens (length-sorted batches of --batch-size), best of --repeats: the
ordinary inference forward (packed, fused attention), the padded forward, the forward with an
attention hook (explicit softmax on the padded batch), the forward with a chunk hook
(explicit softmax a few examples at a time, what the explanations use), attention rollout,
grad_rollout (the conservative rule, the default; Chefer et al.'s rule and the deletion rule).

    python benchmarks/explain_cost.py --model outputs/sst2-minilm/best --threads 1 --imdb --max-length 256
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import shared_data
import torch

from attnlens import BertForSequenceClassification, load_tokenizer
from attnlens.explain.grad_rollout import gradient_weighted_rollout
from attnlens.explain.inputs import encode_texts
from attnlens.explain.rollout import attention_rollout
from attnlens.inference.engine import classify


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data-dir", type=Path, default=shared_data.DATA_DIR)
    parser.add_argument("--texts", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--imdb", action="store_true", help="imdb-2k reviews instead of SST-2 sentences")
    parser.add_argument("--max-length", type=int, default=512, help="tokens read per text")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = BertForSequenceClassification.from_pretrained(args.model).eval()
    tokenizer = load_tokenizer(args.model)
    texts = (shared_data.imdb if args.imdb else shared_data.sst2)(args.data_dir)[0][: args.texts]
    texts.sort(key=len)
    batches = [encode_texts(tokenizer, texts[i : i + args.batch_size], args.max_length)
               for i in range(0, len(texts), args.batch_size)]
    tokens = sum(sum(b.lengths) for b in batches)
    print(f"{len(texts)} texts, {tokens / len(texts):.0f} tokens each on average (max_length {args.max_length})")

    @torch.no_grad()
    def forward(b):
        classify(model, **b.model_inputs())

    @torch.no_grad()
    def forward_padded(b):
        model(**b.model_inputs())  # the reference model

    @torch.no_grad()
    def forward_with_hook(b):
        classify(model, **b.model_inputs(), attention_hook=lambda layer, probs: None)

    @torch.no_grad()
    def forward_with_chunk_hook(b):
        classify(model, **b.model_inputs(), attention_chunk_hook=lambda layer, first, probs: None,
                 last_layer_cls_only=True)

    runs = {
        "forward": forward,
        "forward_padded": forward_padded,
        "forward_with_hook": forward_with_hook,
        "forward_with_chunk_hook": forward_with_chunk_hook,
        "rollout": lambda b: attention_rollout(model, b),
        "grad_rollout": lambda b: gradient_weighted_rollout(model, b),
        "grad_rollout_chefer": lambda b: gradient_weighted_rollout(model, b, rule="chefer"),
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
        print(f"{name:26s} {1000 * seconds / len(texts):7.1f} ms/example  {seconds / best['forward']:5.2f}x forward")


if __name__ == "__main__":
    main()
