"""attnlens: BERT sentiment classification with attention-based explanations.

The encoder is written from scratch (`attnlens.modeling_bert`) and loads Hugging Face BERT
checkpoints; `transformers` supplies tokenizers and serves as the reference in tests.
"""

from attnlens.attention import MultiHeadAttention, scaled_dot_product_attention
from attnlens.config import BertConfig
from attnlens.defaults import DEFAULT_BASE_MODEL
from attnlens.errors import (
    AttnlensError,
    CheckpointError,
    ConfigError,
    DataError,
    InputError,
    ModelNotFoundError,
)
from attnlens.modeling_bert import (
    BertForSequenceClassification,
    BertModel,
    BertModelOutput,
    SequenceClassifierOutput,
)
from attnlens.tokenization import load_tokenizer

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_BASE_MODEL",
    "AttnlensError",
    "BertConfig",
    "BertForSequenceClassification",
    "BertModel",
    "BertModelOutput",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "InputError",
    "ModelNotFoundError",
    "MultiHeadAttention",
    "SequenceClassifierOutput",
    "load_tokenizer",
    "scaled_dot_product_attention",
]
