"""The shared parts of the baselines: word embeddings, a packed bidirectional RNN, the output type.

Sequences are packed before the RNN so that padding never enters the backward direction: without
packing, the backward GRU of a short sentence would start from the padding at the batch's end,
and the same sentence would be encoded differently depending on its neighbours in the batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


@dataclass
class BaselineOutput:
    """What the baselines return; `.logits` is all the shared code (predictor, explanations) reads.

    `attentions` are the model's own token weights (batch, seq) aligned with `input_ids` (0 on
    padding). For the HAN they are word-within-sentence weights, `sentence_attentions` (batch,
    sentences) the sentence weights and `sentence_ids` (batch, seq) each token's sentence (-1 on
    padding).
    """

    logits: Tensor
    attentions: Tensor | None = None
    sentence_attentions: Tensor | None = None
    sentence_ids: Tensor | None = None


def build_rnn(rnn_type: str, input_size: int, hidden_size: int, num_layers: int, dropout: float) -> nn.RNNBase:
    cls = nn.GRU if rnn_type == "gru" else nn.LSTM
    return cls(input_size, hidden_size, num_layers=num_layers, batch_first=True, bidirectional=True,
               dropout=dropout if num_layers > 1 else 0.0)


def run_bidirectional(rnn: nn.RNNBase, inputs: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
    """(states (batch, seq, 2H), final (batch, 2H)) of a bidirectional RNN over right-padded inputs.

    `final` is the last layer's forward state at each sequence's last token next to its backward
    state at the first token, i.e. a summary that has read the whole sequence in both directions.
    Every length must be at least 1.
    """
    packed = pack_padded_sequence(inputs, lengths.cpu(), batch_first=True, enforce_sorted=False)
    output, hidden = rnn(packed)
    states, _ = pad_packed_sequence(output, batch_first=True, total_length=inputs.shape[1])
    if isinstance(hidden, tuple):  # LSTM: (h_n, c_n)
        hidden = hidden[0]
    final = torch.cat([hidden[-2], hidden[-1]], dim=-1)  # (batch, 2H): last layer, both directions
    return states, final
