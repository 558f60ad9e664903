"""SST-2 validation accuracy of several fine-tuned models and of their averaged prediction.

Why: when no single fine-tuning recipe reaches an accuracy goal, the ensemble of every run says
whether the goal is within reach of this base model at all. An ensemble of N independently
fine-tuned models is the usual upper estimate of what one model distilled from them, or a weight
average ("soup") of them, can reach. If the ensemble of all runs falls short, neither is worth a
run. Pass every run of interest, not a subset picked by its validation score, or the ensemble's
figure is chosen on the data it is scored on.

Each model predicts through `attnlens.predict.Predictor` (the service's path); the ensemble
averages the class probabilities. The uniform soup (Wortsman et al., 2022) averages the weights
instead, which gives one model of the original size; it only works for runs fine-tuned from the
same base model.

    python experiments/ensemble_ceiling.py --models outputs/run-a/best outputs/run-b/best ...

Findings: docs/experiments.md.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import torch

from attnlens.predict import Predictor
from attnlens.training.data import load_examples

SST2_VALIDATION = Path(__file__).resolve().parents[2] / "shared" / "data" / "sst2" / "validation.tsv"


def class_probabilities(predictor: Predictor, texts: list[str]) -> torch.Tensor:
    """(texts, classes) probabilities in the predictor's label order."""
    predictions = predictor.predict(texts)
    return torch.tensor([[p.probabilities[label] for label in predictor.labels] for p in predictions])


def uniform_soup(models: list[torch.nn.Module]) -> torch.nn.Module:
    """One model whose every weight is the mean of that weight over `models`."""
    soup = copy.deepcopy(models[0])
    states = [model.state_dict() for model in models]
    soup.load_state_dict({key: sum(state[key].float() for state in states) / len(states) for key in states[0]})
    return soup


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, nargs="+", required=True, help="fine-tuned model folders")
    parser.add_argument("--data", type=Path, default=SST2_VALIDATION)
    parser.add_argument("--text-column", default="sentence")
    parser.add_argument("--max-length", type=int, default=64, help="tokens read per text (the SST-2 configs' 64)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    predictors = [Predictor.from_pretrained(str(path), max_length=args.max_length, batch_size=64)
                  for path in args.models]
    labels = predictors[0].labels
    for path, predictor in zip(args.models, predictors, strict=True):
        if predictor.labels != labels:
            print(f"{path} has labels {predictor.labels}, the first model {labels}; an ensemble needs the same")
            return 2
    examples = load_examples(str(args.data), "validation", None, args.text_column, "label", labels)
    texts, gold = list(examples["text"]), torch.tensor(examples["labels"])

    print(f"data {args.data} ({len(texts)} examples), max_length {args.max_length}\n")
    print("| model | accuracy (%) |")
    print("|---|---:|")
    probabilities = []
    for path, predictor in zip(args.models, predictors, strict=True):
        probs = class_probabilities(predictor, texts)
        probabilities.append(probs)
        print(f"| {path} | {100 * (probs.argmax(-1) == gold).float().mean():.2f} |", flush=True)
    stacked = torch.stack(probabilities)  # (models, texts, classes)
    ensemble = (stacked.mean(0).argmax(-1) == gold).float().mean()
    any_right = (stacked.argmax(-1) == gold).any(0).float().mean()
    print(f"| **ensemble of all {len(predictors)}** (mean probability) | **{100 * ensemble:.2f}** |")
    soup = Predictor(uniform_soup([p.model for p in predictors]), predictors[0].tokenizer,
                     max_length=args.max_length, batch_size=64)
    soup_accuracy = (class_probabilities(soup, texts).argmax(-1) == gold).float().mean()
    print(f"| uniform soup of all {len(predictors)} (mean weights, one model) | {100 * soup_accuracy:.2f} |")
    print(f"\nright by at least one model (an oracle, not a method): {100 * any_right:.2f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
