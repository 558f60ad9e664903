"""Leave-one-word-out occlusion: a word's importance is how much p(target) drops without it.

Faithful by construction to deletion-based metrics, and model-agnostic; it costs one forward pass
per word, batched. Words are deleted (all their pieces), see `attnlens.explain.erase`. A word's
drop is shared equally among its pieces so that word scores are exactly the drops.

The occluded copies go through the model in length-sorted forward passes of at most
`OCCLUSION_TOKENS_PER_PASS` padded tokens: a long review has hundreds of words, hence hundreds of
copies of itself, and a fixed number of copies per pass would make memory grow with the length.
"""

from __future__ import annotations

import torch

from attnlens.errors import InputError
from attnlens.explain.erase import ids_without_words, pad_token_id, target_probabilities, words_in_order
from attnlens.explain.inputs import EncodedBatch
from attnlens.explain.targets import resolve_targets
from attnlens.inference.engine import classify

# Padded tokens per forward pass over the occluded copies (at least one copy per pass).
OCCLUSION_TOKENS_PER_PASS = 8192


@torch.no_grad()
def leave_one_word_out(
    model,
    batch: EncodedBatch,
    target: int | list[int] | torch.Tensor | None = None,
    tokens_per_pass: int = OCCLUSION_TOKENS_PER_PASS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (logits, signed probability drop per token (batch, seq)); a text without words
    (a [CLS] [SEP] row) has nothing to occlude and gets zeros."""
    if isinstance(tokens_per_pass, bool) or not isinstance(tokens_per_pass, int) or tokens_per_pass < 1:
        raise InputError(f"tokens_per_pass={tokens_per_pass!r} must be a positive integer")
    logits = classify(model, **batch.model_inputs())
    targets = resolve_targets(logits, target).tolist()
    full = logits.float().softmax(dim=-1).cpu()
    pad_id = pad_token_id(model)

    sequences, owners = [], []
    for example in range(len(batch)):
        for word in words_in_order(batch, example):
            sequences.append(ids_without_words(batch, example, [word]))
            owners.append((example, word))
    occluded = target_probabilities(model, sequences, [targets[e] for e, _ in owners], pad_id,
                                    batch_size=None, tokens_per_pass=tokens_per_pass)

    scores = torch.zeros(batch.input_ids.shape, dtype=torch.float32)
    for (example, word), probability in zip(owners, occluded.tolist(), strict=True):
        drop = full[example, targets[example]].item() - probability
        pieces = [j for j, w in enumerate(batch.word_ids[example]) if w == word]
        scores[example, pieces] = drop / len(pieces)
    return logits, scores.to(batch.input_ids.device)
