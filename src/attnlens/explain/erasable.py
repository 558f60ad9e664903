"""Texts as sequences of deletable words, predicted again the way the prediction read them.

ERASER faithfulness and the report's deletion check delete words and ask the model again. With
`long_text="truncate"` a text is its first window and an edited text is that window without the
words; with `long_text="chunk"` a text is all its tokens, and an edited text is read in windows
placed as for any chunked prediction (attnlens.text_windows) and their probabilities averaged.
Word positions are those of `Explanation.words` in the same mode.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch

from attnlens.explain.erase import class_probabilities, pad_token_id
from attnlens.explain.inputs import tokenize_texts
from attnlens.explain.long_text import whole_texts
from attnlens.text_windows import check_long_text, default_overlap, window_starts


@dataclass
class ErasableText:
    ids: list[int]  # word pieces without special tokens
    word_ids: list[int]  # the word each piece belongs to

    @property
    def words(self) -> list[int]:
        """Word ids in reading order (the positions of `Explanation.words`)."""
        return list(dict.fromkeys(self.word_ids))

    def without(self, removed: Iterable[int]) -> list[int]:
        removed = set(removed)
        return [piece for piece, word in zip(self.ids, self.word_ids, strict=True) if word not in removed]


def erasable_texts(tokenizer, texts: Sequence[str], max_length: int, long_text: str) -> list[ErasableText]:
    """Each text as the prediction reads it: its first window ("truncate") or all of it ("chunk")."""
    check_long_text(long_text)
    if not texts:
        return []
    if long_text == "truncate":
        encoded = tokenize_texts(tokenizer, list(texts), max_length)
        return [ErasableText(ids=[i for i, w in zip(e.input_ids, e.word_ids, strict=True) if w is not None],
                             word_ids=[w for w in e.word_ids if w is not None]) for e in encoded]
    return [ErasableText(ids=ids, word_ids=word_ids) for ids, _, word_ids in whole_texts(tokenizer, list(texts))]


class Reader:
    """Raw class probabilities of edited texts (lists of word pieces), read as `long_text` says."""

    def __init__(self, model, tokenizer, max_length: int, long_text: str, batch_size: int | None = 64,
                 tokens_per_pass: int | None = None) -> None:
        check_long_text(long_text)
        self.model, self.long_text = model, long_text
        self.body = max_length - 2
        self.overlap = default_overlap(self.body)
        self.cls_id, self.sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
        self.pad_id = pad_token_id(model)
        self.batch_size, self.tokens_per_pass = batch_size, tokens_per_pass

    def probabilities(self, texts: Sequence[list[int]]) -> torch.Tensor:
        """(n, classes): each text's window (or windows, averaged with equal weights)."""
        sequences, owners = [], []
        for owner, ids in enumerate(texts):
            starts = [0] if self.long_text == "truncate" else window_starts(len(ids), self.body, self.overlap)
            for start in starts:
                sequences.append([self.cls_id, *ids[start : start + self.body], self.sep_id])
                owners.append(owner)
        windows = class_probabilities(self.model, sequences, self.pad_id, self.batch_size, self.tokens_per_pass)
        if len(sequences) == len(texts):
            return windows
        index = torch.tensor(owners)
        totals = torch.zeros(len(texts), windows.shape[1], dtype=torch.float64).index_add_(0, index, windows.double())
        counts = torch.bincount(index, minlength=len(texts)).double()
        return (totals / counts[:, None]).float()

    def target_probabilities(self, texts: Sequence[list[int]], targets: Sequence[int]) -> torch.Tensor:
        probabilities = self.probabilities(texts)
        return probabilities.gather(1, torch.tensor(list(targets), dtype=torch.long).view(-1, 1)).squeeze(1)
