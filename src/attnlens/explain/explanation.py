"""The result of explaining one prediction: per-token, per-word and per-sentence importances with offsets.

Offsets are character offsets into the caller's original text (not the normalised text the
tokenizer saw), so a front end can highlight `text[start:end]` without re-tokenising.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from functools import cached_property

from attnlens.explain.sentences import punctuation_split


@dataclass(frozen=True)
class TokenImportance:
    """One word piece. `score` is 0 for special tokens; the others' scores sum to 1.

    `attribution` is the method's raw value before normalisation (signed for integrated
    gradients and occlusion), kept so ties among zero scores can still be ranked.
    """

    token: str
    start: int
    end: int
    score: float
    special: bool
    attribution: float = 0.0


@dataclass(frozen=True)
class WordImportance:
    """A word of the input (its pieces merged); scores of all words sum to 1."""

    word: str
    start: int
    end: int
    score: float
    attribution: float = 0.0


@dataclass(frozen=True)
class SentenceImportance:
    """A sentence of the input (rule: attnlens.explain.sentences); scores of all sentences sum to 1."""

    text: str
    start: int
    end: int
    score: float


def visible_span(text: str, start: int, end: int) -> tuple[int, int]:
    """`start`, `end` moved inwards past white space: a byte-level BPE piece carries the space
    before its word ("Ġfilm", and the first piece of a text keeps it in its offsets)."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def group_sentences(text: str, tokens: list[TokenImportance], token_sentences: list[int] | None = None,
                    sentence_weights: list[float] | None = None) -> list[SentenceImportance]:
    """`SentenceImportance`s in reading order from an explanation's tokens (rules: attnlens.explain.sentences).

    A sentence spans from its first non-special token's start to its last one's end in the
    caller's original text, without white space at either end; special tokens neither score nor
    stretch a span. The punctuation rule reads each token's text, not the token string, which
    holds more than the characters for some tokenizers ("Ġ." in byte-level BPE).
    """
    if token_sentences is None:
        token_sentences = punctuation_split([text[t.start : t.end] for t in tokens])
    spans: dict[int, list] = {}  # sentence index -> [start, end, summed token score]
    for token, sentence in zip(tokens, token_sentences, strict=True):
        if token.special or sentence < 0:
            continue
        span = spans.get(sentence)
        if span is None:
            spans[sentence] = [token.start, token.end, token.score]
            continue
        span[0], span[1] = min(span[0], token.start), max(span[1], token.end)
        span[2] += token.score
    if sentence_weights is not None:
        total = sum(sentence_weights[s] for s in spans) or 1.0
        for sentence, span in spans.items():
            span[2] = sentence_weights[sentence] / total
    sentences = []
    for start, end, score in spans.values():
        start, end = visible_span(text, start, end)
        sentences.append(SentenceImportance(text=text[start:end], start=start, end=end, score=score))
    return sentences


# Fields that only serve `Explanation.sentences`; `to_dict` shows the sentences instead.
_SENTENCE_BOOKKEEPING = ("token_sentences", "sentence_weights")


@dataclass
class Explanation:
    """Why the model predicted `label` for `text`, according to `method`."""

    text: str
    method: str
    label: str
    target: int
    probabilities: dict[str, float]
    truncated: bool
    num_windows: int = 1  # windows read and combined (> 1 only for long texts with long_text="chunk")
    tokens: list[TokenImportance] = field(default_factory=list)
    words: list[WordImportance] = field(default_factory=list)
    # The model's sentence split (sentence index per token) where it has one (HAN), else None for
    # the punctuation rule; and the model's own sentence weights (HAN `native`), else None for sums
    # of token scores. Kept so the sentence level costs nothing until someone asks for it.
    token_sentences: list[int] | None = field(default=None, repr=False)
    sentence_weights: list[float] | None = field(default=None, repr=False)

    @cached_property
    def sentences(self) -> list[SentenceImportance]:
        """The sentences of the text read, in reading order, with scores summing to 1."""
        return group_sentences(self.text, self.tokens, self.token_sentences, self.sentence_weights)

    def to_dict(self) -> dict:
        """Plain JSON-ready types only: every field but the sentence bookkeeping, plus `sentences`."""
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in _SENTENCE_BOOKKEEPING}
        values["tokens"] = [asdict(t) for t in self.tokens]
        values["words"] = [asdict(w) for w in self.words]
        values["probabilities"] = dict(self.probabilities)
        values["sentences"] = [asdict(s) for s in self.sentences]
        return values

    def top_words(self, k: int = 5) -> list[WordImportance]:
        """The k most important words, most important first (ties broken by raw attribution)."""
        return sorted(self.words, key=lambda w: (w.score, w.attribution), reverse=True)[:k]
