"""The encoder families as plain reference models: BERT, RoBERTa (and XLM-RoBERTa), DistilBERT.

Each family is one module (`bert`, `roberta`, `distilbert`) with its configuration in
`configuration`, Hub-layout loading and saving in `pretrained`, and what the rest of attnlens may
ask of a model in `contract`. `attnlens.loading.load_model` picks the class by `model_type`.
"""

from attnlens.models.bert import BertForSequenceClassification, BertModel
from attnlens.models.configuration import BertConfig, DistilBertConfig, EncoderConfig, RobertaConfig
from attnlens.models.distilbert import DistilBertForSequenceClassification, DistilBertModel
from attnlens.models.families import ENCODER_CLASSES, encoder_class
from attnlens.models.roberta import RobertaForSequenceClassification, RobertaModel

__all__ = [
    "ENCODER_CLASSES",
    "BertConfig",
    "BertForSequenceClassification",
    "BertModel",
    "DistilBertConfig",
    "DistilBertForSequenceClassification",
    "DistilBertModel",
    "EncoderConfig",
    "RobertaConfig",
    "RobertaForSequenceClassification",
    "RobertaModel",
    "encoder_class",
]
