"""Gradient-weighted attention rollout (Chefer, Gur & Wolf, 2021, "Generic Attention-model
Explainability for Interpreting Bi-Modal and Encoder-Decoder Transformers").

Per layer, the attention map is weighted by the gradient of the target logit with respect to
it and only the positive part is kept, averaged over heads: `Ā = mean_h (∇A ⊙ A)⁺`. Relevance
is propagated as `R ← R + Ā R` from the first layer up, and the [CLS] row of `R` scores the
tokens.

Cost: one forward and one backward. Only the [CLS] row is ever needed, so instead of the full
`R` a row vector `r = e_cls (I + Ā_L) … (I + Ā_1)` is accumulated during the backward pass, where
the gradients arrive last layer first — exactly the order of that product. The backward is
asked only for the gradient of the first layer's attention, so autograd skips every weight
gradient and stops one layer above the embeddings.
"""

from __future__ import annotations

import torch

from attnlens.explain.inputs import EncodedBatch
from attnlens.explain.targets import resolve_targets


def gradient_weighted_rollout(
    model, batch: EncodedBatch, target: int | list[int] | torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (logits, relevance of each token for the target class (batch, seq))."""
    probs_by_layer: dict[int, torch.Tensor] = {}
    state: dict[str, torch.Tensor] = {}

    def weigh_and_accumulate(layer_index: int, grad: torch.Tensor) -> None:
        probs = probs_by_layer.pop(layer_index)  # drop our reference as soon as it is used
        weighted = (grad * probs).clamp(min=0).mean(dim=1).float()  # (batch, seq, seq)
        row = state["row"]  # (batch, seq)
        state["row"] = row + torch.bmm(row.unsqueeze(1), weighted).squeeze(1)

    def capture(layer_index: int, probs: torch.Tensor) -> None:
        probs_by_layer[layer_index] = probs
        probs.register_hook(lambda grad: weigh_and_accumulate(layer_index, grad))

    def require_grad(module, inputs, output: torch.Tensor) -> torch.Tensor:
        # A model whose weights were frozen (a common serving habit) would give attention maps
        # without a graph; making the embeddings a graph input restores it.
        return output if output.requires_grad else output.detach().requires_grad_()

    handle = model.bert.embeddings.register_forward_hook(require_grad)
    try:
        # The service may call us under no_grad or inference_mode; this method needs autograd.
        with torch.inference_mode(False), torch.enable_grad():
            logits = model(**batch.model_inputs(), attention_hook=capture).logits
            targets = resolve_targets(logits.detach(), target)
            seq = batch.input_ids.shape[1]
            state["row"] = torch.zeros(len(batch), seq, dtype=torch.float32, device=logits.device)
            state["row"][:, 0] = 1.0  # e_cls
            first_layer = min(probs_by_layer)
            objective = logits.gather(1, targets.unsqueeze(1)).sum()  # examples are independent in eval mode
            torch.autograd.grad(objective, inputs=[probs_by_layer[first_layer]])
    finally:
        handle.remove()
        probs_by_layer.clear()
    return logits.detach(), state["row"]
