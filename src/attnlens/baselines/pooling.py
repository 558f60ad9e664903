"""Attention pooling of a sequence of hidden states into one vector, as the pre-BERT classifiers did.

A classifier has no decoder state to attend from, so the query is either a learned vector
(Bahdanau-style "against a learned query"; the HAN's context vector is the same idea) or the
encoder's final forward/backward states (the closest analogue of Luong's decoder state h_t).
The scores are the project's own scoring functions (`attnlens.attention.AttentionScore`); this
module adds only Luong's local-p, which `attnlens.attention` does not have:

    p_t = S · sigmoid(v_pᵀ tanh(W_p h_t))             predicted position, S = the input's length
    a_t(s) = align(h_t, h̄_s) · exp(-(s - p_t)² / 2σ²)  for |s - p_t| <= D, else 0;   σ = D / 2

with `align` the softmax of a global score over the window (Luong et al. 2015, eq. 9-10). As in
the paper the Gaussian-weighted weights are not renormalised.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from attnlens.attention import AttentionScore, masked_softmax


def predicted_position(query: Tensor, lengths: Tensor, position_proj: nn.Linear, v_p: Tensor) -> Tensor:
    """Luong's p_t = S · sigmoid(v_pᵀ tanh(W_p h_t)); query (batch, d), lengths (batch,) -> (batch,)."""
    return lengths.to(query.dtype) * torch.sigmoid(torch.tanh(position_proj(query)) @ v_p)


def gaussian_window(positions: Tensor, centre: Tensor, window: int) -> tuple[Tensor, Tensor]:
    """(exp(-(s - p)² / 2σ²), |s - p| <= D) for positions (seq,) and centres (batch,), σ = D / 2."""
    sigma = window / 2.0
    distance = positions[None, :].to(centre.dtype) - centre[:, None]  # (batch, seq)
    return torch.exp(-distance.square() / (2 * sigma**2)), distance.abs() <= window


class LocalPAttention(nn.Module):
    """Luong's local-p attention weights (batch, seq) for one query per example."""

    def __init__(self, score: str, dim: int, attention_dim: int, window: int) -> None:
        super().__init__()
        self.window = window
        self.score = AttentionScore(score, dim, dim, attention_dim)
        self.position_proj = nn.Linear(dim, attention_dim, bias=False)  # W_p
        self.v_p = nn.Parameter(torch.empty(attention_dim).uniform_(-0.1, 0.1))

    def forward(self, query: Tensor, keys: Tensor, mask: Tensor) -> Tensor:
        lengths = mask.sum(dim=-1)  # (batch,)
        centre = predicted_position(query, lengths, self.position_proj, self.v_p)  # (batch,)
        positions = torch.arange(keys.shape[1], device=keys.device)
        gaussian, inside = gaussian_window(positions, centre, self.window)
        scores = self.score(query[:, None, :], keys).squeeze(1)  # (batch, seq)
        align = masked_softmax(scores, mask & inside)
        return align * gaussian


class AttentionPooling(nn.Module):
    """softmax(score(q, h_s)) weighted sum of the states; returns (pooled (batch, d), weights (batch, seq))."""

    def __init__(self, kind: str, dim: int, attention_dim: int, query: str = "learned",
                 local_window: int = 8, local_score: str = "general") -> None:
        super().__init__()
        self.query_source = query
        if query == "learned":
            self.query = nn.Parameter(torch.empty(dim).uniform_(-0.1, 0.1))
        if kind == "local_p":
            self.local = LocalPAttention(local_score, dim, attention_dim, local_window)
        else:
            self.score = AttentionScore(kind, dim, dim, attention_dim)

    def forward(self, states: Tensor, mask: Tensor, final_state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if self.query_source == "learned":
            query = self.query.expand(states.shape[0], -1)  # (batch, dim)
        else:
            assert final_state is not None, "query='final_state' needs the encoder's final state"
            query = final_state
        if hasattr(self, "local"):
            weights = self.local(query, states, mask)
        else:
            weights = masked_softmax(self.score(query[:, None, :], states).squeeze(1), mask)  # (batch, seq)
        return (weights[:, None, :] @ states).squeeze(1), weights
