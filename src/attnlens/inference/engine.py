"""The inference engine: any encoder family's layers run packed, [CLS]-only at the end, in
cache-sized attention chunks, on oneDNN's packed (or int8) products.

The reference models (`attnlens.models`) compute every position of a padded batch the way
`transformers` does. For a prediction that is mostly waste: SST-2 batches in file order are about
half padding, and the logits depend on the last layer's first token only. The engine walks a
model's layers itself, through the model contract (`transformer_layers()`: each block's parts by
role; `embeddings`; `head_modules()`), so it is written once for BERT, RoBERTa and DistilBERT:

- projections, feed-forward, LayerNorm and residuals run on the real tokens only, packed as one
  (tokens, hidden) tensor (`attnlens.inference.packing`); attention alone sees the padded layout;
- the last layer attends from the first token only and runs its feed-forward on those rows;
- query, key and value are one product, through oneDNN with the weight packed once
  (`attnlens.inference.kernels`), or one int8 product (`attnlens.inference.quantize`);
- with attention maps wanted (explanations), attention runs a few sequences at a time so each
  chunk's maps stay in cache (`attention_chunk_hook`);
- an explanation's backward rule (`attnlens.inference.rules`) is honoured at every non-linear step.

Its results equal the reference model's to float32 rounding (tests/test_inference_engine.py).
Eval mode only; calls it cannot run (training mode, a model outside the contract, a batch whose
first column is padding) go to the model's own forward.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from attnlens.attention import merge_heads, scaled_dot_product_attention, split_heads
from attnlens.cancellation import layer_boundary
from attnlens.errors import InputError
from attnlens.inference.kernels import fast_kernels_apply, linear, packed_linear
from attnlens.inference.packing import Packing
from attnlens.inference.rules import BackwardRule, apply_module
from attnlens.models.bert import check_input_ids, padding_mask
from attnlens.models.contract import PostLNLayerParts, TransformerClassifier

AttentionHook = Callable[[int, Tensor], None]
"""hook(layer_index, probs (batch, heads, q_len, seq)); with `last_layer_cls_only` the last
layer's q_len is 1 (the first token's row: all the logits depend on)."""

ChunkAttentionHook = Callable[[int, int, Tensor], None]
"""hook(layer_index, first_example, probs (chunk, heads, q_len, length)): the maps of examples
first_example, first_example + 1, ..., each right-padded to the chunk's longest: example j's real
tokens are its first keys, in order, and its keys past them have probability 0 (rows past them
mean nothing). q_len is `length`, or 1 for the last layer under `last_layer_cls_only`. Every layer
uses the same chunks. Under autograd each chunk's map is its own graph node, so a tensor hook on it
receives that chunk's gradient."""

# Set on a layer by `attnlens.inference.quantize`: its query, key and value as one int8 product.
FUSED_QKV_ATTRIBUTE = "_attnlens_fused_qkv"
_KEEP_EVERY_POSITION = 2.0  # a min_padding no batch reaches: the padded layout, hooks see (batch, seq)


def runs_on_engine(model: nn.Module, attention_mask: Tensor | None) -> bool:
    """Whether `classify` takes the engine for this model and batch."""
    return (isinstance(model, TransformerClassifier) and not model.training
            and (attention_mask is None or bool(attention_mask[:, 0].all())))


def classify(model: nn.Module, input_ids: Tensor, attention_mask: Tensor | None = None,
             token_type_ids: Tensor | None = None, *, attention_hook: AttentionHook | None = None,
             attention_chunk_hook: ChunkAttentionHook | None = None, last_layer_cls_only: bool = False,
             rule: BackwardRule | None = None, unpad: bool | None = None) -> Tensor:
    """The logits (batch, num_labels) of any attnlens classifier, on the engine where it applies.

    `attention_hook` / `attention_chunk_hook` (one of them) receive every layer's attention maps.
    `last_layer_cls_only`: the last layer's maps are its first-token row only.
    `rule`: an explanation's backward rule (engine only: eval mode and a real first token).
    `unpad`: the packed layout (default: unless autograd runs without a hook that reads maps only,
    so that module hooks on the word embeddings, e.g. Captum's, see (batch, seq, hidden)).
    """
    if attention_hook is not None and attention_chunk_hook is not None:
        raise ValueError("pass attention_hook or attention_chunk_hook, not both")
    if runs_on_engine(model, attention_mask):
        if unpad is None:
            unpad = not torch.is_grad_enabled() or last_layer_cls_only or attention_chunk_hook is not None
        return _encoder_logits(model, input_ids, attention_mask, token_type_ids, attention_hook,
                               attention_chunk_hook, last_layer_cls_only, rule, unpad)
    if rule is not None:
        raise InputError(f"an explanation rule needs {type(model).__name__} in eval mode with the "
                         "first token of every row real (right padding)")
    if attention_chunk_hook is not None:
        attention_hook = _chunks_from_padded(attention_chunk_hook, attention_mask)
    if attention_hook is not None and last_layer_cls_only and isinstance(model, TransformerClassifier):
        attention_hook = _cls_row_in_last_layer(attention_hook, len(model.transformer_layers()) - 1)
    hooks = {} if attention_hook is None else {"attention_hook": attention_hook}
    return model(input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids, **hooks).logits


def _encoder_logits(model: TransformerClassifier, input_ids: Tensor, attention_mask: Tensor | None,
                    token_type_ids: Tensor | None, attention_hook: AttentionHook | None,
                    attention_chunk_hook: ChunkAttentionHook | None, last_layer_cls_only: bool,
                    rule: BackwardRule | None, unpad: bool) -> Tensor:
    check_input_ids(input_ids, model.max_tokens)
    in_chunks = attention_chunk_hook is not None
    if in_chunks:
        attention_hook = _each_chunk(attention_chunk_hook)
    batch, seq = input_ids.shape
    # Attention in chunks needs each sequence's real tokens alone in its span, however little padding.
    min_padding = 0.0 if in_chunks else (None if unpad else _KEEP_EVERY_POSITION)
    packing = Packing.from_mask(attention_mask, batch, seq, input_ids.device, min_padding=min_padding)
    mask = padding_mask(attention_mask)  # (batch, 1, 1, seq) where padding exists, unpadded or not
    hidden = _embed(model, input_ids, token_type_ids, packing)  # (tokens, hidden)
    layers = model.transformer_layers()
    for index, parts in enumerate(layers):
        first_token_only = index == len(layers) - 1 and (attention_hook is None or last_layer_cls_only)
        layer_boundary(f"layer {index}", hidden, before=True)
        hidden, probs = _layer(parts, hidden, mask, attention_hook is not None, packing,
                               first_token_only, in_chunks, rule)
        layer_boundary(f"layer {index}", hidden, before=False)
        if attention_hook is not None:
            attention_hook(index, probs)
    first_tokens = hidden if first_token_only else hidden[packing.first_token_rows]  # (batch, hidden)
    for module in model.head_modules():
        first_tokens = apply_module(module, first_tokens, rule)
    return first_tokens  # (batch, num_labels)


def _embed(model: TransformerClassifier, input_ids: Tensor, token_type_ids: Tensor | None,
           packing: Packing) -> Tensor:
    """The embeddings of the packed rows, (tokens, hidden); positions are the family's own."""
    embeddings = model.embeddings
    positions = embeddings.position_ids(input_ids)  # (batch, seq)
    if packing.indices is None:
        return embeddings(input_ids, token_type_ids, positions).flatten(0, 1)  # (batch * seq, hidden)
    types = None if token_type_ids is None else packing.pack(token_type_ids)
    return embeddings(packing.pack(input_ids), types, packing.pack(positions))


def _layer(parts: PostLNLayerParts, hidden: Tensor, mask: Tensor | None, need_weights: bool,
           packing: Packing, first_token_only: bool, in_chunks: bool, rule: BackwardRule | None
           ) -> tuple[Tensor, Tensor | list[tuple[int, Tensor]] | None]:
    """One post-LN block on packed rows; with `first_token_only` the output is (batch, hidden)."""
    if in_chunks:
        context, probs = _attend_in_chunks(parts, hidden, packing, first_token_only, rule)
    else:
        context, probs = _attend(parts, hidden, mask, need_weights, packing, first_token_only, rule)
    residual = hidden[packing.first_token_rows] if first_token_only else hidden
    attended = apply_module(parts.attention_norm, linear(parts.attention_output, context) + residual, rule)
    if rule is None and type(parts.activation) is nn.GELU and parts.activation.approximate == "none":
        inner = linear(parts.intermediate, attended, gelu=True)  # the product with GELU fused
    else:
        inner = apply_module(parts.activation, linear(parts.intermediate, attended), rule)
    return apply_module(parts.output_norm, linear(parts.output, inner) + attended, rule), probs


def _stacked_qkv(parts: PostLNLayerParts, hidden: Tensor) -> Tensor:
    """[query | key | value] (..., 3 * hidden): one product reads the input once and, for int8,
    quantises it once. The three parameters stay separate (the Hub's keys); the stack is a cache."""
    fused = parts.layer.__dict__.get(FUSED_QKV_ATTRIBUTE)
    if fused is not None:
        return fused(hidden)
    projections = (parts.query, parts.key, parts.value)
    if fast_kernels_apply(hidden) and all(type(p) is nn.Linear for p in projections):
        return packed_linear(parts.layer, projections, hidden)
    return torch.cat([p(hidden) for p in projections], dim=-1)


def _split_qkv(parts: PostLNLayerParts, stacked: Tensor, rule: BackwardRule | None,
               first_token_only: bool) -> tuple[Tensor, Tensor, Tensor]:
    q, k, v = (split_heads(x, parts.num_heads) for x in stacked.chunk(3, dim=-1))  # (batch, heads, seq, head_dim)
    if rule is not None:
        q, k = rule.attention_inputs(q, k)
    if first_token_only:
        q = q[:, :, :1]  # (batch, heads, 1, head_dim)
    return q, k, v


def _attend(parts: PostLNLayerParts, hidden: Tensor, mask: Tensor | None, need_weights: bool,
            packing: Packing, first_token_only: bool, rule: BackwardRule | None) -> tuple[Tensor, Tensor | None]:
    q, k, v = _split_qkv(parts, packing.pad(_stacked_qkv(parts, hidden)), rule, first_token_only)
    context, probs = scaled_dot_product_attention(q, k, v, mask, need_weights=need_weights)
    context = merge_heads(context)  # (batch, seq, hidden)
    return (context[:, 0] if first_token_only else packing.pack(context)), probs


def _attend_in_chunks(parts: PostLNLayerParts, hidden: Tensor, packing: Packing, first_token_only: bool,
                      rule: BackwardRule | None) -> tuple[Tensor, list[tuple[int, Tensor]]]:
    """Attention with its maps, a few sequences at a time (`Packing.chunks`).

    An explanation needs every layer's maps, (heads, seq, seq) per example: for a batch of
    256-token reviews that is tens of megabytes per layer, past the cache, and masking, softmax and
    the two products each stream all of it through memory again. A chunk's maps (one long review,
    or dozens of short sentences) stay in cache from the scores to the product with the values, and
    a chunk of one needs neither mask nor padding. Returns (context (tokens, hidden), or (batch,
    hidden) with `first_token_only`; [(first example, its chunk's probs)], see ChunkAttentionHook).
    """
    stacked = _stacked_qkv(parts, hidden)
    chunks = packing.chunks(parts.num_heads)
    contexts, maps = [], []
    # One split, not a slice per chunk: under autograd each slice's backward would fill a zero
    # tensor the size of the whole batch's projections, every chunk, every layer.
    for rows, (first, chunk) in zip(stacked.split([chunk.num_tokens for _, chunk in chunks]), chunks, strict=True):
        q, k, v = _split_qkv(parts, chunk.pad(rows), rule, first_token_only)
        context, probs = scaled_dot_product_attention(q, k, v, chunk.key_mask(), need_weights=True)
        context = merge_heads(context)  # (chunk, rows, hidden)
        contexts.append(context[:, 0] if first_token_only else chunk.pack(context))
        maps.append((first, probs))
    return torch.cat(contexts), maps


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
    """`hook` as the padded path must call it under `last_layer_cls_only`: same shapes as the engine."""

    def call(layer_index: int, probs: Tensor) -> None:
        hook(layer_index, probs[:, :, :1] if layer_index == last_layer else probs)

    return call
