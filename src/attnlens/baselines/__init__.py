"""The attention classifiers that came before BERT, as baselines: BiRNN + attention pooling and HAN.

Both read the base model's WordPiece tokens, start from its word embeddings (or random ones), are
trained by the same job (`model.arch: birnn_attention | han`), saved in the same layout with their
own `model_type`, and explain themselves with their own attention weights (method `native`).
See docs/baselines.md.
"""

from attnlens.baselines.birnn_attention import BiRNNAttentionForSequenceClassification
from attnlens.baselines.config import BiRNNAttentionConfig, HANConfig
from attnlens.baselines.han import HierarchicalAttentionNetwork, split_sentences
from attnlens.baselines.recurrent import BaselineOutput

MODEL_CLASSES = {
    BiRNNAttentionConfig.model_type: BiRNNAttentionForSequenceClassification,
    HANConfig.model_type: HierarchicalAttentionNetwork,
}

__all__ = [
    "MODEL_CLASSES",
    "BaselineOutput",
    "BiRNNAttentionConfig",
    "BiRNNAttentionForSequenceClassification",
    "HANConfig",
    "HierarchicalAttentionNetwork",
    "split_sentences",
]
