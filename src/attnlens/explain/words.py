"""From raw per-token scores to the normalised token and word importances of an `Explanation`.

Normalisation rule, the same for every method: special tokens get 0; the others keep the
positive part of their raw score (evidence *for* the target) divided by the sum, so they sum to
1. If no token has positive evidence (possible for signed methods), the mass is spread evenly,
which says "nothing stands out" instead of dividing by zero. Word scores are the sums of their
pieces' scores, so they sum to 1 as well. A row of special tokens only (a text without word
pieces) has nothing to share the mass among: all its scores are 0 and it has no words.
"""

from __future__ import annotations

import torch

from attnlens.explain.explanation import TokenImportance, WordImportance, visible_span
from attnlens.explain.inputs import EncodedBatch


def normalise(raw: torch.Tensor, special: torch.Tensor) -> torch.Tensor:
    """(batch, seq) raw scores -> non-negative scores summing to 1 over each row's non-special
    tokens; all 0 in a row without non-special tokens."""
    raw = torch.nan_to_num(raw.double(), nan=0.0, posinf=0.0, neginf=0.0)
    positive = raw.clamp(min=0).masked_fill(special, 0.0)
    total = positive.sum(dim=-1, keepdim=True)
    nothing_positive = ~(total > 0)  # also catches an overflowed (inf) total
    if nothing_positive.any():
        uniform = (~special).double()
        positive = torch.where(nothing_positive, uniform, positive)
        total = positive.sum(dim=-1, keepdim=True)
    # A total of 0 is left only where no token is non-special: 0 / 1 keeps those rows at 0.
    return positive / torch.where(total > 0, total, torch.ones_like(total))


def token_importances(batch: EncodedBatch, raw: torch.Tensor) -> list[list[TokenImportance]]:
    """One `TokenImportance` per real (unpadded) token of every example.

    Normalisation runs once on the whole batch and Python objects are built from plain lists:
    for short texts this bookkeeping would otherwise cost as much as the forward pass.
    """
    raw = torch.nan_to_num(raw.detach().double().cpu(), nan=0.0, posinf=0.0, neginf=0.0)
    special = batch.special.cpu()
    scores = normalise(raw, special).masked_fill(special, 0.0).tolist()
    raw = raw.masked_fill(special, 0.0).tolist()
    flags = special.tolist()
    result = []
    for i, length in enumerate(batch.lengths):
        tokens, offsets = batch.tokens[i], batch.offsets[i]
        result.append([
            TokenImportance(token=tokens[j], start=offsets[j][0], end=offsets[j][1], score=scores[i][j],
                            special=flags[i][j], attribution=raw[i][j])
            for j in range(length)
        ])
    return result


def word_importances(text: str, word_ids: list[int | None], tokens: list[TokenImportance]) -> list[WordImportance]:
    """Merge word pieces into the words the tokenizer split the text into, in reading order.

    A word spans from its first piece's start to its last piece's end in the original text, so
    accents and emoji come back exactly as the user wrote them, without the white space a
    byte-level BPE piece carries (`visible_span`; words of spaces alone were joined to the next
    word when tokenising, `attnlens.explain.inputs.blank_words_joined`).
    """
    spans: dict[int, list] = {}  # word id -> [start, end, score, attribution]
    for token, word in zip(tokens, word_ids, strict=True):
        if word is None:
            continue
        span = spans.get(word)
        if span is None:
            spans[word] = [token.start, token.end, token.score, token.attribution]
            continue
        span[0], span[1] = min(span[0], token.start), max(span[1], token.end)
        span[2] += token.score
        span[3] += token.attribution
    words = []
    for start, end, score, attribution in spans.values():
        start, end = visible_span(text, start, end)
        words.append(WordImportance(word=text[start:end], start=start, end=end, score=score, attribution=attribution))
    return words
