"""Does a long prediction job's peak memory keep growing? Windows of SST-2 train, predicted in a loop.

    python experiments/predict_rss_growth.py --model outputs/sst2-minilm-800/best --passes 3
    ONEDNN_PRIMITIVE_CACHE_CAPACITY=16 python experiments/predict_rss_growth.py --passes 1

Reads SST-2 train and predicts it --passes times, each pass in a new seeded order cut into
windows of --window-rows texts (as `attnlens predict --input` does), so no two passes make the
same batches; prints the process's peak RSS every few windows: reading and writing files play no part, only `Predictor.predict`. Without
--model, a small random BERT (hidden 32, 2 layers) on the MiniLM tokenizer, fast enough for many
passes. Findings: docs/experiments.md ("Peak memory of long file jobs").
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import shared_data

from attnlens import DEFAULT_BASE_MODEL, BertConfig, BertForSequenceClassification, load_tokenizer
from attnlens.inference.allocator import keep_freed_memory
from attnlens.predict import Predictor


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def small_model(folder: Path) -> str:
    tokenizer = load_tokenizer(DEFAULT_BASE_MODEL)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, id2label={0: "negative", 1: "positive"})
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(folder, tokenizer=tokenizer)
    return str(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--window-rows", type=int, default=10_000)
    parser.add_argument("--every", type=int, default=5, help="print every N windows")
    args = parser.parse_args()
    keep_freed_memory()  # as `attnlens predict` does
    sentences, _ = shared_data.sst2(split="train")
    with tempfile.TemporaryDirectory() as scratch:
        predictor = Predictor.from_pretrained(args.model or small_model(Path(scratch)), batch_size=32)
    print(f"{len(sentences)} sentences a pass; peak RSS at the start {peak_mib():.0f} MiB")
    done = 0
    for number in range(1, args.passes + 1):
        order = sentences[:]
        random.Random(number).shuffle(order)
        for window in (order[i : i + args.window_rows] for i in range(0, len(order), args.window_rows)):
            predictor.predict(window)
            done += 1
            if done % args.every == 0:
                print(f"pass {number}, window {done}: peak RSS {peak_mib():.0f} MiB", flush=True)


if __name__ == "__main__":
    main()
