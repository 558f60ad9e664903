"""The sentence level of every explanation: which sentences the tokens form, and what each one scores.

The split is the model's. A HAN splits by its own rule (`HierarchicalAttentionNetwork.sentence_split`:
its end ids and its `max_sentence_length` cut), so its sentences are exactly the ones it attended
over. Every other model (BERT, BiRNN) has no sentences of its own and gets the same end-punctuation
rule without the cut: a sentence ends after a token whose text is ".", "!" or "?" (so "!!!" and
"..." give one-token sentences, as in the HAN, where the tokenizer splits them; a byte-level BPE
piece of end punctuation only, such as "Ġ." or "...", ends one too).

A sentence's score is the sum of its tokens' normalised scores, so sentence scores sum to 1 like
word scores. The exception is the HAN's `native` method, whose sentence level is the HAN's own
sentence attention, renormalised over the sentences that contain text (a sentence of special
tokens only, e.g. a lone [SEP] after a final "!", has nothing to show and is left out).

Only the split is computed when an explanation is built, and only for models that have their own:
the sentences themselves are grouped on first use (`Explanation.sentences`, with
`attnlens.explain.explanation.group_sentences`), because the service builds explanations for every
`/predict` with `explain: true` and most callers never ask for them.
"""

from __future__ import annotations

import torch

from attnlens.baselines.config import SENTENCE_END_TOKENS
from attnlens.explain.inputs import EncodedBatch
from attnlens.explain.native import sentence_shares

_ENDS = frozenset(SENTENCE_END_TOKENS)


def punctuation_split(pieces: list[str]) -> list[int]:
    """Sentence index of each token from its text: a sentence ends after a token whose text is end
    punctuation alone (".", "!", "?"; a BPE piece may hold several, "..." or "?!", and the space
    before them)."""
    indices, current = [], 0
    for piece in pieces:
        indices.append(current)
        piece = piece.strip()
        if piece and set(piece) <= _ENDS:
            current += 1
    return indices


def model_split(model, batch: EncodedBatch, method: str, raw: torch.Tensor
                ) -> tuple[list[list[int]] | None, list[list[float]] | None]:
    """(sentence index of every real token, the model's own sentence weights) per example.

    Both are None for models without a split of their own (the punctuation rule then applies
    lazily); the weights are only there for the HAN's `native` method.
    """
    split = getattr(model, "sentence_split", None)
    if split is None:
        return None, None
    sentence, _ = split(batch.input_ids, batch.attention_mask.bool())  # (batch, seq); -1 on padding
    indices = [row[:length] for row, length in zip(sentence.tolist(), batch.lengths, strict=True)]
    if method != "native":
        return indices, None
    return indices, sentence_shares(raw.detach(), sentence).tolist()

