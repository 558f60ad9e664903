"""The pre-BERT baselines side by side with fine-tuned BERT: accuracy, speed, training time, faithfulness.

    python benchmarks/baselines.py --model bigru=outputs/sst2-birnn/best --model han=outputs/sst2-han/best \
        --model minilm=outputs/sst2-minilm/best --output outputs/baselines-benchmark.json

For every model folder (any type `attnlens.models.load_model` reads):
* accuracy on SST-2 validation (872 sentences) and imdb-2k (2,000 reviews, evaluation only),
  through `attnlens.predict.Predictor` with the first 512 tokens (`long_text="truncate"`), the
  same code path the service uses, so every model reads exactly the same text;
* inference sentences/s over SST-2 validation (Predictor, batch 32), rounds interleaved across the
  models so machine load hits all alike, reported as the median round and as a ratio to the
  reference model (the last `--model`, normally BERT);
* training time and steps from the `metrics.json` the job wrote beside `best/`;
* ERASER comprehensiveness / sufficiency AOPC (attnlens.explain.eraser_aopc) of `native` attention
  (the baselines' own weights), `occlusion` and a random ranking, on the first `--faith-sst2`
  SST-2 validation sentences and `--faith-imdb` imdb-2k reviews cut at `--faith-imdb-max-length`
  tokens, drawn exactly as benchmarks/faithfulness.py draws them (seed 0), so BERT's numbers from
  that script are on the same texts.
Prints Markdown tables; writes everything to --output (JSON).
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import sys
import time
from pathlib import Path

import shared_data
import torch

from attnlens import load_tokenizer
from attnlens.explain import eraser_aopc, explain_batch, random_ranking, ranking_from_explanation
from attnlens.loading import load_model
from attnlens.predict import Predictor

REPO_ROOT = Path(__file__).resolve().parents[1]
MAX_LENGTH = 512


def accuracy(predictor: Predictor, texts: list[str], labels: list[int]) -> float:
    names = predictor.labels
    predictions = predictor.predict(texts, long_text="truncate")
    return sum(names.index(p.label) == y for p, y in zip(predictions, labels, strict=True)) / len(labels)


def throughput(predictors: dict[str, Predictor], texts: list[str], rounds: int) -> dict[str, float]:
    """Median sentences/s per model over `rounds` interleaved rounds (after one warm-up each)."""
    for predictor in predictors.values():
        predictor.predict(texts[:64])
    seconds: dict[str, list[float]] = {name: [] for name in predictors}
    for _ in range(rounds):
        for name, predictor in predictors.items():
            started = time.perf_counter()
            predictor.predict(texts)
            seconds[name].append(time.perf_counter() - started)
    return {name: len(texts) / statistics.median(values) for name, values in seconds.items()}


def training_record(model_dir: Path) -> dict | None:
    metrics = model_dir.parent / "metrics.json"
    if not metrics.is_file():
        return None
    values = json.loads(metrics.read_text(encoding="utf-8"))
    keys = ("global_step", "total_steps", "epochs_completed", "best_step", "num_processes",
            "train_seconds_this_session", "evaluation_seconds_this_session", "train_examples_per_second", "command")
    return {key: values.get(key) for key in keys}


def faithfulness(model, tokenizer, texts: list[str], methods: list[str], seed: int,
                 max_length: int) -> dict[str, dict]:
    """AOPC per method (and random) on `texts`, targets = the model's own predictions."""
    results: dict[str, dict] = {}
    explanations = {}
    for method in methods:
        started = time.perf_counter()
        explanations[method] = explain_batch(model, tokenizer, texts, method=method, max_length=max_length,
                                             batch_size=16)
        explanations[method + "_seconds"] = time.perf_counter() - started
    first = explanations[methods[0]]
    targets = [e.target for e in first]
    rankings = {m: [ranking_from_explanation(e) for e in explanations[m]] for m in methods}
    rankings["random"] = [random_ranking(len(e.words), seed + i) for i, e in enumerate(first)]
    for name, ranking in rankings.items():
        scores = eraser_aopc(model, tokenizer, texts, ranking, targets, max_length=max_length).mean()
        scores["seconds_per_text"] = explanations.get(name + "_seconds", 0.0) / len(texts) if name != "random" else 0.0
        results[name] = scores
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", required=True, metavar="NAME=FOLDER",
                        help="a saved model; repeat; the last one is the speed reference")
    parser.add_argument("--data-dir", type=Path, default=shared_data.DATA_DIR)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved throughput rounds")
    parser.add_argument("--imdb-skip", action="append", default=[], metavar="NAME",
                        help="skip imdb-2k accuracy for this model (e.g. when measured elsewhere)")
    parser.add_argument("--faith-sst2", type=int, default=200)
    parser.add_argument("--faith-imdb", type=int, default=32)
    parser.add_argument("--faith-imdb-max-length", type=int, default=128,
                        help="tokens per review for faithfulness (occlusion costs one forward per word)")
    parser.add_argument("--faith-skip", action="append", default=[], metavar="NAME")
    parser.add_argument("--faith-imdb-skip", action="append", default=[], metavar="NAME")
    parser.add_argument("--seed", type=int, default=0,
                        help="imdb sample seed; 0 with 32 reviews = the sample of benchmarks/faithfulness.py")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    folders = dict(item.split("=", 1) for item in args.model)
    models = {name: load_model(folder).eval() for name, folder in folders.items()}
    tokenizers = {name: load_tokenizer(folder) for name, folder in folders.items()}
    predictors = {name: Predictor(models[name], tokenizers[name], max_length=MAX_LENGTH, batch_size=32)
                  for name in models}
    sst2_texts, sst2_labels = shared_data.sst2(args.data_dir)
    imdb_texts, imdb_labels = shared_data.imdb(args.data_dir)
    faith_imdb = random.Random(args.seed).sample(imdb_texts, args.faith_imdb)

    report: dict = {"machine": {"platform": platform.platform(), "python": sys.version.split()[0],
                                "torch": torch.__version__, "threads": args.threads,
                                "load_average_at_start": list(__import__("os").getloadavg())},
                    "command": " ".join(sys.argv), "models": {}}
    for name, model in models.items():
        entry: dict = {"folder": folders[name], "type": type(model).__name__,
                       "parameters": sum(p.numel() for p in model.parameters()),
                       "training": training_record(Path(folders[name]))}
        entry["sst2_accuracy"] = accuracy(predictors[name], sst2_texts, sst2_labels)
        if name not in args.imdb_skip:
            started = time.perf_counter()
            entry["imdb2k_accuracy"] = accuracy(predictors[name], imdb_texts, imdb_labels)
            entry["imdb2k_seconds"] = time.perf_counter() - started
        print(name, json.dumps({k: v for k, v in entry.items() if "accuracy" in k}), file=sys.stderr, flush=True)
        report["models"][name] = entry

    speeds = throughput(predictors, sst2_texts, args.rounds)
    reference = list(models)[-1]
    for name, speed in speeds.items():
        report["models"][name]["sst2_sentences_per_second"] = speed
        report["models"][name]["speed_ratio_vs_" + reference] = speed / speeds[reference]

    for name, model in models.items():
        if name in args.faith_skip:
            continue
        methods = ["native", "occlusion"] if "native" in getattr(model, "supported_explanations", ()) else ["occlusion"]
        results = {"sst2": faithfulness(model, tokenizers[name], sst2_texts[: args.faith_sst2], methods, args.seed,
                                        MAX_LENGTH)}
        if name not in args.faith_imdb_skip:
            results["imdb2k"] = faithfulness(model, tokenizers[name], faith_imdb, methods, args.seed,
                                             args.faith_imdb_max_length)
        report["models"][name]["faithfulness"] = results
        print(name, "faithfulness done", file=sys.stderr, flush=True)
    report["load_average_at_end"] = list(__import__("os").getloadavg())

    print_tables(report, reference)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


def print_tables(report: dict, reference: str) -> None:
    print(f"| model | params | SST-2 val acc | imdb-2k acc | train steps | train s | sent/s | ratio vs {reference} |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, entry in report["models"].items():
        training = entry.get("training") or {}
        imdb = entry.get("imdb2k_accuracy")
        print(f"| {name} | {entry['parameters'] / 1e6:.1f}M | {entry['sst2_accuracy']:.4f} | "
              f"{'—' if imdb is None else f'{imdb:.4f}'} | {training.get('global_step', '—')} | "
              f"{training.get('train_seconds_this_session', '—')} | {entry['sst2_sentences_per_second']:.0f} | "
              f"{entry['speed_ratio_vs_' + reference]:.2f} |")
    print()
    print("| model | data | method | comprehensiveness ↑ | sufficiency ↓ | s/text |")
    print("|---|---|---|---:|---:|---:|")
    for name, entry in report["models"].items():
        for data, methods in (entry.get("faithfulness") or {}).items():
            for method, scores in methods.items():
                print(f"| {name} | {data} | {method} | {scores['comprehensiveness']:.3f} | "
                      f"{scores['sufficiency']:.3f} | {scores['seconds_per_text']:.3f} |")


if __name__ == "__main__":
    sys.exit(main())
