"""The encoder families by `model_type`: which classifier class reads a `config.json`."""

from __future__ import annotations

from attnlens.errors import ConfigError
from attnlens.models.bert import BertForSequenceClassification
from attnlens.models.distilbert import DistilBertForSequenceClassification
from attnlens.models.pretrained import PreTrainedEncoder
from attnlens.models.roberta import RobertaForSequenceClassification

ENCODER_CLASSES: dict[str, type[PreTrainedEncoder]] = {
    model_type: model_class
    for model_class in (BertForSequenceClassification, RobertaForSequenceClassification,
                        DistilBertForSequenceClassification)
    for model_type in model_class.config_class.model_types
}


def encoder_class(model_type: str, source: str = "config") -> type[PreTrainedEncoder]:
    """The sequence classifier of an encoder `model_type`, or an error naming the supported ones."""
    try:
        return ENCODER_CLASSES[model_type]
    except KeyError:
        raise ConfigError(f"{source}: model_type={model_type!r} is not an encoder attnlens implements "
                          f"(supported: {', '.join(sorted(ENCODER_CLASSES))})") from None
