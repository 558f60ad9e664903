"""Faithfulness (ERASER comprehensiveness / sufficiency AOPC) and cost of every explanation method.

    python benchmarks/faithfulness.py --model outputs/sst2-minilm/best

Datasets: SST-2 validation (all 872 sentences) and 200 IMDB reviews drawn from imdb-2k with a
fixed seed (evaluation only; nothing is tuned on them). `--datasets sst2-train` is the
development sample for choosing among method variants: seeded SST-2 *train* sentences. For each method and a random ranking of
the same words: comprehensiveness and sufficiency as AOPC over the top 1/5/10/20/50% of words
(see attnlens.explain.faithfulness), and cost per example relative to one forward pass of the
same batch, timed chunk by chunk in the same run so machine load hits both alike.
Writes a Markdown table to stdout and everything to --output (JSON).
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import time
from pathlib import Path

import shared_data
import torch

from attnlens import BertForSequenceClassification, load_tokenizer
from attnlens.classifier import eval_mode
from attnlens.explain import METHODS, eraser_aopc, random_ranking, ranking_from_explanation
from attnlens.explain.api import METHOD_FUNCTIONS, build_explanations
from attnlens.explain.inputs import encode_texts, resolve_max_length


def load_sst2(data_dir: Path, limit: int | None) -> tuple[list[str], list[int]]:
    texts, labels = shared_data.sst2(data_dir)
    return (texts[:limit], labels[:limit]) if limit else (texts, labels)


TRAIN_MIN_WORDS = 8  # SST-2 train also holds every sub-phrase of its parse trees; validation holds sentences


def seeded_sample(texts: list[str], labels: list[int], count: int, seed: int) -> tuple[list[str], list[int]]:
    pairs = random.Random(seed).sample(list(zip(texts, labels, strict=True)), min(count, len(texts)))
    return [text for text, _ in pairs], [label for _, label in pairs]


def load_sst2_train_sample(data_dir: Path, count: int, seed: int) -> tuple[list[str], list[int]]:
    """`count` seeded SST-2 train rows of at least TRAIN_MIN_WORDS words: a development sample
    for choosing among variants, so that nothing is chosen on the evaluation sets."""
    texts, labels = shared_data.sst2(data_dir, "train")
    keep = [i for i, text in enumerate(texts) if len(text.split()) >= TRAIN_MIN_WORDS]
    return seeded_sample([texts[i] for i in keep], [labels[i] for i in keep], count, seed)


def load_imdb(data_dir: Path, count: int, seed: int) -> tuple[list[str], list[int]]:
    return seeded_sample(*shared_data.imdb(data_dir), count, seed)


# Rows that run a method with non-default arguments, for comparing variants in the same run.
VARIANTS = {"grad_rollout_chefer": ("grad_rollout", {"rule": "chefer"}),
            "grad_rollout_deletion": ("grad_rollout", {"rule": "deletion"})}


def method_function_and_kwargs(method: str, args: argparse.Namespace):
    name, kwargs = VARIANTS.get(method, (method, {}))
    if name == "integrated_gradients":
        kwargs = {"n_steps": args.ig_steps}
    return METHOD_FUNCTIONS[name], kwargs


def explain_and_time(model, tokenizer, texts: list[str], methods: list[str], max_length: int, args) -> tuple[dict, dict]:
    """Explanations per method and seconds per method (plus "forward"), chunk by chunk.

    A method's seconds are its computation (scores for the batch); turning scores into
    `Explanation` objects is timed apart as "<method>+objects" since it is the same for all.
    """
    seconds = {name: 0.0 for name in ["forward", *methods, *(f"{m}+objects" for m in methods)]}
    explanations: dict[str, list] = {m: [None] * len(texts) for m in methods}
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # less padding, as explain_batch does
    with eval_mode(model):
        for begin in range(0, len(order), args.batch_size):
            chunk = order[begin : begin + args.batch_size]
            chunk_texts = [texts[i] for i in chunk]
            batch = encode_texts(tokenizer, chunk_texts, max_length)
            with torch.no_grad():
                start = time.perf_counter()
                model(**batch.model_inputs())
                seconds["forward"] += time.perf_counter() - start
            for method in methods:
                start = time.perf_counter()
                function, kwargs = method_function_and_kwargs(method, args)
                logits, raw = function(model, batch, None, **kwargs)
                computed = time.perf_counter()
                result = build_explanations(model, batch, chunk_texts, method, None, logits, raw)
                seconds[method] += computed - start
                seconds[f"{method}+objects"] += time.perf_counter() - start
                for i, exp in zip(chunk, result, strict=True):
                    explanations[method][i] = exp
            print(f"  {begin + len(chunk)}/{len(texts)} explained", file=sys.stderr, flush=True)
    return explanations, seconds


def run_dataset(name: str, model, tokenizer, texts: list[str], labels: list[int], max_length: int, args) -> dict:
    print(f"{name}: {len(texts)} texts, max_length {max_length}", file=sys.stderr, flush=True)
    explanations, seconds = explain_and_time(model, tokenizer, texts, args.methods, max_length, args)
    first = explanations[args.methods[0]]
    targets = [e.target for e in first]
    rankings = {m: [ranking_from_explanation(e) for e in explanations[m]] for m in args.methods}
    rankings["random"] = [random_ranking(len(e.words), seed=i) for i, e in enumerate(first)]
    rows = {}
    for method, ranking in rankings.items():
        start = time.perf_counter()
        scores = eraser_aopc(model, tokenizer, texts, ranking, targets, max_length, batch_size=args.eval_batch_size).mean()
        cost = seconds[method] / seconds["forward"] if method in seconds else None
        with_objects = seconds[f"{method}+objects"] / seconds["forward"] if method in seconds else None
        rows[method] = {**scores, "cost_vs_forward": cost, "cost_with_objects_vs_forward": with_objects,
                        "seconds": seconds.get(method)}
        print(f"  {method}: {scores} (AOPC took {time.perf_counter() - start:.0f}s)", file=sys.stderr, flush=True)
    accuracy = sum(t == y for t, y in zip(targets, labels, strict=True)) / len(labels)
    return {
        "texts": len(texts),
        "max_length": max_length,
        "truncated": sum(e.truncated for e in first),
        "accuracy": accuracy,
        "forward_seconds": seconds["forward"],
        "methods": rows,
    }


def markdown(results: dict) -> str:
    lines = []
    for dataset, result in results["datasets"].items():
        lines.append(
            f"**{dataset}** ({result['texts']} texts, max_length {result['max_length']}, "
            f"{result['truncated']} truncated, model accuracy {result['accuracy']:.3f}, "
            f"forward pass {1000 * result['forward_seconds'] / result['texts']:.1f} ms/example)\n"
        )
        lines.append("| method | comprehensiveness ↑ | sufficiency ↓ | cost (× forward) | with Explanation objects |")
        lines.append("|---|---:|---:|---:|---:|")
        for method, row in result["methods"].items():
            cost = "—" if row["cost_vs_forward"] is None else f"{row['cost_vs_forward']:.2f}"
            full = "—" if row["cost_with_objects_vs_forward"] is None else f"{row['cost_with_objects_vs_forward']:.2f}"
            lines.append(f"| {method} | {row['comprehensiveness']:.3f} | {row['sufficiency']:.3f} | {cost} | {full} |")
        lines.append("")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="fine-tuned model folder (Hub layout)")
    parser.add_argument("--data-dir", type=Path, default=shared_data.DATA_DIR)
    parser.add_argument("--datasets", nargs="+", choices=("sst2", "imdb", "sst2-train"), default=["sst2", "imdb"],
                        help="sst2-train: the development sample (see --sst2-train-sample), for choosing variants")
    parser.add_argument("--methods", nargs="+", choices=(*METHODS, *VARIANTS), default=list(METHODS),
                        help="grad_rollout_chefer, grad_rollout_deletion: grad_rollout with that opt-in rule")
    parser.add_argument("--sst2-limit", type=int, default=None, help="first N validation sentences (default: all 872)")
    parser.add_argument("--sst2-train-sample", type=int, default=300,
                        help=f"SST-2 train sentences of >= {TRAIN_MIN_WORDS} words in the development sample")
    parser.add_argument("--sst2-train-seed", type=int, default=0)
    parser.add_argument("--imdb-count", type=int, default=200)
    parser.add_argument("--imdb-seed", type=int, default=0)
    parser.add_argument("--imdb-max-length", type=int, default=256,
                        help="tokens read per review (default 256: keeps occlusion, one pass per word, affordable)")
    parser.add_argument("--ig-steps", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=16, help="texts per explanation batch (and per timed forward)")
    parser.add_argument("--eval-batch-size", type=int, default=64, help="sequences per forward when scoring erasures")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", type=Path, default=None)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = BertForSequenceClassification.from_pretrained(args.model).eval()
    tokenizer = load_tokenizer(args.model)
    results = {
        "command": " ".join(["python", "benchmarks/faithfulness.py", *(argv if argv is not None else sys.argv[1:])]),
        "model": str(args.model),
        "machine": f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {args.threads} threads",
        "ig_steps": args.ig_steps,
        "datasets": {},
    }
    started = time.perf_counter()
    if "sst2" in args.datasets:
        texts, labels = load_sst2(args.data_dir, args.sst2_limit)
        results["datasets"]["SST-2 validation"] = run_dataset(
            "SST-2 validation", model, tokenizer, texts, labels, resolve_max_length(model, None), args
        )
    if "sst2-train" in args.datasets:
        texts, labels = load_sst2_train_sample(args.data_dir, args.sst2_train_sample, args.sst2_train_seed)
        results["datasets"][f"SST-2 train sample ({len(texts)}, seed {args.sst2_train_seed})"] = run_dataset(
            "SST-2 train sample", model, tokenizer, texts, labels, resolve_max_length(model, None), args
        )
    if "imdb" in args.datasets:
        texts, labels = load_imdb(args.data_dir, args.imdb_count, args.imdb_seed)
        results["datasets"][f"IMDB ({len(texts)} of imdb-2k)"] = run_dataset(
            "IMDB", model, tokenizer, texts, labels, resolve_max_length(model, args.imdb_max_length), args
        )
    results["total_seconds"] = time.perf_counter() - started
    print(markdown(results))
    print(f"total {results['total_seconds']:.0f}s", file=sys.stderr)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
