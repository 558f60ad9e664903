"""The `native` explanation: a baseline's own attention weights, at word and (HAN) sentence level.

For the BiRNN a token's raw score is its pooling weight. For the HAN it is its word weight times
its sentence's weight, the share of the document vector that flows through the token (the two
levels multiply exactly as the model composes them), so word scores of different sentences are
comparable. The sentence level is the HAN's own sentence attention (`Explanation.sentences`,
`attnlens.explain.sentence_importances`). Same output format as every other method
(`attnlens.explain.Explanation`); the explain API normalises, merges word pieces and groups sentences.
It lives in explain/ like every method, so the baselines never import explanation code.
"""

from __future__ import annotations

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


def sentence_shares(token_scores: torch.Tensor, sentence_ids: torch.Tensor) -> torch.Tensor:
    """(batch, sentences) sum of `token_attention` over each sentence's tokens, specials included.

    For the HAN this *is* its sentence attention: a token's share is its word weight times its
    sentence's weight, and the word weights of a sentence sum to 1 over all its tokens, [CLS] and
    [SEP] included. Recovering it from the token shares gives the explain API the sentence level
    without a second forward and without a second kind of method result.
    """
    sentences = int(sentence_ids.max()) + 1
    shares = token_scores.double().masked_fill(sentence_ids < 0, 0.0)
    totals = shares.new_zeros(shares.shape[0], sentences)
    return totals.scatter_add_(1, sentence_ids.clamp(min=0), shares)

