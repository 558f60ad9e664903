"""RoBERTa (and XLM-RoBERTa): BERT's encoder with two differences a reader should see.

1. Positions. Padding tokens sit at position `pad_token_id` and real tokens count from
   `pad_token_id + 1` (`transformers`' `create_position_ids_from_input_ids`), so the position table
   is `pad_token_id + 1` rows longer than the longest input (`RobertaConfig.max_tokens`).
2. The head. No pooler: the classifier reads the first token (`<s>`) through
   dropout -> dense -> tanh -> dropout -> out_proj (`RobertaClassificationHead`).

Everything else, layer for layer, is `attnlens.models.bert`; XLM-RoBERTa differs only in its
vocabulary and `model_type`. Submodule names equal the Hub checkpoints' keys (`roberta.`,
`classifier.dense`, `classifier.out_proj`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from attnlens.models.bert import AttentionHook, BertEmbeddings, BertModel
from attnlens.models.configuration import RobertaConfig
from attnlens.models.contract import TRANSFORMER_EXPLANATIONS, PostLNLayerParts
from attnlens.models.outputs import SequenceClassifierOutput
from attnlens.models.pretrained import PreTrainedEncoder

_IGNORED = (r"^lm_head\.", r"position_ids$")


def _hub_architecture(model: PreTrainedEncoder) -> str:
    """XLM-RoBERTa runs RoBERTa's code, but its checkpoints name `transformers`' XLMRoberta* classes."""
    return ("XLM" if model.config.model_type == "xlm-roberta" else "") + type(model).__name__


class RobertaEmbeddings(BertEmbeddings):
    """BERT's embeddings with padding-aware positions."""

    def __init__(self, config: RobertaConfig) -> None:
        super().__init__(config)
        self.padding_idx = config.pad_token_id
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size,
                                                padding_idx=config.pad_token_id)

    def position_ids(self, input_ids: Tensor) -> Tensor:
        """pad_token_id + 1, + 2, ... over real tokens; pad_token_id on padding."""
        real = input_ids.ne(self.padding_idx).long()
        return torch.cumsum(real, dim=-1) * real + self.padding_idx


class RobertaModel(BertModel):
    config_class = RobertaConfig
    base_model_prefix = "roberta"
    ignored_checkpoint_keys = _IGNORED
    embeddings_class = RobertaEmbeddings
    hub_architecture = property(_hub_architecture)


class RobertaClassificationHead(nn.Module):
    """dropout -> dense -> tanh -> dropout -> out_proj over the first token's vector."""

    def __init__(self, config: RobertaConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        dropout = config.classifier_dropout
        self.dropout = nn.Dropout(config.hidden_dropout_prob if dropout is None else dropout)
        self.activation = nn.Tanh()
        self.out_proj = nn.Linear(config.hidden_size, config.num_labels)

    def modules_in_order(self) -> list[nn.Module]:
        return [self.dropout, self.dense, self.activation, self.dropout, self.out_proj]

    def forward(self, first_token: Tensor) -> Tensor:
        for module in self.modules_in_order():
            first_token = module(first_token)
        return first_token  # (batch, num_labels)


class RobertaForSequenceClassification(PreTrainedEncoder):
    """RoBERTa + the classification head over `<s>`."""

    config_class = RobertaConfig
    base_model_prefix = "roberta"
    # A base checkpoint's pooler is not part of the classifier (transformers drops it the same way).
    ignored_checkpoint_keys = (*_IGNORED, r"^roberta\.pooler\.", r"^pooler\.")
    supported_explanations = TRANSFORMER_EXPLANATIONS
    hub_architecture = property(_hub_architecture)

    def __init__(self, config: RobertaConfig) -> None:
        super().__init__()
        self.config = config
        self.roberta = RobertaModel(config, add_pooling_layer=False)
        self.classifier = RobertaClassificationHead(config)
        self.classifier.apply(self._init_weights)

    @property
    def num_labels(self) -> int:
        return self.config.num_labels

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None,
                token_type_ids: Tensor | None = None, output_attentions: bool = False,
                output_hidden_states: bool = False, attention_hook: AttentionHook | None = None
                ) -> SequenceClassifierOutput:
        outputs = self.roberta(input_ids, attention_mask, token_type_ids, output_attentions,
                               output_hidden_states, attention_hook)
        logits = self.classifier(outputs.last_hidden_state[:, 0])
        return SequenceClassifierOutput(logits, outputs.hidden_states, outputs.attentions)

    # ------------------------------------------------------------------ the model contract
    @property
    def embeddings(self) -> RobertaEmbeddings:
        return self.roberta.embeddings

    def get_input_embeddings(self) -> nn.Embedding:
        return self.roberta.embeddings.word_embeddings

    def transformer_layers(self) -> list[PostLNLayerParts]:
        return [layer.parts() for layer in self.roberta.encoder.layer]

    def head_modules(self) -> list[nn.Module]:
        return self.classifier.modules_in_order()
