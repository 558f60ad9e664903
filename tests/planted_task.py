"""A synthetic task whose answer is one planted word, and a tiny BERT trained on it in seconds.

Every text is filler words plus, usually, one planted word: "excellent" makes it positive,
"terrible" negative. A fifth of the training texts have no planted word and a 50/50 target,
so the model must learn that *both* planted words matter (otherwise it could learn "no
excellent means negative" and "terrible" would carry nothing). An explanation method that works
must therefore rank the planted word first.
"""

from __future__ import annotations

import random

import torch
import torch.nn.functional as F

FILLER = ["the", "a", "of", "and", "to", "in", "is", "was", "it", "for", "on", "with", "as", "at", "by", "this", "that", "from", "or", "an", "be", "are", "have", "not", "but"]
PLANTED = {0: "terrible", 1: "excellent"}
LABELS = {0: "negative", 1: "positive"}


def planted_examples(n: int, seed: int, neutral_fraction: float = 0.0) -> tuple[list[str], list[float]]:
    """n texts and their targets (0, 1, or 0.5 for the neutral texts without a planted word)."""
    rng = random.Random(seed)
    texts, targets = [], []
    for _ in range(n):
        words = [rng.choice(FILLER) for _ in range(rng.randint(5, 11))]
        if rng.random() < neutral_fraction:
            target = 0.5
        else:
            target = rng.randrange(2)
            words.insert(rng.randint(0, len(words)), PLANTED[target])
        texts.append(" ".join(words))
        targets.append(float(target))
    return texts, targets


def train_planted_model(tokenizer, seed: int = 1, max_steps: int = 400, neutral_fraction: float = 0.2,
                        stop_below: float | None = 0.22):
    """A 2-layer, 2-head BERT (hidden 32, BERT's usual dropout 0.1) trained until it solves the task.

    Training stops once the smoothed loss is below `stop_below`, near the floor the neutral texts
    impose (0.2 * ln 2 ≈ 0.14 plus a margin), i.e. when the model is right and confident but before
    it saturates; see docs/explanations.md for what over-training does to gradient x attention
    (`stop_below=None` trains all `max_steps`: benchmarks/planted_saturation.py over-trains so).
    The margin is small because the stopping step depends on the CPU's float rounding: at 0.25,
    on a CPU with AVX-512 VNNI, seed 1 stopped 20 steps earlier, with the planted word's lead too
    small for integrated gradients and for windows of 500 filler words.
    """
    threads = torch.get_num_threads()
    # One thread: tiny matrices gain nothing from more, and on a busy machine extra threads
    # spin against each other (measured 6x slower with 2 threads on 2 loaded cores).
    torch.set_num_threads(1)
    try:
        return _train(tokenizer, seed, max_steps, neutral_fraction, stop_below)
    finally:
        torch.set_num_threads(threads)


def _train(tokenizer, seed: int, max_steps: int, neutral_fraction: float, stop_below: float | None):
    from attnlens import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, id2label=dict(LABELS))
    model = BertForSequenceClassification(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    steps = fit_planted(model, tokenizer, optimizer, seed, max_steps, neutral_fraction, stop_below)
    model.eval()
    model.trained_steps = steps
    return model


def fit_planted(model, tokenizer, optimizer, seed: int, max_steps: int, neutral_fraction: float = 0.2,
                stop_below: float | None = 0.25, transform=None) -> int:
    """Train any classifier with the planted-task batches (two-class soft targets) until the
    smoothed loss is below `stop_below` (None: all `max_steps`); returns the steps taken.
    `transform` rewrites the texts of each batch (e.g. into sentences for a HAN)."""
    model.train()
    smoothed = None
    for step in range(max_steps):
        texts, targets = planted_examples(32, seed=seed * 100_000 + step, neutral_fraction=neutral_fraction)
        if transform is not None:
            texts = [transform(text) for text in texts]
        encoded = tokenizer(texts, padding=True, return_tensors="pt")
        logits = model(encoded["input_ids"], attention_mask=encoded["attention_mask"]).logits
        y = torch.tensor(targets)
        loss = F.cross_entropy(logits, torch.stack([1 - y, y], dim=1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        smoothed = loss.item() if smoothed is None else 0.8 * smoothed + 0.2 * loss.item()
        if stop_below is not None and smoothed < stop_below:
            break
    return step + 1
