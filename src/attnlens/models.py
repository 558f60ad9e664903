"""One entry point that loads any saved attnlens classifier: BERT or one of the baselines.

The folder's `config.json` says what it holds (`model_type`): "bert" (or none, as in older
checkpoints) loads `BertForSequenceClassification`, "attnlens_birnn_attention" and "attnlens_han"
load the baselines. Every place that loads a model folder (predict, service, explain, evaluate)
calls this, so a new architecture is added here once.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from attnlens.errors import ConfigError
from attnlens.hub import resolve_model_dir

ARCHITECTURES = ("bert", "birnn_attention", "han")


def model_type_of(folder: str | Path) -> str:
    from attnlens.config import read_config_json

    return str(read_config_json(Path(folder) / "config.json").get("model_type", "bert"))


def load_model(name_or_path: str | Path, *, revision: str | None = None,
               local_files_only: bool | None = None, **bert_kwargs) -> nn.Module:
    """The classifier saved in a folder or Hub repo, in eval mode; `bert_kwargs` go to BERT only
    (num_labels / id2label to put a fresh head on a base model)."""
    from attnlens.baselines import MODEL_CLASSES
    from attnlens.modeling_bert import BertForSequenceClassification

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
