"""The `model.baseline` section of a job config, and how it becomes a baseline model.

Only read when `model.arch` is `birnn_attention` or `han`; `model.base_model` still names the
BERT checkpoint whose tokenizer (and, with `embedding_init: base_model`, word embeddings) the
baseline uses, and `model.dropout` (when set) its dropout.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from attnlens.baselines.config import (
    EMBEDDING_INITS,
    LOCAL_SCORES,
    POOLING_ATTENTIONS,
    QUERIES,
    RNN_TYPES,
    SENTENCE_END_TOKENS,
    BiRNNAttentionConfig,
    HANConfig,
)
from attnlens.errors import ConfigError

BASELINE_ARCHITECTURES = ("birnn_attention", "han")
DEFAULT_DROPOUT = 0.3


@dataclass
class BaselineModelConfig:
    """Hyper-parameters of the BiRNN / HAN baselines (see docs/baselines.md)."""

    embedding_init: str = "base_model"  # base_model: the base model's word embeddings; random: N(0, 1)
    rnn_type: str = "gru"
    hidden_size: int = 128  # per direction
    num_layers: int = 1
    attention_dim: int = 128
    attention: str = "additive"  # birnn_attention: additive | dot | general | concat | local_p
    query: str = "learned"  # birnn_attention: learned | final_state
    local_window: int = 8  # birnn_attention with local_p: D
    local_score: str = "general"
    sentence_hidden_size: int = 128  # han
    max_sentence_length: int = 64  # han


def validate_baseline_section(baseline: BaselineModelConfig, source: str) -> None:
    """Check the choices before any data or weights are read (same messages as the job config)."""
    choices = {"embedding_init": EMBEDDING_INITS, "rnn_type": RNN_TYPES, "attention": POOLING_ATTENTIONS,
               "query": QUERIES, "local_score": LOCAL_SCORES}
    for key, allowed in choices.items():
        value = getattr(baseline, key)
        if value not in allowed:
            raise ConfigError(f"{source}: model.baseline.{key}={value!r} must be one of {list(allowed)}")
    for key in ("hidden_size", "num_layers", "attention_dim", "local_window", "sentence_hidden_size",
                "max_sentence_length"):
        value = getattr(baseline, key)
        if value < 1:
            raise ConfigError(f"{source}: model.baseline.{key}={value!r} must be at least 1")


def build_baseline_model(arch: str, baseline: BaselineModelConfig, *, tokenizer: Any, base_model: str,
                         id2label: dict[int, str], max_length: int, dropout: float | None,
                         revision: str | None = None):
    """A freshly initialised baseline whose vocabulary and embeddings come from `base_model`."""
    import torch

    from attnlens.baselines import BiRNNAttentionForSequenceClassification, HierarchicalAttentionNetwork
    from attnlens.baselines.io import base_word_embeddings

    embeddings = base_word_embeddings(base_model, revision) if baseline.embedding_init == "base_model" else None
    common: dict[str, Any] = dict(
        vocab_size=len(tokenizer) if embeddings is None else embeddings.shape[0],
        embedding_dim=384 if embeddings is None else embeddings.shape[1],
        hidden_size=baseline.hidden_size,
        num_layers=baseline.num_layers,
        rnn_type=baseline.rnn_type,
        attention_dim=baseline.attention_dim,
        dropout=DEFAULT_DROPOUT if dropout is None else dropout,
        pad_token_id=tokenizer.pad_token_id or 0,
        max_position_embeddings=max_length,
        embedding_init=baseline.embedding_init,
        base_model=str(base_model),
        id2label=dict(id2label),
    )
    if arch == "birnn_attention":
        model = BiRNNAttentionForSequenceClassification(BiRNNAttentionConfig(
            **common, attention=baseline.attention, query=baseline.query, local_window=baseline.local_window,
            local_score=baseline.local_score))
    elif arch == "han":
        end_ids = tokenizer.convert_tokens_to_ids(list(SENTENCE_END_TOKENS))
        model = HierarchicalAttentionNetwork(HANConfig(
            **common, sentence_hidden_size=baseline.sentence_hidden_size,
            max_sentence_length=baseline.max_sentence_length,
            sentence_end_token_ids=[i for i in end_ids if i != tokenizer.unk_token_id]))
    else:
        raise ConfigError(f"model.arch={arch!r} is not a baseline (one of {list(BASELINE_ARCHITECTURES)})")
    if embeddings is not None:
        with torch.no_grad():
            model.word_embeddings.weight.copy_(embeddings)
    return model
