"""DistilBERT, top to bottom: a 6-layer BERT distilled from BERT (Sanh et al., 2019).

The same post-LN blocks as BERT with fewer parts: no token types, no pooler, and each block's
attention and feed-forward network as flat modules (`attention.q_lin`, `ffn.lin1`). The head reads
the first token ([CLS]) through pre_classifier -> ReLU -> dropout -> classifier. Submodule names equal
the Hub checkpoints' keys (`distilbert.transformer.layer.{i}.attention.q_lin`, `pre_classifier`),
and the layers expose their parts by role (`parts()`), so the inference engine and the explanation
rules run DistilBERT without knowing these names.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from attnlens.attention import merge_heads, scaled_dot_product_attention, split_heads
from attnlens.models.activations import activation_module
from attnlens.models.bert import AttentionHook, BertEncoder, check_input_ids, padding_mask
from attnlens.models.configuration import DistilBertConfig
from attnlens.models.contract import TRANSFORMER_EXPLANATIONS, PostLNLayerParts
from attnlens.models.outputs import EncoderOutput, SequenceClassifierOutput
from attnlens.models.pretrained import PreTrainedEncoder

_IGNORED = (r"^vocab_(transform|layer_norm|projector)\.", r"position_ids$")


def sinusoidal_table(positions: int, dim: int) -> Tensor:
    """Vaswani et al.'s fixed positions: sin on even columns, cos on odd ones (sinusoidal_pos_embds)."""
    angles = torch.tensor([[pos / 10000 ** (2 * (j // 2) / dim) for j in range(dim)] for pos in range(positions)],
                          dtype=torch.float64)
    table = torch.empty(positions, dim)
    table[:, 0::2] = torch.sin(angles[:, 0::2]).float()
    table[:, 1::2] = torch.cos(angles[:, 1::2]).float()
    return table


class Embeddings(nn.Module):
    """word + absolute position embeddings, then LayerNorm and dropout (no token types)."""

    def __init__(self, config: DistilBertConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.dim, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.dim)
        self.LayerNorm = nn.LayerNorm(config.dim, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.dropout)

    def position_ids(self, input_ids: Tensor) -> Tensor:
        return torch.arange(input_ids.shape[-1], device=input_ids.device).expand_as(input_ids)

    def forward(self, input_ids: Tensor, token_type_ids: Tensor | None = None,
                position_ids: Tensor | None = None) -> Tensor:
        """`token_type_ids` is accepted for a uniform call and ignored: DistilBERT has no segments."""
        if position_ids is None:
            position_ids = self.position_ids(input_ids)
        embeddings = self.word_embeddings(input_ids) + self.position_embeddings(position_ids)
        return self.dropout(self.LayerNorm(embeddings))  # (batch, seq, dim)


class MultiHeadSelfAttention(nn.Module):
    def __init__(self, config: DistilBertConfig) -> None:
        super().__init__()
        self.n_heads = config.n_heads
        self.q_lin = nn.Linear(config.dim, config.dim)
        self.k_lin = nn.Linear(config.dim, config.dim)
        self.v_lin = nn.Linear(config.dim, config.dim)
        self.out_lin = nn.Linear(config.dim, config.dim)
        self.dropout_p = config.attention_dropout

    def forward(self, hidden: Tensor, mask: Tensor | None, need_weights: bool) -> tuple[Tensor, Tensor | None]:
        q, k, v = (split_heads(p(hidden), self.n_heads) for p in (self.q_lin, self.k_lin, self.v_lin))
        context, probs = scaled_dot_product_attention(
            q, k, v, mask, dropout_p=self.dropout_p if self.training else 0.0, need_weights=need_weights)
        return self.out_lin(merge_heads(context)), probs  # (batch, seq, dim)


class FFN(nn.Module):
    def __init__(self, config: DistilBertConfig) -> None:
        super().__init__()
        self.lin1 = nn.Linear(config.dim, config.hidden_dim)
        self.activation = activation_module(config.activation)
        self.lin2 = nn.Linear(config.hidden_dim, config.dim)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, hidden: Tensor) -> Tensor:
        return self.dropout(self.lin2(self.activation(self.lin1(hidden))))


class TransformerBlock(nn.Module):
    """One post-LN block: attention + residual + LayerNorm, then FFN + residual + LayerNorm."""

    def __init__(self, config: DistilBertConfig) -> None:
        super().__init__()
        self.attention = MultiHeadSelfAttention(config)
        self.sa_layer_norm = nn.LayerNorm(config.dim, eps=config.layer_norm_eps)
        self.ffn = FFN(config)
        self.output_layer_norm = nn.LayerNorm(config.dim, eps=config.layer_norm_eps)

    def forward(self, hidden: Tensor, mask: Tensor | None, need_weights: bool) -> tuple[Tensor, Tensor | None]:
        attended, probs = self.attention(hidden, mask, need_weights)
        attended = self.sa_layer_norm(attended + hidden)
        return self.output_layer_norm(self.ffn(attended) + attended), probs

    def parts(self) -> PostLNLayerParts:
        attention = self.attention
        return PostLNLayerParts(
            layer=self, num_heads=attention.n_heads,
            query=attention.q_lin, key=attention.k_lin, value=attention.v_lin,
            attention_output=attention.out_lin, attention_norm=self.sa_layer_norm,
            intermediate=self.ffn.lin1, activation=self.ffn.activation,
            output=self.ffn.lin2, output_norm=self.output_layer_norm)


class Transformer(BertEncoder):
    """BERT's layer loop over DistilBERT's blocks."""

    layer_class = TransformerBlock


class DistilBertModel(PreTrainedEncoder):
    config_class = DistilBertConfig
    base_model_prefix = "distilbert"
    ignored_checkpoint_keys = _IGNORED

    def __init__(self, config: DistilBertConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings = Embeddings(config)
        self.transformer = Transformer(config)
        self.apply(self._init_weights)
        if config.sinusoidal_pos_embds:
            with torch.no_grad():
                self.embeddings.position_embeddings.weight.copy_(
                    sinusoidal_table(config.max_position_embeddings, config.dim))
            self.embeddings.position_embeddings.weight.requires_grad_(False)

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None,
                token_type_ids: Tensor | None = None, output_attentions: bool = False,
                output_hidden_states: bool = False, attention_hook: AttentionHook | None = None) -> EncoderOutput:
        check_input_ids(input_ids, self.config.max_tokens)
        hidden = self.embeddings(input_ids)
        hidden, all_hidden, all_attentions = self.transformer(
            hidden, padding_mask(attention_mask), output_attentions=output_attentions,
            output_hidden_states=output_hidden_states, attention_hook=attention_hook)
        return EncoderOutput(hidden, None, all_hidden, all_attentions)


class DistilBertForSequenceClassification(PreTrainedEncoder):
    """DistilBERT + pre_classifier -> ReLU -> dropout -> classifier over [CLS]."""

    config_class = DistilBertConfig
    base_model_prefix = "distilbert"
    head_prefixes = ("pre_classifier.", "classifier.")
    ignored_checkpoint_keys = _IGNORED
    supported_explanations = TRANSFORMER_EXPLANATIONS

    def __init__(self, config: DistilBertConfig) -> None:
        super().__init__()
        self.config = config
        self.distilbert = DistilBertModel(config)
        self.pre_classifier = nn.Linear(config.dim, config.dim)
        self.activation = nn.ReLU()
        self.dropout = nn.Dropout(config.seq_classif_dropout)
        self.classifier = nn.Linear(config.dim, config.num_labels)
        for module in (self.pre_classifier, self.classifier):
            self._init_weights(module)

    @property
    def num_labels(self) -> int:
        return self.config.num_labels

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None,
                token_type_ids: Tensor | None = None, output_attentions: bool = False,
                output_hidden_states: bool = False, attention_hook: AttentionHook | None = None
                ) -> SequenceClassifierOutput:
        """`token_type_ids` is accepted so callers need not know the family, and ignored."""
        outputs = self.distilbert(input_ids, attention_mask, None, output_attentions,
                                  output_hidden_states, attention_hook)
        first = outputs.last_hidden_state[:, 0]
        for module in self.head_modules():
            first = module(first)
        return SequenceClassifierOutput(first, outputs.hidden_states, outputs.attentions)

    # ------------------------------------------------------------------ the model contract
    @property
    def embeddings(self) -> Embeddings:
        return self.distilbert.embeddings

    def get_input_embeddings(self) -> nn.Embedding:
        return self.distilbert.embeddings.word_embeddings

    def transformer_layers(self) -> list[PostLNLayerParts]:
        return [layer.parts() for layer in self.distilbert.transformer.layer]

    def head_modules(self) -> list[nn.Module]:
        return [self.pre_classifier, self.activation, self.dropout, self.classifier]

