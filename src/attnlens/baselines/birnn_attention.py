"""BiRNN with attention pooling: the attention classifier of the pre-Transformer years.

    embeddings -> bidirectional GRU (or LSTM) -> attention pooling (additive, Luong dot / general /
    concat, or Luong local-p) -> dropout -> linear classifier

The attention weights are the model's own explanation: the pooled vector *is* their weighted sum
of the states, which is why these models were called self-explaining (and why Jain & Wallace 2019
tested that claim; see docs/baselines.md).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from attnlens.baselines.config import BiRNNAttentionConfig
from attnlens.baselines.io import PretrainedBaseline
from attnlens.baselines.pooling import AttentionPooling
from attnlens.baselines.recurrent import BaselineOutput, build_rnn, run_bidirectional


class BiRNNAttentionForSequenceClassification(PretrainedBaseline):
    config_class = BiRNNAttentionConfig

    def __init__(self, config: BiRNNAttentionConfig) -> None:
        super().__init__()
        self.config = config
        self.word_embeddings = nn.Embedding(config.vocab_size, config.embedding_dim, padding_idx=config.pad_token_id)
        self.dropout = nn.Dropout(config.dropout)
        self.encoder = build_rnn(config.rnn_type, config.embedding_dim, config.hidden_size, config.num_layers,
                                 config.dropout)
        states = 2 * config.hidden_size
        self.pooling = AttentionPooling(config.attention, states, config.attention_dim, query=config.query,
                                        local_window=config.local_window, local_score=config.local_score)
        self.classifier = nn.Linear(states, config.num_labels)

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None,
                token_type_ids: Tensor | None = None, attention_hook=None, attention_chunk_hook=None,
                **_: object) -> BaselineOutput:
        """Same call as the BERT classifier; `token_type_ids` are accepted and ignored (one segment)."""
        self.refuse_attention_hook(attention_hook, attention_chunk_hook)
        mask = torch.ones_like(input_ids, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
        lengths = mask.sum(dim=-1).clamp(min=1)
        embedded = self.dropout(self.word_embeddings(input_ids))  # (batch, seq, emb)
        states, final = run_bidirectional(self.encoder, embedded, lengths)  # (batch, seq, 2H), (batch, 2H)
        pooled, weights = self.pooling(states, mask, final_state=final)
        logits = self.classifier(self.dropout(pooled))  # (batch, num_labels)
        return BaselineOutput(logits=logits, attentions=weights)
