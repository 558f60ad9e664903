"""True unpadding: keep a padded batch's real tokens as one packed (tokens, width) tensor.

Everything in a Transformer layer except attention works token by token (projections, feed-forward,
LayerNorm, residuals), so those run on the packed tensor and no FLOP is spent on padding; only
attention needs the (batch, seq) layout, and the packed tensor is scattered into it for that
and gathered back afterwards. With batches in file order, SST-2 batches are about half padding.

Unpadding has a price, a gather and a scatter around every layer's attention, so a batch that is
almost all real tokens (length-sorted batches hold little padding) is computed padded instead:
`MIN_PADDING_TO_UNPAD` is where the saving starts to pay.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

# Unpad only batches with at least this share of padding; below it the gather and scatter around
# attention cost more than the padded rows (found on SST-2 batches).
MIN_PADDING_TO_UNPAD = 0.1

# Attention with its maps (explanations) is computed a few sequences at a time: a chunk's maps,
# chunk x heads x seq² floats, stay in cache from the scores to the product with the values.
# 2**19 float32 is 2 MiB, a common L2 size per core: a 200-token review (12 heads) alone, or
# dozens of SST-2 sentences together.
CHUNK_MAP_ELEMENTS = 2**19


@dataclass
class Packing:
    """Where the real tokens of a (batch, seq) batch sit in its flattened (batch * seq) rows."""

    batch: int
    seq: int
    indices: Tensor | None  # (tokens,) row-major positions of real tokens; None: every position kept
    first_token_rows: Tensor  # (batch,) packed row of each sequence's first token ([CLS])
    # Rows of each sequence in the packed tensor, which holds them one after another. Without
    # `indices` they include padding; `from_mask(..., min_padding=0)` keeps real tokens alone.
    lengths: tuple[int, ...]
    # One zeroed (batch * seq, width) buffer per width, reused by every layer: only real rows are
    # ever written, so its padding rows stay zero and need filling once per forward, not per layer.
    _buffers: dict[tuple[int, torch.dtype], Tensor] = field(default_factory=dict, repr=False)
    _chunks: dict[tuple[int, int], list[tuple[int, Packing]]] = field(default_factory=dict, repr=False)

    @classmethod
    def from_mask(cls, attention_mask: Tensor | None, batch: int, seq: int, device: torch.device,
                  min_padding: float | None = None) -> Packing:
        """Packing of a right- or arbitrarily padded batch whose first column is all real tokens.

        With less than `min_padding` (default `MIN_PADDING_TO_UNPAD`) padding, every position is
        kept (`indices` None): padding rows are then computed like real ones, and attention's mask
        still hides them as keys.
        """
        min_padding = MIN_PADDING_TO_UNPAD if min_padding is None else min_padding
        real = None if attention_mask is None else attention_mask.bool()
        if real is None or 1.0 - float(real.float().mean()) < max(min_padding, 1e-9):
            return cls(batch, seq, None, torch.arange(batch, device=device) * seq, (seq,) * batch)
        lengths = real.sum(dim=1)  # (batch,)
        indices = real.reshape(-1).nonzero().squeeze(1)  # (tokens,)
        return cls(batch, seq, indices, torch.cumsum(lengths, 0) - lengths, tuple(lengths.tolist()))

    @classmethod
    def from_lengths(cls, lengths: list[int], device: torch.device) -> Packing:
        """Sequences of these lengths stored one after another, to be right-padded to the longest."""
        seq = max(lengths)
        real = torch.arange(seq, device=device)[None, :] < torch.tensor(lengths, device=device)[:, None]
        return cls.from_mask(real, len(lengths), seq, device, min_padding=0.0)

    def key_mask(self) -> Tensor | None:
        """(batch, 1, 1, seq) True at real keys for `pad`'s layout; None where nothing is padding."""
        if self.indices is None:
            return None
        lengths = torch.tensor(self.lengths, device=self.indices.device)
        return (torch.arange(self.seq, device=lengths.device)[None, :] < lengths[:, None])[:, None, None, :]

    def chunks(self, heads: int, max_map_elements: int | None = None) -> list[tuple[int, Packing]]:
        """Consecutive sequences grouped so that each group's maps (group x heads x longest²) hold
        at most `max_map_elements` (default CHUNK_MAP_ELEMENTS; a longer sequence makes a group of
        its own), as (first sequence, the packing of the group's rows). Needs real tokens alone in
        every span (`min_padding=0`). Computed once per forward, then reused by every layer (with
        their `pad` buffers)."""
        max_map_elements = CHUNK_MAP_ELEMENTS if max_map_elements is None else max_map_elements
        key = (heads, max_map_elements)
        if key not in self._chunks:
            groups: list[tuple[int, list[int]]] = []
            for index, length in enumerate(self.lengths):
                if groups:
                    lengths = groups[-1][1]
                    longest = max(*lengths, length)
                    if (len(lengths) + 1) * heads * longest * longest <= max_map_elements:
                        lengths.append(length)
                        continue
                groups.append((index, [length]))
            device = self.first_token_rows.device
            self._chunks[key] = [(first, Packing.from_lengths(lengths, device)) for first, lengths in groups]
        return self._chunks[key]

    @property
    def num_tokens(self) -> int:
        return self.batch * self.seq if self.indices is None else int(self.indices.numel())

    def pack(self, padded: Tensor) -> Tensor:
        """(batch, seq, ...) -> (tokens, ...): the real tokens only."""
        flat = padded.reshape(self.batch * self.seq, *padded.shape[2:])
        return flat if self.indices is None else flat.index_select(0, self.indices)

    def pad(self, packed: Tensor) -> Tensor:
        """(tokens, width) -> (batch, seq, width), zeros at padding (attention masks them out).

        The result is a view of a buffer the next `pad` of the same width overwrites: use it
        before padding again (each layer's attention does).
        """
        width = packed.shape[-1]
        if self.indices is None:
            return packed.view(self.batch, self.seq, width)
        if packed.requires_grad and torch.is_grad_enabled():
            # Autograd keeps every layer's padded input for the backward: no shared buffer then.
            padded = packed.new_zeros(self.batch * self.seq, width).index_copy(0, self.indices, packed)
            return padded.view(self.batch, self.seq, width)
        padded = self._buffers.get((width, packed.dtype))
        if padded is None:
            padded = self._buffers[(width, packed.dtype)] = packed.new_zeros(self.batch * self.seq, width)
        padded.index_copy_(0, self.indices, packed)
        return padded.view(self.batch, self.seq, width)
