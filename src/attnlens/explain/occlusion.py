"""Leave-one-word-out occlusion: a word's importance is how much p(target) drops without it.

Faithful by construction to deletion-based metrics, and model-agnostic; it costs one forward pass
per word, batched. Words are deleted (all their pieces), see `attnlens.explain.erase`. A word's
drop is shared equally among its pieces so that word scores are exactly the drops.
"""

from __future__ import annotations

import torch

from attnlens.explain.erase import ids_without_words, pad_token_id, target_probabilities, words_in_order
from attnlens.explain.inputs import EncodedBatch
from attnlens.explain.targets import resolve_targets


@torch.no_grad()
def leave_one_word_out(
    model,
    batch: EncodedBatch,
    target: int | list[int] | torch.Tensor | None = None,
    chunk_size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (logits, signed probability drop per token (batch, seq))."""
    logits = model(**batch.model_inputs()).logits
    targets = resolve_targets(logits, target).tolist()
    full = logits.float().softmax(dim=-1).cpu()
    pad_id = pad_token_id(model)

    sequences, owners = [], []
    for example in range(len(batch)):
        for word in words_in_order(batch, example):
            sequences.append(ids_without_words(batch, example, [word]))
            owners.append((example, word))
    occluded = target_probabilities(model, sequences, [targets[e] for e, _ in owners], pad_id, chunk_size)

    scores = torch.zeros(batch.input_ids.shape, dtype=torch.float32)
    for (example, word), probability in zip(owners, occluded.tolist(), strict=True):
        drop = full[example, targets[example]].item() - probability
        pieces = [j for j, w in enumerate(batch.word_ids[example]) if w == word]
        scores[example, pieces] = drop / len(pieces)
    return logits, scores.to(batch.input_ids.device)
