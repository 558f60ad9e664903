"""grad_rollout's rules on the planted-word task of the tests, trained to different degrees.

    python benchmarks/planted_saturation.py

The tiny BERT of tests/planted_task.py (one planted word decides the label) is trained with the
test's recipe (seeds 0-3, stopped when solved) and over-trained (30% neutral texts, 150 steps,
seeds 0-1), where attention saturates on the planted word. Prints the share of 200 held-out
texts whose top word is the planted one, for each rule.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from planted_task import PLANTED, planted_examples, train_planted_model

from attnlens import DEFAULT_BASE_MODEL, load_tokenizer
from attnlens.explain import explain_batch
from attnlens.explain.grad_rollout import RULES


def planted_first(model, tokenizer, texts: list[str], rule: str) -> float:
    explanations = explain_batch(model, tokenizer, texts, method="grad_rollout", batch_size=100, rule=rule)
    return sum(e.top_words(1)[0].word == PLANTED[e.target] for e in explanations) / len(explanations)


def main() -> None:
    torch.set_num_threads(1)
    tokenizer = load_tokenizer(DEFAULT_BASE_MODEL)
    texts, _ = planted_examples(200, seed=999)
    models = {f"test recipe, seed {s}": (lambda s=s: train_planted_model(tokenizer, seed=s)) for s in range(4)}
    models |= {f"30% neutral, 150 steps, seed {s}": (lambda s=s: train_planted_model(
        tokenizer, seed=s, max_steps=150, neutral_fraction=0.3, stop_below=None)) for s in range(2)}
    print("| model | " + " | ".join(RULES) + " |")
    print("|---|" + "---:|" * len(RULES))
    for name, build in models.items():
        model = build()
        shares = [f"{100 * planted_first(model, tokenizer, texts, rule):.1f}%" for rule in RULES]
        print(f"| {name} | " + " | ".join(shares) + " |", flush=True)


if __name__ == "__main__":
    main()
