"""The `native` explanation: a baseline's own attention weights, at word and (HAN) sentence level.

For the BiRNN a token's raw score is its pooling weight. For the HAN it is its word weight times
its sentence's weight, the share of the document vector that flows through the token (the two
levels multiply exactly as the model composes them), so word scores of different sentences are
comparable. `sentence_importances` returns the sentence level itself. Same output format as every
other method (`attnlens.explain.Explanation`); the explain API normalises and merges word pieces.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from attnlens.errors import InputError


def _own_attention(model, inputs: dict[str, torch.Tensor]):
    if "native" not in getattr(model, "supported_explanations", ()):
        raise InputError(f"method 'native' needs a model with its own attention (birnn_attention, han); "
                         f"{type(model).__name__} has none, use another method")
    return model(**inputs)


def token_attention(output) -> torch.Tensor:
    """(batch, seq) share of the pooled vector each token carries (HAN: word x sentence weight)."""
    if output.sentence_attentions is None:
        return output.attentions
    sentence = output.sentence_ids.clamp(min=0)
    sentence_weight = output.sentence_attentions.gather(1, sentence)  # (batch, seq)
    return output.attentions * sentence_weight * (output.sentence_ids >= 0)


@torch.no_grad()
def native_attention(model, batch, target=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Explain-API method: (logits, token scores (batch, seq)); class-agnostic like plain attention."""
    output = _own_attention(model, batch.model_inputs())
    return output.logits, token_attention(output).float()


@dataclass(frozen=True)
class SentenceImportance:
    """A sentence of the input as the HAN split it, with its attention weight (weights sum to 1)."""

    text: str
    start: int
    end: int
    score: float


@torch.no_grad()
def sentence_importances(model, tokenizer, text: str, max_length: int | None = None) -> list[SentenceImportance]:
    """The HAN's sentence-level attention over `text`, with character spans into `text`."""
    from attnlens.explain.inputs import encode_texts, resolve_max_length

    batch = encode_texts(tokenizer, [text], resolve_max_length(model, max_length), next(model.parameters()).device)
    model_was_training = model.training
    model.eval()
    try:
        output = _own_attention(model, batch.model_inputs())
    finally:
        model.train(model_was_training)
    if output.sentence_attentions is None:
        raise InputError(f"{type(model).__name__} has no sentence level; sentence importances need a HAN")
    spans: dict[int, list[int]] = {}
    for j, (start, end) in enumerate(batch.offsets[0]):
        if batch.special[0, j]:
            continue
        sentence = int(output.sentence_ids[0, j])
        span = spans.setdefault(sentence, [start, end])
        span[0], span[1] = min(span[0], start), max(span[1], end)
    weights = output.sentence_attentions[0]
    kept = {s: float(weights[s]) for s in spans}
    total = sum(kept.values()) or 1.0  # a sentence of specials only ([SEP] alone) has no text to show
    return [SentenceImportance(text=text[a:b], start=a, end=b, score=kept[s] / total) for s, (a, b) in spans.items()]
