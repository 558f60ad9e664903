"""What the encoders' forward passes return (the field names of `transformers`' outputs)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor


@dataclass
class EncoderOutput:
    last_hidden_state: Tensor  # (batch, seq, hidden)
    pooler_output: Tensor | None = None  # (batch, hidden), where the family has a pooler
    hidden_states: tuple[Tensor, ...] | None = None  # num_layers + 1 x (batch, seq, hidden)
    attentions: tuple[Tensor, ...] | None = None  # num_layers x (batch, heads, seq, seq)


@dataclass
class SequenceClassifierOutput:
    logits: Tensor  # (batch, num_labels)
    hidden_states: tuple[Tensor, ...] | None = None
    attentions: tuple[Tensor, ...] | None = None
