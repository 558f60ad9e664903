"""The result of explaining one prediction: per-token and per-word importances with offsets.

Offsets are character offsets into the caller's original text (not the normalised text the
tokenizer saw), so a front end can highlight `text[start:end]` without re-tokenising.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


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


@dataclass
class Explanation:
    """Why the model predicted `label` for `text`, according to `method`."""

    text: str
    method: str
    label: str
    target: int
    probabilities: dict[str, float]
    truncated: bool
    tokens: list[TokenImportance] = field(default_factory=list)
    words: list[WordImportance] = field(default_factory=list)

    def to_dict(self) -> dict:
        """Plain JSON-ready types only (the service returns this as-is)."""
        return asdict(self)

    def top_words(self, k: int = 5) -> list[WordImportance]:
        """The k most important words, most important first (ties broken by raw attribution)."""
        return sorted(self.words, key=lambda w: (w.score, w.attribution), reverse=True)[:k]
