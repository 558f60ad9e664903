"""Integrated gradients (Sundararajan et al., 2017) on the word embeddings, through Captum.

The path runs from a baseline where every non-special token is [PAD] to the input, in the word
embedding space only: positions, token types, [CLS] and [SEP] stay as they are, so the
attribution is about *which words* are there. A token's score is the sum of its embedding's
attribution; it is signed (negative = evidence against the target).

It costs `n_steps` forward and backward passes: the expensive reference.
"""

from __future__ import annotations

import torch

from attnlens.errors import InputError
from attnlens.explain.erase import pad_token_id
from attnlens.explain.inputs import EncodedBatch
from attnlens.explain.targets import resolve_targets
from attnlens.kernels import input_gradients_only

DEFAULT_STEPS = 32


def integrated_gradients(
    model,
    batch: EncodedBatch,
    target: int | list[int] | torch.Tensor | None = None,
    n_steps: int = DEFAULT_STEPS,
    internal_batch_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (logits, signed attribution per token (batch, seq))."""
    if not isinstance(n_steps, int) or n_steps < 1:
        raise InputError(f"n_steps={n_steps!r} must be a positive integer")
    with torch.inference_mode(False), torch.no_grad():
        logits = model(**batch.model_inputs()).logits
    targets = resolve_targets(logits, target)

    def target_logits(input_ids, attention_mask, token_type_ids):
        # Captum evaluates some passes under no_grad, where the model may take its packed
        # (unpadded) inference path and the embedding output changes shape; keep the padded one.
        with torch.enable_grad():
            return model(input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).logits

    from captum.attr import LayerIntegratedGradients  # heavy; only this method needs it

    pad_id = pad_token_id(model)
    baseline = torch.where(batch.special, batch.input_ids, torch.full_like(batch.input_ids, pad_id))
    # BERT's word embeddings, or a baseline's (attnlens.baselines expose get_input_embeddings()).
    embeddings = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else model.bert.embeddings.word_embeddings
    explainer = LayerIntegratedGradients(target_logits, embeddings)
    # Only the embeddings' output is differentiated, so the products keep inference's packed
    # kernels (28% less time on SST-2 sentences, docs/benchmarks.md#explanations).
    with torch.inference_mode(False), torch.enable_grad(), input_gradients_only():
        attributions = explainer.attribute(
            batch.input_ids,
            baselines=baseline,
            target=targets,
            additional_forward_args=(batch.attention_mask, batch.token_type_ids),
            n_steps=n_steps,
            method="gausslegendre",
            internal_batch_size=internal_batch_size or len(batch) * n_steps,
        )  # (batch, seq, hidden)
    return logits, attributions.sum(dim=-1).detach().float()
