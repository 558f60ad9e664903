"""Gradient-weighted attention rollout (`grad_rollout`) from one forward and one backward pass.

Three rules, none of which computes a weight gradient. The default and the deletion rule explain
the target's log-odds `y = logit_t − logsumexp_(k≠t) logit_k`; Chefer's rule, as published, its
logit.

`rule="conservative"` (the default) carries `y` back to the tokens with the conservative backward
of Ali et al. (2022, "XAI for Transformers: Better Explanations through Conservative
Propagation"; `attnlens.explain.conservative`): attention weights, LayerNorm scales and the
nonlinearities' gates are held constant, so each token's gradient × input at the first layer's
input is its share of `y`. Layer by layer, the edge from key j to query i of head h carries
`A_ij · ∂y/∂A_ij` (Chefer's gradient × attention, signed and per head) and the residual carries
the rest. Why it is the default: it is the most faithful rule on the fine-tuned models measured,
and it holds where attention saturates, because a weight held constant cannot vanish with the
softmax's gradient, so a word that every query reads is credited with what they read.

`rule="chefer"` is Chefer, Gur & Wolf (2021, "Generic Attention-model Explainability") as
published: per layer `Ā = mean_h (∇A ⊙ A)⁺` with ∇ of the target logit, `R ← R + Ā R` from the
first layer up, and the [CLS] row of `R` scores the tokens. Only that row is needed, so the row
vector `r = e_cls (I + Ā_L) … (I + Ā_1)` is built during the backward, where the gradients arrive
last layer first. Kept for comparison with the literature.

`rule="deletion"` estimates to first order how much `y` would fall if a token were deleted. A
word is deleted by removing its key column from every attention row of every layer (what the
padding mask does), so the estimate is the gradient with respect to a gate on key j in all rows:
`Σ_layers Σ_heads Σ_(i≠j) ∂y/∂s_ij` with `s` the pre-softmax scores and
`∂y/∂s_ij = A_ij (∂y/∂A_ij − Σ_k A_ik ∂y/∂A_ik)`, Chefer's `∇A ⊙ A` centred by the softmax's
Jacobian. Every query row counts, signs are kept until the end, and j's own row is left out (once
j is deleted nobody reads its state). AtMan (Deb et al., 2023) suppresses a token the same way
with one forward pass per token; this is its first-order relative with one backward for all
tokens. Being first order, it misses a word that attention is saturated on.

Why the log-odds: deleting words is scored by the fall of `p_t`, which the log-odds track
monotonically, while a raw-logit gradient also credits evidence that raises every logit; and the
gradient of `log p_t` is this one times `1 − p_t`, which loses all precision once `p_t` rounds to
1 in float32.

Cost: one forward and one backward. Chefer's and the deletion rule ask the backward only for the
first layer's attention, so it stops one layer above the embeddings, and each layer's
contribution is summed as its gradient arrives. The conservative backward goes down to the first
layer's input, but with attention, norms and gates constant it has no softmax, LayerNorm or GELU
derivative to compute, only products. The forward runs on the packed real tokens and computes the
last layer for [CLS] only (`last_layer_cls_only`), attention runs a few examples at a time
(`attention_chunk_hook`) so each chunk's map and its gradient are read from cache, and the
products keep inference's packed kernels (`attnlens.inference.kernels.input_gradients_only`). Faithfulness
and cost: docs/benchmarks.md, Explanation faithfulness and Explanation cost; how the rules were
chosen: docs/experiments.md, Explanations.
"""

from __future__ import annotations

import torch

from attnlens.errors import InputError
from attnlens.explain.conservative import CONSERVATIVE
from attnlens.explain.inputs import EncodedBatch
from attnlens.explain.targets import resolve_targets
from attnlens.inference.engine import classify
from attnlens.inference.kernels import input_gradients_only
from attnlens.models.contract import TransformerClassifier

RULES = ("conservative", "chefer", "deletion")


def target_log_odds(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log(p_t / (1 - p_t)) per example, computed from logits so it never saturates.

    A one-output model has no other class to weigh against; its logit is the objective then.
    """
    if logits.shape[-1] == 1:
        return logits[:, 0]
    is_target = torch.nn.functional.one_hot(targets, logits.shape[-1]).bool()
    others = logits.masked_fill(is_target, float("-inf")).logsumexp(dim=-1)
    return logits.gather(1, targets.unsqueeze(1)).squeeze(1) - others  # (batch,)


def deletion_relevance(probs: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """Per key: Σ_heads Σ_(queries i ≠ key) ∂y/∂s_ij, one layer's first-order deletion effect.

    probs and grad (..., heads, q, k) -> (..., k).
    """
    weighted = grad * probs  # Chefer's ∇A ⊙ A
    score_grad = weighted - probs * weighted.sum(dim=-1, keepdim=True)  # ∂y/∂s, softmax Jacobian
    own_row = score_grad.diagonal(dim1=-2, dim2=-1).sum(dim=-2)  # (..., q): edge j <- j
    # q < k for the last layer, computed for [CLS] only: keys without a query row have no own edge.
    own_row = torch.nn.functional.pad(own_row, (0, score_grad.shape[-1] - score_grad.shape[-2]))
    return (score_grad.sum(dim=(-3, -2)) - own_row).float()


def gradient_weighted_rollout(
    model, batch: EncodedBatch, target: int | list[int] | torch.Tensor | None = None,
    rule: str = "conservative",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (logits, relevance of each token for the target class (batch, seq)).

    `rule="conservative"` (default): each token's share of the target's log-odds under the
    conservative backward; signed. `rule="chefer"`: Chefer et al.'s [CLS] row of
    `Π (I + mean_h (∇A ⊙ A)⁺)` with ∇ of the target logit, as published. `rule="deletion"`: the
    first-order effect of deleting each token on the target's log-odds, through every attention
    edge; signed. See the module docstring.
    """
    if rule not in RULES:
        raise InputError(f"rule={rule!r} is not a grad_rollout rule; choose one of {', '.join(RULES)}")
    if rule == "conservative":
        return conservative_relevance(model, batch, target)
    # The model hands over the maps a chunk of examples at a time (see ChunkAttentionHook), so
    # each backward step below works on one chunk's map while it is in cache.
    probs_by_layer: dict[tuple[int, int], torch.Tensor] = {}  # (layer, first example) -> probs
    relevance: dict[int, torch.Tensor] = {}  # first example -> (chunk, length)

    def accumulate_deletion(layer_index: int, first: int, grad: torch.Tensor) -> None:
        probs = probs_by_layer.pop((layer_index, first))  # drop our reference as soon as it is used
        relevance[first] = relevance[first] + deletion_relevance(probs.detach(), grad)

    def accumulate_chefer(layer_index: int, first: int, grad: torch.Tensor) -> None:
        # Gradients arrive last layer first: exactly the order of e_cls (I + Ā_L) … (I + Ā_1).
        probs = probs_by_layer.pop((layer_index, first))
        weighted = (grad * probs).clamp(min=0).mean(dim=1).float()  # (chunk, rows, length)
        row = relevance[first]  # (chunk, length)
        # The last layer holds its [CLS] row only (rows = 1); its other rows are exactly zero here,
        # since no other query of the last layer reaches the logits.
        rows = weighted.shape[1]
        relevance[first] = row + torch.bmm(row[:, :rows].unsqueeze(1), weighted).squeeze(1)

    accumulate = accumulate_deletion if rule == "deletion" else accumulate_chefer

    def capture(layer_index: int, first: int, probs: torch.Tensor) -> None:
        probs_by_layer[(layer_index, first)] = probs
        probs.register_hook(lambda grad: accumulate(layer_index, first, grad))

    def require_grad(module, inputs, output: torch.Tensor) -> torch.Tensor:
        return _graph_input(output)

    handle = _embeddings(model).register_forward_hook(require_grad)
    try:
        # The service may call us under no_grad or inference_mode; this method needs autograd.
        # Only activations are differentiated, so the products keep inference's packed kernels.
        with torch.inference_mode(False), torch.enable_grad(), input_gradients_only():
            # Only the logits and the last layer's [CLS] row are read: in eval mode the forward
            # then skips padding and the last layer's other rows, and so does the backward.
            logits = classify(model, **batch.model_inputs(), attention_chunk_hook=capture, last_layer_cls_only=True)
            targets = resolve_targets(logits.detach(), target)
            first_layer = min(layer for layer, _ in probs_by_layer)
            first_maps = {first: probs for (layer, first), probs in probs_by_layer.items() if layer == first_layer}
            for first, probs in first_maps.items():  # (chunk, heads, length, length)
                relevance[first] = torch.zeros(probs.shape[0], probs.shape[-1], dtype=torch.float32,
                                               device=logits.device)
            if rule == "chefer":
                for row in relevance.values():
                    row[:, 0] = 1.0  # e_cls
                objective = logits.gather(1, targets.unsqueeze(1)).sum()
            else:
                objective = target_log_odds(logits, targets).sum()
            # Examples are independent in eval mode, so one backward of the sum serves the batch.
            torch.autograd.grad(objective, inputs=list(first_maps.values()))
    finally:
        handle.remove()
        probs_by_layer.clear()
    return logits.detach(), batch.from_chunks(relevance)


def _embeddings(model):
    if not isinstance(model, TransformerClassifier):
        raise InputError(f"{type(model).__name__} has no transformer attention maps: grad_rollout needs a "
                         "Transformer encoder (BERT, RoBERTa, DistilBERT)")
    return model.embeddings


def _graph_input(output: torch.Tensor) -> torch.Tensor:
    """The embeddings' output as a graph input. A model whose weights were frozen (a common serving
    habit) would give activations without a graph; making the embeddings a graph input restores
    it. Hooks sit on the embedding module, which the engine calls in every layout."""
    return output if output.requires_grad else output.detach().requires_grad_()


def conservative_relevance(model, batch: EncodedBatch, target=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (logits, each token's share of the target's log-odds (batch, seq)) under the
    conservative backward (`rule="conservative"`, see the module docstring); signed."""
    captured: list[torch.Tensor] = []

    def capture(module, inputs, output: torch.Tensor) -> torch.Tensor:
        captured.append(_graph_input(output))
        return captured[-1]

    handle = _embeddings(model).register_forward_hook(capture)
    try:
        with torch.inference_mode(False), torch.enable_grad(), input_gradients_only():
            # Only the logits are read, so the forward runs packed and [CLS]-only in the last layer.
            # The chunk hook reads nothing; it routes attention through the explicit softmax, whose
            # backward with constant weights is one product with Aᵀ, where the fused kernel's
            # would compute query and key gradients only to drop them.
            logits = classify(model, **batch.model_inputs(), last_layer_cls_only=True,
                              attention_chunk_hook=lambda *_: None, rule=CONSERVATIVE)
            targets = resolve_targets(logits.detach(), target)
            (grad,) = torch.autograd.grad(target_log_odds(logits, targets).sum(), captured)
    finally:
        handle.remove()
    relevance = (grad * captured[0].detach()).sum(dim=-1).float()  # (tokens,) or (batch, seq)
    return logits.detach(), _token_layout(batch, relevance)


def _token_layout(batch: EncodedBatch, values: torch.Tensor) -> torch.Tensor:
    """Per-token values -> (batch, seq), zero at padding. The padded forward (train mode) gives
    them as (batch, seq); the chunked packed one as (tokens,), the real tokens alone, row-major."""
    return values * batch.attention_mask.bool() if values.dim() == 2 else batch.from_packed(values)
