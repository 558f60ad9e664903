"""BERT, top to bottom: embeddings, attention, layer, encoder, pooler, classification head.

Plain reference code: one forward path, the arithmetic of `transformers`' BERT operation for
operation (post-LayerNorm residual blocks, exact-erf GELU, tanh pooler over [CLS]), which is what
lets the parity tests demand 1e-5 agreement. Submodule names equal the state-dict keys of Hugging
Face checkpoints (`embeddings.word_embeddings`, `encoder.layer.{i}.attention.self.query`, ...,
`pooler.dense`, `classifier`), so loading is strict after a few renames (`attnlens.models.pretrained`).

Speed lives beside the model (`attnlens.inference` runs these layers packed, [CLS]-only at the
end, int8), and so do the explanation rules (`attnlens.explain`); both address the layers through
`transformer_layers()` (`attnlens.models.contract`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from attnlens.attention import merge_heads, scaled_dot_product_attention, split_heads
from attnlens.errors import InputError
from attnlens.models.activations import activation_module
from attnlens.models.configuration import BertConfig
from attnlens.models.contract import TRANSFORMER_EXPLANATIONS, PostLNLayerParts
from attnlens.models.outputs import EncoderOutput, SequenceClassifierOutput
from attnlens.models.pretrained import PreTrainedEncoder

AttentionHook = Callable[[int, Tensor], None]
"""Called as hook(layer_index, probs) with probs (batch, heads, seq, seq) during the forward."""


class BertEmbeddings(nn.Module):
    """word + absolute position + token type embeddings, then LayerNorm and dropout."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def position_ids(self, input_ids: Tensor) -> Tensor:
        """The column of each token: 0, 1, 2, ... (RoBERTa overrides this)."""
        return torch.arange(input_ids.shape[-1], device=input_ids.device).expand_as(input_ids)

    def forward(self, input_ids: Tensor, token_type_ids: Tensor | None = None,
                position_ids: Tensor | None = None) -> Tensor:
        if position_ids is None:
            position_ids = self.position_ids(input_ids)
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        embeddings = self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids)
        embeddings = embeddings + self.position_embeddings(position_ids)
        return self.dropout(self.LayerNorm(embeddings))  # (batch, seq, hidden)


class BertSelfAttention(nn.Module):
    """Multi-head scaled dot-product attention; the probabilities only when someone needs them."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(config.hidden_size, config.hidden_size)
        self.value = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout_p = config.attention_probs_dropout_prob

    def forward(self, hidden: Tensor, mask: Tensor | None, need_weights: bool) -> tuple[Tensor, Tensor | None]:
        q, k, v = (split_heads(p(hidden), self.num_heads) for p in (self.query, self.key, self.value))
        context, probs = scaled_dot_product_attention(  # (batch, heads, seq, head_dim), (batch, heads, seq, seq)
            q, k, v, mask, dropout_p=self.dropout_p if self.training else 0.0, need_weights=need_weights)
        return merge_heads(context), probs  # (batch, seq, hidden)


class BertSelfOutput(nn.Module):
    """Projection back to the residual stream, then the post-LN residual connection."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden: Tensor, residual: Tensor) -> Tensor:
        return self.LayerNorm(self.dropout(self.dense(hidden)) + residual)


class BertAttention(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.self = BertSelfAttention(config)
        self.output = BertSelfOutput(config)

    def forward(self, hidden: Tensor, mask: Tensor | None, need_weights: bool) -> tuple[Tensor, Tensor | None]:
        context, probs = self.self(hidden, mask, need_weights)
        return self.output(context, hidden), probs


class BertIntermediate(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)
        self.intermediate_act_fn = activation_module(config.hidden_act)

    def forward(self, hidden: Tensor) -> Tensor:
        return self.intermediate_act_fn(self.dense(hidden))  # (batch, seq, intermediate)


class BertOutput(BertSelfOutput):
    """The feed-forward network's second product and residual: BertSelfOutput from the wider width."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__(config)
        self.dense = nn.Linear(config.intermediate_size, config.hidden_size)


class BertLayer(nn.Module):
    """One post-LN Transformer block: attention, then the feed-forward network."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.attention = BertAttention(config)
        self.intermediate = BertIntermediate(config)
        self.output = BertOutput(config)

    def forward(self, hidden: Tensor, mask: Tensor | None, need_weights: bool) -> tuple[Tensor, Tensor | None]:
        attended, probs = self.attention(hidden, mask, need_weights)
        return self.output(self.intermediate(attended), attended), probs

    def parts(self) -> PostLNLayerParts:
        attention = self.attention
        return PostLNLayerParts(
            layer=self, num_heads=attention.self.num_heads,
            query=attention.self.query, key=attention.self.key, value=attention.self.value,
            attention_output=attention.output.dense, attention_norm=attention.output.LayerNorm,
            intermediate=self.intermediate.dense, activation=self.intermediate.intermediate_act_fn,
            output=self.output.dense, output_norm=self.output.LayerNorm)


class BertEncoder(nn.Module):
    """The stack of layers; a family with its own block class (DistilBERT) reuses this loop."""

    layer_class: type[nn.Module] = BertLayer

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleList(self.layer_class(config) for _ in range(config.num_hidden_layers))

    def forward(self, hidden: Tensor, mask: Tensor | None, *, output_attentions: bool = False,
                output_hidden_states: bool = False, attention_hook: AttentionHook | None = None
                ) -> tuple[Tensor, tuple[Tensor, ...] | None, tuple[Tensor, ...] | None]:
        all_hidden = [hidden] if output_hidden_states else None
        all_attentions = [] if output_attentions else None
        for index, layer in enumerate(self.layer):
            hidden, probs = layer(hidden, mask, output_attentions or attention_hook is not None)
            if attention_hook is not None:
                attention_hook(index, probs)
            if all_attentions is not None:
                all_attentions.append(probs)
            if all_hidden is not None:
                all_hidden.append(hidden)
        return (hidden, tuple(all_hidden) if all_hidden is not None else None,
                tuple(all_attentions) if all_attentions is not None else None)


class BertPooler(nn.Module):
    """tanh(W h_[CLS] + b): the sentence vector BERT's pre-training taught to summarise."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.activation = nn.Tanh()

    def forward(self, hidden: Tensor) -> Tensor:
        return self.activation(self.dense(hidden[:, 0]))  # (batch, hidden)


def padding_mask(attention_mask: Tensor | None) -> Tensor | None:
    """(batch, seq) 1/0 -> bool (batch, 1, 1, seq), or None when nothing is padding (the fused
    attention kernel is fastest without a mask)."""
    if attention_mask is None or bool(attention_mask.all()):
        return None
    return attention_mask.bool()[:, None, None, :]


def check_input_ids(input_ids: Tensor, max_tokens: int) -> None:
    if input_ids.dim() != 2:
        raise InputError(f"input_ids must be (batch, seq), got shape {tuple(input_ids.shape)}")
    if input_ids.shape[1] > max_tokens:
        raise InputError(f"sequence of {input_ids.shape[1]} tokens exceeds the model's limit of {max_tokens}; "
                         "truncate the input")


class BertModel(PreTrainedEncoder):
    config_class = BertConfig
    base_model_prefix = "bert"
    ignored_checkpoint_keys = (r"^cls\.", r"position_ids$")
    embeddings_class: type[BertEmbeddings] = BertEmbeddings

    def __init__(self, config: BertConfig, add_pooling_layer: bool = True) -> None:
        super().__init__()
        self.config = config
        self.embeddings = self.embeddings_class(config)
        self.encoder = BertEncoder(config)
        self.pooler = BertPooler(config) if add_pooling_layer else None
        self.apply(self._init_weights)

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None,
                token_type_ids: Tensor | None = None, output_attentions: bool = False,
                output_hidden_states: bool = False, attention_hook: AttentionHook | None = None) -> EncoderOutput:
        check_input_ids(input_ids, self.config.max_tokens)
        hidden = self.embeddings(input_ids, token_type_ids)
        hidden, all_hidden, all_attentions = self.encoder(
            hidden, padding_mask(attention_mask), output_attentions=output_attentions,
            output_hidden_states=output_hidden_states, attention_hook=attention_hook)
        pooled = self.pooler(hidden) if self.pooler is not None else None
        return EncoderOutput(hidden, pooled, all_hidden, all_attentions)


class BertForSequenceClassification(PreTrainedEncoder):
    """BERT + dropout + linear head over the pooled [CLS] vector."""

    config_class = BertConfig
    base_model_prefix = "bert"
    ignored_checkpoint_keys = (r"^cls\.", r"position_ids$")
    supported_explanations = TRANSFORMER_EXPLANATIONS

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.config = config
        self.bert = BertModel(config)
        dropout = config.classifier_dropout
        self.dropout = nn.Dropout(config.hidden_dropout_prob if dropout is None else dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self._init_weights(self.classifier)

    @property
    def num_labels(self) -> int:
        return self.config.num_labels

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None,
                token_type_ids: Tensor | None = None, output_attentions: bool = False,
                output_hidden_states: bool = False, attention_hook: AttentionHook | None = None
                ) -> SequenceClassifierOutput:
        outputs = self.bert(input_ids, attention_mask, token_type_ids, output_attentions,
                            output_hidden_states, attention_hook)
        logits = self.classifier(self.dropout(outputs.pooler_output))  # (batch, num_labels)
        return SequenceClassifierOutput(logits, outputs.hidden_states, outputs.attentions)

    # ------------------------------------------------------------------ the model contract
    @property
    def embeddings(self) -> BertEmbeddings:
        return self.bert.embeddings

    def get_input_embeddings(self) -> nn.Embedding:
        return self.bert.embeddings.word_embeddings

    def transformer_layers(self) -> list[PostLNLayerParts]:
        return [layer.parts() for layer in self.bert.encoder.layer]

    def head_modules(self) -> list[nn.Module]:
        pooler = self.bert.pooler
        return [pooler.dense, pooler.activation, self.dropout, self.classifier]
