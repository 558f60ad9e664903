"""Plain attention: the last layer's [CLS] row, averaged over heads.

The cheapest view, and the one the literature warns about (attention is not explanation); it
is here as the naive reference the other methods are measured against.
"""

from __future__ import annotations

import torch

from attnlens.explain.inputs import EncodedBatch
from attnlens.inference.engine import classify


@torch.no_grad()
def last_layer_cls_attention(model, batch: EncodedBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (logits, scores (batch, seq)) from one forward pass, keeping only the last layer's map."""
    last_layer = len(model.transformer_layers()) - 1
    captured: dict[int, torch.Tensor] = {}  # first example of a chunk -> (chunk, length)

    def keep_last(layer_index: int, first: int, probs: torch.Tensor) -> None:
        if layer_index == last_layer:
            captured[first] = probs[:, :, 0, :].mean(dim=1)

    logits = classify(model, **batch.model_inputs(), attention_chunk_hook=keep_last, last_layer_cls_only=True)
    return logits, batch.from_chunks(captured)
