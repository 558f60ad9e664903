"""Configurations of the classic attention classifiers, read from and written to `config.json`.

Each model has its own `model_type` ("attnlens_birnn_attention", "attnlens_han") so a saved folder
says what it holds and `attnlens.models.load_model` can build the right class; loading a BERT
folder as a baseline (or the reverse) is an error, not a silent mismatch. Field names follow
Hugging Face where a counterpart exists (`vocab_size`, `hidden_size`, `id2label`,
`max_position_embeddings`, `pad_token_id`) so the shared code (explanations, the predictor, the
service) reads them without knowing which model it has.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from attnlens.config import LabelledConfig, require_label_map, require_positive_ints
from attnlens.errors import ConfigError

RNN_TYPES = ("gru", "lstm")
# Pooling scores of the BiRNN: the project's scoring functions by name, plus Luong's local-p.
POOLING_ATTENTIONS = ("additive", "dot", "general", "concat", "local_p")
QUERIES = ("learned", "final_state")
EMBEDDING_INITS = ("base_model", "random")
# Luong's local-p scores positions inside its window with one of the global scores.
LOCAL_SCORES = ("dot", "general", "concat", "additive")
# HAN's sentence rule: a sentence ends after one of these word pieces (see docs/baselines.md).
SENTENCE_END_TOKENS = (".", "!", "?")


@dataclass
class _BaselineConfig(LabelledConfig):
    """What both baselines share: vocabulary, embeddings, recurrent encoder, labels."""

    model_type: ClassVar[str] = ""

    vocab_size: int = 30522
    embedding_dim: int = 384
    hidden_size: int = 128  # per direction; the bidirectional states are 2 * hidden_size wide
    num_layers: int = 1
    rnn_type: str = "gru"
    attention_dim: int = 128
    dropout: float = 0.3
    pad_token_id: int = 0
    max_position_embeddings: int = 512  # longest input read (tokens, specials included); RNNs have no table
    embedding_init: str = "base_model"  # how the embeddings were initialised (kept as a record)
    base_model: str | None = None  # where the tokenizer and initial embeddings came from
    id2label: dict[int, str] = field(default_factory=lambda: {0: "LABEL_0", 1: "LABEL_1"})
    architectures: list[str] | None = None
    # Temperature scaling fitted for this model (attnlens.calibration); absent when never fitted.
    attnlens_calibration: dict[str, Any] | None = None

    def validate(self, source: str = "config") -> None:
        require_positive_ints(self, ("vocab_size", "embedding_dim", "hidden_size", "num_layers",
                                     "attention_dim", "max_position_embeddings"), source)
        _choice(source, "rnn_type", self.rnn_type, RNN_TYPES)
        _choice(source, "embedding_init", self.embedding_init, EMBEDDING_INITS)
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ConfigError(f"{source}: dropout must be in [0, 1), got {self.dropout!r}")
        require_label_map(self.id2label, source)

    # ------------------------------------------------------------------ (de)serialisation
    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config") -> _BaselineConfig:
        """Strict: the model_type must be this model's, and every key must be a known field."""
        values = dict(values)
        model_type = values.pop("model_type", None)
        if model_type != cls.model_type:
            raise ConfigError(f"{source}: model_type={model_type!r}, expected {cls.model_type!r}")
        values.pop("label2id", None)  # derived from id2label
        values.pop("num_labels", None)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown key {unknown[0]!r} for {cls.model_type} "
                              f"(known: {', '.join(sorted(known))})")
        if "id2label" in values:
            values["id2label"] = {int(k): v for k, v in values["id2label"].items()}
        try:
            return cls(**values)
        except ConfigError as error:
            raise ConfigError(str(error).replace("config:", f"{source}:", 1)) from None
        except (TypeError, ValueError) as error:
            raise ConfigError(f"{source}: {error}") from None

    def to_dict(self) -> dict[str, Any]:
        values: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "id2label"}
        if values["attnlens_calibration"] is None:
            del values["attnlens_calibration"]
        return self.config_json(values | {"model_type": self.model_type})


@dataclass
class BiRNNAttentionConfig(_BaselineConfig):
    """Embeddings -> bidirectional GRU/LSTM -> attention pooling -> linear classifier."""

    model_type: ClassVar[str] = "attnlens_birnn_attention"

    attention: str = "additive"  # one of POOLING_ATTENTIONS
    query: str = "learned"  # the pooling query: a learned vector, or the final forward/backward states
    local_window: int = 8  # D of Luong's local-p: window [p - D, p + D], Gaussian sigma = D / 2
    local_score: str = "general"  # the score local-p applies inside its window (Luong used general)

    def validate(self, source: str = "config") -> None:
        super().validate(source)
        _choice(source, "attention", self.attention, POOLING_ATTENTIONS)
        _choice(source, "query", self.query, QUERIES)
        _choice(source, "local_score", self.local_score, LOCAL_SCORES)
        require_positive_ints(self, ("local_window",), source)


@dataclass
class HANConfig(_BaselineConfig):
    """Hierarchical Attention Network (Yang et al. 2016) over WordPiece tokens."""

    model_type: ClassVar[str] = "attnlens_han"

    sentence_hidden_size: int = 128  # per direction, sentence-level encoder
    max_sentence_length: int = 64  # a longer sentence is cut into pieces of this many tokens
    sentence_end_token_ids: list[int] = field(default_factory=list)  # ids of SENTENCE_END_TOKENS

    def validate(self, source: str = "config") -> None:
        super().validate(source)
        require_positive_ints(self, ("sentence_hidden_size", "max_sentence_length"), source)
        bad = [i for i in self.sentence_end_token_ids if not 0 <= int(i) < self.vocab_size]
        if bad:
            raise ConfigError(f"{source}: sentence_end_token_ids holds {bad[0]}, outside [0, {self.vocab_size})")


def _choice(source: str, key: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{source}: {key}={value!r} must be one of {list(choices)}")
