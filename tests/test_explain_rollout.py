"""The streaming implementations equal the textbook ones computed from every stored map.

`attention_rollout` multiplies layer by layer inside the attention hook; `gradient_weighted_rollout`
accumulates its per-token relevance (Chefer's and the deletion rule) during the backward pass. Both
are compared with the direct formulas over `output_attentions` maps (and, for gradients, a plain full
backward), on a padded batch, whichever way the model groups the examples into attention chunks.
The conservative rule is compared with `transformers`' BERT whose softmax, LayerNorm and
activations are made constant in its backward by hand.
"""

from __future__ import annotations

import pytest
import torch
import transformers

import attnlens.inference.packing
from attnlens import BertConfig, BertForSequenceClassification, InputError
from attnlens.explain.grad_rollout import gradient_weighted_rollout
from attnlens.explain.inputs import encode_texts
from attnlens.explain.rollout import attention_rollout

TEXTS = ["a gripping , beautifully shot film", "dull", "neither here nor there , but long enough to pad others"]


def rollout_from_attentions(attentions) -> torch.Tensor:
    """Abnar & Zuidema's rollout in its textbook form, from every stored map (batch, heads, seq,
    seq) per layer -> (batch, seq, seq): each layer's head mean with the residual identity, the
    layers multiplied from the first up."""
    rollout = None
    for probs in attentions:
        layer = 0.5 * probs.float().mean(dim=1) + 0.5 * torch.eye(probs.shape[-1])
        rollout = layer if rollout is None else layer @ rollout
    return rollout


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
        monkeypatch.setattr(attnlens.inference.packing, "CHUNK_MAP_ELEMENTS", budget)
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


class _ConstantScaleLayerNorm(torch.nn.Module):
    """(x - mean) / σ · w + b with σ cut from the graph: the conservative LayerNorm, written out."""

    def __init__(self, norm: torch.nn.LayerNorm) -> None:
        super().__init__()
        self.norm = norm

    def forward(self, x):
        sigma = (x.var(dim=-1, unbiased=False, keepdim=True) + self.norm.eps).sqrt().detach()
        return (x - x.mean(dim=-1, keepdim=True)) / sigma * self.norm.weight + self.norm.bias


class _ConstantGate(torch.nn.Module):
    """f(z) written as z · (f(z) / z) with the ratio cut from the graph."""

    def __init__(self, activation) -> None:
        super().__init__()
        self.activation = activation

    def forward(self, z):
        return z * (self.activation(z) / z).detach()


def reference_conservative(model, batch, targets, tmp_path, monkeypatch):
    """Gradient × input at the first layer's input of `transformers`' BERT (eager attention, our
    saved weights), its softmax, LayerNorm scales and activations replaced by constants in the
    backward; the target's log-odds as the objective."""
    model.save_pretrained(tmp_path)
    ref = transformers.BertForSequenceClassification.from_pretrained(tmp_path, attn_implementation="eager").eval()
    softmax = torch.nn.functional.softmax
    monkeypatch.setattr(torch.nn.functional, "softmax", lambda *args, **kwargs: softmax(*args, **kwargs).detach())
    for module in list(ref.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, torch.nn.LayerNorm):
                setattr(module, name, _ConstantScaleLayerNorm(child))
        if hasattr(module, "intermediate_act_fn"):
            module.intermediate_act_fn = _ConstantGate(module.intermediate_act_fn)
    ref.bert.pooler.activation = _ConstantGate(torch.tanh)
    embedded = {}
    ref.bert.embeddings.register_forward_hook(lambda module, args, output: embedded.setdefault("h", output))
    logits = ref(**batch.model_inputs()).logits
    log_odds = logits.gather(1, targets[:, None]) - logits.gather(1, 1 - targets[:, None])
    (grad,) = torch.autograd.grad(log_odds.sum(), embedded["h"])
    return logits.detach(), (grad * embedded["h"]).sum(-1).detach() * batch.attention_mask


@pytest.mark.parametrize("target", [None, 0, 1])
def test_conservative_rule_equals_transformers_with_constant_softmax_and_norms(
        model, batch, target, chunking, tmp_path, monkeypatch):
    logits, ours = gradient_weighted_rollout(model, batch, target)  # the default rule
    targets = logits.argmax(-1) if target is None else torch.full((len(batch),), target)
    ref_logits, reference = reference_conservative(model, batch, targets, tmp_path, monkeypatch)
    torch.testing.assert_close(logits, ref_logits, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours, reference, rtol=1e-4, atol=1e-6)
    assert (ours[:, 1:].abs() > 1e-4).any()  # not trivially zero
    for i, length in enumerate(batch.lengths):
        assert torch.all(ours[i, length:] == 0)


def test_conservative_rule_conserves_the_log_odds_of_a_model_without_biases(model, batch):
    """With every bias zero, holding attention, LayerNorm scales and gates constant leaves a linear
    map from the first layer's input to the logits, so the tokens' relevances add up to the
    log-odds exactly; a nonlinearity left in the backward would break the sum."""
    unbiased = BertForSequenceClassification(model.config).eval()
    unbiased.load_state_dict(model.state_dict())
    with torch.no_grad():
        for name, parameter in unbiased.named_parameters():
            if name.endswith("bias"):
                parameter.zero_()
    for target in (0, 1):
        logits, relevance = gradient_weighted_rollout(unbiased, batch, target, rule="conservative")
        log_odds = logits[:, target] - logits[:, 1 - target]
        torch.testing.assert_close(relevance.sum(dim=1), log_odds, rtol=1e-4, atol=1e-5)
        assert (log_odds.abs() > 1e-3).all()  # a real sum, not 0 = 0


def test_conservative_backward_leaves_every_forward_value_unchanged(model, batch):
    """The rule changes the backward only: under autograd the engine with it gives the reference
    model's logits and every layer's attention maps."""
    from attnlens.explain.conservative import CONSERVATIVE
    from attnlens.inference.engine import classify

    with torch.no_grad():
        expected = model(**batch.model_inputs(), output_attentions=True)
    maps = {}
    with torch.enable_grad():
        logits = classify(model, **batch.model_inputs(), rule=CONSERVATIVE,
                          attention_hook=lambda layer, probs: maps.__setitem__(layer, probs.detach()))
    assert logits.requires_grad
    torch.testing.assert_close(logits, expected.logits, rtol=0, atol=1e-6)
    real = batch.attention_mask.bool()[:, None, :, None]  # rows of real queries
    for layer, reference in enumerate(expected.attentions):
        torch.testing.assert_close(maps[layer] * real, reference * real, rtol=0, atol=1e-6)


@pytest.mark.parametrize("target", [None, 0, 1])
def test_one_pass_chefer_rule_equals_reference(model, batch, target, chunking):
    logits, streamed = gradient_weighted_rollout(model, batch, target, rule="chefer")
    targets = logits.argmax(-1) if target is None else torch.full((len(batch),), target)
    ref_logits, reference = reference_chefer(model, batch, targets)
    torch.testing.assert_close(logits, ref_logits)
    torch.testing.assert_close(streamed, reference, rtol=1e-4, atol=1e-7)
    assert (streamed[:, 1:] > 0).any()  # not trivially the identity


@pytest.mark.parametrize("rule", ["deletion", "conservative"])
def test_log_odds_rules_of_two_classes_are_opposite(model, batch, rule):
    """The log-odds of class 0 are minus those of class 1, so the evidence for one is against the other."""
    _, for_negative = gradient_weighted_rollout(model, batch, 0, rule=rule)
    _, for_positive = gradient_weighted_rollout(model, batch, 1, rule=rule)
    torch.testing.assert_close(for_negative, -for_positive)


def test_grad_rollout_rejects_an_unknown_rule(model, batch):
    with pytest.raises(InputError, match="rule='cls' is not a grad_rollout rule; choose one of conservative, chefer, deletion"):
        gradient_weighted_rollout(model, batch, rule="cls")


@pytest.mark.parametrize("rule", ["chefer", "conservative"])
def test_grad_rollout_works_under_inference_mode_and_with_frozen_weights(model, batch, rule):
    _, expected = gradient_weighted_rollout(model, batch, rule=rule)
    with torch.inference_mode():
        _, in_inference = gradient_weighted_rollout(model, batch, rule=rule)
    torch.testing.assert_close(in_inference, expected)
    model.requires_grad_(False)
    try:
        _, frozen = gradient_weighted_rollout(model, batch, rule=rule)
    finally:
        model.requires_grad_(True)
    torch.testing.assert_close(frozen, expected)
    assert all(p.grad is None for p in model.parameters())  # no weight gradients were computed
