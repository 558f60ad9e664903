"""The attention of the literature, each checked against its formula written out by hand."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from attnlens.attention import (
    AttentionScore,
    MultiHeadAttention,
    additive_score,
    causal_mask,
    concat_score,
    dot_score,
    general_score,
    masked_softmax,
    padding_mask,
    scaled_dot_product_attention,
    scaled_dot_score,
)

torch.manual_seed(0)
Q = torch.randn(2, 3, 8)  # (batch, q_len, d)
K = torch.randn(2, 5, 8)  # (batch, k_len, d)


def by_hand(score):
    """Apply a per-pair score function with explicit loops: the formula, literally."""
    out = torch.empty(Q.shape[0], Q.shape[1], K.shape[1])
    for b in range(Q.shape[0]):
        for i in range(Q.shape[1]):
            for j in range(K.shape[1]):
                out[b, i, j] = score(Q[b, i], K[b, j])
    return out


def test_dot_score_is_inner_product():
    torch.testing.assert_close(dot_score(Q, K), by_hand(lambda q, k: q @ k))


def test_scaled_dot_score_divides_by_sqrt_d():
    torch.testing.assert_close(scaled_dot_score(Q, K), by_hand(lambda q, k: (q @ k) / math.sqrt(8)))


def test_general_score_is_bilinear():
    W = torch.randn(8, 8)
    torch.testing.assert_close(general_score(Q, K, W), by_hand(lambda q, k: q @ W @ k))


def test_additive_score_is_bahdanau():
    Wq, Wk, v, b = torch.randn(6, 8), torch.randn(6, 8), torch.randn(6), torch.randn(6)
    expected = by_hand(lambda q, k: v @ torch.tanh(Wq @ q + Wk @ k + b))
    torch.testing.assert_close(additive_score(Q, K, Wq, Wk, v, b), expected)


def test_concat_score_is_luong_concat():
    W, v, b = torch.randn(6, 16), torch.randn(6), torch.randn(6)
    expected = by_hand(lambda q, k: v @ torch.tanh(W @ torch.cat([q, k]) + b))
    torch.testing.assert_close(concat_score(Q, K, W, v, b), expected)


def test_concat_equals_additive_with_split_weight():
    """Luong's concat and Bahdanau's additive are one function in two parametrisations."""
    W, v = torch.randn(6, 16), torch.randn(6)
    torch.testing.assert_close(concat_score(Q, K, W, v), additive_score(Q, K, W[:, :8], W[:, 8:], v))


@pytest.mark.parametrize("kind", ["dot", "scaled_dot", "general", "additive", "concat"])
def test_attention_score_module_matches_function(kind):
    module = AttentionScore(kind, 8, 8, attention_dim=6)
    scores = module(Q, K)
    assert scores.shape == (2, 3, 5)
    if kind == "general":
        torch.testing.assert_close(scores, general_score(Q, K, module.weight))
    elif kind == "additive":
        expected = by_hand(lambda q, k: module.v @ torch.tanh(
            module.query_proj.weight @ q + module.key_proj.weight @ k + module.key_proj.bias))
        torch.testing.assert_close(scores, expected)


def test_attention_score_rejects_unknown_kind_and_bad_dims():
    with pytest.raises(ValueError, match="unknown attention score 'cosine'"):
        AttentionScore("cosine", 8, 8)
    with pytest.raises(ValueError, match="query_dim == key_dim"):
        AttentionScore("dot", 8, 4)


def test_causal_mask_lower_triangular_and_aligned_to_end():
    assert causal_mask(3).tolist() == [[True, False, False], [True, True, False], [True, True, True]]
    # two cached keys before three queries: the last query sees all five keys
    assert causal_mask(3, 5).tolist()[-1] == [True] * 5
    assert causal_mask(3, 5).tolist()[0] == [True, True, True, False, False]


@pytest.mark.parametrize("in_place", [False, True])
def test_masked_softmax_exact_zeros_and_empty_rows(in_place):
    scores = torch.randn(2, 4)
    mask = torch.tensor([[True, True, False, False], [False, False, False, False]])
    probs = masked_softmax(scores.clone(), mask, in_place=in_place)
    assert probs[0, 2:].eq(0).all() and probs[1].eq(0).all()
    torch.testing.assert_close(probs[0, :2], torch.softmax(scores[0, :2], -1))


def test_masked_softmax_broadcast_mask_without_empty_rows_and_in_place_contract():
    # A key-padding mask broadcast over heads and queries, every row with a key: the fast return.
    scores = torch.randn(2, 3, 5, 5)
    mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2])[:, None, None, :]  # (batch, 1, 1, keys)
    original = scores.clone()
    probs = masked_softmax(scores, mask)
    assert torch.equal(scores, original)  # out of place by default: the caller's scores are untouched
    assert probs[1, :, :, 3:].eq(0).all() and not probs.isnan().any()
    torch.testing.assert_close(probs.sum(-1), torch.ones(2, 3, 5))
    in_place = masked_softmax(scores, mask, in_place=True)
    assert torch.equal(in_place, probs)
    assert scores[1, :, :, 3:].eq(float("-inf")).all()  # in place: the masked keys were filled


def sdpa_inputs(q_len=4, k_len=6):
    torch.manual_seed(1)
    return torch.randn(2, 3, q_len, 8), torch.randn(2, 3, k_len, 8), torch.randn(2, 3, k_len, 8)


@pytest.mark.parametrize("mask_kind", ["none", "padding", "causal", "both"])
def test_sdpa_fused_and_explicit_paths_agree(mask_kind):
    q, k, v = sdpa_inputs(6, 6)
    pad = padding_mask(torch.tensor([[1] * 6, [1] * 4 + [0] * 2]))
    mask = {"none": None, "padding": pad, "causal": causal_mask(6),
            "both": pad & causal_mask(6)}[mask_kind]
    fused, none = scaled_dot_product_attention(q, k, v, mask)
    explicit, probs = scaled_dot_product_attention(q, k, v, mask, need_weights=True)
    assert none is None
    torch.testing.assert_close(fused, explicit, atol=1e-6, rtol=1e-5)
    # the formula: softmax(q kᵀ/√d + mask) v
    scores = q @ k.transpose(-1, -2) / math.sqrt(8)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    torch.testing.assert_close(probs, torch.softmax(scores, -1))
    if mask is not None:
        assert probs.masked_select(~mask.expand_as(probs)).eq(0).all()


def test_sdpa_cross_attention_shapes():
    q, k, v = sdpa_inputs(q_len=3, k_len=7)
    out, probs = scaled_dot_product_attention(q, k, v, need_weights=True)
    assert out.shape == (2, 3, 3, 8) and probs.shape == (2, 3, 3, 7)
    torch.testing.assert_close(probs.sum(-1), torch.ones(2, 3, 3))


def copy_to_torch_mha(ours: MultiHeadAttention, embed_dim: int, heads: int, kdim=None):
    mha = torch.nn.MultiheadAttention(embed_dim, heads, batch_first=True, kdim=kdim, vdim=kdim)
    with torch.no_grad():
        if kdim is None:
            mha.in_proj_weight.copy_(torch.cat([ours.query.weight, ours.key.weight, ours.value.weight]))
        else:
            mha.q_proj_weight.copy_(ours.query.weight)
            mha.k_proj_weight.copy_(ours.key.weight)
            mha.v_proj_weight.copy_(ours.value.weight)
        mha.in_proj_bias.copy_(torch.cat([ours.query.bias, ours.key.bias, ours.value.bias]))
        mha.out_proj.weight.copy_(ours.output.weight)
        mha.out_proj.bias.copy_(ours.output.bias)
    return mha.eval()


def test_multi_head_self_attention_matches_torch_with_padding():
    torch.manual_seed(2)
    ours = MultiHeadAttention(16, 4).eval()
    mha = copy_to_torch_mha(ours, 16, 4)
    x = torch.randn(2, 5, 16)
    keep = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    out, probs = ours(x, key_padding_mask=keep, need_weights=True)
    ref, ref_probs = mha(x, x, x, key_padding_mask=~keep.bool(), average_attn_weights=False)
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(probs, ref_probs, atol=1e-6, rtol=1e-5)
    assert probs[1, :, :, 3:].eq(0).all()


def test_multi_head_causal_matches_torch():
    torch.manual_seed(3)
    ours = MultiHeadAttention(16, 2).eval()
    mha = copy_to_torch_mha(ours, 16, 2)
    x = torch.randn(2, 6, 16)
    out, _ = ours(x, causal=True)
    ref, _ = mha(x, x, x, attn_mask=~causal_mask(6), need_weights=False)
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=1e-5)


def test_multi_head_cross_attention_matches_torch():
    torch.manual_seed(4)
    ours = MultiHeadAttention(16, 4, key_dim=10, value_dim=10).eval()
    mha = copy_to_torch_mha(ours, 16, 4, kdim=10)
    queries, memory = torch.randn(2, 3, 16), torch.randn(2, 7, 10)
    out, probs = ours(queries, memory, need_weights=True)
    ref, _ = mha(queries, memory, memory)
    assert out.shape == (2, 3, 16) and probs.shape == (2, 4, 3, 7)
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=1e-5)


def test_sdpa_uses_fused_kernel_when_probabilities_not_needed(monkeypatch):
    calls = []
    real = F.scaled_dot_product_attention
    monkeypatch.setattr(F, "scaled_dot_product_attention", lambda *a, **k: calls.append(1) or real(*a, **k))
    q, k, v = sdpa_inputs()
    scaled_dot_product_attention(q, k, v)
    scaled_dot_product_attention(q, k, v, need_weights=True)
    assert len(calls) == 1
