"""Length-grouped, seeded batching with dynamic padding.

Padding every batch to `max_length` wastes most of the compute on short texts (SST-2 phrases are
about 13 tokens). Instead each epoch shuffles with its own seed, cuts the order into "mega-batches"
of `batch_size * mega_batch_factor` examples, sorts each by length, and lets the collator pad to the
longest example of the batch. The order is a pure function of `(seed, epoch)` and draws from a
private generator, never from the global RNG, so resuming mid-epoch replays exactly the same batches
and the dropout stream is untouched.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import Sampler

from attnlens.padding import pad_sequences, sorted_by_length


class LengthGroupedSampler(Sampler[int]):
    """Yields example indices so that consecutive `batch_size` chunks have similar lengths."""

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        seed: int,
        group_by_length: bool = True,
        mega_batch_factor: int = 50,
    ) -> None:
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.group_by_length = group_by_length
        self.mega_batch_size = batch_size * mega_batch_factor
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Accelerate's data loaders call this at every pass; the epoch picks the permutation."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self) -> Iterator[int]:
        order_rng = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(len(self.lengths), generator=order_rng).tolist()
        if not self.group_by_length:
            return iter(order)
        grouped: list[int] = []
        for start in range(0, len(order), self.mega_batch_size):
            mega_batch = order[start : start + self.mega_batch_size]
            grouped.extend(sorted_by_length(self.lengths, mega_batch, longest_first=True))
        return iter(grouped)


class PaddingCollator:
    """Pads `input_ids` to the longest example of the batch and builds the attention mask (and the
    labels tensor, when the examples have labels)."""

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        input_ids, attention_mask = pad_sequences([feature["input_ids"] for feature in features], self.pad_token_id)
        batch = {"input_ids": input_ids, "attention_mask": attention_mask}
        if "labels" in features[0]:  # unlabelled text (masked-language modelling) has none
            batch["labels"] = torch.as_tensor([feature["labels"] for feature in features], dtype=torch.long)
        return batch
