"""ERASER faithfulness (DeYoung et al., 2020): does deleting the words an explanation ranks
highest change the prediction (comprehensiveness), and do they alone keep it (sufficiency)?

Both are reported as AOPC, the mean over removing/keeping the top 1, 5, 10, 20 and 50% of words.
Comprehensiveness: p(target | x) - p(target | x without top-k%), higher is better.
Sufficiency: p(target | x) - p(target | only the top-k%), lower is better.
`k%` of n words is `ceil(k * n)` words (at least one), so short sentences are not all zeros.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import torch

from attnlens.classifier import eval_mode
from attnlens.errors import InputError
from attnlens.explain.erasable import Reader, erasable_texts
from attnlens.explain.explanation import Explanation
from attnlens.explain.inputs import resolve_max_length

PERCENTAGES = (0.01, 0.05, 0.10, 0.20, 0.50)


@dataclass
class Faithfulness:
    """Per-example AOPC values; `mean` gives the dataset numbers."""

    comprehensiveness: list[float]
    sufficiency: list[float]

    def mean(self) -> dict[str, float]:
        n = max(len(self.comprehensiveness), 1)
        return {"comprehensiveness": sum(self.comprehensiveness) / n, "sufficiency": sum(self.sufficiency) / n}


def ranking_from_explanation(explanation: Explanation) -> list[int]:
    """Positions of the explanation's words (reading order), most important first.

    Ties in the normalised score are broken by the raw attribution, then by position, so a
    signed method's negative evidence ranks last.
    """
    order = sorted(
        range(len(explanation.words)),
        key=lambda i: (-explanation.words[i].score, -explanation.words[i].attribution, i),
    )
    return order


def random_ranking(n_words: int, seed: int) -> list[int]:
    """The baseline every method must beat: a random order of the words, reproducible per seed."""
    order = list(range(n_words))
    random.Random(seed).shuffle(order)
    return order


def number_to_remove(n_words: int, fraction: float) -> int:
    return min(n_words, max(1, math.ceil(fraction * n_words)))


@torch.no_grad()
def eraser_aopc(
    model,
    tokenizer,
    texts: list[str],
    rankings: list[list[int]],
    targets: list[int],
    max_length: int | None = None,
    percentages: tuple[float, ...] = PERCENTAGES,
    batch_size: int = 64,
    full_probabilities: torch.Tensor | None = None,
    long_text: str = "truncate",
) -> Faithfulness:
    """Comprehensiveness and sufficiency AOPC of word `rankings` (positions in reading order).

    Texts are tokenised exactly as `explain` did (same tokenizer, `max_length` and `long_text`),
    so positions in `Explanation.words` are the words seen here; with "truncate" the words cut
    away play no part, with "chunk" the edited texts are read in windows as the prediction reads
    them (attnlens.explain.erasable).
    `full_probabilities`: p(target | whole text) per example, when the caller has them (the
    explained forward pass's), which saves a pass; else computed.
    """
    limit = resolve_max_length(model, max_length)
    reader = Reader(model, tokenizer, limit, long_text, batch_size)
    with eval_mode(model):
        full_sequences, erased, kept, owners = [], [], [], []
        for example, text in enumerate(erasable_texts(tokenizer, texts, limit, long_text)):
            word_ids = text.words
            if len(rankings[example]) != len(word_ids):
                raise InputError(
                    f"example {example}: ranking has {len(rankings[example])} words, the input has {len(word_ids)}"
                )
            ranked = [word_ids[p] for p in rankings[example]]
            full_sequences.append(text.ids)
            for fraction in percentages:
                top = ranked[: number_to_remove(len(ranked), fraction)]
                rest = ranked[len(top) :]
                erased.append(text.without(top))
                kept.append(text.without(rest))
                owners.append(example)
        p_full = (reader.target_probabilities(full_sequences, targets)
                  if full_probabilities is None else torch.as_tensor(full_probabilities, dtype=torch.float32))
        expanded_targets = [targets[e] for e in owners]
        p_erased = reader.target_probabilities(erased, expanded_targets)
        p_kept = reader.target_probabilities(kept, expanded_targets)
    bins = len(percentages)
    drop_erased = (p_full.repeat_interleave(bins) - p_erased).view(-1, bins).mean(dim=1)
    drop_kept = (p_full.repeat_interleave(bins) - p_kept).view(-1, bins).mean(dim=1)
    return Faithfulness(comprehensiveness=drop_erased.tolist(), sufficiency=drop_kept.tolist())
