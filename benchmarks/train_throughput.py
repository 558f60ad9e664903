"""Training throughput: the attnlens job vs `transformers.Trainer`, same model, data, batch and steps.

Both start from the embedded all-MiniLM-L6-v2 weights (ours: `attnlens.BertForSequenceClassification`;
Trainer: `transformers.BertForSequenceClassification` loading the same folder), train on the same
seeded random subset of SST-2 train (exactly `steps x batch_size` examples, so each sees every
example once) for the same number of optimizer steps with the same batch size, learning rate and
schedule. Trainer keeps its defaults: `DataCollatorWithPadding` (pads each random batch to its
longest example) and `group_by_length=False`; the attnlens job groups batches by length.

Each side runs in its own subprocess (Accelerate and Trainer keep process-wide state); repeats
alternate the order and use a fresh subset each; the ratio of total examples per second over all
repeats is printed and written as JSON. Timed: the training loop only (model loading, tokenisation
and the job's final evaluation are excluded on both sides).

    python benchmarks/train_throughput.py --steps 40 --batch-size 32 --threads 1 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import shared_data

SST2_TRAIN = shared_data.SST2_TRAIN
MAX_LENGTH = 64
LEARNING_RATE = 5e-5
WARMUP_RATIO = 0.1


def write_subsets(train: Path, validation: Path, size: int, seed: int) -> None:
    """`size` training rows, plus 64 other rows for the job's (untimed) final evaluation."""
    rows = shared_data.read_rows(SST2_TRAIN)
    subset = random.Random(seed).sample(rows, size + 64)
    for path, part in ((train, subset[:size]), (validation, subset[size:])):
        with path.open("w", encoding="utf-8") as handle:
            handle.write("sentence\tlabel\n")
            for row in part:
                handle.write(f"{row['sentence']}\t{row['label']}\n")


def run_ours(data: Path, steps: int, batch_size: int, seed: int, work: Path) -> dict:
    from attnlens.training.config import load_job_config
    from attnlens.training.job import run_job

    config_path = work / "ours.yaml"
    config_path.write_text("# benchmarks/train_throughput.py\n", encoding="utf-8")
    config = load_job_config(
        config_path,
        [
            "model.base_model=default",
            f"model.max_length={MAX_LENGTH}",
            f"data.train={data}",
            f"data.validation={data.with_name('validation.tsv')}",
            "data.text_column=sentence",
            "data.label_column=label",
            "training.epochs=1",
            f"training.max_steps={steps}",
            f"training.batch_size={batch_size}",
            f"training.learning_rate={LEARNING_RATE}",
            f"training.warmup_ratio={WARMUP_RATIO}",
            "training.weight_decay=0.0",
            f"training.seed={seed}",
            "training.mixed_precision=no",
            "training.checkpoint_every_steps=0",
            f"training.log_every_steps={steps}",
            f"output.dir={work / 'ours'}",
            "output.log_with=null",
        ],
    )
    summary = run_job(config, "benchmarks/train_throughput.py")
    seconds = summary["train_seconds_this_session"] - summary["evaluation_seconds_this_session"]
    return {"seconds": seconds, "examples": steps * batch_size, "final_step": summary["global_step"]}


def run_trainer(data: Path, steps: int, batch_size: int, seed: int, work: Path) -> dict:
    import datasets
    from transformers import (
        BertForSequenceClassification,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
    )

    from attnlens import DEFAULT_BASE_MODEL, load_tokenizer

    tokenizer = load_tokenizer(DEFAULT_BASE_MODEL)
    raw = datasets.load_dataset("csv", data_files=str(data), delimiter="\t", quoting=3, split="train")
    encoded = raw.map(
        lambda batch: tokenizer(batch["sentence"], truncation=True, max_length=MAX_LENGTH),
        batched=True,
        remove_columns=["sentence"],
    )
    model = BertForSequenceClassification.from_pretrained(DEFAULT_BASE_MODEL, num_labels=2)
    arguments = TrainingArguments(
        output_dir=str(work / "trainer"),
        per_device_train_batch_size=batch_size,
        max_steps=steps,
        learning_rate=LEARNING_RATE,
        warmup_steps=int(WARMUP_RATIO * steps),  # = the job's int(warmup_ratio * total_steps)
        weight_decay=0.0,
        seed=seed,
        save_strategy="no",
        eval_strategy="no",
        logging_steps=steps,
        report_to=[],
        use_cpu=True,
        train_sampling_strategy="random",  # the default; transformers 5 spelling of group_by_length=False
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    trainer = Trainer(
        model=model,
        args=arguments,
        train_dataset=encoded,
        data_collator=DataCollatorWithPadding(tokenizer),
    )
    started = time.perf_counter()
    output = trainer.train()
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "trainer_train_runtime": output.metrics["train_runtime"],
        "examples": steps * batch_size,
        "final_step": trainer.state.global_step,
    }


def run_side(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    work = Path(args.work)
    side = run_ours if args.side == "ours" else run_trainer
    result = side(Path(args.data), args.steps, args.batch_size, args.seed, work)
    (work / f"{args.side}.json").write_text(json.dumps(result), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2, help="alternating trainer/ours runs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=None, help="write the results JSON here too")
    parser.add_argument("--side", choices=["ours", "trainer"], help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        run_side(args)
        return
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1")
    totals = {side: {"examples": 0, "seconds": 0.0, "runs": []} for side in ("trainer", "ours")}
    for repeat in range(args.repeats):
        # Alternate who goes first so that changing load on a shared machine hits both alike.
        order = ("trainer", "ours") if repeat % 2 == 0 else ("ours", "trainer")
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            data = work / "subset.tsv"
            seed = args.seed + repeat
            write_subsets(data, data.with_name("validation.tsv"), args.steps * args.batch_size, seed)
            for side in order:
                command = [sys.executable, __file__, "--side", side, "--data", str(data), "--work", str(work),
                           "--steps", str(args.steps), "--batch-size", str(args.batch_size),
                           "--threads", str(args.threads), "--seed", str(seed)]
                subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
                run = json.loads((work / f"{side}.json").read_text(encoding="utf-8"))
                totals[side]["examples"] += run["examples"]
                totals[side]["seconds"] += run["seconds"]
                totals[side]["runs"].append(run)
                print(f"repeat {repeat} {side:8s} {run['examples'] / run['seconds']:8.1f} examples/s "
                      f"({run['examples']} examples in {run['seconds']:.1f} s)", flush=True)
    results: dict = {}
    for side, total in totals.items():
        results[side] = dict(total, examples_per_second=total["examples"] / total["seconds"])
    ratio = results["ours"]["examples_per_second"] / results["trainer"]["examples_per_second"]
    results.update(ratio=ratio, steps=args.steps, batch_size=args.batch_size, threads=args.threads,
                   repeats=args.repeats)
    print(f"ratio ours/Trainer: {ratio:.2f}x")
    if args.output:
        Path(args.output).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
