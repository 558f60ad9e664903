"""Explanations of texts longer than the model's window (`long_text="chunk"`).

A long text is predicted from overlapping windows whose class probabilities are averaged with
equal weights (attnlens.predict, windows placed by attnlens.text_windows). Its explanation reads
the same windows: each window is explained for the text's class (the class of the averaged
probabilities, or the caller's target). A token's raw attribution is the sum, over the windows
that hold it, of its raw attribution in that window times the window's weight in the prediction
(1/k for k windows); the text's scores are then normalised by the rule of every explanation
(attnlens.explain.words: the positive part, summing to 1). Raw attributions, not each window's
normalised scores, are combined because they share a unit (log-odds shares, gradients,
probability drops, attention mass): a window without evidence for the class then adds little,
where normalised scores would give its strongest filler word as much mass as the decisive word
of another window. A token read by two windows (the overlap) collects evidence from both, as the
prediction does. Offsets are the whole text's, so words and sentences cover all of it. A text
that fits in one window is explained as with `long_text="truncate"`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from attnlens.calibration import apply_temperature
from attnlens.explain.explanation import Explanation, TokenImportance
from attnlens.explain.inputs import EncodedText, blank_words_joined
from attnlens.explain.words import normalise, word_importances
from attnlens.text_windows import default_overlap, window_starts
from attnlens.tokenization import tokenize_user_texts


@dataclass
class LongDocument:
    """A text past the window: its tokens (no special tokens) and the windows read from them."""

    text: str
    pieces: list[str]  # the tokenizer's token strings
    offsets: list[tuple[int, int]]
    word_ids: list[int | None]
    starts: list[int]  # first token of each window
    windows: list[EncodedText]

    @property
    def weights(self) -> list[float]:
        """Each window's share of the prediction (attnlens.predict averages them equally)."""
        return [1.0 / len(self.windows)] * len(self.windows)


def encode_documents(tokenizer, texts: list[str], max_length: int, overlap: int | None = None) -> list[LongDocument]:
    """The windows of each text as `EncodedText`s ([CLS] window [SEP]), offsets into the text."""
    body = max_length - 2
    overlap = default_overlap(body) if overlap is None else overlap
    cls_id, sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
    cls_token, sep_token = tokenizer.convert_ids_to_tokens([cls_id, sep_id])
    documents = []
    for text, (ids, offsets, word_ids) in zip(texts, whole_texts(tokenizer, texts), strict=True):
        pieces = tokenizer.convert_ids_to_tokens(ids)
        starts = window_starts(len(ids), body, overlap)
        windows = []
        for start in starts:
            end = start + body
            windows.append(EncodedText(
                input_ids=[cls_id, *ids[start:end], sep_id],
                special=[True, *[False] * len(ids[start:end]), True],
                offsets=[(0, 0), *offsets[start:end], (0, 0)],
                word_ids=[None, *word_ids[start:end], None],
                tokens=[cls_token, *pieces[start:end], sep_token],
                truncated=False,
            ))
        documents.append(LongDocument(text=text, pieces=pieces, offsets=offsets, word_ids=word_ids, starts=starts, windows=windows))
    return documents


def whole_texts(tokenizer, texts: list[str]) -> list[tuple[list[int], list[tuple[int, int]], list[int]]]:
    """(word-piece ids, offsets, word ids) of each whole text, no special tokens, no truncation;
    words of white space alone joined to their neighbour as in attnlens.explain.inputs."""
    if not texts:
        return []
    encoding = tokenize_user_texts(tokenizer, texts, add_special_tokens=False, truncation=False,
                                   return_offsets_mapping=True, verbose=False)
    result = []
    for index, text in enumerate(texts):
        offsets = [tuple(pair) for pair in encoding["offset_mapping"][index]]
        word_ids = blank_words_joined(text, encoding.word_ids(index), offsets)
        result.append((list(encoding["input_ids"][index]), offsets, word_ids))
    return result  # type: ignore[return-value]


def raw_probabilities(explanation: Explanation, temperature: float) -> torch.Tensor:
    """A window's probabilities before calibration (the prediction averages those)."""
    calibrated = torch.tensor([list(explanation.probabilities.values())], dtype=torch.float64)
    return apply_temperature(calibrated, 1.0 / temperature)[0]


def document_probabilities(windows: list[Explanation], weights: list[float], temperature: float) -> torch.Tensor:
    """The text's calibrated probabilities: its windows' raw ones averaged, then calibrated,
    as attnlens.predict computes them."""
    raw = sum(weight * raw_probabilities(window, temperature) for weight, window in zip(weights, windows, strict=True))
    return apply_temperature(raw.unsqueeze(0), temperature)[0]  # type: ignore[union-attr]


def combine(document: LongDocument, windows: list[Explanation], *, method: str, target: int,
            labels: list[str], temperature: float) -> Explanation:
    """One explanation of the whole text from its windows' (all explained for `target`)."""
    weights = document.weights
    attributions = [0.0] * len(document.offsets)
    for start, weight, window in zip(document.starts, weights, windows, strict=True):
        for position, token in enumerate(window.tokens[1:-1], start=start):
            attributions[position] += weight * token.attribution
    raw = torch.tensor([attributions], dtype=torch.float64)
    scores = normalise(raw, torch.zeros_like(raw, dtype=torch.bool))[0].tolist()
    first, last = windows[0].tokens[0], windows[0].tokens[-1]  # [CLS] and [SEP], score 0
    tokens = [first, *(
        TokenImportance(token=document.pieces[p], start=document.offsets[p][0], end=document.offsets[p][1],
                        score=scores[p], special=False, attribution=attributions[p])
        for p in range(len(document.offsets))), last]
    probabilities = document_probabilities(windows, weights, temperature).tolist()
    best = max(range(len(probabilities)), key=probabilities.__getitem__)
    return Explanation(
        text=document.text, method=method, label=labels[best], target=target,
        probabilities={label: float(p) for label, p in zip(labels, probabilities, strict=True)},
        truncated=False, num_windows=len(windows), tokens=tokens,
        words=word_importances(document.text, [None, *document.word_ids, None], tokens),
    )
