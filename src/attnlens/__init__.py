"""attnlens: sentiment classification with Transformer encoders, with explanations of where the model looked.

The encoders (BERT, RoBERTa, DistilBERT) are written from scratch (`attnlens.models`) and load
Hugging Face checkpoints; `transformers` supplies tokenizers and serves as the reference in tests.
"""

from attnlens.attention import MultiHeadAttention, scaled_dot_product_attention
from attnlens.defaults import DEFAULT_BASE_MODEL
from attnlens.errors import (
    AttnlensError,
    CheckpointError,
    ConfigError,
    DataError,
    InputError,
    ModelNotFoundError,
)
from attnlens.loading import load_model
from attnlens.models import (
    BertConfig,
    BertForSequenceClassification,
    BertModel,
    DistilBertConfig,
    DistilBertForSequenceClassification,
    DistilBertModel,
    RobertaConfig,
    RobertaForSequenceClassification,
    RobertaModel,
)
from attnlens.models.outputs import EncoderOutput, SequenceClassifierOutput
from attnlens.tokenization import load_tokenizer

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_BASE_MODEL",
    "AttnlensError",
    "BertConfig",
    "BertForSequenceClassification",
    "BertModel",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "DistilBertConfig",
    "DistilBertForSequenceClassification",
    "DistilBertModel",
    "EncoderOutput",
    "InputError",
    "ModelNotFoundError",
    "MultiHeadAttention",
    "RobertaConfig",
    "RobertaForSequenceClassification",
    "RobertaModel",
    "SequenceClassifierOutput",
    "load_model",
    "load_tokenizer",
    "scaled_dot_product_attention",
]
