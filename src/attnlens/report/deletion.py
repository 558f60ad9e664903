"""Do a class's top words matter? Delete them and see.

For each class, take the texts predicted as it that contain at least one of its top words (by
total attribution), delete every occurrence of those words, and measure how much the class's
probability drops and how often the prediction changes. The same texts with as many randomly
chosen words deleted are the baseline: top words that matter move the model more than random
ones. Deletion removes all word pieces of a word (attnlens.explain.erase); probabilities are the
model's raw ones.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from attnlens.classifier import eval_mode
from attnlens.explain.erasable import Reader, erasable_texts
from attnlens.explain.explanation import Explanation
from attnlens.report.words import word_key

DEFAULT_DELETION_WORDS = 10
DEFAULT_DELETION_TEXTS = 100


@dataclass
class DeletionCheck:
    label: str
    words: list[str]  # the class's top words that were deleted
    texts: int  # texts predicted as the class containing one of them (at most max_texts)
    words_deleted: float  # mean per text, the same for both sides
    top_drop: float  # mean drop of p(class) when the top words are deleted
    random_drop: float  # ... when as many random words are deleted
    top_flip_rate: float  # share of texts whose prediction changes
    random_flip_rate: float


@torch.no_grad()
def deletion_check(model, tokenizer, texts: Sequence[str], explanations: Sequence[Explanation],
                   predictions: Sequence[int], class_words: dict[int, list[str]], labels: Sequence[str], *,
                   max_length: int, max_texts: int = DEFAULT_DELETION_TEXTS, seed: int = 0,
                   batch_size: int = 64, full_probabilities: torch.Tensor | None = None,
                   long_text: str = "truncate",
                   on_class: Callable[[int], None] | None = None) -> list[DeletionCheck]:
    """One `DeletionCheck` per class in `class_words` (class index -> its top words).

    Texts are read as the explanations read them (`long_text`: the first window, or every
    window averaged; attnlens.explain.erasable). `full_probabilities`: the model's raw (n,
    classes) probabilities of the whole texts as read here, when the caller has them; else they
    are computed.
    `on_class(texts)` is called after each class (a progress bar's step).
    """
    reader = Reader(model, tokenizer, max_length, long_text, batch_size)
    results = []
    with eval_mode(model):
        for c, words in class_words.items():
            chosen = set(words)
            members = [i for i, p in enumerate(predictions) if p == c
                       and any(word_key(w.word) in chosen for w in explanations[i].words)]
            random.Random(seed + c).shuffle(members)
            members = sorted(members[:max_texts])
            full, top, rand = [], [], []
            deleted = 0
            rng = random.Random(seed)
            for start in range(0, len(members), batch_size):
                group = members[start : start + batch_size]
                encoded = erasable_texts(tokenizer, [texts[i] for i in group], max_length, long_text)
                for text, index in zip(encoded, group, strict=True):
                    word_ids = text.words
                    # Positions in Explanation.words are the words in reading order (the same tokenisation).
                    hits = [word_ids[p] for p, w in enumerate(explanations[index].words) if word_key(w.word) in chosen]
                    if full_probabilities is None:
                        full.append(text.ids)
                    top.append(text.without(hits))
                    rand.append(text.without(rng.sample(word_ids, len(hits))))
                    deleted += len(hits)
            if not members:
                results.append(DeletionCheck(labels[c], list(words), 0, 0.0, 0.0, 0.0, 0.0, 0.0))
            else:
                results.append(_measure(reader, labels[c], c, words, full, top, rand, deleted, members,
                                        full_probabilities))
            if on_class is not None:
                on_class(len(members))
    return results


def _measure(reader: Reader, label: str, c: int, words: list[str], full: list, top: list, rand: list, deleted: int,
             members: list[int], full_probabilities: torch.Tensor | None) -> DeletionCheck:
    """The probability drops and flip rates of one class's texts, with its words and random ones deleted."""
    p_top, p_rand = (reader.probabilities(sequences) for sequences in (top, rand))
    p_full = reader.probabilities(full) if full_probabilities is None else full_probabilities[members].float()
    n = len(members)
    return DeletionCheck(
        label=label, words=list(words), texts=n, words_deleted=deleted / n,
        top_drop=float((p_full[:, c] - p_top[:, c]).mean()),
        random_drop=float((p_full[:, c] - p_rand[:, c]).mean()),
        top_flip_rate=float((p_top.argmax(dim=-1) != c).double().mean()),
        random_flip_rate=float((p_rand.argmax(dim=-1) != c).double().mean()),
    )
