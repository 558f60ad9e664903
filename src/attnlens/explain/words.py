"""From raw per-token scores to the normalised token and word importances of an `Explanation`.

Normalisation rule, the same for every method: special tokens get 0; the others keep the
positive part of their raw score (evidence *for* the target) divided by the sum, so they sum to
1. If no token has positive evidence (possible for signed methods), the mass is spread evenly,
which says "nothing stands out" instead of dividing by zero. Word scores are the sums of their
pieces' scores, so they sum to 1 as well.
"""

from __future__ import annotations

import math

import torch

from attnlens.explain.explanation import TokenImportance, WordImportance
from attnlens.explain.inputs import EncodedBatch


def normalise(raw: torch.Tensor, special: torch.Tensor) -> torch.Tensor:
    """(seq,) raw scores of one example -> non-negative scores summing to 1 over non-special tokens."""
    raw = torch.nan_to_num(raw.double(), nan=0.0, posinf=0.0, neginf=0.0)
    positive = raw.clamp(min=0).masked_fill(special, 0.0)
    total = positive.sum()
    if total <= 0 or not math.isfinite(total.item()):
        positive = (~special).double()
        total = positive.sum()
    return positive / total


def token_importances(batch: EncodedBatch, example: int, raw: torch.Tensor) -> list[TokenImportance]:
    """One `TokenImportance` per real (unpadded) token of `example`."""
    length = batch.lengths[example]
    raw = raw[:length].detach().cpu()
    special = batch.special[example, :length].cpu()
    scores = normalise(raw, special)
    return [
        TokenImportance(
            token=batch.tokens[example][j],
            start=int(batch.offsets[example][j][0]),
            end=int(batch.offsets[example][j][1]),
            score=0.0 if special[j] else float(scores[j]),
            special=bool(special[j]),
            attribution=0.0 if special[j] else float(torch.nan_to_num(raw[j].double(), nan=0.0)),
        )
        for j in range(length)
    ]


def word_importances(text: str, batch: EncodedBatch, example: int, tokens: list[TokenImportance]) -> list[WordImportance]:
    """Merge word pieces into the words the tokenizer split the text into, in reading order.

    A word spans from its first piece's start to its last piece's end in the original text, so
    accents and emoji come back exactly as the user wrote them.
    """
    spans: dict[int, list[float]] = {}  # word id -> [start, end, score, attribution]
    for token, word in zip(tokens, batch.word_ids[example], strict=True):
        if word is None:
            continue
        if word not in spans:
            spans[word] = [token.start, token.end, 0.0, 0.0]
        span = spans[word]
        span[0], span[1] = min(span[0], token.start), max(span[1], token.end)
        span[2] += token.score
        span[3] += token.attribution
    return [
        WordImportance(word=text[int(s) : int(e)], start=int(s), end=int(e), score=score, attribution=attribution)
        for s, e, score, attribution in spans.values()
    ]
