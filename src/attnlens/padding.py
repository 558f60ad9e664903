"""Padding token id sequences into model inputs, and cutting them into length-sorted batches.

One batch is padded to its own longest sequence, so sequences of similar lengths go together:
`length_sorted_batches` sorts positions by length and cuts them into batches of at most so many
rows and padded tokens. Training, evaluation, prediction and the explanation methods all pad and
batch through this module.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch


def padding_id(source: Any) -> int:
    """The padding id `source` (a tokenizer or a model config) names; 0, BERT's, when it names none."""
    value = getattr(source, "pad_token_id", None)
    return 0 if value is None else int(value)


def pad_sequences(sequences: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask), both (batch, longest) int64: each sequence right-padded with
    `pad_id` to the longest one, the mask 1 on its own tokens and 0 on padding."""
    longest = max(len(sequence) for sequence in sequences)
    input_ids = torch.full((len(sequences), longest), pad_id, dtype=torch.long)  # (batch, longest)
    attention_mask = torch.zeros((len(sequences), longest), dtype=torch.long)  # (batch, longest)
    for row, sequence in enumerate(sequences):
        input_ids[row, : len(sequence)] = torch.as_tensor(sequence, dtype=torch.long)
        attention_mask[row, : len(sequence)] = 1
    return input_ids, attention_mask


def padded_inputs(sequences: Sequence[Sequence[int]], pad_id: int,
                  device: torch.device | str) -> dict[str, torch.Tensor]:
    """Single-segment model inputs (`input_ids`, `attention_mask`, zero `token_type_ids`) of
    `sequences`, right-padded to the longest, on `device`."""
    input_ids, attention_mask = pad_sequences(sequences, pad_id)
    return {
        "input_ids": input_ids.to(device),
        "attention_mask": attention_mask.to(device),
        "token_type_ids": torch.zeros_like(input_ids).to(device),
    }


def sorted_by_length(lengths: Sequence[int], indices: Iterable[int] | None = None, *,
                     longest_first: bool = False) -> list[int]:
    """`indices` (by default every position of `lengths`) ordered by `lengths[index]`; equal
    lengths keep their order."""
    indices = range(len(lengths)) if indices is None else indices
    return sorted(indices, key=lengths.__getitem__, reverse=longest_first)


def forward_passes(lengths: Sequence[int], max_rows: int | None = None,
                   max_tokens: int | None = None) -> list[list[int]]:
    """Positions 0..n-1 of sequences of `lengths` cut, in order, into forward passes of at most
    `max_rows` rows and `max_tokens` padded tokens (rows x the pass's longest); a pass has at
    least one row, even one longer than `max_tokens`. None lifts a limit. Lengths in ascending
    order give the fewest passes."""
    passes: list[list[int]] = []
    longest = 0
    for position, length in enumerate(lengths):
        current = passes[-1] if passes else None
        longest = max(longest, length)
        if (current is None or (max_rows is not None and len(current) >= max_rows)
                or (max_tokens is not None and (len(current) + 1) * longest > max_tokens)):
            passes.append([position])
            longest = length
        else:
            current.append(position)
    return passes


def length_sorted_batches(lengths: Sequence[int], indices: Iterable[int] | None = None, *,
                          max_rows: int | None = None, max_tokens: int | None = None) -> list[list[int]]:
    """`indices` (by default every position of `lengths`) shortest first, cut into batches of at
    most `max_rows` rows and `max_tokens` padded tokens (see `forward_passes`)."""
    order = sorted_by_length(lengths, indices)
    passes = forward_passes([lengths[index] for index in order], max_rows, max_tokens)
    return [[order[position] for position in positions] for positions in passes]
