"""Attention as the literature defines it: masks, scoring functions, and multi-head attention.

Scoring functions map a query and a set of keys to one unnormalised score per key:

* `dot_score`          q·k                                   (Luong et al. 2015, "dot")
* `scaled_dot_score`   q·k / sqrt(d)                         (Vaswani et al. 2017)
* `general_score`      qᵀ W k                                (Luong et al. 2015, "general")
* `additive_score`     vᵀ tanh(W_q q + W_k k + b)            (Bahdanau et al. 2015)
* `concat_score`       vᵀ tanh(W [q; k] + b)                 (Luong et al. 2015, "concat")

`scaled_dot_product_attention` is the Transformer's attention. Without a request for the
probabilities it calls `torch.nn.functional.scaled_dot_product_attention` (a fused kernel that
never materialises the probabilities); when they are requested it computes them explicitly.
Both paths give the same outputs; masked positions get exactly zero probability.

Masks are boolean with True meaning "may attend", broadcastable to (batch, heads, q_len, k_len).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# ---------------------------------------------------------------------------------- masks


def padding_mask(attention_mask: Tensor) -> Tensor:
    """(batch, k_len) of 1 = token / 0 = padding  ->  bool (batch, 1, 1, k_len)."""
    return attention_mask.bool()[:, None, None, :]


def causal_mask(q_len: int, k_len: int | None = None, device: torch.device | None = None) -> Tensor:
    """bool (q_len, k_len): query i may see keys up to its own position.

    With k_len > q_len (cached keys before the queries), queries are aligned to the *end* of
    the keys, so the last query sees every key.
    """
    k_len = q_len if k_len is None else k_len
    offset = k_len - q_len
    rows = torch.arange(q_len, device=device)[:, None]
    cols = torch.arange(k_len, device=device)[None, :]
    return cols <= rows + offset


def combine_masks(*masks: Tensor | None) -> Tensor | None:
    """Logical AND of the given masks (None entries ignored); None if none given."""
    combined: Tensor | None = None
    for mask in masks:
        if mask is None:
            continue
        combined = mask if combined is None else combined & mask
    return combined


def masked_softmax(scores: Tensor, mask: Tensor | None, dim: int = -1, *, in_place: bool = False) -> Tensor:
    """Softmax that gives masked positions exactly 0 and fully masked rows all zeros (not NaN).

    `in_place=True` masks `scores` itself: a caller that owns a fresh score tensor saves a full-size
    copy, which for attention maps is a large part of the cost.
    """
    if mask is None:
        return torch.softmax(scores, dim=dim)
    masked = scores.masked_fill_(~mask, float("-inf")) if in_place else scores.masked_fill(~mask, float("-inf"))
    probs = torch.softmax(masked, dim=dim)
    # A row with at least one key already has exact zeros at its masked keys; only a row with
    # none comes out NaN (0/0), and a second full-size pass is needed only then.
    if bool(mask.any(dim=dim).all()):
        return probs
    return probs.masked_fill(~mask, 0.0)


# ---------------------------------------------------------------------------------- scores
# Shapes: query (..., q_len, d_q), keys (..., k_len, d_k) -> scores (..., q_len, k_len).


def dot_score(query: Tensor, keys: Tensor) -> Tensor:
    """Luong "dot": qᵀk. Needs d_q == d_k."""
    return query @ keys.transpose(-2, -1)


def scaled_dot_score(query: Tensor, keys: Tensor) -> Tensor:
    """Vaswani et al.: qᵀk / sqrt(d); the scaling keeps softmax out of saturation as d grows.

    Scaled in place: the product is a fresh tensor, so a full-size copy is saved.
    """
    return dot_score(query, keys).mul_(query.shape[-1] ** -0.5)


def general_score(query: Tensor, keys: Tensor, weight: Tensor) -> Tensor:
    """Luong "general" (bilinear): qᵀ W k with W of shape (d_q, d_k)."""
    return (query @ weight) @ keys.transpose(-2, -1)


def additive_score(query: Tensor, keys: Tensor, query_weight: Tensor, key_weight: Tensor,
                   v: Tensor, bias: Tensor | None = None) -> Tensor:
    """Bahdanau: vᵀ tanh(W_q q + W_k k + b); W_q (d_attn, d_q), W_k (d_attn, d_k), v (d_attn,)."""
    projected_query = query @ query_weight.T  # (..., q_len, d_attn)
    projected_keys = keys @ key_weight.T  # (..., k_len, d_attn)
    hidden = projected_query.unsqueeze(-2) + projected_keys.unsqueeze(-3)  # (..., q_len, k_len, d_attn)
    if bias is not None:
        hidden = hidden + bias
    return torch.tanh(hidden) @ v


def concat_score(query: Tensor, keys: Tensor, weight: Tensor, v: Tensor,
                 bias: Tensor | None = None) -> Tensor:
    """Luong "concat": vᵀ tanh(W [q; k] + b); W (d_attn, d_q + d_k), v (d_attn,)."""
    q_len, k_len = query.shape[-2], keys.shape[-2]
    pairs = torch.cat(
        [
            query.unsqueeze(-2).expand(*query.shape[:-2], q_len, k_len, query.shape[-1]),
            keys.unsqueeze(-3).expand(*keys.shape[:-2], q_len, k_len, keys.shape[-1]),
        ],
        dim=-1,
    )  # (..., q_len, k_len, d_q + d_k)
    hidden = pairs @ weight.T
    if bias is not None:
        hidden = hidden + bias
    return torch.tanh(hidden) @ v


SCORE_FUNCTIONS = ("dot", "scaled_dot", "general", "additive", "concat")


class AttentionScore(nn.Module):
    """A learnable scoring function by name, for models that pool with attention (e.g. BiRNNs).

    `forward(query, keys)` returns (..., q_len, k_len) scores; "additive" and "concat" hold the
    same parameters in different layouts, as in the papers that introduced them.
    """

    def __init__(self, kind: str, query_dim: int, key_dim: int, attention_dim: int | None = None) -> None:
        super().__init__()
        if kind not in SCORE_FUNCTIONS:
            raise ValueError(f"unknown attention score {kind!r}; expected one of {SCORE_FUNCTIONS}")
        if kind in ("dot", "scaled_dot") and query_dim != key_dim:
            raise ValueError(f"{kind} attention needs query_dim == key_dim, got {query_dim} and {key_dim}")
        self.kind = kind
        attention_dim = attention_dim or key_dim
        if kind == "general":
            self.weight = nn.Parameter(torch.empty(query_dim, key_dim))
            nn.init.xavier_uniform_(self.weight)
        elif kind == "additive":
            self.query_proj = nn.Linear(query_dim, attention_dim, bias=False)
            self.key_proj = nn.Linear(key_dim, attention_dim, bias=True)
            self.v = nn.Parameter(torch.empty(attention_dim).uniform_(-0.1, 0.1))
        elif kind == "concat":
            self.proj = nn.Linear(query_dim + key_dim, attention_dim, bias=True)
            self.v = nn.Parameter(torch.empty(attention_dim).uniform_(-0.1, 0.1))

    def forward(self, query: Tensor, keys: Tensor) -> Tensor:
        if self.kind == "dot":
            return dot_score(query, keys)
        if self.kind == "scaled_dot":
            return scaled_dot_score(query, keys)
        if self.kind == "general":
            return general_score(query, keys, self.weight)
        if self.kind == "additive":
            return additive_score(query, keys, self.query_proj.weight, self.key_proj.weight, self.v,
                                  self.key_proj.bias)
        return concat_score(query, keys, self.proj.weight, self.v, self.proj.bias)


# ---------------------------------------------------------------------------------- SDPA


def scaled_dot_product_attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    mask: Tensor | None = None,
    *,
    dropout_p: float = 0.0,
    need_weights: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """softmax(q kᵀ / sqrt(d) masked) v for (batch, heads, len, head_dim) tensors.

    Returns (output, probabilities or None). The fused kernel is used unless the probabilities
    are needed; the explicit path computes the same function so either may be chosen per call.
    """
    if not need_weights:
        output = F.scaled_dot_product_attention(query, key, value, attn_mask=mask, dropout_p=dropout_p)
        return output, None
    # The scores are ours, so they are masked in place: no full-size copy of (batch, heads, q, k).
    probs = masked_softmax(scaled_dot_score(query, key), mask, in_place=True)  # (batch, heads, q_len, k_len)
    if dropout_p > 0.0:
        probs = F.dropout(probs, p=dropout_p)
    return probs @ value, probs


def split_heads(x: Tensor, num_heads: int) -> Tensor:
    """(batch, len, heads*head_dim) -> (batch, heads, len, head_dim)."""
    batch, length, width = x.shape
    return x.view(batch, length, num_heads, width // num_heads).transpose(1, 2)


def merge_heads(x: Tensor) -> Tensor:
    """(batch, heads, len, head_dim) -> (batch, len, heads*head_dim)."""
    batch, heads, length, head_dim = x.shape
    return x.transpose(1, 2).reshape(batch, length, heads * head_dim)


class MultiHeadAttention(nn.Module):
    """Multi-head attention with separate query/key/value/output projections.

    Supports self-attention, cross-attention (q_len != k_len, key_dim != embed_dim), key padding
    masks and causal masks. Its parameters follow `torch.nn.MultiheadAttention`'s semantics, so the
    two can be checked against each other.
    """

    def __init__(self, embed_dim: int, num_heads: int, *, key_dim: int | None = None,
                 value_dim: int | None = None, dropout: float = 0.0, bias: bool = True) -> None:
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim ({embed_dim}) must be divisible by num_heads ({num_heads})")
        self.num_heads = num_heads
        self.dropout = dropout
        self.query = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.key = nn.Linear(key_dim or embed_dim, embed_dim, bias=bias)
        self.value = nn.Linear(value_dim or embed_dim, embed_dim, bias=bias)
        self.output = nn.Linear(embed_dim, embed_dim, bias=bias)

    def forward(self, query: Tensor, key: Tensor | None = None, value: Tensor | None = None, *,
                key_padding_mask: Tensor | None = None, causal: bool = False,
                need_weights: bool = False) -> tuple[Tensor, Tensor | None]:
        """query (batch, q_len, embed), key/value (batch, k_len, *) default to query.

        key_padding_mask: (batch, k_len), 1/True for real tokens. Returns the output
        (batch, q_len, embed) and, if asked, the per-head probabilities (batch, heads, q_len, k_len).
        """
        key = query if key is None else key
        value = key if value is None else value
        q = split_heads(self.query(query), self.num_heads)  # (batch, heads, q_len, head_dim)
        k = split_heads(self.key(key), self.num_heads)  # (batch, heads, k_len, head_dim)
        v = split_heads(self.value(value), self.num_heads)
        mask = combine_masks(
            padding_mask(key_padding_mask) if key_padding_mask is not None else None,
            causal_mask(q.shape[-2], k.shape[-2], device=q.device) if causal else None,
        )
        context, probs = scaled_dot_product_attention(
            q, k, v, mask, dropout_p=self.dropout if self.training else 0.0, need_weights=need_weights
        )
        return self.output(merge_heads(context)), probs
