"""Attention rollout (Abnar & Zuidema, 2020, "Quantifying Attention Flow in Transformers").

Each layer's head-averaged attention is mixed with the identity for the residual connection,
`0.5 * A + 0.5 * I` (rows still sum to 1), and the layers are multiplied together. The product is
accumulated while the forward pass runs, through the model's `attention_chunk_hook`, so only
one seq x seq matrix per example is alive at a time instead of every layer's map, and each layer
is folded in while its map is still in cache (the model computes attention a few examples at a
time, `BertSelfAttention.attend_in_chunks`). The last layer contributes only its [CLS] row, the
one row of the product that is read.
"""

from __future__ import annotations

import torch

from attnlens.explain.inputs import EncodedBatch
from attnlens.inference.engine import classify


def _with_residual(probs: torch.Tensor) -> torch.Tensor:
    """(..., heads, rows, seq) probabilities -> (..., rows, seq) head mean plus residual identity.

    `rows` is seq, or the first query rows only (the last layer's [CLS] row): their identity rows.
    """
    mixed = probs.mean(dim=-3).mul_(0.5)  # a fresh tensor: the identity is added in place
    mixed.diagonal(dim1=-2, dim2=-1).add_(0.5)
    return mixed


@torch.no_grad()
def attention_rollout(model, batch: EncodedBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (logits, the [CLS] row of the rollout (batch, seq)) from one forward pass."""
    rollouts: dict[int, torch.Tensor] = {}  # first example of a chunk -> (chunk, rows, length)

    def accumulate(layer_index: int, first: int, probs: torch.Tensor) -> None:
        layer = _with_residual(probs.float())
        previous = rollouts.get(first)
        # Later layers multiply from the left: information flows from the input upwards.
        rollouts[first] = layer if previous is None else torch.bmm(layer, previous)

    # The [CLS] row of the product needs only the last layer's [CLS] row, so that layer computes
    # just that row, as the plain inference forward does.
    logits = classify(model, **batch.model_inputs(), attention_chunk_hook=accumulate, last_layer_cls_only=True)
    return logits, batch.from_chunks({first: rollout[:, 0] for first, rollout in rollouts.items()})
