"""Every encoder family against `transformers`: BERT, RoBERTa (and XLM-RoBERTa's model_type), DistilBERT.

The references are random `transformers` models (tests/families.py: tiny, or each family's base
shape) whose weights are redrawn at a scale where attention is peaked and the logits have margins:
`transformers`' initialisation (std 0.02) leaves every attention map nearly uniform and every logit
nearly zero, which would let a wrong mask, position or head pass. Ours get the weights through the
strict loader. Checked: every layer and the gradients, the inference engine (hooks, chunks, int8),
saving and loading both ways, the loading rules, and the Hub cache offline. BERT's deeper tests
(MiniLM, sdpa, legacy names): test_modeling_bert.py, test_inference_engine.py, test_checkpoint.py,
test_hub.py.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import transformers
from safetensors.torch import load_file, save_file

from attnlens import (
    BertForSequenceClassification,
    CheckpointError,
    ConfigError,
    DistilBertConfig,
    DistilBertForSequenceClassification,
    InputError,
    RobertaForSequenceClassification,
    load_model,
)
from attnlens.inference.engine import FUSED_QKV_ATTRIBUTE, classify, runs_on_engine
from attnlens.inference.quantize import Int8Linear, quantize_int8
from attnlens.models import ENCODER_CLASSES
from attnlens.models.pretrained import load_weights, map_checkpoint_keys, read_weights
from attnlens.predict import Predictor
from tests.conftest import REPO_ROOT
from tests.families import FAMILIES, demo_texts, family_tokenizer, hf_config, reference_model
from tests.test_hub import add_snapshot

ATOL = 1e-5
VARIANTS = ("bert", "roberta", "xlm-roberta", "distilbert")  # model_types; xlm-roberta is RoBERTa's code
OUR_CLASS = {"bert": BertForSequenceClassification, "roberta": RobertaForSequenceClassification,
             "xlm-roberta": RobertaForSequenceClassification, "distilbert": DistilBertForSequenceClassification}
HF_CLASS = {"bert": "BertForSequenceClassification", "roberta": "RobertaForSequenceClassification",
            "xlm-roberta": "XLMRobertaForSequenceClassification",
            "distilbert": "DistilBertForSequenceClassification"}
LABELS = {0: "negative", 1: "positive"}
EXTRA_KEY, EXTRA_VALUE = "attnlens_test_extra", {"kept": [1, 2.5, "three"]}
TEXTS = ("a gripping, funny film", "dull.", "the plot drags but the cast is wonderful and the music soars")


def family_of(variant: str) -> str:
    return "roberta" if variant == "xlm-roberta" else variant


def variant_config(variant: str, size: str = "tiny", num_labels: int = 2, **overrides):
    """`transformers`' config of a model_type (XLM-RoBERTa: RoBERTa's values under its own class)."""
    config = hf_config(family_of(variant), size=size, num_labels=num_labels, **overrides)
    if variant == "xlm-roberta":
        config = transformers.XLMRobertaConfig(**{k: v for k, v in config.to_dict().items() if k != "model_type"})
    return config


def sharpen(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Redraw the weights: products at 1.5 / sqrt(fan-in) (attention scores of std ~2), embeddings
    at std 1, LayerNorm and biases jittered by 0.1 (so no LayerNorm is the identity)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=generator)
            if param.dim() == 2 and "embeddings" not in name:
                param.copy_(noise * 1.5 / param.shape[1] ** 0.5)
            elif param.dim() == 2:
                param.copy_(noise)
            else:
                param.add_(noise * 0.1)
    return model


def reference(variant: str, size: str = "tiny", seed: int = 0,
              auto=transformers.AutoModelForSequenceClassification,
              num_labels: int = 2, **overrides):
    """A sharpened `transformers` model of `variant` (any auto class), eager attention, eval mode."""
    torch.manual_seed(seed)
    config = variant_config(variant, size, num_labels, **overrides)
    return sharpen(auto.from_config(config, attn_implementation="eager"), seed).eval()


def model_pair(variant: str, size: str = "tiny", seed: int = 0, **overrides):
    """(transformers eager reference, ours) with identical weights, both in eval mode."""
    ref = reference(variant, size, seed, **overrides)
    cls = ENCODER_CLASSES[ref.config.model_type]
    ours = cls(cls.config_class.from_dict(ref.config.to_dict()))
    load_weights(ours, ref.state_dict(), source=f"{variant} {size} reference")
    return ref, ours.eval()


@functools.cache
def shared_pair(variant: str):
    """The tiny pair of a variant, for tests that only run it (no training, no backward)."""
    return model_pair(variant)


def save_reference(directory: Path, variant: str, seed: int = 0,
                   auto=transformers.AutoModelForSequenceClassification,
                   **kwargs) -> Path:
    """A sharpened `transformers` model of `variant` and its tokenizer, saved in the Hub layout."""
    reference(variant, seed=seed, auto=auto, **kwargs).save_pretrained(directory)
    family_tokenizer(family_of(variant)).save_pretrained(directory)
    return directory


def ref_inputs(ids, mask, types) -> dict:
    inputs = {"input_ids": ids, "attention_mask": mask}
    return inputs if types is None else {**inputs, "token_type_ids": types}


def make_batch(variant: str, case: str, max_tokens: int = 512):
    """(input_ids, attention_mask, token_type_ids or None): right-padded rows of different lengths,
    special tokens at both ends, the family's padding id; BERT gets two segments."""
    tokenizer = family_tokenizer(family_of(variant))
    lengths = {"padding": (17, 9, 3, 12), "holes": (17, 9, 3, 12), "single_token": (1,),
               "max_tokens": (max_tokens, 300), "base": (16, 9)}[case]
    seq = max(lengths)
    ids = torch.randint(5, len(tokenizer), (len(lengths), seq), generator=torch.Generator().manual_seed(7))
    mask = (torch.arange(seq)[None, :] < torch.tensor(lengths)[:, None]).long()
    for row, length in enumerate(lengths):
        if length > 1:
            ids[row, length - 1] = tokenizer.sep_token_id
    ids[:, 0] = tokenizer.cls_token_id
    if case == "holes":  # padding inside a row too: RoBERTa's positions skip it, BERT's do not
        mask[0, 4:7] = 0
    ids[mask == 0] = tokenizer.pad_token_id
    types = None
    if family_of(variant) == "bert":
        types = torch.zeros_like(ids)
        types[:, seq // 2:] = 1
        types[mask == 0] = 0
    return ids, mask, types


def encode(variant: str, texts=TEXTS) -> dict:
    family = family_of(variant)
    return dict(family_tokenizer(family)(list(texts), padding=True, return_tensors="pt",
                                         return_token_type_ids=family == "bert"))


# ------------------------------------------------------------------------------ the reference models

PARITY_CASES = [(variant, "tiny", case) for variant in VARIANTS
                for case in ("padding", "holes", "single_token", "max_tokens")] + [
    (family, "base", "base") for family in FAMILIES]


@pytest.mark.parametrize(("variant", "size", "case"), PARITY_CASES)
def test_every_layer_matches_transformers_eager(variant, size, case):
    ref, ours = model_pair(variant, size) if size == "base" else shared_pair(variant)
    assert type(ours) is OUR_CLASS[variant] and ours.config.model_type == variant
    ids, mask, types = make_batch(variant, case, ours.max_tokens)
    if case == "max_tokens":  # RoBERTa's 514-row table holds 512 tokens (positions from pad_token_id + 1)
        assert ids.shape[1] == ours.max_tokens == 512
        assert ours.config.max_position_embeddings == (514 if family_of(variant) == "roberta" else 512)
    with torch.no_grad():
        expected = ref(**ref_inputs(ids, mask, types), output_attentions=True, output_hidden_states=True)
        got = ours(ids, mask, types, output_attentions=True, output_hidden_states=True)
    assert float(expected.logits.abs().max()) > 0.1  # logits with margins, not all ~0
    torch.testing.assert_close(got.logits, expected.logits, atol=ATOL, rtol=0)
    layers = ours.config.num_hidden_layers
    assert len(got.hidden_states) == len(expected.hidden_states) == layers + 1
    real = mask.bool()
    for mine, theirs in zip(got.hidden_states, expected.hidden_states, strict=True):
        torch.testing.assert_close(mine[real], theirs[real], atol=ATOL, rtol=0)
    assert len(got.attentions) == len(expected.attentions) == layers
    for mine, theirs in zip(got.attentions, expected.attentions, strict=True):
        torch.testing.assert_close(mine, theirs, atol=ATOL, rtol=0)
        assert mine.masked_select(mask[:, None, None, :].expand_as(mine) == 0).eq(0).all()
    if case != "single_token":  # peaked maps (10 times uniform): a wrong mask or position would show
        assert max(float(theirs.max()) for theirs in expected.attentions) > min(0.5, 10 / ids.shape[1])


SETTINGS = [("bert", {"hidden_act": "gelu_pytorch_tanh"}), ("roberta", {"hidden_act": "gelu_new"}),
            ("xlm-roberta", {"hidden_act": "silu"}),
            ("distilbert", {"activation": "relu", "sinusoidal_pos_embds": True})]


@pytest.mark.parametrize(("variant", "overrides"), SETTINGS)
def test_other_supported_settings_match_transformers(variant, overrides):
    ref, ours = model_pair(variant, seed=5, **overrides)
    ids, mask, types = make_batch(variant, "padding")
    with torch.no_grad():
        expected = ref(**ref_inputs(ids, mask, types), output_hidden_states=True)
        got = ours(ids, mask, types, output_hidden_states=True)
        engine = classify(ours, ids, mask, types)
    torch.testing.assert_close(got.logits, expected.logits, atol=ATOL, rtol=0)
    torch.testing.assert_close(engine, expected.logits, atol=ATOL, rtol=0)
    torch.testing.assert_close(got.hidden_states[-1][mask.bool()], expected.hidden_states[-1][mask.bool()],
                               atol=ATOL, rtol=0)
    if overrides.get("sinusoidal_pos_embds"):  # our own fixed table, before any loading, is theirs
        torch.manual_seed(0)
        fresh_ref = transformers.AutoModelForSequenceClassification.from_config(
            variant_config(variant, **overrides))
        fresh = DistilBertForSequenceClassification(DistilBertConfig.from_dict(fresh_ref.config.to_dict()))
        table = fresh.distilbert.embeddings.position_embeddings.weight
        torch.testing.assert_close(table, fresh_ref.distilbert.embeddings.position_embeddings.weight,
                                   atol=1e-6, rtol=0)
        assert not table.requires_grad


@pytest.mark.parametrize("variant", VARIANTS)
def test_one_token_past_max_tokens_is_refused_naming_the_limit(variant):
    _, ours = shared_pair(variant)
    too_long = torch.full((1, ours.max_tokens + 1), 5)
    with pytest.raises(InputError, match="513 tokens exceeds the model.s limit of 512"):
        ours(too_long)
    with pytest.raises(InputError, match="513 tokens exceeds the model.s limit of 512"):
        classify(ours, too_long, torch.ones_like(too_long))


@pytest.mark.parametrize("variant", VARIANTS)
def test_gradients_match_transformers_in_train_mode(variant):
    ref, ours = model_pair(variant, seed=3)
    ref.train()
    ours.train()  # dropout 0 in these configs: training mode, deterministic
    ids, mask, types = make_batch(variant, "padding")
    labels = torch.tensor([0, 1, 1, 0])
    loss_ref = torch.nn.functional.cross_entropy(ref(**ref_inputs(ids, mask, types)).logits, labels)
    loss_ours = torch.nn.functional.cross_entropy(ours(ids, mask, types).logits, labels)
    loss_ref.backward()
    loss_ours.backward()
    torch.testing.assert_close(loss_ours, loss_ref, atol=1e-6, rtol=1e-5)
    ref_params, our_params = dict(ref.named_parameters()), dict(ours.named_parameters())
    assert set(our_params) == set(ref_params)
    # Relative to each gradient, with a floor for those that are rounding noise around an exact 0
    # (a key's bias shifts every score of a query alike, so softmax ignores it).
    floor = 1e-6 * max(float(p.grad.abs().max()) for p in ref_params.values())
    for name, param in our_params.items():
        expected = ref_params[name].grad
        assert param.grad is not None and expected is not None, name
        scale = float(expected.abs().max())
        error = float((param.grad - expected).abs().max())
        assert error <= 1e-5 * scale + floor, f"{name}: gradient off by {error:.3g} (largest {scale:.3g})"
    assert float(our_params[next(iter(our_params))].grad.abs().max()) > 0  # the embeddings learn


# ------------------------------------------------------------------------------ the inference engine


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("unpad", [None, True, False])
@pytest.mark.parametrize("case", ["padding", "holes"])
def test_engine_logits_equal_transformers(variant, unpad, case):
    ref, ours = shared_pair(variant)
    ids, mask, types = make_batch(variant, case)
    assert runs_on_engine(ours, mask)
    with torch.inference_mode():
        expected = ref(**ref_inputs(ids, mask, types)).logits
        got = classify(ours, ids, mask, types, unpad=unpad)
        cls_only = classify(ours, ids, mask, types, unpad=unpad, last_layer_cls_only=True)
    with torch.enable_grad():
        under_autograd = classify(ours, ids, mask, types, unpad=unpad)
    assert under_autograd.requires_grad
    for logits in (got, cls_only, under_autograd.detach()):
        torch.testing.assert_close(logits, expected, atol=ATOL, rtol=0)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("unpad", [True, False])
@pytest.mark.parametrize("cls_only", [False, True])
def test_engine_attention_hook_sees_the_maps_of_output_attentions(variant, unpad, cls_only):
    ref, ours = shared_pair(variant)
    ids, mask, types = make_batch(variant, "padding")
    maps: dict[int, torch.Tensor] = {}
    with torch.no_grad():
        expected = ref(**ref_inputs(ids, mask, types), output_attentions=True)
        logits = classify(ours, ids, mask, types, last_layer_cls_only=cls_only, unpad=unpad,
                          attention_hook=lambda i, probs: maps.__setitem__(i, probs.clone()))
    torch.testing.assert_close(logits, expected.logits, atol=ATOL, rtol=0)
    last = ours.config.num_hidden_layers - 1
    assert sorted(maps) == list(range(last + 1))
    real = mask.bool()
    for index, theirs in enumerate(expected.attentions):
        mine = maps[index]
        if cls_only and index == last:
            assert mine.shape == (ids.shape[0], ours.config.num_attention_heads, 1, ids.shape[1])
            torch.testing.assert_close(mine, theirs[:, :, :1], atol=ATOL, rtol=0)
        elif unpad:  # padded query rows mean nothing in the packed layout: the real ones
            torch.testing.assert_close(mine.transpose(1, 2)[real], theirs.transpose(1, 2)[real], atol=ATOL, rtol=0)
        else:
            torch.testing.assert_close(mine, theirs, atol=ATOL, rtol=0)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("cls_only", [False, True])
def test_engine_attention_chunks_hold_each_example_maps(variant, cls_only):
    ref, ours = shared_pair(variant)
    ids, mask, types = make_batch(variant, "padding")
    lengths = mask.sum(1).tolist()
    last = ours.config.num_hidden_layers - 1
    seen: dict[tuple[int, int], torch.Tensor] = {}

    def hook(layer: int, first: int, probs: torch.Tensor) -> None:
        for j in range(probs.shape[0]):
            assert (layer, first + j) not in seen
            seen[(layer, first + j)] = probs[j].clone()

    with torch.no_grad():
        logits = classify(ours, ids, mask, types, attention_chunk_hook=hook, last_layer_cls_only=cls_only)
        expected = ref(**ref_inputs(ids, mask, types), output_attentions=True)
    torch.testing.assert_close(logits, expected.logits, atol=ATOL, rtol=0)
    assert sorted(seen) == [(layer, e) for layer in range(last + 1) for e in range(len(lengths))]
    for (layer, example), probs in seen.items():
        n = lengths[example]
        rows = 1 if cls_only and layer == last else n
        theirs = expected.attentions[layer][example][:, :rows, :n]  # right padding: the real tokens first
        torch.testing.assert_close(probs[:, :rows, :n], theirs, atol=ATOL, rtol=0)
        assert torch.all(probs[:, :rows, n:] == 0)


@pytest.mark.parametrize("variant", VARIANTS)
def test_int8_stays_close_to_float32(variant):
    """Int8 (fbgemm with 7-bit activations on CPUs without VNNI, as production) approximates the
    float32 engine: logits within a tenth of their range, the same decision on most texts."""
    _, ours = shared_pair(variant)
    batch = family_tokenizer(family_of(variant))(list(demo_texts()[:48]), padding=True, truncation=True,
                                                 max_length=64, return_tensors="pt")
    quantized = quantize_int8(ours)
    with torch.inference_mode():
        fp32 = classify(ours, batch["input_ids"], batch["attention_mask"])
        int8 = classify(quantized, batch["input_ids"], batch["attention_mask"])
    assert not torch.equal(fp32, int8)  # really another (quantised) computation
    spread = float(fp32.max() - fp32.min())
    error = float((int8 - fp32).abs().max())
    assert error <= 0.1 * spread, f"int8 logits off by {error:.3g} for a spread of {spread:.3g}"
    agreement = float((fp32.argmax(-1) == int8.argmax(-1)).float().mean())
    assert agreement >= 0.9, f"int8 agrees with float32 on {agreement:.0%} of decisions"
    for parts in quantized.transformer_layers():
        assert isinstance(parts.layer.__dict__[FUSED_QKV_ATTRIBUTE], Int8Linear)
        assert isinstance(parts.intermediate, Int8Linear) and isinstance(parts.output, Int8Linear)
    for parts in ours.transformer_layers():  # the float model was copied, not changed
        assert FUSED_QKV_ATTRIBUTE not in parts.layer.__dict__ and type(parts.query) is torch.nn.Linear


# ------------------------------------------------------------------------------ saving and loading


@pytest.fixture(scope="module")
def saved_classifiers(tmp_path_factory) -> dict[str, Path]:
    """Per variant, a `transformers` classifier saved by `transformers`, plus a key of our own in
    its config.json."""
    root = tmp_path_factory.mktemp("families")
    folders = {}
    for seed, variant in enumerate(VARIANTS):
        folder = save_reference(root / variant, variant, seed=seed)
        config_path = folder / "config.json"
        values = json.loads(config_path.read_text(encoding="utf-8"))
        config_path.write_text(json.dumps({**values, EXTRA_KEY: EXTRA_VALUE}, indent=2), encoding="utf-8")
        folders[variant] = folder
    return folders


def copy_of(folder: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(folder, tmp_path / folder.name))


@pytest.mark.parametrize("variant", VARIANTS)
def test_transformers_checkpoint_loads_as_its_family(variant, saved_classifiers):
    folder = saved_classifiers[variant]
    ours = load_model(folder)
    assert type(ours) is OUR_CLASS[variant] and ours.config.model_type == variant
    assert not ours.training
    ref = reference_model(folder)
    assert type(ref).__name__ == HF_CLASS[variant]
    batch = encode(variant)
    with torch.no_grad():
        torch.testing.assert_close(ours(**batch).logits, ref(**batch).logits, atol=ATOL, rtol=0)


@pytest.mark.parametrize("variant", VARIANTS)
def test_save_pretrained_round_trips_through_transformers(variant, saved_classifiers, tmp_path):
    source = saved_classifiers[variant]
    ours = load_model(source, id2label=LABELS)  # same head, named labels
    out = ours.save_pretrained(tmp_path / "ours", tokenizer=family_tokenizer(family_of(variant)))

    written = json.loads((out / "config.json").read_text(encoding="utf-8"))
    original = json.loads((source / "config.json").read_text(encoding="utf-8"))
    assert written["model_type"] == variant
    assert written["id2label"] == {"0": "negative", "1": "positive"}
    assert written["label2id"] == {"negative": 0, "positive": 1}
    assert written["architectures"] == [HF_CLASS[variant]]
    assert written[EXTRA_KEY] == EXTRA_VALUE
    for key, value in original.items():
        if key not in ("id2label", "label2id"):
            assert written.get(key) == value, key

    ref, info = transformers.AutoModelForSequenceClassification.from_pretrained(
        out, output_loading_info=True, attn_implementation="eager")
    assert type(ref).__name__ == HF_CLASS[variant]
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    assert ref.config.id2label == LABELS and ref.config.model_type == variant
    batch = encode(variant)
    with torch.no_grad():
        torch.testing.assert_close(ours(**batch).logits, ref.eval()(**batch).logits, atol=ATOL, rtol=0)

    pipe = transformers.pipeline("text-classification", model=str(out), tokenizer=str(out))
    theirs = pipe(list(TEXTS))
    mine = Predictor.from_pretrained(str(out)).predict(list(TEXTS))
    assert [p["label"] for p in theirs] == [p.label for p in mine]
    assert [p["score"] for p in theirs] == pytest.approx([p.score for p in mine], abs=1e-5)
    assert max(p.score for p in mine) > 0.6  # decisions with margins, not coin flips

    again = load_model(out)  # and ours reads its own output exactly
    assert type(again) is type(ours) and again.config.to_dict() == ours.config.to_dict()
    for (name, a), (_, b) in zip(ours.state_dict().items(), again.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


@pytest.mark.parametrize("family", FAMILIES)
def test_base_checkpoint_gets_a_fresh_head_and_keeps_its_encoder(family, tmp_path, caplog):
    """transformers' AutoModel (BERT and RoBERTa with their pooler): a fresh head, logged."""
    folder = save_reference(tmp_path / "base", family, auto=transformers.AutoModel)
    base = transformers.AutoModel.from_pretrained(folder, attn_implementation="eager").eval()
    base_state = base.state_dict()
    assert any(key.startswith("pooler.") for key in base_state) == (family != "distilbert")
    with caplog.at_level("WARNING", logger="attnlens"):
        ours = load_model(folder, num_labels=3)
    assert type(ours) is OUR_CLASS[family] and ours.config.num_labels == 3
    fresh = [key for key in ours.state_dict() if key.startswith(ours.head_prefixes)]
    reports = [r.getMessage() for r in caplog.records if "no classification head" in r.getMessage()]
    assert len(reports) == 1 and fresh and all(key in reports[0] for key in fresh)
    encoder = getattr(ours, ours.base_model_prefix)
    for name, tensor in encoder.state_dict().items():
        assert torch.equal(tensor, base_state[name]), name
    batch = encode(family)
    with torch.no_grad():
        torch.testing.assert_close(encoder(**batch).last_hidden_state, base(**batch).last_hidden_state,
                                   atol=ATOL, rtol=0)
        assert ours(**batch).logits.shape == (len(TEXTS), 3)


@pytest.mark.parametrize(("family", "mlm_class", "dropped_prefix"), [
    ("roberta", "RobertaForMaskedLM", "lm_head."),
    ("distilbert", "DistilBertForMaskedLM", "vocab_"),
])
def test_masked_lm_checkpoint_loads_without_its_lm_head(family, mlm_class, dropped_prefix, tmp_path, caplog):
    folder = save_reference(tmp_path / "mlm", family, auto=transformers.AutoModelForMaskedLM)
    mlm = transformers.AutoModelForMaskedLM.from_pretrained(folder, attn_implementation="eager").eval()
    assert type(mlm).__name__ == mlm_class
    state = read_weights(folder)
    with caplog.at_level("WARNING", logger="attnlens"):
        ours = load_model(folder, num_labels=2)
    assert type(ours) is OUR_CLASS[family]
    assert any("no classification head" in r.getMessage() for r in caplog.records)
    _, dropped = map_checkpoint_keys(state, ours)
    assert dropped and all(key.startswith(dropped_prefix) for key in dropped)
    prefix = ours.base_model_prefix + "."
    encoder_keys = [key for key in ours.state_dict() if key.startswith(prefix)]
    for key in encoder_keys:
        assert torch.equal(ours.state_dict()[key], state[key]), key
    batch = encode(family)
    with torch.no_grad():
        expected = getattr(mlm, ours.base_model_prefix)(**batch).last_hidden_state
        got = getattr(ours, ours.base_model_prefix)(**batch).last_hidden_state
    torch.testing.assert_close(got, expected, atol=ATOL, rtol=0)


def rewrite_weights(folder: Path, edit) -> None:
    path = folder / "model.safetensors"
    state = load_file(path)
    edit(state)
    save_file(state, path, metadata={"format": "pt"})


MISSING_KEYS = {"bert": "bert.encoder.layer.1.output.dense.weight",
                "roberta": "roberta.encoder.layer.1.attention.self.key.bias",
                "xlm-roberta": "roberta.embeddings.LayerNorm.weight",
                "distilbert": "distilbert.transformer.layer.1.ffn.lin2.weight"}
RESHAPED_KEYS = {"bert": ("bert.embeddings.token_type_embeddings.weight", "(1, 32)", "(2, 32)"),
                 "roberta": ("roberta.embeddings.position_embeddings.weight", "(513, 32)", "(514, 32)"),
                 "xlm-roberta": ("classifier.out_proj.weight", "(1, 32)", "(2, 32)"),
                 "distilbert": ("distilbert.transformer.layer.0.attention.q_lin.weight", "(31, 32)", "(32, 32)")}


@pytest.mark.parametrize("variant", VARIANTS)
def test_missing_or_misshapen_weight_is_named(variant, saved_classifiers, tmp_path):
    missing = copy_of(saved_classifiers[variant], tmp_path / "missing")
    key = MISSING_KEYS[variant]
    rewrite_weights(missing, lambda state: state.pop(key))
    with pytest.raises(CheckpointError, match=f"missing weight '{key}'"):
        load_model(missing)
    reshaped = copy_of(saved_classifiers[variant], tmp_path / "reshaped")
    key, found, wanted = RESHAPED_KEYS[variant]
    rewrite_weights(reshaped, lambda state: state.__setitem__(key, state[key][:-1].clone()))
    pattern = f"'{key}' has shape {found} in the checkpoint but {wanted} in the model".replace("(", r"\(")
    with pytest.raises(CheckpointError, match=pattern.replace(")", r"\)")):
        load_model(reshaped)


def test_unknown_or_other_family_model_type_is_refused(saved_classifiers, tmp_path):
    transformers.GPT2Config(n_layer=1, n_embd=8, n_head=2).save_pretrained(tmp_path / "gpt2")
    with pytest.raises(ConfigError, match="model_type='gpt2' is not supported; attnlens loads the encoders "
                                          "bert, distilbert, roberta, xlm-roberta and"):
        load_model(tmp_path / "gpt2")
    # A family's own class refuses another family's checkpoint rather than loading it wrongly.
    with pytest.raises(ConfigError, match="model_type='distilbert' is not RoBERTa"):
        RobertaForSequenceClassification.from_pretrained(saved_classifiers["distilbert"])
    with pytest.raises(ConfigError, match="model_type='xlm-roberta' is not DistilBERT"):
        DistilBertForSequenceClassification.from_pretrained(saved_classifiers["xlm-roberta"])
    with pytest.raises(ConfigError, match="model_type='roberta' is not BERT"):
        BertForSequenceClassification.from_pretrained(saved_classifiers["roberta"])


@pytest.mark.parametrize(("variant", "changes", "message"), [
    ("distilbert", {"activation": "quick_gelu"}, r"activation='quick_gelu' is not supported"),
    ("roberta", {"hidden_act": "quick_gelu"}, r"hidden_act='quick_gelu' is not supported"),
    ("xlm-roberta", {"is_decoder": True}, r"is_decoder=true is not supported"),
    ("roberta", {"max_position_embeddings": 2}, r"max_position_embeddings \(2\) leaves no positions"),
])
def test_unsupported_settings_are_refused_naming_the_field(variant, changes, message, saved_classifiers, tmp_path):
    folder = copy_of(saved_classifiers[variant], tmp_path)
    values = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    (folder / "config.json").write_text(json.dumps({**values, **changes}), encoding="utf-8")
    with pytest.raises(ConfigError, match=f"config.json: {message}"):
        load_model(folder)


# ------------------------------------------------------------------------------ the Hub cache

ROBERTA_REPO, DISTILBERT_REPO = "attnlens-test/tiny-roberta", "attnlens-test/tiny-distilbert"
COMMIT_V1, COMMIT_V2, COMMIT_D = "a" * 40, "b" * 40, "c" * 40


@pytest.fixture(scope="module")
def family_hub_cache(tmp_path_factory) -> tuple[Path, Path]:
    """RoBERTa at two commits (main -> v2; v1 by its hash only, other weights) and DistilBERT."""
    root = tmp_path_factory.mktemp("family-hub")
    cache = root / "cache"
    add_snapshot(cache, ROBERTA_REPO, COMMIT_V1, save_reference(root / "r1", "roberta", seed=11))
    add_snapshot(cache, ROBERTA_REPO, COMMIT_V2, save_reference(root / "r2", "roberta", seed=12), refs=("main",))
    add_snapshot(cache, DISTILBERT_REPO, COMMIT_D, save_reference(root / "d", "distilbert", seed=13),
                 refs=("main",))
    return cache, root


def test_hub_cache_offline_loads_pinned_family_commits_and_tokenizers(family_hub_cache):
    cache, root = family_hub_cache
    code = """
import json, sys, torch, attnlens
out = {}
for repo, revision in json.loads(sys.argv[1]):
    model = attnlens.load_model(repo, revision=revision, local_files_only=True)
    tokenizer = attnlens.load_tokenizer(repo, revision=revision, local_files_only=True)
    batch = tokenizer([sys.argv[2]], return_tensors="pt", return_token_type_ids=False)
    with torch.no_grad():
        logits = model(**batch).logits[0].tolist()
    out[f"{repo}@{revision}"] = {"class": type(model).__name__, "model_type": model.config.model_type,
                                 "ids": batch["input_ids"][0].tolist(), "logits": logits}
print(json.dumps(out))
"""
    requests = [(ROBERTA_REPO, COMMIT_V1), (ROBERTA_REPO, None), (DISTILBERT_REPO, COMMIT_D)]
    text = "a gripping, funny film"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache)}
    result = subprocess.run([sys.executable, "-c", code, json.dumps(requests), text], env=env, cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    for (repo, revision), folder, family in zip(requests, ("r1", "r2", "d"), ("roberta", "roberta", "distilbert"),
                                                strict=True):
        got = loaded[f"{repo}@{revision}"]
        assert got["class"] == HF_CLASS[family] and got["model_type"] == family
        ids = family_tokenizer(family)([text])["input_ids"][0]
        assert got["ids"] == ids
        with torch.no_grad():
            expected = reference_model(root / folder)(torch.tensor([ids])).logits[0]
        torch.testing.assert_close(torch.tensor(got["logits"]), expected, atol=ATOL, rtol=0)
    pinned, main = loaded[f"{ROBERTA_REPO}@{COMMIT_V1}"], loaded[f"{ROBERTA_REPO}@None"]
    assert max(abs(a - b) for a, b in zip(pinned["logits"], main["logits"], strict=True)) > 1e-3
