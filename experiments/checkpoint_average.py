"""SST-2 validation accuracy of one run's last checkpoints and of their weight average.

Why: averaging the weights a run passes through near its end (stochastic weight averaging,
checkpoint averaging, an exponential moving average) often gains a few tenths of a point over
any single checkpoint, at no training cost. Before building such an option into the job, this
measures what it would give on runs already trained: for each run folder, the accuracy of each
kept checkpoint (`checkpoints/checkpoint-N`, the last `keep_checkpoints` of the run), of their
uniform average, and of that average with the run's `best/` model added.

    python experiments/checkpoint_average.py --runs outputs/run-a outputs/run-b ...

Findings: docs/experiments.md.
"""

from __future__ import annotations

import argparse
import copy
import functools
import sys
from pathlib import Path

import torch
from ensemble_ceiling import SST2_VALIDATION, class_probabilities, uniform_soup
from safetensors.torch import load_file

from attnlens.predict import Predictor
from attnlens.training.checkpointing import complete_checkpoints
from attnlens.training.data import load_examples


def checkpoint_folders(run: Path) -> list[Path]:
    """The run's kept checkpoints, oldest first."""
    folders = complete_checkpoints(run)
    if not folders:
        raise SystemExit(f"{run}: no checkpoints/checkpoint-N folders")
    return folders


def accuracy(model: torch.nn.Module, tokenizer, texts: list[str], gold: torch.Tensor, max_length: int) -> float:
    predictor = Predictor(model, tokenizer, max_length=max_length, batch_size=64)
    return 100 * (class_probabilities(predictor, texts).argmax(-1) == gold).float().mean().item()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, nargs="+", required=True,
                        help="training output folders (each with best/ and checkpoints/)")
    parser.add_argument("--data", type=Path, default=SST2_VALIDATION)
    parser.add_argument("--max-length", type=int, default=64, help="tokens read per text (the SST-2 configs' 64)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    print("| run | " + " | ".join(["each kept checkpoint", "their average", "average with best/"]) + " |")
    print("|---|---|---:|---:|")
    texts = gold = None
    for run in args.runs:
        best = Predictor.from_pretrained(str(run / "best"), max_length=args.max_length, batch_size=64)
        if texts is None:
            examples = load_examples(str(args.data), "validation", None, "sentence", "label", best.labels)
            texts, gold = list(examples["text"]), torch.tensor(examples["labels"])
        score = functools.partial(accuracy, tokenizer=best.tokenizer, texts=texts, gold=gold,
                                  max_length=args.max_length)

        checkpoints = []
        for folder in checkpoint_folders(run):
            model = copy.deepcopy(best.model)  # best's architecture, the checkpoint's weights
            model.load_state_dict(load_file(str(folder / "model.safetensors")))
            checkpoints.append((folder.name.split("-")[1], model))
        each = ", ".join(f"{step}: {score(model):.2f}" for step, model in checkpoints)
        average = score(uniform_soup([model for _, model in checkpoints]))
        with_best = score(uniform_soup([model for _, model in checkpoints] + [best.model]))
        print(f"| {run} | {each} | {average:.2f} | {with_best:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
