"""grad_rollout's rules on the planted-word task of the tests, trained to different degrees.

    python experiments/planted_saturation.py

The tiny BERT of the tests' planted-word task (`tests/planted_task.py`: one planted word decides
the label) is trained with the test's recipe (seeds 0-3, stopped when solved) and over-trained
(30% neutral texts, 150 steps, seeds 0-1), where attention saturates on the planted word. Prints
the share of 200 held-out texts whose top word is the planted one, for each rule.
Findings: docs/experiments.md.
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path
from types import ModuleType

import torch

from attnlens import DEFAULT_BASE_MODEL, load_tokenizer
from attnlens.explain import explain_batch
from attnlens.explain.grad_rollout import RULES

PLANTED_TASK = Path(__file__).resolve().parents[1] / "tests" / "planted_task.py"


def planted_task() -> ModuleType:
    """The tests' own task module, loaded from its file (so this trains exactly what the tests
    train) without putting tests/ on the import path."""
    spec = importlib.util.spec_from_file_location("planted_task", PLANTED_TASK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def planted_first(model, tokenizer, texts: list[str], rule: str, planted: dict[int, str]) -> float:
    explanations = explain_batch(model, tokenizer, texts, method="grad_rollout", batch_size=100, rule=rule)
    return sum(e.top_words(1)[0].word == planted[e.target] for e in explanations) / len(explanations)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    task = planted_task()
    tokenizer = load_tokenizer(DEFAULT_BASE_MODEL)
    texts, _ = task.planted_examples(200, seed=999)
    models = {f"test recipe, seed {s}": (lambda s=s: task.train_planted_model(tokenizer, seed=s)) for s in range(4)}
    models |= {f"30% neutral, 150 steps, seed {s}": (lambda s=s: task.train_planted_model(
        tokenizer, seed=s, max_steps=150, neutral_fraction=0.3, stop_below=None)) for s in range(2)}
    print("| model | " + " | ".join(RULES) + " |")
    print("|---|" + "---:|" * len(RULES))
    for name, build in models.items():
        model = build()
        shares = [f"{100 * planted_first(model, tokenizer, texts, rule, task.PLANTED):.1f}%" for rule in RULES]
        print(f"| {name} | " + " | ".join(shares) + " |", flush=True)


if __name__ == "__main__":
    main()
