"""Parity with `transformers`' BERT (float32, CPU): outputs, every layer, attention, gradients.

The reference is built from a config with random weights (tiny and bert-base shaped) or from
the real all-MiniLM-L6-v2 checkpoint, and its weights are copied into ours.
"""

from __future__ import annotations

import pytest
import torch
import transformers

from attnlens import BertConfig, BertForSequenceClassification, BertModel, InputError
from attnlens.models.pretrained import load_weights
from tests.conftest import tiny_hf_config

ATOL = 1e-5


def hf_pair(kind: str, minilm_dir, head: bool, impl: str = "eager"):
    """(reference, ours) with identical weights, both in eval mode."""
    cls = transformers.BertForSequenceClassification if head else transformers.BertModel
    ours_cls = BertForSequenceClassification if head else BertModel
    torch.manual_seed(0)
    if kind == "minilm":
        ref = cls.from_pretrained(minilm_dir, attn_implementation=impl)
        if head:
            torch.nn.init.normal_(ref.classifier.weight, std=0.5)
    else:
        hf_config = tiny_hf_config() if kind == "tiny" else transformers.BertConfig(
            hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
        hf_config._attn_implementation = impl
        ref = cls(hf_config)
    ref.eval()
    ours = ours_cls(BertConfig.from_dict(ref.config.to_dict()))
    load_weights(ours, ref.state_dict(), source=f"{kind} reference")
    return ref, ours.eval()


def make_batch(case: str, vocab: int = 30522):
    """Token ids for the input shapes the issue names."""
    g = torch.Generator().manual_seed(7)
    if case == "padding":
        ids = torch.randint(1000, vocab, (3, 17), generator=g)
        mask = torch.ones_like(ids)
        mask[1, 9:] = 0
        mask[2, 3:] = 0
        ids[mask == 0] = 0
        return ids, mask, None
    if case == "token_types":
        ids = torch.randint(1000, vocab, (2, 12), generator=g)
        types = torch.zeros_like(ids)
        types[:, 6:] = 1
        return ids, torch.ones_like(ids), types
    if case == "single_token":
        return torch.tensor([[101]]), torch.ones(1, 1, dtype=torch.long), None
    if case == "max_length":
        ids = torch.randint(1000, vocab, (2, 512), generator=g)
        mask = torch.ones_like(ids)
        mask[1, 300:] = 0
        return ids, mask, None
    raise ValueError(case)


CASES = ["padding", "token_types", "single_token", "max_length"]


def real_tokens(tensor, mask):
    """Padded query rows hold no meaning (and differ between attention kernels): compare real ones."""
    return tensor[mask.bool()]


# bert-base shapes are slow on 2 cores: they take the two cases that stress them most.
ENCODER_CASES = [(kind, case) for kind in ("tiny", "minilm") for case in CASES] + [
    ("bert-base", "padding"), ("bert-base", "max_length")]


@pytest.mark.parametrize(("kind", "case"), ENCODER_CASES)
def test_encoder_matches_transformers_eager_every_layer(kind, case, minilm_dir):
    ref, ours = hf_pair(kind, minilm_dir, head=False)
    ids, mask, types = make_batch(case)
    with torch.no_grad():
        expected = ref(input_ids=ids, attention_mask=mask, token_type_ids=types,
                       output_attentions=True, output_hidden_states=True)
        got = ours(ids, mask, types, output_attentions=True, output_hidden_states=True)
    torch.testing.assert_close(got.last_hidden_state, expected.last_hidden_state, atol=ATOL, rtol=0)
    torch.testing.assert_close(got.pooler_output, expected.pooler_output, atol=ATOL, rtol=0)
    assert len(got.hidden_states) == len(expected.hidden_states) == ref.config.num_hidden_layers + 1
    for mine, theirs in zip(got.hidden_states, expected.hidden_states, strict=True):
        torch.testing.assert_close(mine, theirs, atol=ATOL, rtol=0)
    assert len(got.attentions) == ref.config.num_hidden_layers
    for mine, theirs in zip(got.attentions, expected.attentions, strict=True):
        torch.testing.assert_close(mine, theirs, atol=ATOL, rtol=0)
        # masked keys get exactly zero attention
        assert mine.masked_select(mask[:, None, None, :].expand_as(mine) == 0).eq(0).all()


@pytest.mark.parametrize("kind", ["tiny", "minilm"])
@pytest.mark.parametrize("case", CASES)
def test_fused_path_matches_transformers_sdpa_and_eager(kind, case, minilm_dir):
    """Without output_attentions we run the fused kernel: same outputs as both references."""
    ref_sdpa, ours = hf_pair(kind, minilm_dir, head=True, impl="sdpa")
    ref_eager, _ = hf_pair(kind, minilm_dir, head=True, impl="eager")
    ids, mask, types = make_batch(case)
    with torch.no_grad():
        got = ours(ids, mask, types, output_hidden_states=True)
        explicit = ours(ids, mask, types, output_hidden_states=True, output_attentions=True)
        for ref in (ref_sdpa, ref_eager):
            expected = ref(input_ids=ids, attention_mask=mask, token_type_ids=types, output_hidden_states=True)
            torch.testing.assert_close(got.logits, expected.logits, atol=ATOL, rtol=0)
            torch.testing.assert_close(real_tokens(got.hidden_states[-1], mask),
                                       real_tokens(expected.hidden_states[-1], mask), atol=ATOL, rtol=0)
    assert got.attentions is None
    torch.testing.assert_close(got.logits, explicit.logits, atol=ATOL, rtol=0)


@pytest.mark.parametrize("kind", ["tiny", "minilm"])
def test_gradients_match_transformers(kind, minilm_dir):
    ref, ours = hf_pair(kind, minilm_dir, head=True)
    ids, mask, _types = make_batch("padding")
    labels = torch.tensor([0, 1, 1])
    loss_ref = torch.nn.functional.cross_entropy(ref(input_ids=ids, attention_mask=mask).logits, labels)
    loss_ours = torch.nn.functional.cross_entropy(ours(ids, mask).logits, labels)
    loss_ref.backward()
    loss_ours.backward()
    torch.testing.assert_close(loss_ours, loss_ref)
    ref_params = dict(ref.named_parameters())
    checked = 0
    for name, param in ours.named_parameters():
        expected = ref_params[name].grad
        torch.testing.assert_close(param.grad, expected, msg=lambda m, n=name: f"{n}: {m}")
        checked += 1
    assert checked == len(ref_params)


def test_attention_hook_sees_each_layer_and_changes_nothing(minilm_dir):
    _, ours = hf_pair("tiny", minilm_dir, head=True)
    ids, mask, _ = make_batch("padding")
    seen: list[tuple[int, tuple[int, ...]]] = []
    with torch.no_grad():
        plain = ours(ids, mask).logits
        hooked = ours(ids, mask, attention_hook=lambda i, p: seen.append((i, tuple(p.shape)))).logits
    assert seen == [(0, (3, 4, 17, 17)), (1, (3, 4, 17, 17))]
    torch.testing.assert_close(hooked, plain, atol=ATOL, rtol=0)


def test_too_long_input_names_the_limit(minilm_dir):
    _, ours = hf_pair("tiny", minilm_dir, head=False)
    with pytest.raises(InputError, match="513 tokens exceeds the model.s limit of 512"):
        ours(torch.ones(1, 513, dtype=torch.long))


def test_dropout_active_only_in_training(minilm_dir):
    config = BertConfig(vocab_size=100, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, hidden_dropout_prob=0.5, attention_probs_dropout_prob=0.5)
    model = BertForSequenceClassification(config)
    ids = torch.randint(1, 100, (2, 8))
    model.eval()
    assert torch.equal(model(ids).logits, model(ids).logits)
    model.train()
    torch.manual_seed(0)
    first = model(ids, output_attentions=True).logits
    assert not torch.equal(first, model(ids, output_attentions=True).logits)
