"""The streaming implementations equal the textbook ones computed from every stored map.

`attention_rollout` multiplies layer by layer inside the attention hook; `gradient_weighted_rollout`
accumulates its per-token relevance (both rules) during the backward pass. Both are compared with
the direct formulas over `output_attentions` maps (and, for gradients, a plain full backward), on a
padded batch, whichever way the model groups the examples into attention chunks.
"""

from __future__ import annotations

import pytest
import torch

import attnlens.unpadding
from attnlens import BertConfig, BertForSequenceClassification, InputError
from attnlens.explain.grad_rollout import gradient_weighted_rollout
from attnlens.explain.inputs import encode_texts
from attnlens.explain.rollout import attention_rollout, rollout_from_attentions

TEXTS = ["a gripping , beautifully shot film", "dull", "neither here nor there , but long enough to pad others"]


@pytest.fixture(scope="module")
def model(tokenizer):
    torch.manual_seed(3)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=48, num_hidden_layers=4,
                        num_attention_heads=3, intermediate_size=96, id2label={0: "negative", 1: "positive"})
    return BertForSequenceClassification(config).eval()


@pytest.fixture(scope="module")
def batch(tokenizer):
    return encode_texts(tokenizer, TEXTS, 512)


@pytest.fixture(params=["one chunk", "a padded pair and one alone", "each alone"])
def chunking(request, monkeypatch, model, batch):
    """How `attend_in_chunks` groups the batch: all together (the default budget), the first two
    examples together (padded to the longer) and the third alone, or every example alone."""
    heads = model.config.num_attention_heads
    budget = {"one chunk": None, "each alone": 1,
              "a padded pair and one alone": 2 * heads * max(batch.lengths[:2]) ** 2}[request.param]
    if budget is not None:
        monkeypatch.setattr(attnlens.unpadding, "CHUNK_MAP_ELEMENTS", budget)
    assert batch.lengths[0] != batch.lengths[1]  # so the pair really is padded
    return request.param


def test_rollout_layer_by_layer_equals_rollout_from_all_maps(model, batch, chunking):
    logits, streamed = attention_rollout(model, batch)
    with torch.no_grad():
        out = model(**batch.model_inputs(), output_attentions=True)
    reference = rollout_from_attentions(out.attentions)  # (batch, seq, seq)
    torch.testing.assert_close(streamed, reference[:, 0, :])
    torch.testing.assert_close(logits, out.logits)
    # The rollout of one real example is a distribution over its tokens; padding gets nothing.
    for i, length in enumerate(batch.lengths):
        assert streamed[i, :length].sum().item() == pytest.approx(1.0, abs=1e-5)
        assert torch.all(streamed[i, length:] == 0)


def reference_chefer(model, batch, targets):
    """Chefer et al.'s update R <- R + mean_h((dy/dA * A)^+) R in layer order, from stored maps."""
    out = model(**batch.model_inputs(), output_attentions=True)
    for attention in out.attentions:
        attention.retain_grad()
    out.logits.gather(1, targets[:, None]).sum().backward()
    seq = batch.input_ids.shape[1]
    relevance = torch.eye(seq).expand(len(batch), seq, seq).clone()
    for attention in out.attentions:
        weighted = (attention.grad * attention).clamp(min=0).mean(dim=1)
        relevance = relevance + weighted @ relevance
    model.zero_grad(set_to_none=True)
    return out.logits.detach(), relevance[:, 0, :]


def reference_deletion(model, batch, targets):
    """Σ over layers, heads and rows i != j of dy/ds_ij (s: pre-softmax scores), y the log-odds.

    Written with the full softmax Jacobian diag(a) - a aᵀ of every row, from stored maps and a
    plain backward, independently of the streamed shortcut.
    """
    out = model(**batch.model_inputs(), output_attentions=True)
    for attention in out.attentions:
        attention.retain_grad()
    probs = out.logits.softmax(dim=-1).gather(1, targets[:, None]).squeeze(1)
    (probs.log() - (1 - probs).log()).sum().backward()
    seq = batch.input_ids.shape[1]
    relevance = torch.zeros(len(batch), seq)
    for attention in out.attentions:
        a = attention.detach()
        jacobian = torch.diag_embed(a) - a.unsqueeze(-1) * a.unsqueeze(-2)  # (batch, heads, q, k, k)
        score_grad = (jacobian @ attention.grad.unsqueeze(-1)).squeeze(-1)  # (batch, heads, q, k)
        relevance += (score_grad * (1 - torch.eye(seq))).sum(dim=(1, 2))
    model.zero_grad(set_to_none=True)
    return out.logits.detach(), relevance


@pytest.mark.parametrize("target", [None, 0, 1])
def test_one_pass_deletion_rule_equals_reference(model, batch, target, chunking):
    logits, streamed = gradient_weighted_rollout(model, batch, target, rule="deletion")
    targets = logits.argmax(-1) if target is None else torch.full((len(batch),), target)
    ref_logits, reference = reference_deletion(model, batch, targets)
    torch.testing.assert_close(logits, ref_logits)
    torch.testing.assert_close(streamed, reference, rtol=1e-4, atol=1e-6)
    assert (streamed[:, 1:].abs() > 1e-6).any()  # not trivially zero
    for i, length in enumerate(batch.lengths):
        assert torch.all(streamed[i, length:] == 0)  # nobody reads padding, so deleting it changes nothing


@pytest.mark.parametrize("target", [None, 0, 1])
def test_one_pass_chefer_rule_the_default_equals_reference(model, batch, target, chunking):
    logits, streamed = gradient_weighted_rollout(model, batch, target)
    targets = logits.argmax(-1) if target is None else torch.full((len(batch),), target)
    ref_logits, reference = reference_chefer(model, batch, targets)
    torch.testing.assert_close(logits, ref_logits)
    torch.testing.assert_close(streamed, reference, rtol=1e-4, atol=1e-7)
    assert (streamed[:, 1:] > 0).any()  # not trivially the identity


def test_deletion_rule_of_two_classes_are_opposite(model, batch):
    """The log-odds of class 0 are minus those of class 1, so the evidence for one is against the other."""
    _, for_negative = gradient_weighted_rollout(model, batch, 0, rule="deletion")
    _, for_positive = gradient_weighted_rollout(model, batch, 1, rule="deletion")
    torch.testing.assert_close(for_negative, -for_positive)


def test_grad_rollout_rejects_an_unknown_rule(model, batch):
    with pytest.raises(InputError, match="rule='cls' is not a grad_rollout rule; choose one of chefer, deletion"):
        gradient_weighted_rollout(model, batch, rule="cls")


def test_grad_rollout_works_under_inference_mode_and_with_frozen_weights(model, batch):
    _, expected = gradient_weighted_rollout(model, batch)
    with torch.inference_mode():
        _, in_inference = gradient_weighted_rollout(model, batch)
    torch.testing.assert_close(in_inference, expected)
    model.requires_grad_(False)
    try:
        _, frozen = gradient_weighted_rollout(model, batch)
    finally:
        model.requires_grad_(True)
    torch.testing.assert_close(frozen, expected)
    assert all(p.grad is None for p in model.parameters())  # no weight gradients were computed
