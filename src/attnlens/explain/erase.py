"""Removing words from encoded inputs: shared by occlusion and the ERASER faithfulness metrics.

Words are removed by deleting all their word pieces (the sequence gets shorter), not by
replacing them with [MASK]: the model never saw [MASK] while fine-tuning, and ERASER defines
comprehensiveness and sufficiency by deletion.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from attnlens.explain.inputs import EncodedBatch
from attnlens.inference.engine import classify
from attnlens.padding import length_sorted_batches, padded_inputs, padding_id


def pad_token_id(model) -> int:
    """The id padding uses; BERT checkpoints call it 0 when the config does not say."""
    return padding_id(model.config)


def words_in_order(batch: EncodedBatch, example: int) -> list[int]:
    """Word ids of one example in reading order (the first-seen order of its tokens)."""
    return list(dict.fromkeys(w for w in batch.word_ids[example] if w is not None))


def ids_without_words(batch: EncodedBatch, example: int, removed: Iterable[int]) -> list[int]:
    """The example's token ids with every piece of the `removed` words deleted; specials stay."""
    removed = set(removed)
    ids = batch.input_ids[example, : batch.lengths[example]].tolist()
    return [t for t, w in zip(ids, batch.word_ids[example], strict=True) if w is None or w not in removed]


@torch.no_grad()
def class_probabilities(
    model, sequences: list[list[int]], pad_id: int, batch_size: int | None = 64, tokens_per_pass: int | None = None,
) -> torch.Tensor:
    """(n, classes) probabilities of each sequence, in chunks sorted by length so padding stays small.

    A chunk holds at most `batch_size` sequences and at most `tokens_per_pass` padded tokens (at
    least one sequence), so memory stays bounded whatever the texts' lengths; None lifts a limit.
    These are the model's raw probabilities (no temperature): deletion measures compare the
    model with itself.
    """
    device = next(model.parameters()).device
    result = torch.empty(len(sequences), int(model.config.num_labels), dtype=torch.float32)
    lengths = [len(sequence) for sequence in sequences]
    for chunk in length_sorted_batches(lengths, max_rows=batch_size, max_tokens=tokens_per_pass):
        inputs = padded_inputs([sequences[i] for i in chunk], pad_id, device)
        result[chunk] = classify(model, **inputs).float().softmax(dim=-1).cpu()
    return result


def target_probabilities(
    model, sequences: list[list[int]], targets: list[int], pad_id: int, batch_size: int | None = 64,
    tokens_per_pass: int | None = None,
) -> torch.Tensor:
    """p(target | sequence) for each sequence (`class_probabilities` of each target)."""
    probabilities = class_probabilities(model, sequences, pad_id, batch_size, tokens_per_pass)
    return probabilities.gather(1, torch.tensor(targets, dtype=torch.long).view(-1, 1)).squeeze(1)
