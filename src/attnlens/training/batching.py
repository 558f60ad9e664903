"""Length-grouped, seeded batching with dynamic padding.

Padding every batch to `max_length` wastes most of the compute on short texts (SST-2 phrases are
about 13 tokens). Instead each epoch shuffles with its own seed, cuts the order into "mega-batches"
of `batch_size * mega_batch_factor` examples, sorts each by length, and lets the collator pad to the
longest example of the batch. The order is a pure function of `(seed, epoch)` and draws from a
private generator, never from the global RNG, so resuming mid-epoch replays exactly the same batches
and the dropout stream is untouched.

`ClassBalancedSampler` draws the epoch's order differently (with replacement, every class equally
often, for imbalanced labels) and then groups it the same way.
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
        order = self.draw_order(order_rng)
        if not self.group_by_length:
            return iter(order)
        grouped: list[int] = []
        for start in range(0, len(order), self.mega_batch_size):
            mega_batch = order[start : start + self.mega_batch_size]
            grouped.extend(sorted_by_length(self.lengths, mega_batch, longest_first=True))
        return iter(grouped)

    def draw_order(self, generator: torch.Generator) -> list[int]:
        """The epoch's indices before grouping: a permutation, every example once."""
        return torch.randperm(len(self.lengths), generator=generator).tolist()


class ClassBalancedSampler(LengthGroupedSampler):
    """Each epoch draws `len(labels)` indices with replacement, example i with probability
    proportional to 1 / count(labels[i]), so every class present is drawn equally often; the draw is
    then length-grouped like `LengthGroupedSampler` (same seeding, same mega-batches)."""

    def __init__(
        self,
        lengths: Sequence[int],
        labels: Sequence[int],
        batch_size: int,
        seed: int,
        group_by_length: bool = True,
        mega_batch_factor: int = 50,
    ) -> None:
        super().__init__(lengths, batch_size, seed, group_by_length, mega_batch_factor)
        if len(labels) != len(self.lengths):
            raise ValueError(f"{len(labels)} labels for {len(self.lengths)} lengths; need one label per example")
        if not self.lengths:
            raise ValueError("no examples to draw from")
        _, self.class_of, self.class_counts = torch.unique(
            torch.as_tensor(list(labels), dtype=torch.long), return_inverse=True, return_counts=True
        )
        # Example indices grouped class by class; class k's members start at class_starts[k].
        self.by_class = torch.argsort(self.class_of, stable=True)
        self.class_starts = torch.cumsum(self.class_counts, 0) - self.class_counts

    def draw_order(self, generator: torch.Generator) -> list[int]:
        # A uniform class, then a uniform member of it: the same distribution as weighting every
        # example by 1/count, without torch.multinomial's limit of 2**24 categories.
        size = len(self.lengths)
        classes = torch.randint(len(self.class_counts), (size,), generator=generator)
        counts = self.class_counts[classes]
        uniform = torch.rand(size, generator=generator, dtype=torch.float64)
        members = torch.minimum((uniform * counts).long(), counts - 1)  # rounding may reach count
        return self.by_class[self.class_starts[classes] + members].tolist()


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
