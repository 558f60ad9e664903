"""What every model configuration shares: reading `config.json`, label maps, and the checks.

The encoders' configurations (`attnlens.models.configuration`) and the baselines'
(`attnlens.baselines.config`) both build on these, so a label map or a size is checked the same
way, with the same message, whichever model a folder holds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from attnlens.errors import ConfigError


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
    """Label bookkeeping every model config shares (the encoders and the baselines): `id2label` with int
    keys (config.json stores them as strings), checked on construction, and what derives from it."""

    id2label: dict[int, str]

    def __post_init__(self) -> None:
        self.id2label = {int(index): str(name) for index, name in self.id2label.items()}
        self.validate()

    def validate(self, source: str = "config") -> None:
        raise NotImplementedError

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config") -> LabelledConfig:
        raise NotImplementedError

    @classmethod
    def from_json_file(cls, path: str | Path):
        return cls.from_dict(read_config_json(path), source=str(path))

    def config_json(self, values: dict[str, Any]) -> dict[str, Any]:
        """`values` (the fields) completed as `transformers` writes config.json: labels both ways,
        no null `architectures`, keys sorted."""
        values = dict(values)
        values["id2label"] = {str(i): name for i, name in self.id2label.items()}
        values["label2id"] = self.label2id
        if values.get("architectures") is None:
            values.pop("architectures", None)
        return dict(sorted(values.items()))

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def to_json_file(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    @property
    def num_labels(self) -> int:
        return len(self.id2label)

    @property
    def label2id(self) -> dict[str, int]:
        return {name: index for index, name in self.id2label.items()}

    @property
    def max_tokens(self) -> int:
        """The longest input the model takes (its position table's size, unless a family says otherwise)."""
        return self.max_position_embeddings  # type: ignore[attr-defined]
