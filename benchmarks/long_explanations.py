"""Explanations of whole long reviews (`long_text="chunk"`): their cost and their faithfulness.

    python benchmarks/long_explanations.py --model outputs/sst2-minilm-800/best --reviews 100

On the imdb-2k reviews longer than the model's window (a seeded sample of --reviews of them):

- cost: the chunked explanation (grad_rollout, every window) against the chunked prediction of
  the same reviews, best of --repeats (goal: at most 2.5x), with the first-window explanation for
  reference;
- faithfulness: ERASER comprehensiveness and sufficiency (AOPC over 1-50% of the words) of the
  chunked explanation, of the first-window explanation and of a random ranking, all measured on
  the chunked prediction (words deleted anywhere in the review, every window read again). The
  first-window explanation ranks the words it read by its scores and the rest after them in a
  random order: it has no opinion about them. Also the first-window explanation in its own
  setting (truncated prediction), as the report measured it before long texts were combined.

imdb-2k is evaluation data: this only measures, nothing is tuned on it.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import shared_data
import torch

from attnlens import load_tokenizer
from attnlens.explain import eraser_aopc, explain_batch, random_ranking, ranking_from_explanation
from attnlens.loading import load_model
from attnlens.predict import Predictor
from attnlens.tokenization import tokenize_user_texts


def long_reviews(tokenizer, max_length: int, count: int, seed: int) -> tuple[list[str], int]:
    """A seeded sample of the imdb-2k reviews past the window, and how many there are."""
    reviews, _ = shared_data.imdb()
    lengths = [len(ids) for ids in tokenize_user_texts(tokenizer, reviews, add_special_tokens=False, verbose=False)["input_ids"]]
    long = [review for review, length in zip(reviews, lengths, strict=True) if length > max_length - 2]
    return random.Random(seed).sample(long, min(count, len(long))), len(long)


def timed(function, repeats: int) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        started = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - started)
    return best, result


def first_window_ranking(explanation, total_words: int, seed: int) -> list[int]:
    """The first window's words by score, then the words it never read in a random order."""
    seen = ranking_from_explanation(explanation)
    unseen = list(range(len(explanation.words), total_words))
    random.Random(seed).shuffle(unseen)
    return seen + unseen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--reviews", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=Path("outputs/long-explanations.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, tokenizer = load_model(args.model).eval(), load_tokenizer(args.model)
    predictor = Predictor(model, tokenizer, batch_size=args.batch_size, temperature=1.0)
    texts, available = long_reviews(tokenizer, predictor.max_length, args.reviews, args.seed)
    print(f"{len(texts)} of the {available} imdb-2k reviews past the {predictor.max_length}-token window")

    def explain(long_text: str):
        return explain_batch(model, tokenizer, texts, batch_size=args.batch_size, long_text=long_text)

    predict_s, predictions = timed(lambda: predictor.predict(texts, long_text="chunk"), args.repeats)
    chunked_s, chunked = timed(lambda: explain("chunk"), args.repeats)
    first_s, first = timed(lambda: explain("truncate"), args.repeats)
    windows = sum(p.num_windows for p in predictions)  # type: ignore[union-attr]
    agree = sum(e.label == p.label for e, p in zip(chunked, predictions, strict=True))  # type: ignore[arg-type]

    targets = [e.target for e in chunked]  # type: ignore[union-attr]
    rankings = {
        "chunked explanation": [ranking_from_explanation(e) for e in chunked],  # type: ignore[union-attr]
        "first-window explanation": [first_window_ranking(f, len(c.words), args.seed + i)
                                     for i, (f, c) in enumerate(zip(first, chunked, strict=True))],  # type: ignore[arg-type]
        "random ranking": [random_ranking(len(e.words), args.seed + i) for i, e in enumerate(chunked)],  # type: ignore[union-attr]
    }
    faithfulness = {name: eraser_aopc(model, tokenizer, texts, ranking, targets, long_text="chunk").mean()
                    for name, ranking in rankings.items()}
    own = eraser_aopc(model, tokenizer, texts, [ranking_from_explanation(e) for e in first],  # type: ignore[union-attr]
                      [e.target for e in first], long_text="truncate").mean()  # type: ignore[union-attr]
    own_random = eraser_aopc(model, tokenizer, texts, [random_ranking(len(e.words), args.seed + i)  # type: ignore[union-attr]
                                                       for i, e in enumerate(first)],
                             [e.target for e in first], long_text="truncate").mean()  # type: ignore[union-attr]

    results = {
        "reviews": len(texts), "reviews_past_window": available, "windows": windows, "threads": args.threads,
        "seconds": {"chunked_prediction": predict_s, "chunked_explanation": chunked_s,
                    "first_window_explanation": first_s},
        "cost_ratio": chunked_s / predict_s, "labels_agree": agree,
        "faithfulness_chunked_prediction": faithfulness,
        "faithfulness_truncated_prediction": {"first-window explanation": own, "random ranking": own_random},
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"\n{len(texts)} reviews, {windows} windows ({windows / len(texts):.2f} per review), "
          f"{args.threads} threads, best of {args.repeats}")
    print("\n| pass | seconds | × chunked prediction |\n|---|---:|---:|")
    for name, seconds in results["seconds"].items():
        print(f"| {name.replace('_', ' ')} | {seconds:.1f} | {seconds / predict_s:.2f} |")
    print(f"\nlabels: the chunked explanation's equal the chunked prediction's for {agree} of {len(texts)}")
    print("\n| ranking (chunked prediction) | comprehensiveness ↑ | sufficiency ↓ |\n|---|---:|---:|")
    for name, scores in faithfulness.items():
        print(f"| {name} | {scores['comprehensiveness']:.3f} | {scores['sufficiency']:.3f} |")
    print("\n| ranking (truncated prediction) | comprehensiveness ↑ | sufficiency ↓ |\n|---|---:|---:|")
    for name, scores in results["faithfulness_truncated_prediction"].items():
        print(f"| {name} | {scores['comprehensiveness']:.3f} | {scores['sufficiency']:.3f} |")


if __name__ == "__main__":
    main()
