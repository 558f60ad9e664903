"""Load any model attnlens reads from a folder or the Hub: the `model_type` in its config.json
picks the class (an encoder family of `attnlens.models` or a baseline of `attnlens.baselines`)."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from attnlens.baselines import MODEL_CLASSES as BASELINE_CLASSES
from attnlens.config import read_config_json
from attnlens.errors import ConfigError
from attnlens.hub import resolve_model_dir
from attnlens.models import ENCODER_CLASSES

# What `model.arch` of a training job may be: fine-tune an encoder, or train a baseline.
ARCHITECTURES = ("encoder", "birnn_attention", "han")
MODEL_CLASSES: dict[str, type[nn.Module]] = {**ENCODER_CLASSES, **BASELINE_CLASSES}


def model_type_of(folder: str | Path) -> str:
    """The `model_type` of a model folder's config.json (BERT when absent, as `transformers` does)."""
    return str(read_config_json(Path(folder) / "config.json").get("model_type", "bert"))


def model_class(model_type: str, source: str = "config") -> type[nn.Module]:
    try:
        return MODEL_CLASSES[model_type]
    except KeyError:
        raise ConfigError(
            f"{source}: model_type={model_type!r} is not supported; attnlens loads the encoders "
            f"{', '.join(sorted(ENCODER_CLASSES))} and its baselines {', '.join(sorted(BASELINE_CLASSES))}"
        ) from None


def load_model(name_or_path: str | Path, *, revision: str | None = None,
               local_files_only: bool | None = None, num_labels: int | None = None,
               id2label: dict[int, str] | None = None) -> nn.Module:
    """The model in a folder or Hub repo (optionally at a pinned `revision`), in eval mode.

    `num_labels` / `id2label` put a fresh head on an encoder (for fine-tuning); baselines are
    loaded as trained.
    """
    folder = resolve_model_dir(name_or_path, revision=revision, local_files_only=local_files_only)
    model_type = model_type_of(folder)
    cls = model_class(model_type, str(folder / "config.json"))
    if model_type in BASELINE_CLASSES:
        if num_labels is not None or id2label is not None:
            raise ConfigError(f"{name_or_path}: a trained {model_type} baseline keeps its labels; only an "
                              f"encoder ({', '.join(sorted(ENCODER_CLASSES))}) takes a new head")
        model = cls.from_pretrained(folder)
    else:
        model = cls.from_pretrained(folder, num_labels=num_labels, id2label=id2label)
    model.name_or_path = str(name_or_path)
    return model
