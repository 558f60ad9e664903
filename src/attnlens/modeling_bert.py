"""BERT, top to bottom: embeddings, attention, layer, encoder, pooler, classification head.

Submodule names equal the state-dict keys of Hugging Face checkpoints
(`embeddings.word_embeddings`, `encoder.layer.{i}.attention.self.query`, ..., `pooler.dense`,
`classifier`), so loading is a strict `load_state_dict` after a few explicit renames (see
`attnlens.checkpoint`). The arithmetic follows `transformers`' BERT operation for operation
(post-LayerNorm residual blocks, exact-erf GELU, tanh pooler over [CLS]), which is what lets the
parity tests demand 1e-5 agreement.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnlens import conservative
from attnlens.attention import merge_heads, scaled_dot_product_attention, split_heads
from attnlens.config import BertConfig
from attnlens.errors import InputError
from attnlens.kernels import fast_kernels_apply, linear, packed_linear, reference_kernels
from attnlens.unpadding import Packing

logger = logging.getLogger("attnlens")

AttentionHook = Callable[[int, Tensor], None]
"""Called as hook(layer_index, probs) with probs (batch, heads, q_len, k_len) during forward.

With `last_layer_cls_only=True` (BertForSequenceClassification.forward) the last layer's probs
are the [CLS] query's row only, (batch, heads, 1, k_len): all the classifier's output depends on.
"""

ChunkAttentionHook = Callable[[int, int, Tensor], None]
"""Called as hook(layer_index, first_example, probs) with probs (chunk, heads, q_len, length): the
maps of examples first_example, first_example + 1, ... (a few consecutive examples, or one),
each right-padded to the chunk's longest: example j's real tokens are its first keys, in order,
and its keys past them have probability 0 (rows past them mean nothing). q_len is `length`, or
1 for the last layer under `last_layer_cls_only=True`. Every layer uses the same chunks. In eval
mode attention is computed chunk by chunk (`BertSelfAttention.attend_in_chunks`), so each map is
handed over while it is in cache; under autograd each chunk's map is its own graph node, so a
tensor hook on it receives that chunk's gradient.
"""

_ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "gelu": F.gelu,
    "relu": F.relu,
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "silu": F.silu,
    "swish": F.silu,
}


@dataclass
class BertModelOutput:
    last_hidden_state: Tensor  # (batch, seq, hidden)
    pooler_output: Tensor | None  # (batch, hidden)
    hidden_states: tuple[Tensor, ...] | None = None  # num_layers + 1 x (batch, seq, hidden)
    attentions: tuple[Tensor, ...] | None = None  # num_layers x (batch, heads, seq, seq)


@dataclass
class SequenceClassifierOutput:
    logits: Tensor  # (batch, num_labels)
    hidden_states: tuple[Tensor, ...] | None = None
    attentions: tuple[Tensor, ...] | None = None


class BertEmbeddings(nn.Module):
    """word + absolute position + token type embeddings, then LayerNorm and dropout."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size,
                                            padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids: Tensor, token_type_ids: Tensor) -> Tensor:
        seq_len = input_ids.shape[1]
        positions = torch.arange(seq_len, device=input_ids.device)[None, :]  # (1, seq)
        embeddings = self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids)
        embeddings = embeddings + self.position_embeddings(positions)
        return self.dropout(self.LayerNorm(embeddings))  # (batch, seq, hidden)

    def forward_packed(self, input_ids: Tensor, token_type_ids: Tensor, packing: Packing) -> Tensor:
        """Embeddings of the real tokens only (tokens, hidden); positions are columns, as above."""
        positions = torch.arange(packing.seq, device=input_ids.device).expand(packing.batch, -1)
        ids, types, positions = (packing.pack(t) for t in (input_ids, token_type_ids, positions))
        embeddings = self.word_embeddings(ids) + self.token_type_embeddings(types)
        embeddings = embeddings + self.position_embeddings(positions)
        return self.dropout(self.LayerNorm(embeddings))  # (tokens, hidden)


class BertSelfAttention(nn.Module):
    """Multi-head self-attention; probabilities are computed only when someone needs them."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.hidden_size = config.hidden_size
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(config.hidden_size, config.hidden_size)
        self.value = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout_p = config.attention_probs_dropout_prob
        # Set by `attnlens.quantize`: one int8 product for query, key and value (inference only).
        self.fused_qkv: nn.Module | None = None

    def _stacked_qkv(self, hidden: Tensor, *, always: bool = False) -> Tensor | None:
        """[query | key | value] (..., 3 * hidden) from one product, or None where that can't apply
        (with `always`, three products concatenated then, e.g. on CUDA or in bfloat16).

        One product instead of three reads the input once and, for int8, quantises it once. The
        three parameters stay separate (Hugging Face's keys); the stacked copy is a cache.
        """
        if self.fused_qkv is not None:
            return self.fused_qkv(hidden)
        projections = (self.query, self.key, self.value)
        if fast_kernels_apply(hidden) and all(type(p) is nn.Linear for p in projections):
            return packed_linear(self, projections, hidden)
        return torch.cat([p(hidden) for p in projections], dim=-1) if always else None

    def forward(self, hidden: Tensor, mask: Tensor | None, need_weights: bool,
                packing: Packing | None = None, first_token_only: bool = False,
                in_chunks: bool = False) -> tuple[Tensor, Tensor | list[tuple[int, Tensor]] | None]:
        """hidden (batch, seq, hidden), or (tokens, hidden) with `packing` (see attnlens.unpadding).

        `first_token_only` (with `packing`): only each sequence's first query ([CLS]) attends, and
        the context comes back as (batch, hidden); keys and values still cover every token.
        `in_chunks` (with `packing`): see `attend_in_chunks`; the maps come back as a list.
        """
        if in_chunks:
            return self.attend_in_chunks(hidden, packing, first_token_only)
        # Packed rows are padded all three at once, so they are stacked even without one product.
        stacked = self._stacked_qkv(hidden, always=packing is not None)
        if stacked is not None:
            if packing is not None:
                stacked = packing.pad(stacked)  # (batch, seq, 3 * hidden)
            projected = stacked.split(self.hidden_size, dim=-1)
        else:
            projected = (self.query(hidden), self.key(hidden), self.value(hidden))
        q, k, v = (split_heads(x, self.num_heads) for x in projected)  # (batch, heads, seq, head_dim)
        q, k = conservative.constant_attention(q, k)
        if first_token_only:
            q = q[:, :, :1]  # (batch, heads, 1, head_dim)
        context, probs = scaled_dot_product_attention(
            q, k, v, mask, dropout_p=self.dropout_p if self.training else 0.0, need_weights=need_weights
        )
        context = merge_heads(context)  # (batch, seq, hidden)
        if first_token_only:
            context = context[:, 0]  # (batch, hidden)
        elif packing is not None:
            context = packing.pack(context)  # (tokens, hidden)
        return context, probs  # ..., (batch, heads, seq, seq)

    def attend_in_chunks(self, hidden: Tensor, packing: Packing,
                         first_token_only: bool = False) -> tuple[Tensor, list[tuple[int, Tensor]]]:
        """Attention with probabilities, a few sequences at a time (`Packing.chunks`).

        An explanation needs every layer's maps, (heads, seq, seq) per example: for a batch of
        256-token reviews that is tens of megabytes per layer, past the cache, and masking,
        softmax and the two products each stream all of it through memory again (together more
        than the layer's fused attention). A chunk's maps (one 200-token review, or dozens of
        short sentences) stay in cache from the scores to the product with the values, and a
        chunk of one needs neither mask nor padding. `packing` must hold real tokens only
        (`Packing.from_mask(..., min_padding=0)`). Returns (context (tokens, hidden), or (batch,
        hidden) with `first_token_only`; [(first example, its chunk's probs)], see ChunkAttentionHook).
        """
        stacked = self._stacked_qkv(hidden, always=True)
        chunks = packing.chunks(self.num_heads)
        contexts, maps = [], []
        # One split, not a slice per chunk: under autograd each slice's backward would fill a
        # zero tensor the size of the whole batch's projections, every chunk, every layer.
        for rows, (first, chunk) in zip(stacked.split([chunk.num_tokens for _, chunk in chunks]), chunks,
                                        strict=True):
            q, k, v = (split_heads(x, self.num_heads) for x in chunk.pad(rows).split(self.hidden_size, dim=-1))
            q, k = conservative.constant_attention(q, k)
            if first_token_only:
                q = q[:, :, :1]
            context, probs = scaled_dot_product_attention(q, k, v, chunk.key_mask(), need_weights=True)
            context = merge_heads(context)  # (chunk, rows, hidden)
            contexts.append(context[:, 0] if first_token_only else chunk.pack(context))
            maps.append((first, probs))
        return torch.cat(contexts), maps


class BertSelfOutput(nn.Module):
    """Projection back to the residual stream, then the post-LN residual connection."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden: Tensor, residual: Tensor) -> Tensor:
        return conservative.layer_norm(self.LayerNorm, self.dropout(linear(self.dense, hidden)) + residual)


class BertAttention(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.self = BertSelfAttention(config)
        self.output = BertSelfOutput(config)

    def forward(self, hidden: Tensor, mask: Tensor | None, need_weights: bool,
                packing: Packing | None = None, first_token_only: bool = False,
                in_chunks: bool = False) -> tuple[Tensor, Tensor | list[tuple[int, Tensor]] | None]:
        context, probs = self.self(hidden, mask, need_weights, packing, first_token_only, in_chunks)
        residual = hidden[packing.first_token_rows] if first_token_only else hidden
        return self.output(context, residual), probs


class BertIntermediate(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)
        self.activation = _ACTIVATIONS[config.hidden_act]
        self.exact_gelu = config.hidden_act == "gelu"  # the fast kernel fuses exactly this one

    def forward(self, hidden: Tensor) -> Tensor:
        if self.exact_gelu and not conservative.active():
            return linear(self.dense, hidden, gelu=True)  # (batch, seq, intermediate)
        return conservative.activation(self.activation, linear(self.dense, hidden))


class BertOutput(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.intermediate_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden: Tensor, residual: Tensor) -> Tensor:
        return conservative.layer_norm(self.LayerNorm, self.dropout(linear(self.dense, hidden)) + residual)


class BertLayer(nn.Module):
    """One post-LN Transformer block: attention, then the feed-forward network."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.attention = BertAttention(config)
        self.intermediate = BertIntermediate(config)
        self.output = BertOutput(config)

    def forward(self, hidden: Tensor, mask: Tensor | None, need_weights: bool,
                packing: Packing | None = None, first_token_only: bool = False,
                in_chunks: bool = False) -> tuple[Tensor, Tensor | list[tuple[int, Tensor]] | None]:
        """`first_token_only` (with `packing`): the output at each sequence's [CLS] only, (batch,
        hidden); everything after attention is per token, so nothing else needs computing.
        `in_chunks` (with `packing`): attention a few sequences at a time, maps as a list."""
        if (first_token_only or in_chunks) and packing is None:
            raise ValueError("first_token_only and in_chunks need the packed layout (attnlens.unpadding)")
        attended, probs = self.attention(hidden, mask, need_weights, packing, first_token_only, in_chunks)
        return self.output(self.intermediate(attended), attended), probs


class BertEncoder(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleList(BertLayer(config) for _ in range(config.num_hidden_layers))

    def forward(self, hidden: Tensor, mask: Tensor | None, *, output_attentions: bool,
                output_hidden_states: bool, attention_hook: AttentionHook | None
                ) -> tuple[Tensor, tuple[Tensor, ...] | None, tuple[Tensor, ...] | None]:
        all_hidden = [hidden] if output_hidden_states else None
        all_attentions = [] if output_attentions else None
        need_weights = output_attentions or attention_hook is not None
        for index, layer in enumerate(self.layer):
            hidden, probs = layer(hidden, mask, need_weights)
            if attention_hook is not None:
                attention_hook(index, probs)
            if all_attentions is not None:
                all_attentions.append(probs)
            if all_hidden is not None:
                all_hidden.append(hidden)
        return (hidden,
                tuple(all_hidden) if all_hidden is not None else None,
                tuple(all_attentions) if all_attentions is not None else None)


class BertPooler(nn.Module):
    """tanh(W h_[CLS] + b): the sentence vector BERT's pre-training taught to summarise."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.activation = nn.Tanh()

    def forward(self, hidden: Tensor) -> Tensor:
        return conservative.activation(self.activation, self.dense(hidden[:, 0]))  # (batch, hidden)


class BertPreTrainedModel(nn.Module):
    """Weight initialisation plus `from_pretrained` / `save_pretrained` (see attnlens.checkpoint)."""

    config: BertConfig
    base_model_prefix = "bert"

    def _init_weights(self, module: nn.Module) -> None:
        # Same scheme as `transformers`, so a fresh head trains the way users expect.
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.padding_idx is not None:
                with torch.no_grad():
                    module.weight[module.padding_idx].zero_()
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, *, revision: str | None = None,
                        num_labels: int | None = None, id2label: dict[int, str] | None = None,
                        local_files_only: bool | None = None, cache_dir: str | Path | None = None):
        """Load a local folder, a Hub repo id (optionally at `revision`), or DEFAULT_BASE_MODEL."""
        from attnlens.checkpoint import load_pretrained

        return load_pretrained(cls, name_or_path, revision=revision, num_labels=num_labels,
                               id2label=id2label, local_files_only=local_files_only, cache_dir=cache_dir)

    def save_pretrained(self, directory: str | Path, tokenizer=None) -> Path:
        """Write config.json, model.safetensors (HF key names) and the tokenizer's files."""
        from attnlens.checkpoint import save_pretrained

        return save_pretrained(self, directory, tokenizer=tokenizer)


def _check_inputs(input_ids: Tensor, config: BertConfig) -> None:
    if input_ids.dim() != 2:
        raise InputError(f"input_ids must be (batch, seq), got shape {tuple(input_ids.shape)}")
    if input_ids.shape[1] > config.max_position_embeddings:
        raise InputError(
            f"sequence of {input_ids.shape[1]} tokens exceeds max_position_embeddings="
            f"{config.max_position_embeddings}; truncate the input"
        )


class BertModel(BertPreTrainedModel):
    def __init__(self, config: BertConfig, add_pooling_layer: bool = True) -> None:
        super().__init__()
        self.config = config
        self.embeddings = BertEmbeddings(config)
        self.encoder = BertEncoder(config)
        self.pooler = BertPooler(config) if add_pooling_layer else None
        self.apply(self._init_weights)

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None,
                token_type_ids: Tensor | None = None, output_attentions: bool = False,
                output_hidden_states: bool = False, attention_hook: AttentionHook | None = None
                ) -> BertModelOutput:
        _check_inputs(input_ids, self.config)
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        # An all-ones mask changes nothing; dropping it lets the fused kernel take its fastest path.
        mask = None
        if attention_mask is not None and not bool(attention_mask.all()):
            mask = attention_mask.bool()[:, None, None, :]  # (batch, 1, 1, seq)
        hidden = self.embeddings(input_ids, token_type_ids)
        # Whoever asks for every layer's output is usually comparing it with `transformers`:
        # give them the bit-identical products (see attnlens.kernels).
        kernels = reference_kernels() if output_attentions or output_hidden_states else nullcontext()
        with kernels:
            hidden, all_hidden, all_attentions = self.encoder(
                hidden, mask, output_attentions=output_attentions,
                output_hidden_states=output_hidden_states, attention_hook=attention_hook,
            )
            pooled = self.pooler(hidden) if self.pooler is not None else None
        return BertModelOutput(hidden, pooled, all_hidden, all_attentions)

    def can_unpad(self, attention_mask: Tensor | None, *, with_autograd: bool = False) -> bool:
        """Whether `pooled_output_unpadded` applies: eval mode, autograd off (unless the caller
        asks for it), and every row starts with a token."""
        return (not self.training and (with_autograd or not torch.is_grad_enabled()) and self.pooler is not None
                and (attention_mask is None or bool(attention_mask[:, 0].all())))

    def pooled_output_unpadded(self, input_ids: Tensor, attention_mask: Tensor | None = None,
                               token_type_ids: Tensor | None = None,
                               attention_hook: AttentionHook | None = None, *,
                               last_layer_cls_only: bool = False,
                               attention_chunk_hook: ChunkAttentionHook | None = None) -> Tensor:
        """`forward(...).pooler_output` without computing anything for padding positions.

        Projections and feed-forward run on the packed real tokens (see attnlens.unpadding); only
        attention sees the padded layout. Real tokens get the same values as in `forward`, so the
        pooled [CLS] vector does too; padded positions are never computed, which is why only the
        pooled output is offered. Nor is anything the [CLS] vector does not depend on: the last
        layer attends from [CLS] only and runs its feed-forward on the [CLS] rows, a sixth of a
        6-layer encoder's work on SST-2-length inputs. Eval mode only; autograd works through it
        (gradient explanations use it), though only module hooks on submodules (not on
        `embeddings` itself, which is called through `forward_packed`) see the packed tensors.

        `attention_hook` sees the same probabilities as in `forward` in every row of a real token
        (so with a hook the last layer computes every row); rows of padding queries hold no
        meaning (no real token attends to them) and, where the batch was unpadded, come from a
        zero query. With `last_layer_cls_only=True` the last layer stays [CLS]-only as without a
        hook, and the hook gets that layer's [CLS] row (batch, heads, 1, seq): all that rollout and
        plain attention read, without a sixth of the encoder's work for rows they never use.

        `attention_chunk_hook` (instead of `attention_hook`) gets the maps a few examples at a
        time, each over its own real tokens (see `ChunkAttentionHook`), as they are computed: the
        cheapest way to hand an explanation every layer's maps.
        """
        _check_inputs(input_ids, self.config)
        if not self.can_unpad(attention_mask, with_autograd=True):
            raise InputError("unpadded inference needs eval mode and a real first token per row")
        in_chunks = attention_chunk_hook is not None
        if in_chunks:
            if attention_hook is not None:
                raise ValueError("pass attention_hook or attention_chunk_hook, not both")
            attention_hook = _each_chunk(attention_chunk_hook)
        batch, seq = input_ids.shape
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        # Attention in chunks needs the real tokens alone in each span, however little padding.
        packing = Packing.from_mask(attention_mask, batch, seq, input_ids.device,
                                    min_padding=0.0 if in_chunks else None)
        mask = None  # (batch, 1, 1, seq) where padding exists, whether or not it is unpadded
        if attention_mask is not None and not bool(attention_mask.all()):
            mask = attention_mask.bool()[:, None, None, :]
        hidden = self.embeddings.forward_packed(input_ids, token_type_ids, packing)  # (tokens, hidden)
        layers = self.encoder.layer
        for index, layer in enumerate(layers):
            if index == len(layers) - 1 and (attention_hook is None or last_layer_cls_only):
                first_tokens, probs = layer(hidden, mask, attention_hook is not None, packing,
                                            first_token_only=True, in_chunks=in_chunks)  # (batch, hidden)
                if attention_hook is not None:
                    attention_hook(index, probs)  # (batch, heads, 1, seq)
                return self.pooler(first_tokens.unsqueeze(1))
            hidden, probs = layer(hidden, mask, attention_hook is not None, packing, in_chunks=in_chunks)
            if attention_hook is not None:
                attention_hook(index, probs)
        return self.pooler(hidden[packing.first_token_rows].unsqueeze(1))  # [CLS] rows as (batch, 1, hidden)


def _each_chunk(hook: ChunkAttentionHook) -> AttentionHook:
    """An AttentionHook for the chunked path, whose layers return [(first example, probs)]."""

    def call(layer_index: int, maps: list[tuple[int, Tensor]]) -> None:
        for first, probs in maps:
            hook(layer_index, first, probs)

    return call


def _chunks_from_padded(hook: ChunkAttentionHook, attention_mask: Tensor | None) -> AttentionHook:
    """`hook` fed from padded (batch, heads, rows, seq) maps: chunks of one example, its real keys
    (and rows) gathered to the front, so any padding pattern meets ChunkAttentionHook's layout."""

    real_keys: list[Tensor] = []  # per example, found at the first layer and kept for the others

    def call(layer_index: int, probs: Tensor) -> None:
        seq = probs.shape[-1]
        if not real_keys:
            real_keys.extend(torch.arange(seq, device=probs.device) if attention_mask is None
                             else attention_mask[example].nonzero().squeeze(1) for example in range(probs.shape[0]))
        for example, keys in enumerate(real_keys):
            example_probs = probs[example:example + 1, :, :, keys]
            # The last layer under last_layer_cls_only has its [CLS] row only.
            hook(layer_index, example, example_probs[:, :, keys] if probs.shape[-2] == seq else example_probs)

    return call


def _cls_row_in_last_layer(hook: AttentionHook, last_layer: int) -> AttentionHook:
    """`hook` as the padded path must call it under `last_layer_cls_only`: same shapes as unpadded."""

    def call(layer_index: int, probs: Tensor) -> None:
        hook(layer_index, probs[:, :, :1] if layer_index == last_layer else probs)

    return call


class BertForSequenceClassification(BertPreTrainedModel):
    """BERT + dropout + linear head over the pooled [CLS] vector."""

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
                output_hidden_states: bool = False, attention_hook: AttentionHook | None = None,
                *, last_layer_cls_only: bool = False,
                attention_chunk_hook: ChunkAttentionHook | None = None) -> SequenceClassifierOutput:
        """`last_layer_cls_only`: `attention_hook` gets only the [CLS] row of the last layer's
        probabilities (see `AttentionHook`), on every path. In eval mode the other rows and the
        padding are then not computed, with or without autograd: the caller has said it reads
        nothing but the logits and hooked maps (module hooks on `bert.embeddings` do not fire then).
        `attention_chunk_hook` (see `ChunkAttentionHook`), instead of `attention_hook`, gets the
        maps chunk by chunk, on every path; it too says only the logits and maps are read.
        """
        if attention_hook is not None and attention_chunk_hook is not None:
            raise ValueError("pass attention_hook or attention_chunk_hook, not both")
        maps_only = last_layer_cls_only or attention_chunk_hook is not None
        unpad = self.bert.can_unpad(attention_mask, with_autograd=maps_only)
        if not (output_attentions or output_hidden_states) and unpad:
            # Only the [CLS] vector is needed: skip every FLOP on padding (see attnlens.unpadding).
            pooled = self.bert.pooled_output_unpadded(input_ids, attention_mask, token_type_ids, attention_hook,
                                                      last_layer_cls_only=last_layer_cls_only,
                                                      attention_chunk_hook=attention_chunk_hook)
            return SequenceClassifierOutput(self.classifier(self.dropout(pooled)))
        if attention_chunk_hook is not None:
            attention_hook = _chunks_from_padded(attention_chunk_hook, attention_mask)
        if attention_hook is not None and last_layer_cls_only:
            attention_hook = _cls_row_in_last_layer(attention_hook, self.config.num_hidden_layers - 1)
        outputs = self.bert(input_ids, attention_mask, token_type_ids, output_attentions,
                            output_hidden_states, attention_hook)
        logits = self.classifier(self.dropout(outputs.pooler_output))  # (batch, num_labels)
        return SequenceClassifierOutput(logits, outputs.hidden_states, outputs.attentions)
