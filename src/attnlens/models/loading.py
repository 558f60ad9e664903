"""Loading and saving models (bridge: checkpoint.py and models.py move here)."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from attnlens.checkpoint import load_pretrained, save_pretrained
from attnlens.errors import ConfigError
from attnlens.hub import resolve_model_dir

__all__ = ["ARCHITECTURES", "load_model", "load_pretrained", "model_type_of", "save_pretrained"]

ARCHITECTURES = ("bert", "birnn_attention", "han")


def model_type_of(folder: str | Path) -> str:
    from attnlens.config import read_config_json

    return str(read_config_json(Path(folder) / "config.json").get("model_type", "bert"))


def load_model(name_or_path: str | Path, *, revision: str | None = None,
               local_files_only: bool | None = None, **bert_kwargs) -> nn.Module:
    from attnlens.baselines import MODEL_CLASSES
    from attnlens.models.bert import BertForSequenceClassification

    folder = resolve_model_dir(name_or_path, revision=revision, local_files_only=local_files_only)
    model_type = model_type_of(folder)
    if model_type in MODEL_CLASSES:
        if bert_kwargs:
            raise ConfigError(f"{folder}: {', '.join(bert_kwargs)} only apply to BERT models, not {model_type}")
        model = MODEL_CLASSES[model_type].from_pretrained(folder)
        model.name_or_path = str(name_or_path)
        return model
    return BertForSequenceClassification.from_pretrained(name_or_path, revision=revision,
                                                         local_files_only=local_files_only, **bert_kwargs)
