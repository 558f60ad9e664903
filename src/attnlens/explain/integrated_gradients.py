"""Integrated gradients (Sundararajan et al., 2017) on the word embeddings, through Captum.

The path runs from a baseline where every non-special token is [PAD] to the input, in the word
embedding space only: positions, token types, [CLS] and [SEP] stay as they are, so the
attribution is about *which words* are there. A token's score is the sum of its embedding's
attribution; it is signed (negative = evidence against the target). A text without words (a
[CLS] [SEP] row) is its own baseline, so all its attributions are 0.

It costs `n_steps` forward and backward passes per text: the expensive reference. The steps of
all texts are not one pass: a pass holds at most `IG_TOKENS_PER_PASS` padded tokens (texts x
steps x length), so memory stays bounded for long reviews and many steps, and Captum sums the
passes' gradients.
"""

from __future__ import annotations

import torch

from attnlens.errors import InputError
from attnlens.explain.erase import pad_token_id
from attnlens.explain.inputs import EncodedBatch
from attnlens.explain.targets import resolve_targets
from attnlens.inference.engine import classify
from attnlens.inference.kernels import input_gradients_only
from attnlens.padding import forward_passes

DEFAULT_STEPS = 32
# Padded tokens per forward + backward pass (at least one text at one step per pass). A pass
# keeps every layer's activations for its backward, so this bounds the method's memory.
IG_TOKENS_PER_PASS = 4096


def _positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"{name}={value!r} must be a positive integer")


def integrated_gradients(
    model,
    batch: EncodedBatch,
    target: int | list[int] | torch.Tensor | None = None,
    n_steps: int = DEFAULT_STEPS,
    tokens_per_pass: int = IG_TOKENS_PER_PASS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (logits, signed attribution per token (batch, seq)).

    Texts go through Captum in groups that fit `tokens_per_pass` at one step each; within a
    group, as many steps share a pass as fit.
    """
    _positive_int("n_steps", n_steps)
    _positive_int("tokens_per_pass", tokens_per_pass)
    with torch.inference_mode(False), torch.no_grad():
        logits = classify(model, **batch.model_inputs())
    targets = resolve_targets(logits, target)

    def target_logits(input_ids, attention_mask, token_type_ids):
        # Captum evaluates some passes under no_grad, where the engine would take its packed
        # layout and the embedding output would change shape; keep the padded one.
        with torch.enable_grad():
            return classify(model, input_ids, attention_mask, token_type_ids, unpad=False)

    from captum.attr import LayerIntegratedGradients  # heavy; only this method needs it

    pad_id = pad_token_id(model)
    explainer = LayerIntegratedGradients(target_logits, model.get_input_embeddings())  # the model contract
    scores = torch.zeros(batch.input_ids.shape, dtype=torch.float32, device=batch.input_ids.device)
    for rows in forward_passes(batch.lengths, max_tokens=tokens_per_pass):
        group = batch if len(rows) == len(batch) else batch.select(rows)
        width = group.input_ids.shape[1]
        # Captum puts every text of a call in each internal batch, at internal_batch_size // texts
        # steps (at least one).
        texts_x_steps = max(len(rows), tokens_per_pass // width)
        baseline = torch.where(group.special, group.input_ids, torch.full_like(group.input_ids, pad_id))
        # Only the embeddings' output is differentiated, so the products keep inference's packed
        # kernels (docs/benchmarks.md, "Explanation cost").
        with torch.inference_mode(False), torch.enable_grad(), input_gradients_only():
            attributions = explainer.attribute(
                group.input_ids,
                baselines=baseline,
                target=targets[rows],
                additional_forward_args=(group.attention_mask, group.token_type_ids),
                n_steps=n_steps,
                method="gausslegendre",
                internal_batch_size=texts_x_steps,
            )  # (texts, seq, hidden)
        scores[rows, :width] = attributions.sum(dim=-1).detach().float()
    return logits, scores
