"""BERT configuration with Hugging Face's field names.

The fields are spelled exactly as in `transformers.BertConfig` / `config.json`, so a checkpoint's
config is read without translation and our saved configs load in `transformers` unchanged.
Settings this encoder does not implement are refused up front instead of being silently ignored,
because a model that loads but computes something else is worse than one that does not load.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from attnlens.errors import ConfigError

SUPPORTED_ACTIVATIONS = ("gelu", "relu", "gelu_new", "gelu_pytorch_tanh", "silu", "swish")

# config.json keys that describe how `transformers` ran the model, not what it computes; they are
# accepted with any value and written back unchanged so a round trip loses nothing.
_REFUSED_WHEN_TRUE = ("is_decoder", "add_cross_attention")


def require_positive_ints(config: object, names: tuple[str, ...], source: str) -> None:
    """Every named field is an int > 0 (bools refused: YAML/JSON `true` is not a size)."""
    for name in names:
        value = getattr(config, name)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ConfigError(f"{source}: {name} must be a positive integer, got {value!r}")


def read_config_json(path: str | Path) -> dict[str, Any]:
    """A model folder's config.json as a dict, or a one-line ConfigError naming the file."""
    path = Path(path)
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config.json not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a JSON object, got {type(values).__name__}")
    return values


def require_label_map(id2label: dict[int, str], source: str) -> None:
    """Labels are numbered 0..N-1 with unique names, as classification heads and label2id need."""
    if not id2label or sorted(id2label) != list(range(len(id2label))):
        raise ConfigError(f"{source}: id2label keys must be 0..N-1, got {sorted(id2label)}")
    if len(set(id2label.values())) != len(id2label):
        raise ConfigError(f"{source}: id2label names must be unique, got {list(id2label.values())}")


class LabelledConfig:
    """Label bookkeeping every model config shares (BERT and the baselines): `id2label` with int
    keys (config.json stores them as strings), checked on construction, and what derives from it."""

    id2label: dict[int, str]

    def __post_init__(self) -> None:
        self.id2label = {int(index): str(name) for index, name in self.id2label.items()}
        self.validate()

    def validate(self, source: str = "config") -> None:
        raise NotImplementedError

    @property
    def num_labels(self) -> int:
        return len(self.id2label)

    @property
    def label2id(self) -> dict[str, int]:
        return {name: index for index, name in self.id2label.items()}

    @property
    def max_tokens(self) -> int:
        """The longest input the model takes (its position table's size, unless a family says otherwise)."""
        return self.max_position_embeddings


@dataclass
class BertConfig(LabelledConfig):
    """Hyper-parameters of a BERT encoder (and its classification head)."""

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
    id2label: dict[int, str] = field(default_factory=lambda: {0: "LABEL_0", 1: "LABEL_1"})
    problem_type: str | None = None
    architectures: list[str] | None = None
    # Every other config.json key, kept verbatim for the round trip.
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    # ------------------------------------------------------------------ derived values
    # ------------------------------------------------------------------ checks
    def validate(self, source: str = "config") -> None:
        """Refuse shapes that cannot work and settings this encoder does not implement."""
        require_positive_ints(self, ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                                     "intermediate_size", "max_position_embeddings", "type_vocab_size"), source)
        if self.hidden_size % self.num_attention_heads:
            raise ConfigError(
                f"{source}: hidden_size ({self.hidden_size}) must be divisible by "
                f"num_attention_heads ({self.num_attention_heads})"
            )
        if self.position_embedding_type != "absolute":
            raise ConfigError(
                f"{source}: position_embedding_type={self.position_embedding_type!r} is not supported "
                "(only 'absolute')"
            )
        if self.hidden_act not in SUPPORTED_ACTIVATIONS:
            raise ConfigError(
                f"{source}: hidden_act={self.hidden_act!r} is not supported (one of {SUPPORTED_ACTIVATIONS})"
            )
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
            value = getattr(self, name)
            if not 0.0 <= float(value) < 1.0:
                raise ConfigError(f"{source}: {name} must be in [0, 1), got {value!r}")
        require_label_map(self.id2label, source)
        for name in _REFUSED_WHEN_TRUE:
            if self.extra.get(name):
                raise ConfigError(f"{source}: {name}=true is not supported (attnlens is an encoder only)")

    # ------------------------------------------------------------------ (de)serialisation
    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config") -> BertConfig:
        """Build from a `config.json` dictionary, refusing models that are not BERT."""
        values = dict(values)
        model_type = values.pop("model_type", "bert")
        if model_type != "bert":
            raise ConfigError(f"{source}: model_type={model_type!r} is not BERT (attnlens loads 'bert' only)")
        known = {f.name for f in fields(cls)} - {"extra", "id2label"}
        kwargs: dict[str, Any] = {name: values.pop(name) for name in list(values) if name in known}
        id2label = values.pop("id2label", None)
        label2id = values.pop("label2id", None)
        num_labels = values.pop("num_labels", None)
        if id2label:
            kwargs["id2label"] = {int(k): v for k, v in id2label.items()}
        elif label2id:
            kwargs["id2label"] = {int(v): k for k, v in label2id.items()}
        elif num_labels:
            kwargs["id2label"] = {i: f"LABEL_{i}" for i in range(int(num_labels))}
        try:
            config = cls(**kwargs, extra=values)
        except ConfigError as error:
            raise ConfigError(str(error).replace("config:", f"{source}:", 1)) from None
        except (TypeError, ValueError) as error:
            raise ConfigError(f"{source}: {error}") from None
        return config

    @classmethod
    def from_json_file(cls, path: str | Path) -> BertConfig:
        return cls.from_dict(read_config_json(path), source=str(path))

    def to_dict(self) -> dict[str, Any]:
        """The `config.json` dictionary, in the form `transformers` writes it."""
        values: dict[str, Any] = dict(self.extra)
        for f in fields(self):
            if f.name in ("extra", "id2label"):
                continue
            values[f.name] = getattr(self, f.name)
        values["model_type"] = "bert"
        values["id2label"] = {str(i): name for i, name in self.id2label.items()}
        values["label2id"] = self.label2id
        if values.get("architectures") is None:
            values.pop("architectures")
        return dict(sorted(values.items()))

    def to_json_file(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    def with_labels(self, *, num_labels: int | None = None,
                    id2label: dict[int, str] | None = None) -> BertConfig:
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
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values["id2label"] = labels
        values["extra"] = dict(self.extra)
        return BertConfig(**values)
