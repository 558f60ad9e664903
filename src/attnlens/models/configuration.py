"""The encoder families' configurations, with Hugging Face's field names.

Fields are spelled exactly as in `transformers`' `BertConfig`, `RobertaConfig` and
`DistilBertConfig` (`config.json`), so a checkpoint's config is read without translation and the
configs we save load in `transformers` unchanged. Every other key is kept in `extra` and written
back verbatim, so a round trip loses nothing. Settings these encoders do not implement are refused
up front rather than ignored: a model that loads but computes something else is worse than one
that does not load.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, TypeVar

from attnlens.config import LabelledConfig, require_label_map, require_positive_ints
from attnlens.errors import ConfigError

SUPPORTED_ACTIVATIONS = ("gelu", "relu", "gelu_new", "gelu_pytorch_tanh", "silu", "swish")

# Flags that would turn the encoder into something else (a decoder); refused when true.
_REFUSED_WHEN_TRUE = ("is_decoder", "add_cross_attention")

ConfigT = TypeVar("ConfigT", bound="EncoderConfig")


@dataclass
class EncoderConfig(LabelledConfig):
    """`config.json` reading and writing every encoder family shares; subclasses add their fields."""

    model_types: ClassVar[tuple[str, ...]] = ()  # the `model_type` values this family reads
    family: ClassVar[str] = ""

    id2label: dict[int, str] = field(default_factory=lambda: {0: "LABEL_0", 1: "LABEL_1"})
    problem_type: str | None = None
    architectures: list[str] | None = None
    model_type: str = ""
    # Every other config.json key, kept verbatim for the round trip.
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    # ------------------------------------------------------------------ checks
    def validate(self, source: str = "config") -> None:
        if self.model_type not in self.model_types:
            raise ConfigError(f"{source}: model_type={self.model_type!r} is not {self.family} "
                              f"({type(self).__name__} reads {', '.join(self.model_types)}); "
                              "attnlens.load_model picks the family from config.json")
        self.validate_shapes(source)
        require_label_map(self.id2label, source)
        for name in _REFUSED_WHEN_TRUE:
            if self.extra.get(name):
                raise ConfigError(f"{source}: {name}=true is not supported (attnlens is an encoder only)")

    def validate_shapes(self, source: str) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------ (de)serialisation
    @classmethod
    def from_dict(cls: type[ConfigT], values: dict[str, Any], source: str = "config") -> ConfigT:
        """Build from a `config.json` dictionary, refusing another family's `model_type`."""
        values = dict(values)
        values.setdefault("model_type", cls.model_types[0])
        known = {f.name for f in fields(cls)} - {"extra", "id2label"}
        kwargs: dict[str, Any] = {name: values.pop(name) for name in list(values) if name in known}
        id2label = values.pop("id2label", None)
        label2id = values.pop("label2id", None)
        num_labels = values.pop("num_labels", None)
        try:
            if id2label:
                kwargs["id2label"] = {int(k): v for k, v in id2label.items()}
            elif label2id:
                kwargs["id2label"] = {int(v): k for k, v in label2id.items()}
            elif num_labels:
                kwargs["id2label"] = {i: f"LABEL_{i}" for i in range(int(num_labels))}
            config = cls(**kwargs, extra=values)
        except ConfigError as error:
            raise ConfigError(str(error).replace("config:", f"{source}:", 1)) from None
        except (TypeError, ValueError, AttributeError) as error:
            raise ConfigError(f"{source}: {error}") from None
        return config

    def to_dict(self) -> dict[str, Any]:
        """The `config.json` dictionary, in the form `transformers` writes it."""
        values: dict[str, Any] = dict(self.extra)
        values.update({f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("extra", "id2label")})
        return self.config_json(values)

    def with_labels(self: ConfigT, *, num_labels: int | None = None,
                    id2label: dict[int, str] | None = None) -> ConfigT:
        """A copy with a new label set (for putting a fresh head on a base model)."""
        if id2label is not None:
            if num_labels is not None and num_labels != len(id2label):
                raise ConfigError(f"num_labels={num_labels} disagrees with id2label of {len(id2label)} labels")
            labels = {int(k): str(v) for k, v in id2label.items()}
        elif num_labels is not None:
            if num_labels == self.num_labels:
                return self
            labels = {i: f"LABEL_{i}" for i in range(num_labels)}
        else:
            return self
        return dataclasses.replace(self, id2label=labels, extra=dict(self.extra))


def _check_dropouts(config: object, names: tuple[str, ...], source: str) -> None:
    for name in names:
        value = getattr(config, name)
        if value is not None and not 0.0 <= float(value) < 1.0:
            raise ConfigError(f"{source}: {name} must be in [0, 1), got {value!r}")


def _check_activation(name: str, value: str, source: str) -> None:
    if value not in SUPPORTED_ACTIVATIONS:
        raise ConfigError(f"{source}: {name}={value!r} is not supported (one of {SUPPORTED_ACTIVATIONS})")


def _check_heads(width: int, heads: int, names: tuple[str, str], source: str) -> None:
    if width % heads:
        raise ConfigError(f"{source}: {names[0]} ({width}) must be divisible by {names[1]} ({heads})")


@dataclass
class BertConfig(EncoderConfig):
    """Hyper-parameters of a BERT encoder and its classification head (`transformers`' defaults)."""

    model_types: ClassVar[tuple[str, ...]] = ("bert",)
    family: ClassVar[str] = "BERT"

    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0
    position_embedding_type: str = "absolute"
    classifier_dropout: float | None = None
    model_type: str = "bert"

    def validate_shapes(self, source: str) -> None:
        require_positive_ints(self, ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                                     "intermediate_size", "max_position_embeddings", "type_vocab_size"), source)
        _check_heads(self.hidden_size, self.num_attention_heads, ("hidden_size", "num_attention_heads"), source)
        if self.position_embedding_type != "absolute":
            raise ConfigError(f"{source}: position_embedding_type={self.position_embedding_type!r} is not "
                              "supported (only 'absolute')")
        _check_activation("hidden_act", self.hidden_act, source)
        _check_dropouts(self, ("hidden_dropout_prob", "attention_probs_dropout_prob", "classifier_dropout"), source)


@dataclass
class RobertaConfig(BertConfig):
    """RoBERTa and XLM-RoBERTa: BERT's fields; positions count from `pad_token_id + 1`."""

    model_types: ClassVar[tuple[str, ...]] = ("roberta", "xlm-roberta")
    family: ClassVar[str] = "RoBERTa"

    vocab_size: int = 50265
    pad_token_id: int = 1
    model_type: str = "roberta"

    @property
    def max_tokens(self) -> int:
        """Position ids run from pad_token_id + 1, so the table holds that many fewer inputs."""
        return self.max_position_embeddings - self.pad_token_id - 1

    def validate_shapes(self, source: str) -> None:
        super().validate_shapes(source)
        if self.max_tokens < 1:
            raise ConfigError(f"{source}: max_position_embeddings ({self.max_position_embeddings}) leaves no "
                              f"positions after pad_token_id ({self.pad_token_id}) + 1")


@dataclass
class DistilBertConfig(EncoderConfig):
    """Hyper-parameters of a DistilBERT encoder and its classification head (`transformers`' names)."""

    model_types: ClassVar[tuple[str, ...]] = ("distilbert",)
    family: ClassVar[str] = "DistilBERT"

    vocab_size: int = 30522
    max_position_embeddings: int = 512
    sinusoidal_pos_embds: bool = False
    n_layers: int = 6
    n_heads: int = 12
    dim: int = 768
    hidden_dim: int = 3072
    dropout: float = 0.1
    attention_dropout: float = 0.1
    activation: str = "gelu"
    initializer_range: float = 0.02
    qa_dropout: float = 0.1
    seq_classif_dropout: float = 0.2
    pad_token_id: int = 0
    model_type: str = "distilbert"

    layer_norm_eps: ClassVar[float] = 1e-12  # fixed in DistilBERT, not a config.json key

    # The names the rest of attnlens (and `transformers`' attribute_map) use for these sizes.
    @property
    def hidden_size(self) -> int:
        return self.dim

    @property
    def num_hidden_layers(self) -> int:
        return self.n_layers

    @property
    def num_attention_heads(self) -> int:
        return self.n_heads

    def validate_shapes(self, source: str) -> None:
        require_positive_ints(self, ("vocab_size", "dim", "n_layers", "n_heads", "hidden_dim",
                                     "max_position_embeddings"), source)
        _check_heads(self.dim, self.n_heads, ("dim", "n_heads"), source)
        _check_activation("activation", self.activation, source)
        _check_dropouts(self, ("dropout", "attention_dropout", "seq_classif_dropout", "qa_dropout"), source)
