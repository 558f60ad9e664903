"""Which words drive each class over a whole dataset: word-level explanation scores summed and
averaged per predicted class.

Each explanation says how much of the evidence for its predicted class each word carries (scores
sum to 1 per text). Summing a word's scores over the texts predicted as a class ranks what the
model relies on most *overall* (frequent words rise); the mean over its occurrences ranks what
weighs most *when present* (kept to words seen at least `min_count` times, else one-off words
would top the list). Words are lower-cased; tokens without a letter or digit (punctuation) are
left out, since they would drown the list without saying what the model learned.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from attnlens.explain.explanation import Explanation

DEFAULT_TOP_K = 15
DEFAULT_MIN_COUNT = 5


@dataclass
class WordStat:
    word: str
    total: float  # summed score over the texts of the group
    mean: float  # total / occurrences
    count: int  # occurrences in the group
    texts: int  # texts of the group containing it
    example: int  # index of the text where it scored highest
    example_score: float


@dataclass
class ClassWords:
    """The top words of one group of texts (a predicted class, or the errors predicted as it)."""

    label: str
    texts: int
    by_total: list[WordStat]
    by_mean: list[WordStat]


def word_key(word: str) -> str | None:
    """The form words are counted under, or None for a token that is not a word."""
    key = word.strip().lower()
    return key if any(character.isalnum() for character in key) else None


def top_words(explanations: Sequence[Explanation], members: Sequence[int], label: str, *,
              top_k: int = DEFAULT_TOP_K, min_count: int = DEFAULT_MIN_COUNT) -> ClassWords:
    totals: dict[str, list] = {}  # word -> [total, count, texts, example, example score]
    for index in members:
        seen: set[str] = set()
        for word in explanations[index].words:
            key = word_key(word.word)
            if key is None:
                continue
            stat = totals.setdefault(key, [0.0, 0, 0, index, word.score])
            stat[0] += word.score
            stat[1] += 1
            if key not in seen:
                stat[2] += 1
                seen.add(key)
            if word.score > stat[4]:
                stat[3], stat[4] = index, word.score
    stats = [WordStat(word=key, total=total, mean=total / count, count=count, texts=texts, example=example,
                      example_score=example_score)
             for key, (total, count, texts, example, example_score) in totals.items()]
    by_total = sorted(stats, key=lambda s: (-s.total, s.word))[:top_k]
    by_mean = sorted((s for s in stats if s.count >= min_count), key=lambda s: (-s.mean, s.word))[:top_k]
    return ClassWords(label=label, texts=len(members), by_total=by_total, by_mean=by_mean)


def words_by_class(explanations: Sequence[Explanation], predictions: Sequence[int], labels: Sequence[str],
                   *, only: Sequence[bool] | None = None, top_k: int = DEFAULT_TOP_K,
                   min_count: int = DEFAULT_MIN_COUNT) -> list[ClassWords]:
    """One `ClassWords` per class over the texts predicted as it (and, with `only`, flagged)."""
    result = []
    for c, label in enumerate(labels):
        members = [i for i, p in enumerate(predictions) if p == c and (only is None or only[i])]
        result.append(top_words(explanations, members, label, top_k=top_k, min_count=min_count))
    return result
